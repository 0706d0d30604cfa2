/* The tower's store on SQLite (one file, WAL mode): the SQLite dialect of the store layer
 * (store_db.h), whose calls store_ops.c writes once for both backends.
 *
 * Schema changes are migration steps appended to `migrations` below; PRAGMA user_version
 * records how many ran, each step runs in its own transaction. Statements are prepared once
 * and cached; a cached statement that is still stepping (a callback calling back into the
 * store) is not reused: that run prepares its own. */
#include "tower/store_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    "  tenant TEXT NOT NULL," SK_SCHEMA_EVENTS_REST,
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

/* The statements SQLite writes its own way. Host ids are given explicitly: AUTOINCREMENT
 * would follow an adopted site-local id (2^62 and up), so the next one is past the highest
 * id below that range and past every id ever used (sqlite_sequence, which host_adopt puts
 * back where it was). */
static const char *const sqlite_sql[SK_ST__MAX] = {
    [SK_ST_HOST_ADD] =
        "INSERT INTO hosts (id, site_id, name, labels_json, joined, last_seen)"
        " VALUES (max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'hosts'"
        "   AND seq < 4611686018427387904), 0),"
        "  coalesce((SELECT max(id) FROM hosts WHERE id < 4611686018427387904), 0)) + 1,"
        " $1, $2, $3, $4, $4) RETURNING id",
    [SK_ST_HOST_SEQ_GET] = "SELECT seq FROM sqlite_sequence WHERE name = 'hosts'",
    [SK_ST_HOST_SEQ_SET] = "UPDATE sqlite_sequence SET seq = $1 WHERE name = 'hosts'",
};

static const char *const tx_sql[] = {
    [SK_TX_BEGIN] = "BEGIN IMMEDIATE", [SK_TX_COMMIT] = "COMMIT",
    [SK_TX_ROLLBACK] = "ROLLBACK",     [SK_TX_SAVEPOINT] = "SAVEPOINT sk",
    [SK_TX_RELEASE] = "RELEASE sk",    [SK_TX_ROLLBACK_TO] = "ROLLBACK TO sk",
};

#define N_TX SK_ARRAY_SIZE(tx_sql)

typedef struct sk_sqlite {
        sk_store_db head; /* first: an sk_store* is an sk_sqlite* */
        sqlite3 *db;
        sqlite3_stmt *stmts[SK_ST__MAX + N_TX]; /* the calls' statements, then tx_sql */
        bool busy[SK_ST__MAX];
} sk_sqlite;

static sk_sqlite *to_sqlite(sk_store_db *db)
{
        return (sk_sqlite *)db;
}

static int db_fail(sk_sqlite *s, sk_error **err, const char *what)
{
        return sk_error_set(err, EIO, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* The common statements number their parameters $1..$n; SQLite reads $1 as a name, numbered
 * in order of appearance: ?1..?n say the number. */
static int prepare(sk_sqlite *s, const char *sql, unsigned flags, sqlite3_stmt **st, sk_error **err)
{
        _cleanup_free_ char *text = strdup(sql);
        if (!text)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        for (char *c = text; (c = strchr(c, '$')); c++)
                if (c[1] >= '0' && c[1] <= '9')
                        *c = '?';
        if (sqlite3_prepare_v3(s->db, text, -1, flags, st, NULL) != SQLITE_OK)
                return db_fail(s, err, "prepare");
        return 0;
}

/* The cached statement of q->id, or one of q's own when the cached one is in use. */
static int stmt_get(sk_sqlite *s, sk_query *q, const char *sql, sk_error **err)
{
        int id = q->id;
        if (s->stmts[id] && !s->busy[id]) {
                q->handle = s->stmts[id];
                s->busy[id] = true;
                return 0;
        }
        bool cache = !s->stmts[id];
        sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, cache ? SQLITE_PREPARE_PERSISTENT : 0, &st, err);
        if (r < 0)
                return r;
        q->handle = st;
        q->own = !cache;
        if (cache) {
                s->stmts[id] = st;
                s->busy[id] = true;
        }
        return 0;
}

static int bind(sqlite3_stmt *st, const sk_param *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int i1 = (int)i + 1, rc;
                if (p[i].is_num)
                        rc = sqlite3_bind_int64(st, i1, p[i].num);
                else if (p[i].text)
                        rc = sqlite3_bind_text(st, i1, p[i].text, -1, SQLITE_STATIC);
                else
                        rc = sqlite3_bind_null(st, i1);
                if (rc != SQLITE_OK)
                        return rc;
        }
        return SQLITE_OK;
}

/* Binds and steps once: a first row stays pending for next; a write is done. */
static int dialect_run(sk_query *q, const char *sql, const sk_param *p, size_t n, sk_error **err)
{
        sk_sqlite *s = to_sqlite(q->db);
        int r = stmt_get(s, q, sql, err);
        if (r < 0)
                return r;
        sqlite3_stmt *st = q->handle;
        if (bind(st, p, n) != SQLITE_OK)
                return db_fail(s, err, "bind");
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                q->pending = true;
                return 0;
        }
        if (rc == SQLITE_DONE) {
                q->changes = sqlite3_changes64(s->db);
                return 0;
        }
        int ext = sqlite3_extended_errcode(s->db);
        if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
                return SK_DB_FOREIGN_KEY;
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
                return SK_DB_UNIQUE;
        return db_fail(s, err, "step");
}

static int dialect_next(sk_query *q, sk_error **err)
{
        int rc = sqlite3_step(q->handle);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return db_fail(to_sqlite(q->db), err, "step");
}

static const char *dialect_text(const sk_query *q, int col)
{
        const unsigned char *t = sqlite3_column_text(q->handle, col);
        return t ? (const char *)t : "";
}

static int64_t dialect_num(const sk_query *q, int col)
{
        return sqlite3_column_int64(q->handle, col);
}

static const char *dialect_errmsg(const sk_query *q)
{
        return sqlite3_errmsg(to_sqlite(q->db)->db);
}

static void dialect_release(sk_query *q)
{
        sqlite3_stmt *st = q->handle;
        if (q->own) {
                sqlite3_finalize(st);
                return;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        to_sqlite(q->db)->busy[q->id] = false;
}

static int dialect_tx(sk_store_db *db, enum sk_tx_op op, sk_error **err)
{
        sk_sqlite *s = to_sqlite(db);
        sqlite3_stmt **st = &s->stmts[SK_ST__MAX + op];
        int r = *st ? 0 : prepare(s, tx_sql[op], SQLITE_PREPARE_PERSISTENT, st, err);
        if (r < 0)
                return r;
        int rc = sqlite3_step(*st);
        sqlite3_reset(*st);
        return rc == SQLITE_DONE ? 0 : db_fail(s, err, tx_sql[op]);
}

/* SQLite may roll back on its own (I/O error, full disk). */
static enum sk_tx_state dialect_tx_state(sk_store_db *db)
{
        return sqlite3_get_autocommit(to_sqlite(db)->db) ? SK_TX_NONE : SK_TX_OPEN;
}

static int dialect_exec(sk_store_db *db, const char *sql, sk_error **err)
{
        sk_sqlite *s = to_sqlite(db);
        char *msg = NULL;
        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
                return 0;
        int r =
            sk_error_set(err, EIO, "store %s: %s", db->label, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return r;
}

/* The first column of the first row of sql (a PRAGMA); *text when set gets a copy. */
static int pragma(sk_sqlite *s, const char *sql, int64_t *out, char **text, sk_error **err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && out)
                *out = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW && text)
                *text = strdup((const char *)sqlite3_column_text(st, 0));
        int r = rc == SQLITE_ROW && (!text || *text)
                    ? 0
                    : sk_error_set(err, EIO, "store %s: %s: %s", s->head.label, sql,
                                   sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return r;
}

static int dialect_version_get(sk_store_db *db, int64_t *version, sk_error **err)
{
        return pragma(to_sqlite(db), "PRAGMA user_version", version, NULL, err);
}

static int dialect_version_set(sk_store_db *db, int64_t version, sk_error **err)
{
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)version);
        return dialect_exec(db, sql, err);
}

static void dialect_close(sk_store_db *db)
{
        sk_sqlite *s = to_sqlite(db);
        if (s->db && !sqlite3_get_autocommit(s->db))
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        for (size_t i = 0; i < SK_ARRAY_SIZE(s->stmts); i++)
                sqlite3_finalize(s->stmts[i]);
        sqlite3_close_v2(s->db);
        free(s);
}

static const sk_store_dialect sqlite_dialect = {
    .sql = sqlite_sql,
    .migrations = migrations,
    .n_migrations = SK_ARRAY_SIZE(migrations),
    SK_DIALECT_FUNCTIONS,
};

static void sq_closep(sk_sqlite **s)
{
        if (*s)
                sk_db_close(&(*s)->head);
}

static int set_wal(sk_sqlite *s, sk_error **err)
{
        _cleanup_free_ char *mode = NULL;
        int r = pragma(s, "PRAGMA journal_mode = WAL", NULL, &mode, err);
        if (r < 0)
                return r;
        if (strcmp(mode, "wal") != 0 && strcmp(s->head.label, ":memory:") != 0)
                return sk_error_set(err, EIO, "store %s: cannot enable WAL mode (journal mode %s)",
                                    s->head.label, mode);
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
        if (!s)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        if ((r = sk_db_init(&s->head, &sqlite_dialect, path, err)) < 0)
                return r;
        int rc = sqlite3_open_v2(
            path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return sk_error_set(err, EIO, "store %s: %s", path,
                                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, 5000);
        if ((r = set_wal(s, err)) < 0 ||
            (r = dialect_exec(&s->head, "PRAGMA synchronous = NORMAL", err)) < 0 ||
            (r = dialect_exec(&s->head, "PRAGMA foreign_keys = ON", err)) < 0)
                return r;
        return sk_db_open_done(&take_ptr(&s)->head, out, err);
}
