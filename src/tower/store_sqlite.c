/* The tower's store on SQLite (one file, WAL mode). Implements store.h.
 *
 * Schema changes are migration steps appended to `migrations` below; PRAGMA user_version
 * records how many ran, each step runs in its own transaction. Statements for the calls
 * made per request are prepared once and cached; a cached statement that is still stepping
 * (a callback calling back into the store) is not reused: that call prepares its own. */
/* store.h uses size_t without including <stddef.h>; included first here meanwhile. */
#include <stddef.h>

#include "tower/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Append only: a released step never changes, later issues add new ones.
 * AUTOINCREMENT: site and host ids go into certificates, so they are never reused. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE resources ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  version TEXT NOT NULL DEFAULT '',"
    "  json TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  UNIQUE (tenant, kind, name, version));"
    "CREATE INDEX resources_kind ON resources (kind, tenant, name, version);"
    "CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);"
    "INSERT INTO revision (id, value) VALUES (1, 0);"
    "CREATE TABLE site_sync ("
    "  site_id INTEGER PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,"
    "  generation INTEGER NOT NULL,"
    "  hash TEXT NOT NULL);"
    "CREATE TABLE join_tokens ("
    "  hash TEXT PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  expires INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX join_tokens_site ON join_tokens (site_id);"
    "CREATE TABLE hosts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  site_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  labels_json TEXT NOT NULL DEFAULT '{}',"
    "  status_json TEXT NOT NULL DEFAULT '{}',"
    "  joined INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  UNIQUE (site_id, name),"
    "  UNIQUE (id, site_id));"
    /* (host_id, site_id) together: an instance row cannot name another site's host. */
    "CREATE TABLE instances ("
    "  site_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  host_id INTEGER NOT NULL,"
    "  instance TEXT NOT NULL,"
    "  json TEXT NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  PRIMARY KEY (host_id, instance),"
    "  FOREIGN KEY (host_id, site_id) REFERENCES hosts (id, site_id) ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE INDEX instances_site ON instances (site_id, instance);"
    "CREATE INDEX instances_name ON instances (instance);"
    "CREATE TABLE passwords ("
    "  tenant TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant, user));"
    "CREATE TABLE tokens ("
    "  hash TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  expires INTEGER NOT NULL DEFAULT 0,"
    "  revoked INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL);"
    "CREATE INDEX tokens_user ON tokens (tenant, user);"
    /* A deleted user keeps no password and no working token. */
    "CREATE TRIGGER resources_user_deleted AFTER DELETE ON resources"
    "  WHEN old.kind = 'user' BEGIN"
    "  DELETE FROM passwords WHERE tenant = old.tenant AND user = old.name;"
    "  DELETE FROM tokens WHERE tenant = old.tenant AND user = old.name;"
    "  END;",
    /* 2: API tokens (kind, name) and the audit trail (issue 4). */
    "ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'login';"
    "ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time INTEGER NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  resource TEXT NOT NULL DEFAULT '',"
    "  address TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL);"
    "CREATE INDEX events_time ON events (time);",
    /* 3: tower-wide settings (the shared CA of PostgreSQL replicas; kept here too so the
     * interface is the same on both backends). */
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    /* 4: hosts removed from a site (the site's desired document lists them). */
    "CREATE TABLE removed_hosts ("
    "  site_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  host_id INTEGER NOT NULL,"
    "  removed INTEGER NOT NULL,"
    "  PRIMARY KEY (site_id, host_id)) WITHOUT ROWID;",
};

#define RESOURCE_COLS "id, tenant, kind, name, version, json, created, updated"
#define HOST_COLS     "id, site_id, name, labels_json, status_json, joined, last_seen"
#define TOKEN_COLS    "tenant, user, role, expires, revoked, hash, kind, name, created"

enum stmt_id {
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_SAVEPOINT,
        ST_RELEASE,
        ST_ROLLBACK_TO,
        ST_RES_FIND,
        ST_RES_INSERT,
        ST_RES_UPDATE,
        ST_RES_GET,
        ST_RES_GET_ALL,
        ST_RES_GET_ID,
        ST_RES_LIST,
        ST_RES_LIST_TENANT,
        ST_RES_DELETE,
        ST_RES_DELETE_ALL,
        ST_REV_BUMP,
        ST_REV_GET,
        ST_SYNC_GET,
        ST_SYNC_SET,
        ST_JOIN_ADD,
        ST_JOIN_GET,
        ST_JOIN_USE,
        ST_HOST_ADD,
        ST_HOST_ADOPT,
        ST_HOST_SEQ_GET,
        ST_HOST_SEQ_SET,
        ST_HOST_GET,
        ST_HOST_LIST,
        ST_HOST_SEEN,
        ST_HOST_REMOVE_MARK,
        ST_HOST_DELETE,
        ST_HOST_REMOVED_LIST,
        ST_INST_DELETE_HOST,
        ST_INST_INSERT,
        ST_INST_LIST,
        ST_INST_LIST_SITE,
        ST_INST_DELETE_SITE,
        ST_PW_SET,
        ST_PW_GET,
        ST_TOKEN_ADD,
        ST_TOKEN_GET,
        ST_TOKEN_REVOKE,
        ST_TOKEN_ADD_API,
        ST_TOKEN_LIST,
        ST_EVENT_ADD,
        ST_EVENT_LIST,
        ST_SETTING_GET,
        ST_SETTING_ADD,
        ST__MAX,
};

static const char *const stmt_sql[ST__MAX] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT sk",
    [ST_RELEASE] = "RELEASE sk",
    [ST_ROLLBACK_TO] = "ROLLBACK TO sk",
    [ST_RES_FIND] = "SELECT id, json FROM resources"
                    " WHERE tenant = ?1 AND kind = ?2 AND name = ?3 AND version = ?4",
    [ST_RES_INSERT] = "INSERT INTO resources (tenant, kind, name, version, json, created,"
                      " updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [ST_RES_UPDATE] = "UPDATE resources SET json = ?2, updated = ?3 WHERE id = ?1",
    [ST_RES_GET] = "SELECT " RESOURCE_COLS " FROM resources"
                   " WHERE tenant = ?1 AND kind = ?2 AND name = ?3 AND version = ?4",
    [ST_RES_GET_ALL] = "SELECT " RESOURCE_COLS " FROM resources"
                       " WHERE tenant = ?1 AND kind = ?2 AND name = ?3 ORDER BY version",
    [ST_RES_GET_ID] = "SELECT " RESOURCE_COLS " FROM resources WHERE id = ?1",
    [ST_RES_LIST] = "SELECT " RESOURCE_COLS " FROM resources WHERE kind = ?1"
                    " ORDER BY tenant, name, version",
    [ST_RES_LIST_TENANT] = "SELECT " RESOURCE_COLS " FROM resources"
                           " WHERE tenant = ?1 AND kind = ?2 ORDER BY name, version",
    [ST_RES_DELETE] = "DELETE FROM resources"
                      " WHERE tenant = ?1 AND kind = ?2 AND name = ?3 AND version = ?4",
    [ST_RES_DELETE_ALL] = "DELETE FROM resources WHERE tenant = ?1 AND kind = ?2 AND name = ?3",
    [ST_REV_BUMP] = "UPDATE revision SET value = value + 1 WHERE id = 1",
    [ST_REV_GET] = "SELECT value FROM revision WHERE id = 1",
    [ST_SYNC_GET] = "SELECT generation, hash FROM site_sync WHERE site_id = ?1",
    [ST_SYNC_SET] = "INSERT INTO site_sync (site_id, generation, hash) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (site_id) DO UPDATE SET generation = excluded.generation,"
                    " hash = excluded.hash",
    [ST_JOIN_ADD] = "INSERT INTO join_tokens (hash, site_id, expires) VALUES (?1, ?2, ?3)",
    [ST_JOIN_GET] = "SELECT site_id, expires, used FROM join_tokens WHERE hash = ?1",
    [ST_JOIN_USE] = "UPDATE join_tokens SET used = ?2 WHERE hash = ?1 AND used = 0",
    /* The id explicitly: AUTOINCREMENT would follow an adopted site-local id (2^62 and up),
     * so the next one is past the highest id below that range and past every id ever
     * used (sqlite_sequence, which host_adopt leaves where it was). */
    [ST_HOST_ADD] =
        "INSERT INTO hosts (id, site_id, name, labels_json, joined, last_seen)"
        " VALUES (max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'hosts'"
        "   AND seq < 4611686018427387904), 0),"
        "  coalesce((SELECT max(id) FROM hosts WHERE id < 4611686018427387904), 0)) + 1,"
        " ?1, ?2, ?3, ?4, ?4)",
    [ST_HOST_ADOPT] = "INSERT INTO hosts (id, site_id, name, labels_json, joined, last_seen)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    [ST_HOST_SEQ_GET] = "SELECT seq FROM sqlite_sequence WHERE name = 'hosts'",
    [ST_HOST_SEQ_SET] = "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'hosts'",
    [ST_HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE id = ?1",
    [ST_HOST_LIST] = "SELECT " HOST_COLS " FROM hosts WHERE site_id = ?1 ORDER BY name",
    [ST_HOST_SEEN] = "UPDATE hosts SET last_seen = ?2,"
                     " status_json = coalesce(?3, status_json) WHERE id = ?1",
    [ST_HOST_REMOVE_MARK] = "INSERT INTO removed_hosts (site_id, host_id, removed)"
                            " SELECT site_id, id, ?2 FROM hosts WHERE id = ?1"
                            " ON CONFLICT DO NOTHING",
    [ST_HOST_DELETE] = "DELETE FROM hosts WHERE id = ?1",
    [ST_HOST_REMOVED_LIST] = "SELECT host_id FROM removed_hosts WHERE site_id = ?1"
                             " ORDER BY host_id",
    [ST_INST_DELETE_HOST] = "DELETE FROM instances WHERE host_id = ?1",
    [ST_INST_INSERT] = "INSERT INTO instances (site_id, host_id, instance, json, updated)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_INST_LIST] = "SELECT site_id, host_id, instance, json, updated FROM instances"
                     " WHERE instance >= ?2 AND (?3 IS NULL OR instance < ?3)"
                     " ORDER BY instance, host_id",
    [ST_INST_LIST_SITE] = "SELECT site_id, host_id, instance, json, updated FROM instances"
                          " WHERE site_id = ?1 AND instance >= ?2"
                          " AND (?3 IS NULL OR instance < ?3) ORDER BY instance, host_id",
    [ST_INST_DELETE_SITE] = "DELETE FROM instances WHERE site_id = ?1",
    [ST_PW_SET] = "INSERT INTO passwords (tenant, user, hash, updated) VALUES (?1, ?2, ?3, ?4)"
                  " ON CONFLICT (tenant, user) DO UPDATE SET hash = excluded.hash,"
                  " updated = excluded.updated",
    [ST_PW_GET] = "SELECT hash FROM passwords WHERE tenant = ?1 AND user = ?2",
    [ST_TOKEN_ADD] = "INSERT INTO tokens (hash, tenant, user, role, expires, created)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 WHERE hash = ?1",
    [ST_TOKEN_ADD_API] = "INSERT INTO tokens (hash, tenant, user, role, expires, created, kind,"
                         " name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'api', ?7)",
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens WHERE tenant = ?1"
                      " AND (?2 IS NULL OR user = ?2) ORDER BY created, hash",
    [ST_EVENT_ADD] = "INSERT INTO events (time, tenant, actor, method, path, resource, address,"
                     " status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_EVENT_LIST] = "SELECT id, time, tenant, actor, method, path, resource, address, status"
                      " FROM events WHERE time >= ?1 ORDER BY id",
    [ST_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
    [ST_SETTING_ADD] = "INSERT INTO settings (key, value) VALUES (?1, ?2)"
                       " ON CONFLICT (key) DO NOTHING",
};

typedef struct sk_sqlite {
        sk_store base; /* first: an sk_store* is an sk_sqlite* */
        sqlite3 *db;
        char *path;
        int depth; /* begin/commit nesting */
        sqlite3_stmt *stmts[ST__MAX];
        bool busy[ST__MAX];
} sk_sqlite;

/* A statement borrowed from the cache (or prepared for this call when the cached one is
 * in use); released by its cleanup handler. */
typedef struct stmt {
        sk_sqlite *s;
        sqlite3_stmt *st;
        int id;
        bool own;
} stmt;

static void stmt_release(stmt *q)
{
        if (!q->st)
                return;
        if (q->own) {
                sqlite3_finalize(q->st);
        } else {
                sqlite3_reset(q->st);
                sqlite3_clear_bindings(q->st);
                q->s->busy[q->id] = false;
        }
        q->st = NULL;
}

#define _cleanup_stmt_ __attribute__((cleanup(stmt_release)))

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sk_sqlite *to_sqlite(sk_store *s)
{
        return (sk_sqlite *)s;
}

static int db_fail(sk_sqlite *s, sk_error **err, const char *what)
{
        return sk_error_set(err, EIO, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int stmt_get(sk_sqlite *s, enum stmt_id id, stmt *q, sk_error **err)
{
        *q = (stmt){.s = s, .id = id};
        if (s->stmts[id] && !s->busy[id]) {
                q->st = s->stmts[id];
                s->busy[id] = true;
                return 0;
        }
        bool cache = !s->stmts[id];
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, cache ? SQLITE_PREPARE_PERSISTENT : 0,
                                    &st, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, err, "prepare");
        q->st = st;
        if (cache) {
                s->stmts[id] = st;
                s->busy[id] = true;
        } else {
                q->own = true;
        }
        return 0;
}

static int bind_text(stmt *q, int i, const char *v)
{
        return v ? sqlite3_bind_text(q->st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(q->st, i);
}

/* Binds texts to ?1..?n. */
static int bind_texts(stmt *q, sk_error **err, int n, const char *const *v)
{
        for (int i = 0; i < n; i++)
                if (bind_text(q, i + 1, v[i]) != SQLITE_OK)
                        return db_fail(q->s, err, "bind");
        return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? (const char *)t : "";
}

/* Steps a statement that returns no rows. Constraint failures are left to the caller:
 * returns the SQLite code then (positive), 0 on success, negative on other errors. */
static int step_done(stmt *q, sk_error **err, const char *what)
{
        int rc = sqlite3_step(q->st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
                return 0;
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
                return sqlite3_extended_errcode(q->s->db);
        return db_fail(q->s, err, what);
}

static int run(sk_sqlite *s, enum stmt_id id, sk_error **err, const char *what)
{
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, id, &q, err);
        if (r < 0)
                return r;
        r = step_done(&q, err, what);
        return r > 0 ? db_fail(s, err, what) : r;
}

static int require(sk_error **err, const char *field, const char *v)
{
        if (!v)
                return sk_error_set_path(err, EINVAL, field, "store: %s is required", field);
        return 0;
}

/* Transactions: the outermost level is a real transaction, inner levels are savepoints,
 * so an inner rollback undoes only its own part and only the outermost commit writes. */
static int sq_begin(sk_store *store, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r = run(s, s->depth == 0 ? ST_BEGIN : ST_SAVEPOINT, err, "begin");
        if (r < 0)
                return r;
        s->depth++;
        return 0;
}

static void sq_rollback(sk_store *store)
{
        sk_sqlite *s = to_sqlite(store);
        if (s->depth <= 0)
                return;
        s->depth--;
        /* SQLite may already have rolled back on its own (I/O error, full disk). */
        if (sqlite3_get_autocommit(s->db))
                return;
        if (s->depth == 0) {
                run(s, ST_ROLLBACK, NULL, "rollback");
        } else {
                run(s, ST_ROLLBACK_TO, NULL, "rollback");
                run(s, ST_RELEASE, NULL, "rollback");
        }
}

static int sq_commit(sk_store *store, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        if (s->depth <= 0)
                return sk_error_set(err, EINVAL, "store: commit without begin");
        int r = run(s, s->depth == 1 ? ST_COMMIT : ST_RELEASE, err, "commit");
        if (r < 0) {
                sq_rollback(store);
                return r;
        }
        s->depth--;
        return 0;
}

/* An operation's own transaction: rolled back by the cleanup handler unless committed. */
typedef struct tx {
        sk_store *s;
        bool open;
} tx;

static void tx_cleanup(tx *t)
{
        if (t->open)
                sq_rollback(t->s);
}

#define _cleanup_tx_ __attribute__((cleanup(tx_cleanup)))

static int tx_begin(tx *t, sk_store *s, sk_error **err)
{
        t->s = s;
        int r = sq_begin(s, err);
        t->open = r == 0;
        return r;
}

static int tx_commit(tx *t, sk_error **err)
{
        t->open = false;
        return sq_commit(t->s, err);
}

static int revision_bump(sk_sqlite *s, sk_error **err)
{
        return run(s, ST_REV_BUMP, err, "revision");
}

static int sq_resource_put(sk_store *store, const char *tenant, const char *kind, const char *name,
                           const char *version, const char *json, int64_t *id, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0 || (r = require(err, "json", json)) < 0)
                return r;
        if (!version)
                version = "";

        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin(&t, store, err)) < 0)
                return r;

        const char *const key[] = {tenant, kind, name, version};
        int64_t row_id = 0;
        bool found = false, same = false;
        {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, ST_RES_FIND, &q, err)) < 0 ||
                    (r = bind_texts(&q, err, 4, key)) < 0)
                        return r;
                int rc = sqlite3_step(q.st);
                if (rc == SQLITE_ROW) {
                        found = true;
                        row_id = sqlite3_column_int64(q.st, 0);
                        same = strcmp(col_text(q.st, 1), json) == 0;
                } else if (rc != SQLITE_DONE) {
                        return db_fail(s, err, "resource_put");
                }
        }

        sk_put_result result = SK_PUT_UNCHANGED;
        if (!found || !same) {
                _cleanup_stmt_ stmt q = {0};
                int64_t now = now_ms();
                if (found) {
                        if ((r = stmt_get(s, ST_RES_UPDATE, &q, err)) < 0)
                                return r;
                        sqlite3_bind_int64(q.st, 1, row_id);
                        bind_text(&q, 2, json);
                        sqlite3_bind_int64(q.st, 3, now);
                        result = SK_PUT_UPDATED;
                } else {
                        if ((r = stmt_get(s, ST_RES_INSERT, &q, err)) < 0 ||
                            (r = bind_texts(&q, err, 4, key)) < 0)
                                return r;
                        bind_text(&q, 5, json);
                        sqlite3_bind_int64(q.st, 6, now);
                        result = SK_PUT_CREATED;
                }
                r = step_done(&q, err, "resource_put");
                if (r > 0)
                        r = db_fail(s, err, "resource_put");
                if (r < 0)
                        return r;
                if (!found)
                        row_id = sqlite3_last_insert_rowid(s->db);
                if ((r = revision_bump(s, err)) < 0)
                        return r;
        }
        if ((r = tx_commit(&t, err)) < 0)
                return r;
        if (id)
                *id = row_id;
        return result;
}

/* Calls fn for each row of a SELECT RESOURCE_COLS. Returns the number of rows seen (a
 * non-zero return of fn stops the walk and lands in *stopped), or negative on a store
 * error. */
static int each_resource(stmt *q, sk_resource_fn fn, void *user, int *stopped, sk_error **err,
                         const char *what)
{
        int n = 0, rc;
        while ((rc = sqlite3_step(q->st)) == SQLITE_ROW) {
                n++;
                sk_resource_row row = {
                    .id = sqlite3_column_int64(q->st, 0),
                    .tenant = col_text(q->st, 1),
                    .kind = col_text(q->st, 2),
                    .name = col_text(q->st, 3),
                    .version = col_text(q->st, 4),
                    .json = col_text(q->st, 5),
                    .created = sqlite3_column_int64(q->st, 6),
                    .updated = sqlite3_column_int64(q->st, 7),
                };
                int r = fn ? fn(&row, user) : 0;
                if (r != 0) {
                        *stopped = r;
                        return n;
                }
        }
        if (rc != SQLITE_DONE)
                return db_fail(q->s, err, what);
        return n;
}

static int sq_resource_get(sk_store *store, const char *tenant, const char *kind, const char *name,
                           const char *version, sk_resource_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const key[] = {tenant, kind, name, version};
        if ((r = stmt_get(s, version ? ST_RES_GET : ST_RES_GET_ALL, &q, err)) < 0 ||
            (r = bind_texts(&q, err, version ? 4 : 3, key)) < 0)
                return r;
        int stopped = 0;
        int n = each_resource(&q, fn, user, &stopped, err, "resource_get");
        if (n < 0)
                return n;
        if (stopped)
                return stopped;
        if (n == 0) {
                if (version && *version)
                        return sk_error_set(err, ENOENT, "%s %s version %s not found", kind, name,
                                            version);
                return sk_error_set(err, ENOENT, "%s %s not found", kind, name);
        }
        return 0;
}

static int sq_resource_get_by_id(sk_store *store, int64_t id, sk_resource_fn fn, void *user,
                                 sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_RES_GET_ID, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, id);
        int stopped = 0;
        int n = each_resource(&q, fn, user, &stopped, err, "resource_get_by_id");
        if (n < 0)
                return n;
        if (stopped)
                return stopped;
        if (n == 0)
                return sk_error_set(err, ENOENT, "resource %lld not found", (long long)id);
        return 0;
}

static int sq_resource_list(sk_store *store, const char *tenant, const char *kind,
                            sk_resource_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "kind", kind)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if (tenant) {
                const char *const key[] = {tenant, kind};
                if ((r = stmt_get(s, ST_RES_LIST_TENANT, &q, err)) < 0 ||
                    (r = bind_texts(&q, err, 2, key)) < 0)
                        return r;
        } else {
                if ((r = stmt_get(s, ST_RES_LIST, &q, err)) < 0 ||
                    (r = bind_texts(&q, err, 1, &kind)) < 0)
                        return r;
        }
        int stopped = 0;
        int n = each_resource(&q, fn, user, &stopped, err, "resource_list");
        if (n < 0)
                return n;
        return stopped;
}

static int sq_resource_delete(sk_store *store, const char *tenant, const char *kind,
                              const char *name, const char *version, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin(&t, store, err)) < 0)
                return r;
        int n;
        {
                _cleanup_stmt_ stmt q = {0};
                const char *const key[] = {tenant, kind, name, version};
                if ((r = stmt_get(s, version ? ST_RES_DELETE : ST_RES_DELETE_ALL, &q, err)) < 0 ||
                    (r = bind_texts(&q, err, version ? 4 : 3, key)) < 0)
                        return r;
                r = step_done(&q, err, "resource_delete");
                if (r > 0)
                        r = db_fail(s, err, "resource_delete");
                if (r < 0)
                        return r;
                n = sqlite3_changes(s->db);
        }
        if (n == 0) {
                if (version && *version)
                        return sk_error_set(err, ENOENT, "%s %s version %s not found", kind, name,
                                            version);
                return sk_error_set(err, ENOENT, "%s %s not found", kind, name);
        }
        if ((r = revision_bump(s, err)) < 0 || (r = tx_commit(&t, err)) < 0)
                return r;
        return n;
}

static int sq_revision(sk_store *store, int64_t *rev, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_REV_GET, &q, err);
        if (r < 0)
                return r;
        if (sqlite3_step(q.st) != SQLITE_ROW)
                return db_fail(s, err, "revision");
        *rev = sqlite3_column_int64(q.st, 0);
        return 0;
}

/* A foreign key from the site tables fails when the site row does not exist. */
static int site_missing(sk_error **err, int64_t site_id)
{
        return sk_error_set(err, ENOENT, "site %lld not found", (long long)site_id);
}

static int sq_site_sync_get(sk_store *store, int64_t site_id, int64_t *generation, char **hash,
                            sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_SYNC_GET, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        int rc = sqlite3_step(q.st);
        if (rc == SQLITE_DONE)
                return sk_error_set(err, ENOENT, "sync state of site %lld not found",
                                    (long long)site_id);
        if (rc != SQLITE_ROW)
                return db_fail(s, err, "site_sync_get");
        if (hash) {
                char *h = strdup(col_text(q.st, 1));
                if (!h)
                        return sk_error_set(err, ENOMEM, "store: out of memory");
                *hash = h;
        }
        if (generation)
                *generation = sqlite3_column_int64(q.st, 0);
        return 0;
}

static int sq_site_sync_set(sk_store *store, int64_t site_id, int64_t generation, const char *hash,
                            sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "hash", hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_SYNC_SET, &q, err)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        sqlite3_bind_int64(q.st, 2, generation);
        bind_text(&q, 3, hash);
        r = step_done(&q, err, "site_sync_set");
        if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
                return site_missing(err, site_id);
        return r > 0 ? db_fail(s, err, "site_sync_set") : r;
}

static int sq_join_token_add(sk_store *store, const char *token_hash, int64_t site_id,
                             int64_t expires, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_JOIN_ADD, &q, err)) < 0)
                return r;
        bind_text(&q, 1, token_hash);
        sqlite3_bind_int64(q.st, 2, site_id);
        sqlite3_bind_int64(q.st, 3, expires);
        r = step_done(&q, err, "join_token_add");
        if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
                return site_missing(err, site_id);
        if (r == SQLITE_CONSTRAINT_PRIMARYKEY)
                return sk_error_set(err, EEXIST, "join token already exists");
        return r > 0 ? db_fail(s, err, "join_token_add") : r;
}

static int sq_join_token_get(sk_store *store, const char *token_hash, sk_join_token *out,
                             sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_JOIN_GET, &q, err)) < 0)
                return r;
        bind_text(&q, 1, token_hash);
        int rc = sqlite3_step(q.st);
        if (rc == SQLITE_DONE)
                return sk_error_set(err, ENOENT, "join token not found");
        if (rc != SQLITE_ROW)
                return db_fail(s, err, "join_token_get");
        if (out)
                *out = (sk_join_token){
                    .site_id = sqlite3_column_int64(q.st, 0),
                    .expires = sqlite3_column_int64(q.st, 1),
                    .used = sqlite3_column_int64(q.st, 2),
                };
        return 0;
}

static int sq_join_token_use(sk_store *store, const char *token_hash, int64_t now, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        if (now <= 0)
                return sk_error_set_path(err, EINVAL, "now", "store: now must be positive");
        {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, ST_JOIN_USE, &q, err)) < 0)
                        return r;
                bind_text(&q, 1, token_hash);
                sqlite3_bind_int64(q.st, 2, now);
                r = step_done(&q, err, "join_token_use");
                if (r > 0)
                        r = db_fail(s, err, "join_token_use");
                if (r < 0)
                        return r;
                if (sqlite3_changes(s->db) == 1)
                        return 0;
        }
        /* Nothing updated: unknown, or used before. */
        if ((r = sq_join_token_get(store, token_hash, NULL, err)) < 0)
                return r;
        return sk_error_set(err, EALREADY, "join token was already used");
}

static int sq_host_add(sk_store *store, int64_t site_id, const char *name, const char *labels_json,
                       int64_t now, int64_t *id, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "name", name)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_HOST_ADD, &q, err)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        bind_text(&q, 2, name);
        bind_text(&q, 3, labels_json ? labels_json : "{}");
        sqlite3_bind_int64(q.st, 4, now);
        r = step_done(&q, err, "host_add");
        if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
                return site_missing(err, site_id);
        if (r == SQLITE_CONSTRAINT_UNIQUE)
                return sk_error_set(err, EEXIST, "site %lld already has a host named %s",
                                    (long long)site_id, name);
        if (r > 0)
                return db_fail(s, err, "host_add");
        if (r < 0)
                return r;
        if (id)
                *id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

static int sq_host_adopt(sk_store *store, int64_t site_id, int64_t id, const char *name,
                         const char *labels_json, int64_t now, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "name", name)) < 0)
                return r;
        int64_t seq = 0;
        {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, ST_HOST_SEQ_GET, &q, err)) < 0)
                        return r;
                int rc = sqlite3_step(q.st);
                if (rc == SQLITE_ROW)
                        seq = sqlite3_column_int64(q.st, 0);
                else if (rc != SQLITE_DONE)
                        return db_fail(s, err, "host_adopt");
        }
        {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, ST_HOST_ADOPT, &q, err)) < 0)
                        return r;
                sqlite3_bind_int64(q.st, 1, id);
                sqlite3_bind_int64(q.st, 2, site_id);
                bind_text(&q, 3, name);
                bind_text(&q, 4, labels_json ? labels_json : "{}");
                sqlite3_bind_int64(q.st, 5, now);
                r = step_done(&q, err, "host_adopt");
                if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
                        return site_missing(err, site_id);
                if (r == SQLITE_CONSTRAINT_UNIQUE || r == SQLITE_CONSTRAINT_PRIMARYKEY)
                        return sk_error_set(err, EEXIST,
                                            "host id %lld or name %s is taken on site %lld",
                                            (long long)id, name, (long long)site_id);
                if (r > 0)
                        return db_fail(s, err, "host_adopt");
                if (r < 0)
                        return r;
        }
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_HOST_SEQ_SET, &q, err)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, seq);
        r = step_done(&q, err, "host_adopt");
        return r > 0 ? db_fail(s, err, "host_adopt") : r;
}

static int each_host(stmt *q, sk_host_fn fn, void *user, int *stopped, sk_error **err,
                     const char *what)
{
        int n = 0, rc;
        while ((rc = sqlite3_step(q->st)) == SQLITE_ROW) {
                n++;
                sk_host_row row = {
                    .id = sqlite3_column_int64(q->st, 0),
                    .site_id = sqlite3_column_int64(q->st, 1),
                    .name = col_text(q->st, 2),
                    .labels_json = col_text(q->st, 3),
                    .status_json = col_text(q->st, 4),
                    .joined = sqlite3_column_int64(q->st, 5),
                    .last_seen = sqlite3_column_int64(q->st, 6),
                };
                int r = fn ? fn(&row, user) : 0;
                if (r != 0) {
                        *stopped = r;
                        return n;
                }
        }
        if (rc != SQLITE_DONE)
                return db_fail(q->s, err, what);
        return n;
}

static int sq_host_get(sk_store *store, int64_t host_id, sk_host_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_HOST_GET, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, host_id);
        int stopped = 0;
        int n = each_host(&q, fn, user, &stopped, err, "host_get");
        if (n < 0)
                return n;
        if (stopped)
                return stopped;
        if (n == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        return 0;
}

static int sq_host_list(sk_store *store, int64_t site_id, sk_host_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_HOST_LIST, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        int stopped = 0;
        int n = each_host(&q, fn, user, &stopped, err, "host_list");
        return n < 0 ? n : stopped;
}

static int sq_host_delete(sk_store *store, int64_t host_id, int64_t now, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_tx_ tx t = {0};
        int r = tx_begin(&t, store, err);
        if (r < 0)
                return r;
        static const enum stmt_id steps[] = {ST_HOST_REMOVE_MARK, ST_HOST_DELETE};
        for (size_t i = 0; i < 2; i++) {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, steps[i], &q, err)) < 0)
                        return r;
                sqlite3_bind_int64(q.st, 1, host_id);
                if (i == 0)
                        sqlite3_bind_int64(q.st, 2, now);
                r = step_done(&q, err, "host_delete");
                if (r > 0)
                        r = db_fail(s, err, "host_delete");
                if (r < 0)
                        return r;
                if (i == 1 && sqlite3_changes(s->db) == 0)
                        return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        }
        if ((r = revision_bump(s, err)) < 0 || (r = tx_commit(&t, err)) < 0)
                return r;
        return 0;
}

static int sq_host_removed_list(sk_store *store, int64_t site_id, int64_t **ids, size_t *n,
                                sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        *ids = NULL;
        *n = 0;
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_HOST_REMOVED_LIST, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        int rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
                int64_t *more = realloc(*ids, (*n + 1) * sizeof(**ids));
                if (!more) {
                        free(*ids);
                        *ids = NULL;
                        *n = 0;
                        return sk_error_set(err, ENOMEM, "out of memory");
                }
                *ids = more;
                (*ids)[(*n)++] = sqlite3_column_int64(q.st, 0);
        }
        if (rc != SQLITE_DONE) {
                free(*ids);
                *ids = NULL;
                *n = 0;
                return db_fail(s, err, "host_removed_list");
        }
        return 0;
}

/* status_json NULL: a heartbeat only, the last status stays. */
static int sq_host_seen(sk_store *store, int64_t host_id, int64_t now, const char *status_json,
                        sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_HOST_SEEN, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, host_id);
        sqlite3_bind_int64(q.st, 2, now);
        bind_text(&q, 3, status_json);
        r = step_done(&q, err, "host_seen");
        if (r > 0)
                r = db_fail(s, err, "host_seen");
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        return 0;
}

/* The rows' own site_id and host_id are ignored: the report is the host's. A row with
 * updated 0 gets the current time. */
static int sq_instances_replace(sk_store *store, int64_t site_id, int64_t host_id,
                                const sk_instance_row *rows, size_t n, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if (n > 0 && !rows)
                return sk_error_set_path(err, EINVAL, "rows", "store: rows is required");
        for (size_t i = 0; i < n; i++) {
                if (!rows[i].instance || !rows[i].json)
                        return sk_error_set(err, EINVAL, "store: rows[%zu]: %s is required", i,
                                            rows[i].instance ? "json" : "instance");
        }
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin(&t, store, err)) < 0)
                return r;
        {
                _cleanup_stmt_ stmt q = {0};
                if ((r = stmt_get(s, ST_INST_DELETE_HOST, &q, err)) < 0)
                        return r;
                sqlite3_bind_int64(q.st, 1, host_id);
                r = step_done(&q, err, "instances_replace");
                if (r > 0)
                        r = db_fail(s, err, "instances_replace");
                if (r < 0)
                        return r;
        }
        int64_t now = now_ms();
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_INST_INSERT, &q, err)) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                sqlite3_reset(q.st);
                sqlite3_bind_int64(q.st, 1, site_id);
                sqlite3_bind_int64(q.st, 2, host_id);
                bind_text(&q, 3, rows[i].instance);
                bind_text(&q, 4, rows[i].json);
                sqlite3_bind_int64(q.st, 5, rows[i].updated ? rows[i].updated : now);
                r = step_done(&q, err, "instances_replace");
                if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
                        return sk_error_set(err, ENOENT, "host %lld of site %lld not found",
                                            (long long)host_id, (long long)site_id);
                if (r == SQLITE_CONSTRAINT_PRIMARYKEY)
                        return sk_error_set(err, EEXIST, "instance %s reported twice",
                                            rows[i].instance);
                if (r > 0)
                        r = db_fail(s, err, "instances_replace");
                if (r < 0)
                        return r;
        }
        return tx_commit(&t, err);
}

/* *end: the least string greater than every string starting with prefix, or NULL when
 * there is none (empty, or all 0xff bytes). */
static int prefix_end(const char *prefix, char **end, sk_error **err)
{
        size_t len = strlen(prefix);
        while (len > 0 && (unsigned char)prefix[len - 1] == 0xff)
                len--;
        *end = NULL;
        if (len == 0)
                return 0;
        char *e = strndup(prefix, len);
        if (!e)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        e[len - 1] = (char)((unsigned char)e[len - 1] + 1);
        *end = e;
        return 0;
}

static int sq_instances_list(sk_store *store, int64_t site_id, const char *prefix,
                             sk_instance_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        if (!prefix)
                prefix = "";
        _cleanup_free_ char *end = NULL;
        _cleanup_stmt_ stmt q = {0};
        int r;
        if ((r = prefix_end(prefix, &end, err)) < 0 ||
            (r = stmt_get(s, site_id ? ST_INST_LIST_SITE : ST_INST_LIST, &q, err)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        bind_text(&q, 2, prefix);
        bind_text(&q, 3, end);
        int rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
                sk_instance_row row = {
                    .site_id = sqlite3_column_int64(q.st, 0),
                    .host_id = sqlite3_column_int64(q.st, 1),
                    .instance = col_text(q.st, 2),
                    .json = col_text(q.st, 3),
                    .updated = sqlite3_column_int64(q.st, 4),
                };
                r = fn ? fn(&row, user) : 0;
                if (r != 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, err, "instances_list");
        return 0;
}

static int sq_instances_delete_site(sk_store *store, int64_t site_id, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_INST_DELETE_SITE, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, site_id);
        r = step_done(&q, err, "instances_delete_site");
        return r > 0 ? db_fail(s, err, "instances_delete_site") : r;
}

static int sq_password_set(sk_store *store, const char *tenant, const char *user, const char *hash,
                           sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "hash", hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const v[] = {tenant, user, hash};
        if ((r = stmt_get(s, ST_PW_SET, &q, err)) < 0 || (r = bind_texts(&q, err, 3, v)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 4, now_ms());
        r = step_done(&q, err, "password_set");
        return r > 0 ? db_fail(s, err, "password_set") : r;
}

static int sq_password_get(sk_store *store, const char *tenant, const char *user, char **hash,
                           sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const v[] = {tenant, user};
        if ((r = stmt_get(s, ST_PW_GET, &q, err)) < 0 || (r = bind_texts(&q, err, 2, v)) < 0)
                return r;
        int rc = sqlite3_step(q.st);
        if (rc == SQLITE_DONE)
                return sk_error_set(err, ENOENT, "user %s/%s has no password", tenant, user);
        if (rc != SQLITE_ROW)
                return db_fail(s, err, "password_get");
        char *h = strdup(col_text(q.st, 0));
        if (!h)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        *hash = h;
        return 0;
}

static int sq_token_add(sk_store *store, const char *token_hash, const char *tenant,
                        const char *user, const char *role, int64_t expires, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0 ||
            (r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "role", role)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const v[] = {token_hash, tenant, user, role};
        if ((r = stmt_get(s, ST_TOKEN_ADD, &q, err)) < 0 || (r = bind_texts(&q, err, 4, v)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 5, expires);
        sqlite3_bind_int64(q.st, 6, now_ms());
        r = step_done(&q, err, "token_add");
        if (r == SQLITE_CONSTRAINT_PRIMARYKEY)
                return sk_error_set(err, EEXIST, "token already exists");
        return r > 0 ? db_fail(s, err, "token_add") : r;
}

static sk_token_row token_of(sqlite3_stmt *st)
{
        return (sk_token_row){
            .tenant = col_text(st, 0),
            .user = col_text(st, 1),
            .role = col_text(st, 2),
            .expires = sqlite3_column_int64(st, 3),
            .revoked = sqlite3_column_int64(st, 4) != 0,
            .hash = col_text(st, 5),
            .kind = col_text(st, 6),
            .name = col_text(st, 7),
            .created = sqlite3_column_int64(st, 8),
        };
}

static int sq_token_get(sk_store *store, const char *token_hash,
                        int (*fn)(const sk_token_row *row, void *user), void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_TOKEN_GET, &q, err)) < 0)
                return r;
        bind_text(&q, 1, token_hash);
        int rc = sqlite3_step(q.st);
        if (rc == SQLITE_DONE)
                return sk_error_set(err, ENOENT, "token not found");
        if (rc != SQLITE_ROW)
                return db_fail(s, err, "token_get");
        sk_token_row row = token_of(q.st);
        return fn ? fn(&row, user) : 0;
}

static int sq_token_revoke(sk_store *store, const char *token_hash, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_TOKEN_REVOKE, &q, err)) < 0)
                return r;
        bind_text(&q, 1, token_hash);
        r = step_done(&q, err, "token_revoke");
        if (r > 0)
                r = db_fail(s, err, "token_revoke");
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return sk_error_set(err, ENOENT, "token not found");
        return 0;
}

static int sq_api_token_add(sk_store *store, const char *token_hash, const char *tenant,
                            const char *user, const char *role, int64_t expires, const char *name,
                            sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0 ||
            (r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "role", role)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const v[] = {token_hash, tenant, user, role};
        if ((r = stmt_get(s, ST_TOKEN_ADD_API, &q, err)) < 0 || (r = bind_texts(&q, err, 4, v)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 5, expires);
        sqlite3_bind_int64(q.st, 6, now_ms());
        bind_text(&q, 7, name ? name : "");
        r = step_done(&q, err, "api_token_add");
        if (r == SQLITE_CONSTRAINT_PRIMARYKEY)
                return sk_error_set(err, EEXIST, "token already exists");
        return r > 0 ? db_fail(s, err, "api_token_add") : r;
}

static int sq_token_list(sk_store *store, const char *tenant, const char *user, sk_token_fn fn,
                         void *user_data, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_TOKEN_LIST, &q, err)) < 0)
                return r;
        bind_text(&q, 1, tenant);
        bind_text(&q, 2, user);
        int rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
                sk_token_row row = token_of(q.st);
                int stop = fn ? fn(&row, user_data) : 0;
                if (stop)
                        return stop;
        }
        return rc == SQLITE_DONE ? 0 : db_fail(s, err, "token_list");
}

static int sq_event_add(sk_store *store, const sk_event_row *ev, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "tenant", ev->tenant)) < 0 ||
            (r = require(err, "actor", ev->actor)) < 0 ||
            (r = require(err, "method", ev->method)) < 0 ||
            (r = require(err, "path", ev->path)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_EVENT_ADD, &q, err)) < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, ev->time);
        const char *const v[] = {ev->tenant,
                                 ev->actor,
                                 ev->method,
                                 ev->path,
                                 ev->resource ? ev->resource : "",
                                 ev->address ? ev->address : ""};
        for (int i = 0; i < 6; i++)
                bind_text(&q, i + 2, v[i]);
        sqlite3_bind_int(q.st, 8, ev->status);
        r = step_done(&q, err, "event_add");
        return r > 0 ? db_fail(s, err, "event_add") : r;
}

static int sq_event_prune(sk_store *store, int64_t before, int64_t keep, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db,
                                    "DELETE FROM events WHERE time < ?1 OR (?2 >= 0 AND id <= "
                                    "(SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?2))",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, err, "event_prune");
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int64(st, 2, keep);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return db_fail(s, err, "event_prune");
        return sqlite3_changes(s->db);
}

/* One process owns the file and BEGIN IMMEDIATE already serializes writers. */
static int sq_lock(sk_store *store, int64_t key, sk_error **err)
{
        if (to_sqlite(store)->depth <= 0)
                return sk_error_set(err, EINVAL, "store: lock outside a transaction");
        return 0;
}

static int sq_setting_get(sk_store *store, const char *key, char **value, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "key", key)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        if ((r = stmt_get(s, ST_SETTING_GET, &q, err)) < 0 ||
            (r = bind_texts(&q, err, 1, &key)) < 0)
                return r;
        int rc = sqlite3_step(q.st);
        if (rc == SQLITE_DONE)
                return sk_error_set(err, ENOENT, "setting %s not found", key);
        if (rc != SQLITE_ROW)
                return db_fail(s, err, "setting_get");
        char *v = strdup(col_text(q.st, 0));
        if (!v)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        *value = v;
        return 0;
}

static int sq_setting_add(sk_store *store, const char *key, const char *value, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        int r;
        if ((r = require(err, "key", key)) < 0 || (r = require(err, "value", value)) < 0)
                return r;
        _cleanup_stmt_ stmt q = {0};
        const char *const v[] = {key, value};
        if ((r = stmt_get(s, ST_SETTING_ADD, &q, err)) < 0 || (r = bind_texts(&q, err, 2, v)) < 0)
                return r;
        r = step_done(&q, err, "setting_add");
        if (r > 0)
                return db_fail(s, err, "setting_add");
        if (r == 0 && sqlite3_changes(s->db) == 0)
                return sk_error_set(err, EEXIST, "setting %s is already set", key);
        return r;
}

static int sq_event_list(sk_store *store, int64_t since, sk_event_fn fn, void *user, sk_error **err)
{
        sk_sqlite *s = to_sqlite(store);
        _cleanup_stmt_ stmt q = {0};
        int r = stmt_get(s, ST_EVENT_LIST, &q, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(q.st, 1, since);
        int rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
                sk_event_row row = {
                    .id = sqlite3_column_int64(q.st, 0),
                    .time = sqlite3_column_int64(q.st, 1),
                    .tenant = col_text(q.st, 2),
                    .actor = col_text(q.st, 3),
                    .method = col_text(q.st, 4),
                    .path = col_text(q.st, 5),
                    .resource = col_text(q.st, 6),
                    .address = col_text(q.st, 7),
                    .status = sqlite3_column_int(q.st, 8),
                };
                int stop = fn ? fn(&row, user) : 0;
                if (stop)
                        return stop;
        }
        return rc == SQLITE_DONE ? 0 : db_fail(s, err, "event_list");
}

static void sq_close(sk_store *store)
{
        sk_sqlite *s = to_sqlite(store);
        if (!s)
                return;
        if (s->db && !sqlite3_get_autocommit(s->db))
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        for (size_t i = 0; i < ST__MAX; i++)
                sqlite3_finalize(s->stmts[i]);
        sqlite3_close_v2(s->db);
        free(s->path);
        free(s);
}

static const sk_store_ops sqlite_ops = {
    .abi = SK_STORE_ABI,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .resource_put = sq_resource_put,
    .resource_get = sq_resource_get,
    .resource_get_by_id = sq_resource_get_by_id,
    .resource_list = sq_resource_list,
    .resource_delete = sq_resource_delete,
    .revision = sq_revision,
    .site_sync_get = sq_site_sync_get,
    .site_sync_set = sq_site_sync_set,
    .join_token_add = sq_join_token_add,
    .join_token_get = sq_join_token_get,
    .join_token_use = sq_join_token_use,
    .host_add = sq_host_add,
    .host_adopt = sq_host_adopt,
    .host_get = sq_host_get,
    .host_list = sq_host_list,
    .host_seen = sq_host_seen,
    .host_delete = sq_host_delete,
    .host_removed_list = sq_host_removed_list,
    .instances_replace = sq_instances_replace,
    .instances_list = sq_instances_list,
    .instances_delete_site = sq_instances_delete_site,
    .password_set = sq_password_set,
    .password_get = sq_password_get,
    .token_add = sq_token_add,
    .token_get = sq_token_get,
    .token_revoke = sq_token_revoke,
    .api_token_add = sq_api_token_add,
    .token_list = sq_token_list,
    .event_add = sq_event_add,
    .event_list = sq_event_list,
    .event_prune = sq_event_prune,
    .lock = sq_lock,
    .setting_get = sq_setting_get,
    .setting_add = sq_setting_add,
};

static void sq_closep(sk_sqlite **s)
{
        if (*s)
                sq_close(&(*s)->base);
}

static int exec_sql(sk_sqlite *s, const char *sql, sk_error **err)
{
        char *msg = NULL;
        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
                return 0;
        int r = sk_error_set(err, EIO, "store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return r;
}

static int pragma_int(sk_sqlite *s, const char *sql, int64_t *out, sk_error **err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *out = sqlite3_column_int64(st, 0);
        int r = rc == SQLITE_ROW ? 0
                                 : sk_error_set(err, EIO, "store %s: %s: %s", s->path, sql,
                                                sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return r;
}

static int set_wal(sk_sqlite *s, sk_error **err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        int r = 0;
        if (rc != SQLITE_ROW)
                r = sk_error_set(err, EIO, "store %s: cannot enable WAL mode: %s", s->path,
                                 sqlite3_errmsg(s->db));
        else if (strcmp(col_text(st, 0), "wal") != 0 && strcmp(s->path, ":memory:") != 0)
                r = sk_error_set(err, EIO, "store %s: cannot enable WAL mode (journal mode %s)",
                                 s->path, col_text(st, 0));
        sqlite3_finalize(st);
        return r;
}

static int migrate(sk_sqlite *s, sk_error **err)
{
        int64_t have = 0;
        int r = pragma_int(s, "PRAGMA user_version", &have, err);
        if (r < 0)
                return r;
        int64_t want = (int64_t)SK_ARRAY_SIZE(migrations);
        if (have > want)
                return sk_error_set(err, ENOTSUP,
                                    "store %s: schema version %lld is newer than this skerry "
                                    "knows (%lld)",
                                    s->path, (long long)have, (long long)want);
        for (int64_t v = have; v < want; v++) {
                char bump[64];
                snprintf(bump, sizeof(bump), "PRAGMA user_version = %lld", (long long)v + 1);
                if ((r = exec_sql(s, "BEGIN IMMEDIATE", err)) < 0)
                        return r;
                if ((r = exec_sql(s, migrations[v], err)) < 0 || (r = exec_sql(s, bump, err)) < 0 ||
                    (r = exec_sql(s, "COMMIT", err)) < 0) {
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        sk_error_prefix(err, "schema migration %lld", (long long)v + 1);
                        return r;
                }
        }
        return 0;
}

/* The file holds password and token hashes: create it private. */
static int create_private(const char *path, sk_error **err)
{
        if (strcmp(path, ":memory:") == 0)
                return 0;
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return sk_error_set(err, errno, "store %s: %s", path, strerror(errno));
        close(fd);
        return 0;
}

int sk_store_sqlite_open(const char *path, sk_store **out, sk_error **err)
{
        if (!path || !*path)
                return sk_error_set_path(err, EINVAL, "path", "store: path is required");
        int r = create_private(path, err);
        if (r < 0)
                return r;
        __attribute__((cleanup(sq_closep))) sk_sqlite *s = calloc(1, sizeof(*s));
        if (!s || !(s->path = strdup(path)))
                return sk_error_set(err, ENOMEM, "store: out of memory");
        s->base.ops = &sqlite_ops;
        int rc = sqlite3_open_v2(
            path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return sk_error_set(err, EIO, "store %s: %s", path,
                                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, 5000);
        if ((r = set_wal(s, err)) < 0 ||
            (r = exec_sql(s, "PRAGMA synchronous = NORMAL", err)) < 0 ||
            (r = exec_sql(s, "PRAGMA foreign_keys = ON", err)) < 0 || (r = migrate(s, err)) < 0)
                return r;
        *out = &take_ptr(&s)->base;
        return 0;
}
