/* The SQL engine of the store layer (store_db.h): the statements both databases read alike,
 * runs and rows through the dialect, nested transactions and schema migrations. */
#include "tower/store_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

#define RESOURCE_COLS "id, tenant, kind, name, version, json, created, updated"
#define HOST_COLS     "id, site_id, name, labels_json, status_json, joined, last_seen"
#define INST_COLS     "site_id, host_id, instance, json, updated"
/* `user` is a reserved word in PostgreSQL: quoted (SQLite reads it as the same column). */
#define TOKEN_COLS                                                                                 \
        "tenant, \"user\", role, expires, CAST(revoked AS INTEGER), hash, kind, name, created"

/* Portable SQL: CAST(... AS TEXT) types a parameter PostgreSQL could not infer (SQLite reads
 * it as a no-op); ON CONFLICT and RETURNING are in both (SQLite 3.35 and later). */
static const char *const common_sql[SK_ST__MAX] = {
    [SK_ST_RES_FIND] = SK_SQL_RES_FIND,
    /* DO NOTHING: another replica inserted it since our find; the caller looks again. */
    [SK_ST_RES_INSERT] = "INSERT INTO resources (tenant, kind, name, version, json, created,"
                         " updated) VALUES ($1, $2, $3, $4, $5, $6, $6)"
                         " ON CONFLICT (tenant, kind, name, version) DO NOTHING RETURNING id",
    [SK_ST_RES_UPDATE] = "UPDATE resources SET json = $2, updated = $3 WHERE id = $1",
    [SK_ST_RES_GET] = "SELECT " RESOURCE_COLS " FROM resources"
                      " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4",
    [SK_ST_RES_GET_ALL] = "SELECT " RESOURCE_COLS " FROM resources"
                          " WHERE tenant = $1 AND kind = $2 AND name = $3 ORDER BY version",
    [SK_ST_RES_GET_ID] = "SELECT " RESOURCE_COLS " FROM resources WHERE id = $1",
    [SK_ST_RES_LIST] = "SELECT " RESOURCE_COLS " FROM resources WHERE kind = $1"
                       " ORDER BY tenant, name, version",
    [SK_ST_RES_LIST_TENANT] = "SELECT " RESOURCE_COLS " FROM resources"
                              " WHERE tenant = $1 AND kind = $2 ORDER BY name, version",
    [SK_ST_RES_DELETE] = "DELETE FROM resources"
                         " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4",
    [SK_ST_RES_DELETE_ALL] = "DELETE FROM resources WHERE tenant = $1 AND kind = $2 AND name = $3",
    [SK_ST_REV_BUMP] = "UPDATE revision SET value = value + 1 WHERE id = 1",
    [SK_ST_REV_GET] = "SELECT value FROM revision WHERE id = 1",
    [SK_ST_SYNC_GET] = "SELECT generation, hash FROM site_sync WHERE site_id = $1",
    [SK_ST_SYNC_SET] = "INSERT INTO site_sync (site_id, generation, hash) VALUES ($1, $2, $3)"
                       " ON CONFLICT (site_id) DO UPDATE SET generation = excluded.generation,"
                       " hash = excluded.hash",
    [SK_ST_JOIN_ADD] = "INSERT INTO join_tokens (hash, site_id, expires) VALUES ($1, $2, $3)",
    [SK_ST_JOIN_GET] = "SELECT site_id, expires, used FROM join_tokens WHERE hash = $1",
    [SK_ST_JOIN_USE] = "UPDATE join_tokens SET used = $2 WHERE hash = $1 AND used = 0",
    [SK_ST_HOST_ADOPT] = SK_SQL_HOST_ADOPT(""),
    [SK_ST_HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE id = $1",
    [SK_ST_HOST_LIST] = "SELECT " HOST_COLS " FROM hosts WHERE site_id = $1 ORDER BY name",
    [SK_ST_HOST_SEEN] = "UPDATE hosts SET last_seen = $2,"
                        " status_json = coalesce(CAST($3 AS TEXT), status_json) WHERE id = $1",
    [SK_ST_HOST_REMOVE_MARK] = "INSERT INTO removed_hosts (site_id, host_id, removed)"
                               " SELECT site_id, id, $2 FROM hosts WHERE id = $1"
                               " ON CONFLICT DO NOTHING",
    [SK_ST_HOST_DELETE] = "DELETE FROM hosts WHERE id = $1",
    [SK_ST_HOST_REMOVED_LIST] = "SELECT host_id FROM removed_hosts WHERE site_id = $1"
                                " ORDER BY host_id",
    [SK_ST_INST_DELETE_HOST] = "DELETE FROM instances WHERE host_id = $1",
    [SK_ST_INST_INSERT] = "INSERT INTO instances (site_id, host_id, instance, json, updated)"
                          " VALUES ($1, $2, $3, $4, $5)",
    /* A prefix as a range [$1, $2): both compare names as bytes (COLLATE "C"). */
    [SK_ST_INST_LIST] = "SELECT " INST_COLS " FROM instances WHERE instance >= $1"
                        " AND (CAST($2 AS TEXT) IS NULL OR instance < $2)"
                        " ORDER BY instance, host_id",
    [SK_ST_INST_LIST_SITE] = "SELECT " INST_COLS " FROM instances WHERE site_id = $1"
                             " AND instance >= $2 AND (CAST($3 AS TEXT) IS NULL OR instance < $3)"
                             " ORDER BY instance, host_id",
    [SK_ST_INST_DELETE_SITE] = "DELETE FROM instances WHERE site_id = $1",
    [SK_ST_PW_SET] = "INSERT INTO passwords (tenant, \"user\", hash, updated)"
                     " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, \"user\")"
                     " DO UPDATE SET hash = excluded.hash, updated = excluded.updated",
    [SK_ST_PW_GET] = "SELECT hash FROM passwords WHERE tenant = $1 AND \"user\" = $2",
    [SK_ST_TOKEN_ADD] = "INSERT INTO tokens (hash, tenant, \"user\", role, expires, created)"
                        " VALUES ($1, $2, $3, $4, $5, $6)",
    [SK_ST_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1",
    [SK_ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked = true WHERE hash = $1",
    [SK_ST_TOKEN_ADD_API] = "INSERT INTO tokens (hash, tenant, \"user\", role, expires, created,"
                            " kind, name) VALUES ($1, $2, $3, $4, $5, $6, 'api', $7)",
    [SK_ST_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens WHERE tenant = $1"
                         " AND (CAST($2 AS TEXT) IS NULL OR \"user\" = $2) ORDER BY created, hash",
    [SK_ST_EVENT_ADD] = "INSERT INTO events (time, tenant, actor, method, path, resource,"
                        " address, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    [SK_ST_EVENT_LIST] = "SELECT id, time, tenant, actor, method, path, resource, address,"
                         " status FROM events WHERE time >= $1 ORDER BY id",
    [SK_ST_EVENT_PRUNE_AGE] = "DELETE FROM events WHERE time < $1",
    /* All but the newest $1: the id of the ($1 + 1)-th newest and below. */
    [SK_ST_EVENT_PRUNE_COUNT] = "DELETE FROM events WHERE id <= (SELECT id FROM events"
                                " ORDER BY id DESC LIMIT 1 OFFSET $1)",
    [SK_ST_SETTING_GET] = "SELECT value FROM settings WHERE key = $1",
    [SK_ST_SETTING_ADD] = "INSERT INTO settings (key, value) VALUES ($1, $2)"
                          " ON CONFLICT (key) DO NOTHING",
};

int sk_db_init(sk_store_db *db, const sk_store_dialect *d, const char *label, sk_error **err)
{
        db->base.ops = &sk_store_db_ops;
        db->d = d;
        if (!(db->label = strdup(label ? label : "")))
                return sk_error_set(err, ENOMEM, "store: out of memory");
        return 0;
}

void sk_db_close(sk_store_db *db)
{
        if (!db)
                return;
        free(db->label);
        db->label = NULL;
        db->d->close(db);
}

int sk_db_run(sk_store_db *db, sk_query *q, enum sk_stmt id, const sk_param *p, size_t n,
              sk_error **err)
{
        sk_db_release(q);
        *q = (sk_query){.db = db, .id = id, .row = -1};
        const char *sql = db->d->sql[id] ? db->d->sql[id] : common_sql[id];
        if (!sql)
                return 0;
        return db->d->run(q, sql, p, n, err);
}

int sk_db_next(sk_query *q, sk_error **err)
{
        if (!q->handle)
                return 0;
        if (q->pending) {
                q->pending = false;
                return 1;
        }
        return q->db->d->next(q, err);
}

const char *sk_db_text(const sk_query *q, int col)
{
        return q->db->d->text(q, col);
}

int64_t sk_db_num(const sk_query *q, int col)
{
        return q->db->d->num(q, col);
}

void sk_db_release(sk_query *q)
{
        if (q->handle)
                q->db->d->release(q);
        q->handle = NULL;
}

int sk_db_fail(const sk_query *q, sk_error **err, const char *what)
{
        return sk_error_set(err, EIO, "store: %s: %s", what, q->db->d->errmsg(q));
}

int64_t sk_db_write(sk_store_db *db, enum sk_stmt id, const sk_param *p, size_t n, sk_error **err,
                    const char *what)
{
        _cleanup_query_ sk_query q = {0};
        int r = sk_db_run(db, &q, id, p, n, err);
        if (r > 0)
                return sk_db_fail(&q, err, what);
        return r < 0 ? r : q.changes;
}

int sk_db_find(sk_store_db *db, sk_query *q, enum sk_stmt id, const sk_param *p, size_t n,
               sk_error **err)
{
        int r = sk_db_run(db, q, id, p, n, err);
        if (r > 0)
                return sk_db_fail(q, err, "find");
        return r < 0 ? r : sk_db_next(q, err);
}

int sk_db_begin(sk_store *s, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        int r = db->d->tx(db, db->depth == 0 ? SK_TX_BEGIN : SK_TX_SAVEPOINT, err);
        if (r < 0)
                return r;
        db->depth++;
        return 0;
}

void sk_db_rollback(sk_store *s)
{
        sk_store_db *db = sk_db_of(s);
        if (db->depth <= 0)
                return;
        db->depth--;
        /* Nothing to undo when the database ended the transaction itself (an I/O error, a
         * lost connection). */
        if (db->d->tx_state(db) == SK_TX_NONE)
                return;
        if (db->depth == 0) {
                db->d->tx(db, SK_TX_ROLLBACK, NULL);
        } else {
                db->d->tx(db, SK_TX_ROLLBACK_TO, NULL);
                db->d->tx(db, SK_TX_RELEASE, NULL);
        }
}

int sk_db_commit(sk_store *s, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        if (db->depth <= 0)
                return sk_error_set(err, EINVAL, "store: commit without begin");
        int r;
        /* PostgreSQL "commits" a failed transaction by rolling it back: refused instead. */
        if (db->d->tx_state(db) != SK_TX_OPEN)
                r = sk_error_set(err, EIO, "store: commit: the transaction failed earlier");
        else
                r = db->d->tx(db, db->depth > 1 ? SK_TX_RELEASE : SK_TX_COMMIT, err);
        if (r < 0) {
                sk_db_rollback(s);
                return r;
        }
        db->depth--;
        return 0;
}

int sk_tx_begin(sk_tx *t, sk_store_db *db, sk_error **err)
{
        t->db = db;
        int r = sk_db_begin(&db->base, err);
        t->open = r == 0;
        return r;
}

int sk_tx_begin_call(sk_tx *t, sk_store_db *db, sk_error **err)
{
        *t = (sk_tx){.db = db};
        return db->d->savepoint_per_call && db->depth > 0 ? sk_tx_begin(t, db, err) : 0;
}

int sk_tx_commit(sk_tx *t, sk_error **err)
{
        if (!t->open)
                return 0;
        t->open = false;
        return sk_db_commit(&t->db->base, err);
}

void sk_tx_cleanup(sk_tx *t)
{
        if (t->open)
                sk_db_rollback(&t->db->base);
}

/* One step (or none, when the schema is current) in the caller's transaction. Returns 1
 * when a step ran, 0 when the schema is current. */
static int migrate_step(sk_store_db *db, sk_error **err)
{
        const sk_store_dialect *d = db->d;
        int64_t want = (int64_t)d->n_migrations, have = 0;
        int r;
        if ((d->migrate_lock && (r = d->migrate_lock(db, err)) < 0) ||
            (r = d->version_get(db, &have, err)) < 0)
                return r;
        if (have > want)
                return sk_error_set(err, ENOTSUP,
                                    "store %s: schema version %lld is newer than this skerry "
                                    "knows (%lld)",
                                    db->label, (long long)have, (long long)want);
        if (have == want)
                return 0;
        if ((r = d->exec(db, d->migrations[have], err)) < 0 ||
            (r = d->version_set(db, have + 1, err)) < 0) {
                sk_error_prefix(err, "schema migration %lld", (long long)have + 1);
                return r;
        }
        return 1;
}

/* Each step in its own transaction, so a failed step leaves the ones before it. */
static int migrate(sk_store_db *db, sk_error **err)
{
        for (;;) {
                _cleanup_tx_ sk_tx t = {0};
                int r = sk_tx_begin(&t, db, err);
                if (r < 0)
                        return r;
                int ran = migrate_step(db, err);
                if (ran < 0)
                        return ran;
                if ((r = sk_tx_commit(&t, err)) < 0)
                        return r;
                if (ran == 0)
                        return 0;
        }
}

int sk_db_open_done(sk_store_db *db, sk_store **out, sk_error **err)
{
        int r = migrate(db, err);
        if (r < 0) {
                sk_db_close(db);
                return r;
        }
        *out = &db->base;
        return 0;
}
