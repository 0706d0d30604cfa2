/* The tower's store on PostgreSQL (libpq): the PostgreSQL dialect of the store layer
 * (store_db.h), whose calls store_ops.c writes once for both backends; for several tower
 * replicas sharing one database (docs/store.md).
 *
 * Schema changes are migration steps appended to `migrations` below; the schema_version
 * table records how many ran, each step runs in its own transaction under an advisory lock,
 * so replicas starting together migrate once. Statements are prepared once per connection
 * (again after a reconnect). libpq hands over a whole result before a callback runs, so a
 * callback may call back into the store.
 *
 * PostgreSQL refuses every statement of a transaction after one failed, where SQLite goes
 * on: savepoint_per_call makes a call that can fail on a constraint run under its own
 * savepoint when the caller has a transaction open. */
#include "tower/store_db.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "  tenant TEXT COLLATE \"C\" NOT NULL," SK_SCHEMA_EVENTS_REST,
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

/* The statements PostgreSQL writes its own way. */
static const char *const pg_sql[SK_ST__MAX] = {
    /* FOR UPDATE: a concurrent put of the same row on another replica waits for ours. */
    [SK_ST_RES_FIND] = SK_SQL_RES_FIND " FOR UPDATE",
    [SK_ST_HOST_ADD] = "INSERT INTO hosts (site_id, name, labels_json, joined, last_seen)"
                       " VALUES ($1, $2, $3, $4, $4) RETURNING id",
    /* An explicit id leaves the identity sequence where it was. */
    [SK_ST_HOST_ADOPT] = SK_SQL_HOST_ADOPT(" OVERRIDING SYSTEM VALUE"),
    /* the key space of the migration lock, offset by the caller's key */
    [SK_ST_LOCK] = "SELECT pg_advisory_xact_lock(126905100694137 + CAST($1 AS BIGINT))",
};

/* Serializes migrations of replicas that start together ("skerry" in ASCII). */
#define MIGRATION_LOCK "126905100694137" /* 0x736b65727279 */

typedef struct sk_pg {
        sk_store_db head; /* first: an sk_store* is an sk_pg* */
        PGconn *conn;
        bool prepared[SK_ST__MAX];
} sk_pg;

static void pq_clearp(PGresult **r)
{
        PQclear(*r);
}

#define _cleanup_pgres_ __attribute__((cleanup(pq_clearp)))

static sk_pg *to_pg(sk_store_db *db)
{
        return (sk_pg *)db;
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

static const char *result_msg(sk_pg *s, const PGresult *r)
{
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        return msg ? msg : PQerrorMessage(s->conn);
}

static int db_fail(sk_pg *s, const PGresult *r, sk_error **err, const char *what)
{
        return pg_message(err, EIO, "store", what, result_msg(s, r));
}

/* A lost connection is tried once more before a statement outside any transaction (inside
 * one, the transaction is gone with it and its caller must see the failure). */
static int ensure_conn(sk_pg *s, sk_error **err)
{
        if (PQstatus(s->conn) == CONNECTION_OK)
                return 0;
        if (s->head.depth > 0)
                return pg_message(err, EIO, "store", "connection lost", PQerrorMessage(s->conn));
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK)
                return pg_message(err, EIO, "store", "connection lost", PQerrorMessage(s->conn));
        memset(s->prepared, 0, sizeof(s->prepared));
        return 0;
}

/* Runs SQL text (transaction control, migrations). */
static int exec_sql(sk_pg *s, const char *sql, sk_error **err, const char *what)
{
        _cleanup_pgres_ PGresult *r = PQexec(s->conn, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                return 0;
        return db_fail(s, r, err, what);
}

static void stmt_name(char name[16], int id)
{
        snprintf(name, 16, "sk%d", id);
}

static int prepare(sk_pg *s, int id, const char *sql, sk_error **err)
{
        if (s->prepared[id])
                return 0;
        char name[16];
        stmt_name(name, id);
        _cleanup_pgres_ PGresult *r = PQprepare(s->conn, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
                return db_fail(s, r, err, "prepare");
        s->prepared[id] = true;
        return 0;
}

/* Decimal text of the integer parameters (libpq parameters are text here). */
typedef struct num {
        char s[24];
} num;

/* The result of a statement is whole: q->handle, read row by row. A constraint failure
 * keeps its result for errmsg. */
static int dialect_run(sk_query *q, const char *sql, const sk_param *p, size_t n, sk_error **err)
{
        sk_pg *s = to_pg(q->db);
        int r;
        if ((r = ensure_conn(s, err)) < 0 || (r = prepare(s, q->id, sql, err)) < 0)
                return r;
        const char *values[16];
        num nums[16];
        if (n > SK_ARRAY_SIZE(values))
                return sk_error_set(err, E2BIG, "store: %zu parameters", n);
        for (size_t i = 0; i < n; i++) {
                values[i] = p[i].text;
                if (p[i].is_num) {
                        snprintf(nums[i].s, sizeof(nums[i].s), "%" PRId64, p[i].num);
                        values[i] = nums[i].s;
                }
        }
        char name[16];
        stmt_name(name, q->id);
        PGresult *res = PQexecPrepared(s->conn, name, (int)n, values, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        q->handle = res;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                q->changes = strtoll(PQcmdTuples(res), NULL, 10);
                return 0;
        }
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && strcmp(state, "23503") == 0)
                return SK_DB_FOREIGN_KEY;
        if (state && strcmp(state, "23505") == 0)
                return SK_DB_UNIQUE;
        return db_fail(s, res, err, "statement");
}

static int dialect_next(sk_query *q, sk_error **err)
{
        return ++q->row < PQntuples(q->handle);
}

static const char *dialect_text(const sk_query *q, int col)
{
        return PQgetvalue(q->handle, q->row, col);
}

static int64_t dialect_num(const sk_query *q, int col)
{
        return strtoll(PQgetvalue(q->handle, q->row, col), NULL, 10);
}

static const char *dialect_errmsg(const sk_query *q)
{
        return result_msg(to_pg(q->db), q->handle);
}

static void dialect_release(sk_query *q)
{
        PQclear(q->handle);
}

static int dialect_tx(sk_store_db *db, enum sk_tx_op op, sk_error **err)
{
        static const char *const sql[] = {
            [SK_TX_BEGIN] = "BEGIN",
            [SK_TX_COMMIT] = "COMMIT",
            [SK_TX_ROLLBACK] = "ROLLBACK",
            [SK_TX_SAVEPOINT] = "SAVEPOINT sk",
            [SK_TX_RELEASE] = "RELEASE SAVEPOINT sk",
            [SK_TX_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT sk",
        };
        sk_pg *s = to_pg(db);
        int r = op == SK_TX_BEGIN ? ensure_conn(s, err) : 0;
        if (r < 0 || op != SK_TX_COMMIT)
                return r < 0 ? r
                             : exec_sql(s, sql[op], err, op == SK_TX_BEGIN ? "begin" : "rollback");
        /* A COMMIT the server turned into a rollback is an error. */
        _cleanup_pgres_ PGresult *res = PQexec(s->conn, "COMMIT");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                return db_fail(s, res, err, "commit");
        if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
                return sk_error_set(err, EIO, "store: commit: rolled back (%s)", PQcmdStatus(res));
        return 0;
}

static enum sk_tx_state dialect_tx_state(sk_store_db *db)
{
        PGTransactionStatusType ts = PQtransactionStatus(to_pg(db)->conn);
        return ts == PQTRANS_INTRANS   ? SK_TX_OPEN
               : ts == PQTRANS_INERROR ? SK_TX_FAILED
                                       : SK_TX_NONE;
}

static int dialect_exec(sk_store_db *db, const char *sql, sk_error **err)
{
        return exec_sql(to_pg(db), sql, err, "migrate");
}

static int pg_migrate_lock(sk_store_db *db, sk_error **err)
{
        sk_pg *s = to_pg(db);
        int r = exec_sql(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", err, "lock");
        if (r < 0)
                return r;
        return exec_sql(s,
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        "  id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);"
                        "INSERT INTO schema_version (id, version) VALUES (1, 0)"
                        "  ON CONFLICT (id) DO NOTHING",
                        err, "schema_version");
}

static int dialect_version_get(sk_store_db *db, int64_t *version, sk_error **err)
{
        sk_pg *s = to_pg(db);
        _cleanup_pgres_ PGresult *r = PQexec(s->conn, "SELECT version FROM schema_version");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
                return db_fail(s, r, err, "schema_version");
        if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
                return sk_error_set(err, EIO, "store: schema_version: no value");
        *version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        return 0;
}

static int dialect_version_set(sk_store_db *db, int64_t version, sk_error **err)
{
        char sql[96];
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %lld WHERE id = 1",
                 (long long)version);
        return exec_sql(to_pg(db), sql, err, "migrate");
}

/* Closing the connection rolls back whatever transaction is still open. */
static void dialect_close(sk_store_db *db)
{
        PQfinish(to_pg(db)->conn);
        free(db);
}

static const sk_store_dialect pg_dialect = {
    .sql = pg_sql,
    .migrations = migrations,
    .n_migrations = SK_ARRAY_SIZE(migrations),
    .savepoint_per_call = true,
    .migrate_lock = pg_migrate_lock,
    SK_DIALECT_FUNCTIONS,
};

static void pg_closep(sk_pg **s)
{
        if (*s)
                sk_db_close(&(*s)->head);
}

/* Server notices ("relation already exists, skipping") would go to stderr: dropped. */
static void ignore_notice(void *arg, const char *message)
{
}

/* The message names host, port and database but never the conninfo: it may hold a
 * password. */
static int connect_failed(PGconn *conn, sk_error **err)
{
        const char *host = PQhost(conn), *port = PQport(conn), *db = PQdb(conn);
        char where[256];
        snprintf(where, sizeof(where), "PostgreSQL %s%s%s%s%s", db ? db : "",
                 host && *host ? " on " : "", host ? host : "", port && *port ? ":" : "",
                 port ? port : "");
        return pg_message(err, EIO, "store", where, PQerrorMessage(conn));
}

int sk_store_pg_open(const char *conninfo, sk_store **out, sk_error **err)
{
        if (!conninfo)
                return sk_error_set_path(err, EINVAL, "conninfo", "store: conninfo is required");
        __attribute__((cleanup(pg_closep))) sk_pg *s = calloc(1, sizeof(*s));
        if (!s)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        if (!(s->conn = PQconnectdb(conninfo)))
                return sk_error_set(err, ENOMEM, "store: out of memory");
        int r = sk_db_init(&s->head, &pg_dialect, PQdb(s->conn), err);
        if (r < 0)
                return r;
        if (PQstatus(s->conn) != CONNECTION_OK)
                return connect_failed(s->conn, err);
        PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
        if (PQsetClientEncoding(s->conn, "UTF8") != 0)
                return pg_message(err, EIO, "store", "client encoding", PQerrorMessage(s->conn));
        return sk_db_open_done(&take_ptr(&s)->head, out, err);
}
