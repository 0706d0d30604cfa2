/* The tower's store on PostgreSQL (libpq). Implements store.h with the same semantics as
 * store_sqlite.c, for several tower replicas sharing one database (docs/store.md).
 *
 * Schema changes are migration steps appended to `migrations` below; the schema_version
 * table records how many ran, each step runs in its own transaction under an advisory lock,
 * so replicas starting together migrate once. The statements of the per-request calls are
 * prepared once per connection (again after a reconnect). libpq hands over a whole result
 * before a callback runs, so a callback may call back into the store.
 *
 * PostgreSQL refuses every statement of a transaction after one failed, where SQLite goes
 * on: a call that can fail on a constraint runs under its own savepoint when the caller has
 * a transaction open, so a failed call leaves the caller's transaction usable. */
#include "tower/store.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"

/* Append only: a released step never changes, later issues add new ones.
 * Identity columns never hand out an id twice: site and host ids go into certificates.
 * Names compare as bytes (COLLATE "C") whatever the database's locale, so orderings and
 * prefix matches are the same as SQLite's. `user` is a reserved word here: quoted. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE resources ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  tenant TEXT COLLATE \"C\" NOT NULL,"
    "  kind TEXT COLLATE \"C\" NOT NULL,"
    "  name TEXT COLLATE \"C\" NOT NULL,"
    "  version TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  json TEXT NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  UNIQUE (tenant, kind, name, version));"
    "CREATE INDEX resources_kind ON resources (kind, tenant, name, version);"
    "CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);"
    "INSERT INTO revision (id, value) VALUES (1, 0);"
    /* Every bump notifies listeners on all replicas when (and only if) it commits. */
    "CREATE FUNCTION skerry_revision_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN PERFORM pg_notify('skerry_revision', NEW.value::text); RETURN NULL; END $$;"
    "CREATE TRIGGER revision_notify AFTER UPDATE ON revision FOR EACH ROW"
    "  EXECUTE FUNCTION skerry_revision_notify();"
    "CREATE TABLE site_sync ("
    "  site_id BIGINT PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,"
    "  generation BIGINT NOT NULL,"
    "  hash TEXT NOT NULL);"
    "CREATE TABLE join_tokens ("
    "  hash TEXT COLLATE \"C\" PRIMARY KEY,"
    "  site_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  expires BIGINT NOT NULL,"
    "  used BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX join_tokens_site ON join_tokens (site_id);"
    "CREATE TABLE hosts ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  site_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  name TEXT COLLATE \"C\" NOT NULL,"
    "  labels_json TEXT NOT NULL DEFAULT '{}',"
    "  status_json TEXT NOT NULL DEFAULT '{}',"
    "  joined BIGINT NOT NULL,"
    "  last_seen BIGINT NOT NULL,"
    "  UNIQUE (site_id, name),"
    "  UNIQUE (id, site_id));"
    /* (host_id, site_id) together: an instance row cannot name another site's host. */
    "CREATE TABLE instances ("
    "  site_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  host_id BIGINT NOT NULL,"
    "  instance TEXT COLLATE \"C\" NOT NULL,"
    "  json TEXT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  PRIMARY KEY (host_id, instance),"
    "  FOREIGN KEY (host_id, site_id) REFERENCES hosts (id, site_id) ON DELETE CASCADE);"
    "CREATE INDEX instances_site ON instances (site_id, instance);"
    "CREATE INDEX instances_name ON instances (instance);"
    "CREATE TABLE passwords ("
    "  tenant TEXT COLLATE \"C\" NOT NULL,"
    "  \"user\" TEXT COLLATE \"C\" NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  PRIMARY KEY (tenant, \"user\"));"
    "CREATE TABLE tokens ("
    "  hash TEXT COLLATE \"C\" PRIMARY KEY,"
    "  tenant TEXT COLLATE \"C\" NOT NULL,"
    "  \"user\" TEXT COLLATE \"C\" NOT NULL,"
    "  role TEXT NOT NULL,"
    "  expires BIGINT NOT NULL DEFAULT 0,"
    "  revoked BOOLEAN NOT NULL DEFAULT false,"
    "  created BIGINT NOT NULL);"
    "CREATE INDEX tokens_user ON tokens (tenant, \"user\");"
    /* A deleted user keeps no password and no working token. */
    "CREATE FUNCTION skerry_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    "  DELETE FROM passwords WHERE tenant = OLD.tenant AND \"user\" = OLD.name;"
    "  DELETE FROM tokens WHERE tenant = OLD.tenant AND \"user\" = OLD.name;"
    "  RETURN NULL; END $$;"
    "CREATE TRIGGER resources_user_deleted AFTER DELETE ON resources FOR EACH ROW"
    "  WHEN (OLD.kind = 'user') EXECUTE FUNCTION skerry_user_deleted();",
    /* 2: API tokens (kind, name) and the audit trail (issue 4). */
    "ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'login';"
    "ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE events ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  time BIGINT NOT NULL,"
    "  tenant TEXT COLLATE \"C\" NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  resource TEXT NOT NULL DEFAULT '',"
    "  address TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL);"
    "CREATE INDEX events_time ON events (time);",
    /* 3: replicas. Tower-wide settings (the shared CA), and a notification naming each site
     * whose sync state moved, so every replica wakes the long-polls it holds for it. */
    "CREATE TABLE settings (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE FUNCTION skerry_site_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN PERFORM pg_notify('skerry_site', NEW.site_id::text); RETURN NULL; END $$;"
    "CREATE TRIGGER site_sync_notify AFTER INSERT OR UPDATE ON site_sync FOR EACH ROW"
    "  EXECUTE FUNCTION skerry_site_notify();",
    /* 4: hosts removed from a site (the site's desired document lists them). */
    "CREATE TABLE removed_hosts ("
    "  site_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,"
    "  host_id BIGINT NOT NULL,"
    "  removed BIGINT NOT NULL,"
    "  PRIMARY KEY (site_id, host_id));",
};

/* Serializes migrations of replicas that start together ("skerry" in ASCII). */
#define MIGRATION_LOCK "126905100694137" /* 0x736b65727279 */

#define RESOURCE_COLS "id, tenant, kind, name, version, json, created, updated"
#define HOST_COLS     "id, site_id, name, labels_json, status_json, joined, last_seen"
#define TOKEN_COLS    "tenant, \"user\", role, expires, revoked, hash, kind, name, created"

enum stmt_id {
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
        ST_LOCK,
        ST_SETTING_GET,
        ST_SETTING_ADD,
        ST__MAX,
};

static const char *const stmt_sql[ST__MAX] = {
    /* FOR UPDATE: a concurrent put of the same row on another replica waits for ours. */
    [ST_RES_FIND] = "SELECT id, json FROM resources"
                    " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4 FOR UPDATE",
    /* DO NOTHING: another replica inserted it since our find; the caller looks again. */
    [ST_RES_INSERT] = "INSERT INTO resources (tenant, kind, name, version, json, created,"
                      " updated) VALUES ($1, $2, $3, $4, $5, $6, $6)"
                      " ON CONFLICT (tenant, kind, name, version) DO NOTHING RETURNING id",
    [ST_RES_UPDATE] = "UPDATE resources SET json = $2, updated = $3 WHERE id = $1",
    [ST_RES_GET] = "SELECT " RESOURCE_COLS " FROM resources"
                   " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4",
    [ST_RES_GET_ALL] = "SELECT " RESOURCE_COLS " FROM resources"
                       " WHERE tenant = $1 AND kind = $2 AND name = $3 ORDER BY version",
    [ST_RES_GET_ID] = "SELECT " RESOURCE_COLS " FROM resources WHERE id = $1",
    [ST_RES_LIST] = "SELECT " RESOURCE_COLS " FROM resources WHERE kind = $1"
                    " ORDER BY tenant, name, version",
    [ST_RES_LIST_TENANT] = "SELECT " RESOURCE_COLS " FROM resources"
                           " WHERE tenant = $1 AND kind = $2 ORDER BY name, version",
    [ST_RES_DELETE] = "DELETE FROM resources"
                      " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4",
    [ST_RES_DELETE_ALL] = "DELETE FROM resources WHERE tenant = $1 AND kind = $2 AND name = $3",
    [ST_REV_BUMP] = "UPDATE revision SET value = value + 1 WHERE id = 1",
    [ST_REV_GET] = "SELECT value FROM revision WHERE id = 1",
    [ST_SYNC_GET] = "SELECT generation, hash FROM site_sync WHERE site_id = $1",
    [ST_SYNC_SET] = "INSERT INTO site_sync (site_id, generation, hash) VALUES ($1, $2, $3)"
                    " ON CONFLICT (site_id) DO UPDATE SET generation = excluded.generation,"
                    " hash = excluded.hash",
    [ST_JOIN_ADD] = "INSERT INTO join_tokens (hash, site_id, expires) VALUES ($1, $2, $3)",
    [ST_JOIN_GET] = "SELECT site_id, expires, used FROM join_tokens WHERE hash = $1",
    [ST_JOIN_USE] = "UPDATE join_tokens SET used = $2 WHERE hash = $1 AND used = 0",
    [ST_HOST_ADD] = "INSERT INTO hosts (site_id, name, labels_json, joined, last_seen)"
                    " VALUES ($1, $2, $3, $4, $4) RETURNING id",
    /* An explicit id leaves the identity sequence where it was. */
    [ST_HOST_ADOPT] = "INSERT INTO hosts (id, site_id, name, labels_json, joined, last_seen)"
                      " OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $5)",
    [ST_HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE id = $1",
    [ST_HOST_LIST] = "SELECT " HOST_COLS " FROM hosts WHERE site_id = $1 ORDER BY name",
    [ST_HOST_SEEN] = "UPDATE hosts SET last_seen = $2,"
                     " status_json = coalesce($3::text, status_json) WHERE id = $1",
    [ST_HOST_REMOVE_MARK] = "INSERT INTO removed_hosts (site_id, host_id, removed)"
                            " SELECT site_id, id, $2 FROM hosts WHERE id = $1"
                            " ON CONFLICT DO NOTHING",
    [ST_HOST_DELETE] = "DELETE FROM hosts WHERE id = $1",
    [ST_HOST_REMOVED_LIST] = "SELECT host_id FROM removed_hosts WHERE site_id = $1"
                             " ORDER BY host_id",
    [ST_INST_DELETE_HOST] = "DELETE FROM instances WHERE host_id = $1",
    [ST_INST_INSERT] = "INSERT INTO instances (site_id, host_id, instance, json, updated)"
                       " VALUES ($1, $2, $3, $4, $5)",
    /* A LIKE pattern, not a range: an incremented last byte may not be valid UTF-8. */
    [ST_INST_LIST] = "SELECT site_id, host_id, instance, json, updated FROM instances"
                     " WHERE instance LIKE $1 ORDER BY instance, host_id",
    [ST_INST_LIST_SITE] = "SELECT site_id, host_id, instance, json, updated FROM instances"
                          " WHERE site_id = $1 AND instance LIKE $2 ORDER BY instance, host_id",
    [ST_INST_DELETE_SITE] = "DELETE FROM instances WHERE site_id = $1",
    [ST_PW_SET] = "INSERT INTO passwords (tenant, \"user\", hash, updated) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT (tenant, \"user\") DO UPDATE SET hash = excluded.hash,"
                  " updated = excluded.updated",
    [ST_PW_GET] = "SELECT hash FROM passwords WHERE tenant = $1 AND \"user\" = $2",
    [ST_TOKEN_ADD] = "INSERT INTO tokens (hash, tenant, \"user\", role, expires, created)"
                     " VALUES ($1, $2, $3, $4, $5, $6)",
    [ST_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked = true WHERE hash = $1",
    [ST_TOKEN_ADD_API] = "INSERT INTO tokens (hash, tenant, \"user\", role, expires, created,"
                         " kind, name) VALUES ($1, $2, $3, $4, $5, $6, 'api', $7)",
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens WHERE tenant = $1"
                      " AND ($2::text IS NULL OR \"user\" = $2) ORDER BY created, hash",
    [ST_EVENT_ADD] = "INSERT INTO events (time, tenant, actor, method, path, resource, address,"
                     " status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    [ST_EVENT_LIST] = "SELECT id, time, tenant, actor, method, path, resource, address, status"
                      " FROM events WHERE time >= $1 ORDER BY id",
    /* the key space of the migration lock, offset by the caller's key */
    [ST_LOCK] = "SELECT pg_advisory_xact_lock(126905100694137 + $1::bigint)",
    [ST_SETTING_GET] = "SELECT value FROM settings WHERE key = $1",
    [ST_SETTING_ADD] = "INSERT INTO settings (key, value) VALUES ($1, $2)"
                       " ON CONFLICT (key) DO NOTHING",
};

typedef struct sk_pg {
        sk_store base; /* first: an sk_store* is an sk_pg* */
        PGconn *conn;
        int depth; /* begin/commit nesting */
        bool prepared[ST__MAX];
} sk_pg;

/* What a statement ended with: 0 done, or a constraint the caller turns into its own
 * error (the result is kept for it), or negative with the error set. */
enum { PG_FOREIGN_KEY = 1, PG_UNIQUE = 2 };

static void pq_clearp(PGresult **r)
{
        PQclear(*r);
}

#define _cleanup_pgres_ __attribute__((cleanup(pq_clearp)))

/* Decimal text of an integer parameter (libpq parameters are text here). */
typedef struct num {
        char s[24];
} num;

static const char *num_of(num *n, int64_t v)
{
        snprintf(n->s, sizeof(n->s), "%" PRId64, v);
        return n->s;
}

static int64_t get_i64(const PGresult *r, int row, int col)
{
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sk_pg *to_pg(sk_store *s)
{
        return (sk_pg *)s;
}

/* libpq messages end with a newline (and may span lines): the first line, without it. */
static int pg_message(sk_error **err, int code, const char *prefix, const char *what,
                      const char *msg)
{
        if (!msg || !*msg)
                msg = "unknown error";
        int len = (int)strcspn(msg, "\n");
        return sk_error_set(err, code, "%s: %s: %.*s", prefix, what, len, msg);
}

static int db_fail(sk_pg *s, const PGresult *r, sk_error **err, const char *what)
{
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        return pg_message(err, EIO, "store", what, msg ? msg : PQerrorMessage(s->conn));
}

/* A lost connection is tried once more before a statement outside any transaction (inside
 * one, the transaction is gone with it and its caller must see the failure). */
static int ensure_conn(sk_pg *s, sk_error **err)
{
        if (PQstatus(s->conn) == CONNECTION_OK)
                return 0;
        if (s->depth > 0)
                return pg_message(err, EIO, "store", "connection lost", PQerrorMessage(s->conn));
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK)
                return pg_message(err, EIO, "store", "connection lost", PQerrorMessage(s->conn));
        memset(s->prepared, 0, sizeof(s->prepared));
        return 0;
}

/* Runs one statement of simple text (transaction control, migrations). */
static int exec_sql(sk_pg *s, const char *sql, sk_error **err, const char *what)
{
        _cleanup_pgres_ PGresult *r = PQexec(s->conn, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                return 0;
        return db_fail(s, r, err, what);
}

static int prepare(sk_pg *s, enum stmt_id id, sk_error **err)
{
        if (s->prepared[id])
                return 0;
        char name[16];
        snprintf(name, sizeof(name), "sk%d", (int)id);
        _cleanup_pgres_ PGresult *r = PQprepare(s->conn, name, stmt_sql[id], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
                return db_fail(s, r, err, "prepare");
        s->prepared[id] = true;
        return 0;
}

/* Runs prepared statement id with n text parameters (NULL: SQL NULL). On success *out is
 * the result; on a constraint failure *out is the error result and PG_FOREIGN_KEY or
 * PG_UNIQUE comes back; otherwise negative with the error set. */
static int run(sk_pg *s, enum stmt_id id, int n, const char *const *params, PGresult **out,
               sk_error **err, const char *what)
{
        *out = NULL;
        int r;
        if ((r = ensure_conn(s, err)) < 0 || (r = prepare(s, id, err)) < 0)
                return r;
        char name[16];
        snprintf(name, sizeof(name), "sk%d", (int)id);
        PGresult *res = PQexecPrepared(s->conn, name, n, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                *out = res;
                return 0;
        }
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && (strcmp(state, "23503") == 0 || strcmp(state, "23505") == 0)) {
                *out = res;
                return strcmp(state, "23503") == 0 ? PG_FOREIGN_KEY : PG_UNIQUE;
        }
        r = db_fail(s, res, err, what);
        PQclear(res);
        return r;
}

/* run() for a statement whose constraint failures are not expected: all are errors. */
static int run_ok(sk_pg *s, enum stmt_id id, int n, const char *const *params, PGresult **out,
                  sk_error **err, const char *what)
{
        int r = run(s, id, n, params, out, err, what);
        if (r > 0) {
                r = db_fail(s, *out, err, what);
                PQclear(*out);
                *out = NULL;
        }
        return r;
}

static int64_t changes(const PGresult *r)
{
        return strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

static int require(sk_error **err, const char *field, const char *v)
{
        if (!v)
                return sk_error_set_path(err, EINVAL, field, "store: %s is required", field);
        return 0;
}

/* Transactions: the outermost level is a real transaction, inner levels are savepoints,
 * so an inner rollback undoes only its own part and only the outermost commit writes. */
static int pg_begin(sk_store *store, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r = 0;
        if (s->depth == 0)
                r = ensure_conn(s, err);
        if (r == 0)
                r = exec_sql(s, s->depth == 0 ? "BEGIN" : "SAVEPOINT sk", err, "begin");
        if (r < 0)
                return r;
        s->depth++;
        return 0;
}

static void pg_rollback(sk_store *store)
{
        sk_pg *s = to_pg(store);
        if (s->depth <= 0)
                return;
        s->depth--;
        /* Nothing to undo when the connection (and with it the transaction) is gone. */
        PGTransactionStatusType ts = PQtransactionStatus(s->conn);
        if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
                return;
        if (s->depth == 0)
                exec_sql(s, "ROLLBACK", NULL, "rollback");
        else
                exec_sql(s, "ROLLBACK TO SAVEPOINT sk; RELEASE SAVEPOINT sk", NULL, "rollback");
}

static int pg_commit(sk_store *store, sk_error **err)
{
        sk_pg *s = to_pg(store);
        if (s->depth <= 0)
                return sk_error_set(err, EINVAL, "store: commit without begin");
        int r;
        /* COMMIT of a failed transaction "succeeds" by rolling back: refuse it instead. */
        if (PQtransactionStatus(s->conn) != PQTRANS_INTRANS) {
                r = sk_error_set(err, EIO, "store: commit: the transaction failed earlier");
        } else if (s->depth > 1) {
                r = exec_sql(s, "RELEASE SAVEPOINT sk", err, "commit");
        } else {
                _cleanup_pgres_ PGresult *res = PQexec(s->conn, "COMMIT");
                if (PQresultStatus(res) != PGRES_COMMAND_OK)
                        r = db_fail(s, res, err, "commit");
                else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
                        r = sk_error_set(err, EIO, "store: commit: rolled back (%s)",
                                         PQcmdStatus(res));
                else
                        r = 0;
        }
        if (r < 0) {
                pg_rollback(store);
                return r;
        }
        s->depth--;
        return 0;
}

/* An operation's own transaction: rolled back by the cleanup handler unless committed.
 * A single statement needs none outside a transaction (it is atomic by itself); inside one
 * it gets a savepoint, so that its failure does not abort the caller's transaction. */
typedef struct tx {
        sk_store *s;
        bool open;
} tx;

static void tx_cleanup(tx *t)
{
        if (t->open)
                pg_rollback(t->s);
}

#define _cleanup_tx_ __attribute__((cleanup(tx_cleanup)))

static int tx_begin(tx *t, sk_store *s, sk_error **err)
{
        t->s = s;
        int r = pg_begin(s, err);
        t->open = r == 0;
        return r;
}

static int tx_begin_single(tx *t, sk_store *s, sk_error **err)
{
        t->s = s;
        t->open = false;
        return to_pg(s)->depth > 0 ? tx_begin(t, s, err) : 0;
}

static int tx_commit(tx *t, sk_error **err)
{
        if (!t->open)
                return 0;
        t->open = false;
        return pg_commit(t->s, err);
}

static int revision_bump(sk_pg *s, sk_error **err)
{
        _cleanup_pgres_ PGresult *r = NULL;
        return run_ok(s, ST_REV_BUMP, 0, NULL, &r, err, "revision");
}

static int pg_resource_put(sk_store *store, const char *tenant, const char *kind, const char *name,
                           const char *version, const char *json, int64_t *id, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0 || (r = require(err, "json", json)) < 0)
                return r;
        if (!version)
                version = "";

        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin(&t, store, err)) < 0)
                return r;

        num now_n;
        const char *now = num_of(&now_n, now_ms());
        int64_t row_id = 0;
        sk_put_result result = SK_PUT_UNCHANGED;
        /* Find, then update or insert; an insert that lost a race with another replica
         * finds that replica's row the next time round. */
        for (int attempt = 0;; attempt++) {
                const char *const key[] = {tenant, kind, name, version};
                _cleanup_pgres_ PGresult *found = NULL;
                if ((r = run_ok(s, ST_RES_FIND, 4, key, &found, err, "resource_put")) < 0)
                        return r;
                if (PQntuples(found) == 1) {
                        row_id = get_i64(found, 0, 0);
                        if (strcmp(PQgetvalue(found, 0, 1), json) == 0)
                                break;
                        num id_n;
                        const char *const p[] = {num_of(&id_n, row_id), json, now};
                        _cleanup_pgres_ PGresult *u = NULL;
                        if ((r = run_ok(s, ST_RES_UPDATE, 3, p, &u, err, "resource_put")) < 0)
                                return r;
                        result = SK_PUT_UPDATED;
                        break;
                }
                if (attempt >= 3)
                        return sk_error_set(err, EIO,
                                            "store: resource_put: %s %s keeps being "
                                            "inserted and deleted concurrently",
                                            kind, name);
                const char *const p[] = {tenant, kind, name, version, json, now};
                _cleanup_pgres_ PGresult *ins = NULL;
                if ((r = run_ok(s, ST_RES_INSERT, 6, p, &ins, err, "resource_put")) < 0)
                        return r;
                if (PQntuples(ins) == 1) {
                        row_id = get_i64(ins, 0, 0);
                        result = SK_PUT_CREATED;
                        break;
                }
        }
        if (result != SK_PUT_UNCHANGED && (r = revision_bump(s, err)) < 0)
                return r;
        if ((r = tx_commit(&t, err)) < 0)
                return r;
        if (id)
                *id = row_id;
        return result;
}

/* Calls fn for each row of a SELECT RESOURCE_COLS. Returns the value of fn that stopped
 * the walk, or 0. */
static int each_resource(const PGresult *res, sk_resource_fn fn, void *user)
{
        for (int i = 0; fn && i < PQntuples(res); i++) {
                sk_resource_row row = {
                    .id = get_i64(res, i, 0),
                    .tenant = PQgetvalue(res, i, 1),
                    .kind = PQgetvalue(res, i, 2),
                    .name = PQgetvalue(res, i, 3),
                    .version = PQgetvalue(res, i, 4),
                    .json = PQgetvalue(res, i, 5),
                    .created = get_i64(res, i, 6),
                    .updated = get_i64(res, i, 7),
                };
                int r = fn(&row, user);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int not_found(sk_error **err, const char *kind, const char *name, const char *version)
{
        if (version && *version)
                return sk_error_set(err, ENOENT, "%s %s version %s not found", kind, name, version);
        return sk_error_set(err, ENOENT, "%s %s not found", kind, name);
}

static int pg_resource_get(sk_store *store, const char *tenant, const char *kind, const char *name,
                           const char *version, sk_resource_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0)
                return r;
        const char *const key[] = {tenant, kind, name, version};
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, version ? ST_RES_GET : ST_RES_GET_ALL, version ? 4 : 3, key, &res, err,
                        "resource_get")) < 0)
                return r;
        if (PQntuples(res) == 0)
                return not_found(err, kind, name, version);
        return each_resource(res, fn, user);
}

static int pg_resource_get_by_id(sk_store *store, int64_t id, sk_resource_fn fn, void *user,
                                 sk_error **err)
{
        sk_pg *s = to_pg(store);
        num id_n;
        const char *const p[] = {num_of(&id_n, id)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_RES_GET_ID, 1, p, &res, err, "resource_get_by_id");
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "resource %lld not found", (long long)id);
        return each_resource(res, fn, user);
}

static int pg_resource_list(sk_store *store, const char *tenant, const char *kind,
                            sk_resource_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "kind", kind)) < 0)
                return r;
        _cleanup_pgres_ PGresult *res = NULL;
        if (tenant) {
                const char *const key[] = {tenant, kind};
                r = run_ok(s, ST_RES_LIST_TENANT, 2, key, &res, err, "resource_list");
        } else {
                r = run_ok(s, ST_RES_LIST, 1, &kind, &res, err, "resource_list");
        }
        if (r < 0)
                return r;
        return each_resource(res, fn, user);
}

static int pg_resource_delete(sk_store *store, const char *tenant, const char *kind,
                              const char *name, const char *version, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "kind", kind)) < 0 ||
            (r = require(err, "name", name)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin(&t, store, err)) < 0)
                return r;
        int64_t n;
        {
                const char *const key[] = {tenant, kind, name, version};
                _cleanup_pgres_ PGresult *res = NULL;
                if ((r = run_ok(s, version ? ST_RES_DELETE : ST_RES_DELETE_ALL, version ? 4 : 3,
                                key, &res, err, "resource_delete")) < 0)
                        return r;
                n = changes(res);
        }
        if (n == 0)
                return not_found(err, kind, name, version);
        if ((r = revision_bump(s, err)) < 0 || (r = tx_commit(&t, err)) < 0)
                return r;
        return (int)n;
}

static int pg_revision(sk_store *store, int64_t *rev, sk_error **err)
{
        sk_pg *s = to_pg(store);
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_REV_GET, 0, NULL, &res, err, "revision");
        if (r < 0)
                return r;
        if (PQntuples(res) != 1)
                return sk_error_set(err, EIO, "store: revision: the revision row is missing");
        *rev = get_i64(res, 0, 0);
        return 0;
}

/* A foreign key from the site tables fails when the site row does not exist. */
static int site_missing(sk_error **err, int64_t site_id)
{
        return sk_error_set(err, ENOENT, "site %lld not found", (long long)site_id);
}

/* After a statement under tx_begin_single: a constraint failure (r > 0) not handled by the
 * caller is an error; success commits the savepoint, if any. */
static int finish_single(sk_pg *s, tx *t, int r, PGresult *res, sk_error **err, const char *what)
{
        if (r > 0)
                return db_fail(s, res, err, what);
        if (r < 0)
                return r;
        return tx_commit(t, err);
}

static int pg_site_sync_get(sk_store *store, int64_t site_id, int64_t *generation, char **hash,
                            sk_error **err)
{
        sk_pg *s = to_pg(store);
        num site_n;
        const char *const p[] = {num_of(&site_n, site_id)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_SYNC_GET, 1, p, &res, err, "site_sync_get");
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "sync state of site %lld not found",
                                    (long long)site_id);
        if (hash) {
                char *h = strdup(PQgetvalue(res, 0, 1));
                if (!h)
                        return sk_error_set(err, ENOMEM, "store: out of memory");
                *hash = h;
        }
        if (generation)
                *generation = get_i64(res, 0, 0);
        return 0;
}

static int pg_site_sync_set(sk_store *store, int64_t site_id, int64_t generation, const char *hash,
                            sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "hash", hash)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num site_n, gen_n;
        const char *const p[] = {num_of(&site_n, site_id), num_of(&gen_n, generation), hash};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_SYNC_SET, 3, p, &res, err, "site_sync_set");
        if (r == PG_FOREIGN_KEY)
                return site_missing(err, site_id);
        return finish_single(s, &t, r, res, err, "site_sync_set");
}

static int pg_join_token_add(sk_store *store, const char *token_hash, int64_t site_id,
                             int64_t expires, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num site_n, exp_n;
        const char *const p[] = {token_hash, num_of(&site_n, site_id), num_of(&exp_n, expires)};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_JOIN_ADD, 3, p, &res, err, "join_token_add");
        if (r == PG_FOREIGN_KEY)
                return site_missing(err, site_id);
        if (r == PG_UNIQUE)
                return sk_error_set(err, EEXIST, "join token already exists");
        return finish_single(s, &t, r, res, err, "join_token_add");
}

static int pg_join_token_get(sk_store *store, const char *token_hash, sk_join_token *out,
                             sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_JOIN_GET, 1, &token_hash, &res, err, "join_token_get")) < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "join token not found");
        if (out)
                *out = (sk_join_token){
                    .site_id = get_i64(res, 0, 0),
                    .expires = get_i64(res, 0, 1),
                    .used = get_i64(res, 0, 2),
                };
        return 0;
}

static int pg_join_token_use(sk_store *store, const char *token_hash, int64_t now, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        if (now <= 0)
                return sk_error_set_path(err, EINVAL, "now", "store: now must be positive");
        {
                num now_n;
                const char *const p[] = {token_hash, num_of(&now_n, now)};
                _cleanup_pgres_ PGresult *res = NULL;
                if ((r = run_ok(s, ST_JOIN_USE, 2, p, &res, err, "join_token_use")) < 0)
                        return r;
                if (changes(res) == 1)
                        return 0;
        }
        /* Nothing updated: unknown, or used before. */
        if ((r = pg_join_token_get(store, token_hash, NULL, err)) < 0)
                return r;
        return sk_error_set(err, EALREADY, "join token was already used");
}

static int pg_host_add(sk_store *store, int64_t site_id, const char *name, const char *labels_json,
                       int64_t now, int64_t *id, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "name", name)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num site_n, now_n;
        const char *const p[] = {num_of(&site_n, site_id), name, labels_json ? labels_json : "{}",
                                 num_of(&now_n, now)};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_HOST_ADD, 4, p, &res, err, "host_add");
        if (r == PG_FOREIGN_KEY)
                return site_missing(err, site_id);
        if (r == PG_UNIQUE)
                return sk_error_set(err, EEXIST, "site %lld already has a host named %s",
                                    (long long)site_id, name);
        if ((r = finish_single(s, &t, r, res, err, "host_add")) < 0)
                return r;
        if (id)
                *id = get_i64(res, 0, 0);
        return 0;
}

static int pg_host_adopt(sk_store *store, int64_t site_id, int64_t id, const char *name,
                         const char *labels_json, int64_t now, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "name", name)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num id_n, site_n, now_n;
        const char *const p[] = {num_of(&id_n, id), num_of(&site_n, site_id), name,
                                 labels_json ? labels_json : "{}", num_of(&now_n, now)};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_HOST_ADOPT, 5, p, &res, err, "host_adopt");
        if (r == PG_FOREIGN_KEY)
                return site_missing(err, site_id);
        if (r == PG_UNIQUE)
                return sk_error_set(err, EEXIST, "host id %lld or name %s is taken on site %lld",
                                    (long long)id, name, (long long)site_id);
        return finish_single(s, &t, r, res, err, "host_adopt");
}

static int each_host(const PGresult *res, sk_host_fn fn, void *user)
{
        for (int i = 0; fn && i < PQntuples(res); i++) {
                sk_host_row row = {
                    .id = get_i64(res, i, 0),
                    .site_id = get_i64(res, i, 1),
                    .name = PQgetvalue(res, i, 2),
                    .labels_json = PQgetvalue(res, i, 3),
                    .status_json = PQgetvalue(res, i, 4),
                    .joined = get_i64(res, i, 5),
                    .last_seen = get_i64(res, i, 6),
                };
                int r = fn(&row, user);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int pg_host_get(sk_store *store, int64_t host_id, sk_host_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        num host_n;
        const char *const p[] = {num_of(&host_n, host_id)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_HOST_GET, 1, p, &res, err, "host_get");
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        return each_host(res, fn, user);
}

static int pg_host_list(sk_store *store, int64_t site_id, sk_host_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        num site_n;
        const char *const p[] = {num_of(&site_n, site_id)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_HOST_LIST, 1, p, &res, err, "host_list");
        if (r < 0)
                return r;
        return each_host(res, fn, user);
}

static int pg_host_delete(sk_store *store, int64_t host_id, int64_t now, sk_error **err)
{
        sk_pg *s = to_pg(store);
        _cleanup_tx_ tx t = {0};
        int r = tx_begin(&t, store, err);
        if (r < 0)
                return r;
        num host_n, now_n;
        const char *const p[] = {num_of(&host_n, host_id), num_of(&now_n, now)};
        int64_t n;
        {
                _cleanup_pgres_ PGresult *mark = NULL, *del = NULL;
                if ((r = run_ok(s, ST_HOST_REMOVE_MARK, 2, p, &mark, err, "host_delete")) < 0 ||
                    (r = run_ok(s, ST_HOST_DELETE, 1, p, &del, err, "host_delete")) < 0)
                        return r;
                n = changes(del);
        }
        if (n == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        if ((r = revision_bump(s, err)) < 0 || (r = tx_commit(&t, err)) < 0)
                return r;
        return 0;
}

static int pg_host_removed_list(sk_store *store, int64_t site_id, int64_t **ids, size_t *n,
                                sk_error **err)
{
        sk_pg *s = to_pg(store);
        *ids = NULL;
        *n = 0;
        num site_n;
        const char *const p[] = {num_of(&site_n, site_id)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_HOST_REMOVED_LIST, 1, p, &res, err, "host_removed_list");
        if (r < 0)
                return r;
        int rows = PQntuples(res);
        if (rows == 0)
                return 0;
        if (!(*ids = calloc((size_t)rows, sizeof(**ids))))
                return sk_error_set(err, ENOMEM, "out of memory");
        for (int i = 0; i < rows; i++)
                (*ids)[i] = get_i64(res, i, 0);
        *n = (size_t)rows;
        return 0;
}

/* status_json NULL: a heartbeat only, the last status stays. */
static int pg_host_seen(sk_store *store, int64_t host_id, int64_t now, const char *status_json,
                        sk_error **err)
{
        sk_pg *s = to_pg(store);
        num host_n, now_n;
        const char *const p[] = {num_of(&host_n, host_id), num_of(&now_n, now), status_json};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_HOST_SEEN, 3, p, &res, err, "host_seen");
        if (r < 0)
                return r;
        if (changes(res) == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        return 0;
}

/* The rows' own site_id and host_id are ignored: the report is the host's. A row with
 * updated 0 gets the current time. */
static int pg_instances_replace(sk_store *store, int64_t site_id, int64_t host_id,
                                const sk_instance_row *rows, size_t n, sk_error **err)
{
        sk_pg *s = to_pg(store);
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
        num site_n, host_n;
        const char *site = num_of(&site_n, site_id), *host = num_of(&host_n, host_id);
        {
                _cleanup_pgres_ PGresult *res = NULL;
                if ((r = run_ok(s, ST_INST_DELETE_HOST, 1, &host, &res, err, "instances_replace")) <
                    0)
                        return r;
        }
        int64_t now = now_ms();
        for (size_t i = 0; i < n; i++) {
                num upd_n;
                const char *const p[] = {site, host, rows[i].instance, rows[i].json,
                                         num_of(&upd_n, rows[i].updated ? rows[i].updated : now)};
                _cleanup_pgres_ PGresult *res = NULL;
                r = run(s, ST_INST_INSERT, 5, p, &res, err, "instances_replace");
                if (r == PG_FOREIGN_KEY)
                        return sk_error_set(err, ENOENT, "host %lld of site %lld not found",
                                            (long long)host_id, (long long)site_id);
                if (r == PG_UNIQUE)
                        return sk_error_set(err, EEXIST, "instance %s reported twice",
                                            rows[i].instance);
                if (r > 0)
                        return db_fail(s, res, err, "instances_replace");
                if (r < 0)
                        return r;
        }
        return tx_commit(&t, err);
}

/* A LIKE pattern matching every string that starts with prefix. */
static int prefix_pattern(const char *prefix, char **out, sk_error **err)
{
        size_t len = strlen(prefix);
        char *p = malloc(2 * len + 2), *o = p;
        if (!p)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        for (const char *c = prefix; *c; c++) {
                if (*c == '%' || *c == '_' || *c == '\\')
                        *o++ = '\\';
                *o++ = *c;
        }
        *o++ = '%';
        *o = '\0';
        *out = p;
        return 0;
}

static int pg_instances_list(sk_store *store, int64_t site_id, const char *prefix,
                             sk_instance_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        _cleanup_free_ char *pattern = NULL;
        int r = prefix_pattern(prefix ? prefix : "", &pattern, err);
        if (r < 0)
                return r;
        num site_n;
        const char *const p[] = {num_of(&site_n, site_id), pattern};
        _cleanup_pgres_ PGresult *res = NULL;
        if (site_id)
                r = run_ok(s, ST_INST_LIST_SITE, 2, p, &res, err, "instances_list");
        else
                r = run_ok(s, ST_INST_LIST, 1, p + 1, &res, err, "instances_list");
        if (r < 0)
                return r;
        for (int i = 0; fn && i < PQntuples(res); i++) {
                sk_instance_row row = {
                    .site_id = get_i64(res, i, 0),
                    .host_id = get_i64(res, i, 1),
                    .instance = PQgetvalue(res, i, 2),
                    .json = PQgetvalue(res, i, 3),
                    .updated = get_i64(res, i, 4),
                };
                r = fn(&row, user);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int pg_instances_delete_site(sk_store *store, int64_t site_id, sk_error **err)
{
        sk_pg *s = to_pg(store);
        num site_n;
        const char *const p[] = {num_of(&site_n, site_id)};
        _cleanup_pgres_ PGresult *res = NULL;
        return run_ok(s, ST_INST_DELETE_SITE, 1, p, &res, err, "instances_delete_site");
}

static int pg_password_set(sk_store *store, const char *tenant, const char *user, const char *hash,
                           sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "hash", hash)) < 0)
                return r;
        num now_n;
        const char *const p[] = {tenant, user, hash, num_of(&now_n, now_ms())};
        _cleanup_pgres_ PGresult *res = NULL;
        return run_ok(s, ST_PW_SET, 4, p, &res, err, "password_set");
}

static int pg_password_get(sk_store *store, const char *tenant, const char *user, char **hash,
                           sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0)
                return r;
        const char *const p[] = {tenant, user};
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_PW_GET, 2, p, &res, err, "password_get")) < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "user %s/%s has no password", tenant, user);
        char *h = strdup(PQgetvalue(res, 0, 0));
        if (!h)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        *hash = h;
        return 0;
}

static int pg_token_add(sk_store *store, const char *token_hash, const char *tenant,
                        const char *user, const char *role, int64_t expires, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0 ||
            (r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "role", role)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num exp_n, now_n;
        const char *const p[] = {
            token_hash, tenant, user, role, num_of(&exp_n, expires), num_of(&now_n, now_ms())};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_TOKEN_ADD, 6, p, &res, err, "token_add");
        if (r == PG_UNIQUE)
                return sk_error_set(err, EEXIST, "token already exists");
        return finish_single(s, &t, r, res, err, "token_add");
}

static sk_token_row token_of(const PGresult *res, int i)
{
        return (sk_token_row){
            .tenant = PQgetvalue(res, i, 0),
            .user = PQgetvalue(res, i, 1),
            .role = PQgetvalue(res, i, 2),
            .expires = get_i64(res, i, 3),
            .revoked = strcmp(PQgetvalue(res, i, 4), "t") == 0,
            .hash = PQgetvalue(res, i, 5),
            .kind = PQgetvalue(res, i, 6),
            .name = PQgetvalue(res, i, 7),
            .created = get_i64(res, i, 8),
        };
}

static int pg_token_get(sk_store *store, const char *token_hash,
                        int (*fn)(const sk_token_row *row, void *user), void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_TOKEN_GET, 1, &token_hash, &res, err, "token_get")) < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "token not found");
        sk_token_row row = token_of(res, 0);
        return fn ? fn(&row, user) : 0;
}

static int pg_token_revoke(sk_store *store, const char *token_hash, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0)
                return r;
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_TOKEN_REVOKE, 1, &token_hash, &res, err, "token_revoke")) < 0)
                return r;
        if (changes(res) == 0)
                return sk_error_set(err, ENOENT, "token not found");
        return 0;
}

static int pg_api_token_add(sk_store *store, const char *token_hash, const char *tenant,
                            const char *user, const char *role, int64_t expires, const char *name,
                            sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "token_hash", token_hash)) < 0 ||
            (r = require(err, "tenant", tenant)) < 0 || (r = require(err, "user", user)) < 0 ||
            (r = require(err, "role", role)) < 0)
                return r;
        _cleanup_tx_ tx t = {0};
        if ((r = tx_begin_single(&t, store, err)) < 0)
                return r;
        num exp_n, now_n;
        const char *const p[] = {
            token_hash,      tenant, user, role, num_of(&exp_n, expires), num_of(&now_n, now_ms()),
            name ? name : ""};
        _cleanup_pgres_ PGresult *res = NULL;
        r = run(s, ST_TOKEN_ADD_API, 7, p, &res, err, "api_token_add");
        if (r == PG_UNIQUE)
                return sk_error_set(err, EEXIST, "token already exists");
        return finish_single(s, &t, r, res, err, "api_token_add");
}

static int pg_token_list(sk_store *store, const char *tenant, const char *user, sk_token_fn fn,
                         void *user_data, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", tenant)) < 0)
                return r;
        const char *const p[] = {tenant, user};
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_TOKEN_LIST, 2, p, &res, err, "token_list")) < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                sk_token_row row = token_of(res, i);
                int stop = fn ? fn(&row, user_data) : 0;
                if (stop)
                        return stop;
        }
        return 0;
}

static int pg_event_add(sk_store *store, const sk_event_row *ev, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "tenant", ev->tenant)) < 0 ||
            (r = require(err, "actor", ev->actor)) < 0 ||
            (r = require(err, "method", ev->method)) < 0 ||
            (r = require(err, "path", ev->path)) < 0)
                return r;
        num time_n, status_n;
        const char *const p[] = {num_of(&time_n, ev->time),
                                 ev->tenant,
                                 ev->actor,
                                 ev->method,
                                 ev->path,
                                 ev->resource ? ev->resource : "",
                                 ev->address ? ev->address : "",
                                 num_of(&status_n, ev->status)};
        _cleanup_pgres_ PGresult *res = NULL;
        return run_ok(s, ST_EVENT_ADD, 8, p, &res, err, "event_add");
}

static int pg_event_prune(sk_store *store, int64_t before, int64_t keep, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r = ensure_conn(s, err);
        if (r < 0)
                return r;
        num before_n, keep_n;
        const char *const p[] = {num_of(&before_n, before), num_of(&keep_n, keep)};
        _cleanup_pgres_ PGresult *res = PQexecParams(
            s->conn,
            "DELETE FROM events WHERE time < $1::bigint OR ($2::bigint >= 0 AND id <= "
            "(SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET greatest($2::bigint, 0)))",
            2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                return db_fail(s, res, err, "event_prune");
        return atoi(PQcmdTuples(res));
}

static int pg_event_list(sk_store *store, int64_t since, sk_event_fn fn, void *user, sk_error **err)
{
        sk_pg *s = to_pg(store);
        num since_n;
        const char *const p[] = {num_of(&since_n, since)};
        _cleanup_pgres_ PGresult *res = NULL;
        int r = run_ok(s, ST_EVENT_LIST, 1, p, &res, err, "event_list");
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                sk_event_row row = {
                    .id = get_i64(res, i, 0),
                    .time = get_i64(res, i, 1),
                    .tenant = PQgetvalue(res, i, 2),
                    .actor = PQgetvalue(res, i, 3),
                    .method = PQgetvalue(res, i, 4),
                    .path = PQgetvalue(res, i, 5),
                    .resource = PQgetvalue(res, i, 6),
                    .address = PQgetvalue(res, i, 7),
                    .status = (int)get_i64(res, i, 8),
                };
                int stop = fn ? fn(&row, user) : 0;
                if (stop)
                        return stop;
        }
        return 0;
}

static int pg_lock(sk_store *store, int64_t key, sk_error **err)
{
        sk_pg *s = to_pg(store);
        if (s->depth <= 0)
                return sk_error_set(err, EINVAL, "store: lock outside a transaction");
        num key_n;
        const char *const p[] = {num_of(&key_n, key)};
        _cleanup_pgres_ PGresult *res = NULL;
        return run_ok(s, ST_LOCK, 1, p, &res, err, "lock");
}

static int pg_setting_get(sk_store *store, const char *key, char **value, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "key", key)) < 0)
                return r;
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_SETTING_GET, 1, &key, &res, err, "setting_get")) < 0)
                return r;
        if (PQntuples(res) == 0)
                return sk_error_set(err, ENOENT, "setting %s not found", key);
        char *v = strdup(PQgetvalue(res, 0, 0));
        if (!v)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        *value = v;
        return 0;
}

static int pg_setting_add(sk_store *store, const char *key, const char *value, sk_error **err)
{
        sk_pg *s = to_pg(store);
        int r;
        if ((r = require(err, "key", key)) < 0 || (r = require(err, "value", value)) < 0)
                return r;
        const char *const p[] = {key, value};
        _cleanup_pgres_ PGresult *res = NULL;
        if ((r = run_ok(s, ST_SETTING_ADD, 2, p, &res, err, "setting_add")) < 0)
                return r;
        if (changes(res) == 0)
                return sk_error_set(err, EEXIST, "setting %s is already set", key);
        return 0;
}

static void pg_close(sk_store *store)
{
        sk_pg *s = to_pg(store);
        if (!s)
                return;
        /* Closing the connection rolls back whatever transaction is still open. */
        PQfinish(s->conn);
        free(s);
}

static const sk_store_ops pg_ops = {
    .abi = SK_STORE_ABI,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .resource_put = pg_resource_put,
    .resource_get = pg_resource_get,
    .resource_get_by_id = pg_resource_get_by_id,
    .resource_list = pg_resource_list,
    .resource_delete = pg_resource_delete,
    .revision = pg_revision,
    .site_sync_get = pg_site_sync_get,
    .site_sync_set = pg_site_sync_set,
    .join_token_add = pg_join_token_add,
    .join_token_get = pg_join_token_get,
    .join_token_use = pg_join_token_use,
    .host_add = pg_host_add,
    .host_adopt = pg_host_adopt,
    .host_get = pg_host_get,
    .host_list = pg_host_list,
    .host_seen = pg_host_seen,
    .host_delete = pg_host_delete,
    .host_removed_list = pg_host_removed_list,
    .instances_replace = pg_instances_replace,
    .instances_list = pg_instances_list,
    .instances_delete_site = pg_instances_delete_site,
    .password_set = pg_password_set,
    .password_get = pg_password_get,
    .token_add = pg_token_add,
    .token_get = pg_token_get,
    .token_revoke = pg_token_revoke,
    .api_token_add = pg_api_token_add,
    .token_list = pg_token_list,
    .event_add = pg_event_add,
    .event_list = pg_event_list,
    .event_prune = pg_event_prune,
    .lock = pg_lock,
    .setting_get = pg_setting_get,
    .setting_add = pg_setting_add,
};

static void pg_closep(sk_pg **s)
{
        if (*s)
                pg_close(&(*s)->base);
}

/* Server notices ("relation already exists, skipping") would go to stderr: dropped. */
static void ignore_notice(void *arg, const char *message)
{
}

static int query_int(sk_pg *s, const char *sql, int64_t *out, sk_error **err, const char *what)
{
        _cleanup_pgres_ PGresult *r = PQexec(s->conn, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
                return db_fail(s, r, err, what);
        if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
                return sk_error_set(err, EIO, "store: %s: no value", what);
        *out = get_i64(r, 0, 0);
        return 0;
}

/* One step (or none, when the schema is current) in one transaction. Returns 1 when a step
 * ran, 0 when the schema is current. */
static int migrate_step(sk_pg *s, sk_error **err)
{
        int64_t want = (int64_t)SK_ARRAY_SIZE(migrations), have = 0;
        int r;
        if ((r = exec_sql(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", err, "lock")) <
                0 ||
            (r = exec_sql(s,
                          "CREATE TABLE IF NOT EXISTS schema_version ("
                          "  id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);"
                          "INSERT INTO schema_version (id, version) VALUES (1, 0)"
                          "  ON CONFLICT (id) DO NOTHING",
                          err, "schema_version")) < 0 ||
            (r = query_int(s, "SELECT version FROM schema_version WHERE id = 1", &have, err,
                           "schema_version")) < 0)
                return r;
        if (have > want)
                return sk_error_set(err, ENOTSUP,
                                    "store %s: schema version %lld is newer than this skerry "
                                    "knows (%lld)",
                                    PQdb(s->conn), (long long)have, (long long)want);
        if (have == want)
                return 0;
        char bump[96];
        snprintf(bump, sizeof(bump), "UPDATE schema_version SET version = %lld WHERE id = 1",
                 (long long)have + 1);
        if ((r = exec_sql(s, migrations[have], err, "migrate")) < 0 ||
            (r = exec_sql(s, bump, err, "migrate")) < 0) {
                sk_error_prefix(err, "schema migration %lld", (long long)have + 1);
                return r;
        }
        return 1;
}

static int migrate(sk_pg *s, sk_error **err)
{
        for (;;) {
                _cleanup_tx_ tx t = {0};
                int r = tx_begin(&t, &s->base, err);
                if (r < 0)
                        return r;
                int ran = migrate_step(s, err);
                if (ran < 0)
                        return ran;
                if ((r = tx_commit(&t, err)) < 0)
                        return r;
                if (ran == 0)
                        return 0;
        }
}

int sk_store_pg_open(const char *conninfo, sk_store **out, sk_error **err)
{
        if (!conninfo)
                return sk_error_set_path(err, EINVAL, "conninfo", "store: conninfo is required");
        __attribute__((cleanup(pg_closep))) sk_pg *s = calloc(1, sizeof(*s));
        if (!s)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        s->base.ops = &pg_ops;
        s->conn = PQconnectdb(conninfo);
        if (!s->conn)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        /* The message names host, port and database but never the conninfo: it may hold a
         * password. */
        if (PQstatus(s->conn) != CONNECTION_OK) {
                const char *host = PQhost(s->conn), *port = PQport(s->conn), *db = PQdb(s->conn);
                char where[256];
                snprintf(where, sizeof(where), "PostgreSQL %s%s%s%s%s", db ? db : "",
                         host && *host ? " on " : "", host ? host : "", port && *port ? ":" : "",
                         port ? port : "");
                return pg_message(err, EIO, "store", where, PQerrorMessage(s->conn));
        }
        PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
        int r;
        if (PQsetClientEncoding(s->conn, "UTF8") != 0)
                return pg_message(err, EIO, "store", "client encoding", PQerrorMessage(s->conn));
        if ((r = migrate(s, err)) < 0)
                return r;
        *out = &take_ptr(&s)->base;
        return 0;
}
