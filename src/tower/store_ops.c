/* The store's calls (store.h), written once over the SQL engine of store_db.h: what each
 * call checks, which statements it runs in which transaction, how rows map to the row
 * structs of store.h and constraint failures to errors. Both backends run this code. */
#include "tower/store_db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "tower/store_prefix.h"

#define N(a) SK_ARRAY_SIZE(a)

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int require(sk_error **err, const char *field, const char *v)
{
        if (!v)
                return sk_error_set_path(err, EINVAL, field, "store: %s is required", field);
        return 0;
}

typedef struct field {
        const char *name, *value;
} field;

/* Checks that each field has a value: REQUIRE(err, {"tenant", tenant}, {"kind", kind}). */
static int require_all(sk_error **err, const field *f, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int r = require(err, f[i].name, f[i].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define REQUIRE(err, ...)                                                                          \
        require_all(err, (const field[]){__VA_ARGS__}, N(((const field[]){__VA_ARGS__})))

static int site_missing(sk_error **err, int64_t site_id)
{
        return sk_error_set(err, ENOENT, "site %lld not found", (long long)site_id);
}

static int not_found(sk_error **err, const char *kind, const char *name, const char *version)
{
        if (version && *version)
                return sk_error_set(err, ENOENT, "%s %s version %s not found", kind, name, version);
        return sk_error_set(err, ENOENT, "%s %s not found", kind, name);
}

static int dup_text(const sk_query *q, int col, char **out, sk_error **err)
{
        char *v = strdup(sk_db_text(q, col));
        if (!v)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        *out = v;
        return 0;
}

/* ---- Row mapping: per row type, one function builds the struct and calls the callback. */

typedef void (*any_fn)(void);
typedef int (*row_call)(const sk_query *q, any_fn fn, void *user);

static int call_resource(const sk_query *q, any_fn fn, void *user)
{
        sk_resource_row row = {
            .id = sk_db_num(q, 0),
            .tenant = sk_db_text(q, 1),
            .kind = sk_db_text(q, 2),
            .name = sk_db_text(q, 3),
            .version = sk_db_text(q, 4),
            .json = sk_db_text(q, 5),
            .created = sk_db_num(q, 6),
            .updated = sk_db_num(q, 7),
        };
        return ((sk_resource_fn)fn)(&row, user);
}

static int call_host(const sk_query *q, any_fn fn, void *user)
{
        sk_host_row row = {
            .id = sk_db_num(q, 0),
            .site_id = sk_db_num(q, 1),
            .name = sk_db_text(q, 2),
            .labels_json = sk_db_text(q, 3),
            .status_json = sk_db_text(q, 4),
            .joined = sk_db_num(q, 5),
            .last_seen = sk_db_num(q, 6),
        };
        return ((sk_host_fn)fn)(&row, user);
}

static int call_instance(const sk_query *q, any_fn fn, void *user)
{
        sk_instance_row row = {
            .site_id = sk_db_num(q, 0),
            .host_id = sk_db_num(q, 1),
            .instance = sk_db_text(q, 2),
            .json = sk_db_text(q, 3),
            .updated = sk_db_num(q, 4),
        };
        return ((sk_instance_fn)fn)(&row, user);
}

static int call_token(const sk_query *q, any_fn fn, void *user)
{
        sk_token_row row = {
            .tenant = sk_db_text(q, 0),
            .user = sk_db_text(q, 1),
            .role = sk_db_text(q, 2),
            .expires = sk_db_num(q, 3),
            .revoked = sk_db_num(q, 4) != 0,
            .hash = sk_db_text(q, 5),
            .kind = sk_db_text(q, 6),
            .name = sk_db_text(q, 7),
            .created = sk_db_num(q, 8),
        };
        return ((sk_token_fn)fn)(&row, user);
}

static int call_event(const sk_query *q, any_fn fn, void *user)
{
        sk_event_row row = {
            .id = sk_db_num(q, 0),
            .time = sk_db_num(q, 1),
            .tenant = sk_db_text(q, 2),
            .actor = sk_db_text(q, 3),
            .method = sk_db_text(q, 4),
            .path = sk_db_text(q, 5),
            .resource = sk_db_text(q, 6),
            .address = sk_db_text(q, 7),
            .status = (int)sk_db_num(q, 8),
        };
        return ((sk_event_fn)fn)(&row, user);
}

/* Runs a query and calls fn (when set) for each row. Returns the non-zero value of fn that
 * stopped the walk, 0, or negative on a store error; *seen (when set) counts the rows. */
static int walk(sk_store_db *db, enum sk_stmt id, const sk_param *p, size_t n, row_call call,
                any_fn fn, void *user, size_t *seen, sk_error **err)
{
        _cleanup_query_ sk_query q = {0};
        int r = sk_db_run(db, &q, id, p, n, err);
        if (r > 0)
                return sk_db_fail(&q, err, "list");
        while (r == 0 && (r = sk_db_next(&q, err)) == 1) {
                if (seen)
                        (*seen)++;
                r = fn ? call(&q, fn, user) : 0;
        }
        return r;
}

/* A walk that must see a row: ENOENT (by the caller's message) when it saw none. */
#define WALK_ONE(db, id, p, call, fn, user, err, ...)                                              \
        ({                                                                                         \
                size_t _seen = 0;                                                                  \
                int _r = walk(db, id, p, N(p), call, (any_fn)(fn), user, &_seen, err);             \
                _r == 0 && _seen == 0 ? (__VA_ARGS__) : _r;                                        \
        })

/* ---- Resources and the revision. */

static int revision_bump(sk_store_db *db, sk_error **err)
{
        int64_t r = sk_db_write(db, SK_ST_REV_BUMP, NULL, 0, err, "revision");
        return r < 0 ? (int)r : 0;
}

/* Finds the row of key (locked where replicas share it) and updates it when json differs,
 * or inserts it; an insert that lost a race with another replica finds that replica's row
 * the next time round. Returns an sk_put_result. */
static int put_row(sk_store_db *db, const sk_param key[4], const char *json, int64_t now,
                   int64_t *row_id, sk_error **err)
{
        for (int attempt = 0; attempt < 3; attempt++) {
                _cleanup_query_ sk_query q = {0};
                int r = sk_db_find(db, &q, SK_ST_RES_FIND, key, 4, err);
                if (r < 0)
                        return r;
                if (r == 1) {
                        *row_id = sk_db_num(&q, 0);
                        if (strcmp(sk_db_text(&q, 1), json) == 0)
                                return SK_PUT_UNCHANGED;
                        const sk_param p[] = {SK_NUM(*row_id), SK_TEXT(json), SK_NUM(now)};
                        int64_t w = sk_db_write(db, SK_ST_RES_UPDATE, p, N(p), err, "resource_put");
                        return w < 0 ? (int)w : SK_PUT_UPDATED;
                }
                const sk_param p[] = {key[0], key[1], key[2], key[3], SK_TEXT(json), SK_NUM(now)};
                if ((r = sk_db_find(db, &q, SK_ST_RES_INSERT, p, N(p), err)) != 0) {
                        *row_id = r == 1 ? sk_db_num(&q, 0) : 0;
                        return r == 1 ? SK_PUT_CREATED : r;
                }
        }
        return sk_error_set(err, EIO,
                            "store: resource_put: %s %s keeps being inserted and "
                            "deleted concurrently",
                            key[1].text, key[2].text);
}

static int resource_put(sk_store *s, const char *tenant, const char *kind, const char *name,
                        const char *version, const char *json, int64_t *id, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        int r = REQUIRE(err, {"tenant", tenant}, {"kind", kind}, {"name", name}, {"json", json});
        _cleanup_tx_ sk_tx t = {0};
        if (r < 0 || (r = sk_tx_begin(&t, db, err)) < 0)
                return r;
        const sk_param key[] = {SK_TEXT(tenant), SK_TEXT(kind), SK_TEXT(name),
                                SK_TEXT(version ? version : "")};
        int64_t row_id = 0;
        int result = put_row(db, key, json, now_ms(), &row_id, err);
        if (result < 0 || (result != SK_PUT_UNCHANGED && (r = revision_bump(db, err)) < 0) ||
            (r = sk_tx_commit(&t, err)) < 0)
                return result < 0 ? result : r;
        if (id)
                *id = row_id;
        return result;
}

static int resource_get(sk_store *s, const char *tenant, const char *kind, const char *name,
                        const char *version, sk_resource_fn fn, void *user, sk_error **err)
{
        int r = REQUIRE(err, {"tenant", tenant}, {"kind", kind}, {"name", name});
        if (r < 0)
                return r;
        const sk_param key[] = {SK_TEXT(tenant), SK_TEXT(kind), SK_TEXT(name), SK_TEXT(version)};
        size_t seen = 0;
        r = walk(sk_db_of(s), version ? SK_ST_RES_GET : SK_ST_RES_GET_ALL, key, version ? 4 : 3,
                 call_resource, (any_fn)fn, user, &seen, err);
        return r == 0 && seen == 0 ? not_found(err, kind, name, version) : r;
}

static int resource_get_by_id(sk_store *s, int64_t id, sk_resource_fn fn, void *user,
                              sk_error **err)
{
        const sk_param p[] = {SK_NUM(id)};
        return WALK_ONE(sk_db_of(s), SK_ST_RES_GET_ID, p, call_resource, fn, user, err,
                        sk_error_set(err, ENOENT, "resource %lld not found", (long long)id));
}

static int resource_list(sk_store *s, const char *tenant, const char *kind, sk_resource_fn fn,
                         void *user, sk_error **err)
{
        int r = require(err, "kind", kind);
        if (r < 0)
                return r;
        const sk_param key[] = {SK_TEXT(tenant), SK_TEXT(kind)};
        return walk(sk_db_of(s), tenant ? SK_ST_RES_LIST_TENANT : SK_ST_RES_LIST,
                    tenant ? key : key + 1, tenant ? 2 : 1, call_resource, (any_fn)fn, user, NULL,
                    err);
}

static int resource_delete(sk_store *s, const char *tenant, const char *kind, const char *name,
                           const char *version, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        int r = REQUIRE(err, {"tenant", tenant}, {"kind", kind}, {"name", name});
        _cleanup_tx_ sk_tx t = {0};
        if (r < 0 || (r = sk_tx_begin(&t, db, err)) < 0)
                return r;
        const sk_param key[] = {SK_TEXT(tenant), SK_TEXT(kind), SK_TEXT(name), SK_TEXT(version)};
        int64_t n = sk_db_write(db, version ? SK_ST_RES_DELETE : SK_ST_RES_DELETE_ALL, key,
                                version ? 4 : 3, err, "resource_delete");
        if (n < 0)
                return (int)n;
        if (n == 0)
                return not_found(err, kind, name, version);
        if ((r = revision_bump(db, err)) < 0 || (r = sk_tx_commit(&t, err)) < 0)
                return r;
        return (int)n;
}

static int revision(sk_store *s, int64_t *rev, sk_error **err)
{
        _cleanup_query_ sk_query q = {0};
        int r = sk_db_find(sk_db_of(s), &q, SK_ST_REV_GET, NULL, 0, err);
        if (r == 0)
                return sk_error_set(err, EIO, "store: revision: the revision row is missing");
        if (r == 1)
                *rev = sk_db_num(&q, 0);
        return r < 0 ? r : 0;
}

/* ---- Site sync state and join tokens. */

/* One write that may fail on a constraint, in its own savepoint where the dialect needs one
 * (sk_tx_begin_call). Returns 0, SK_DB_* (q holds the failure), or negative. */
static int write_call(sk_store_db *db, sk_query *q, enum sk_stmt id, const sk_param *p, size_t n,
                      sk_error **err)
{
        _cleanup_tx_ sk_tx t = {0};
        int r = sk_tx_begin_call(&t, db, err);
        if (r < 0 || (r = sk_db_run(db, q, id, p, n, err)) != 0)
                return r;
        return sk_tx_commit(&t, err);
}

/* The error of a write_call: a missing site, an existing row (message exists, or none when
 * it cannot happen), another constraint, or the store's. */
static int write_error(const sk_query *q, int r, int64_t site_id, const char *exists,
                       sk_error **err, const char *what)
{
        if (r == SK_DB_FOREIGN_KEY && site_id)
                return site_missing(err, site_id);
        if (r == SK_DB_UNIQUE && exists)
                return sk_error_set(err, EEXIST, "%s", exists);
        return r > 0 ? sk_db_fail(q, err, what) : r;
}

/* A write_call whose failures are all errors (as write_error says). */
static int write_checked(sk_store_db *db, enum sk_stmt id, const sk_param *p, size_t n,
                         int64_t site_id, const char *exists, sk_error **err, const char *what)
{
        _cleanup_query_ sk_query q = {0};
        int r = write_call(db, &q, id, p, n, err);
        return write_error(&q, r, site_id, exists, err, what);
}

static int site_sync_get(sk_store *s, int64_t site_id, int64_t *generation, char **hash,
                         sk_error **err)
{
        _cleanup_query_ sk_query q = {0};
        const sk_param p[] = {SK_NUM(site_id)};
        int r = sk_db_find(sk_db_of(s), &q, SK_ST_SYNC_GET, p, N(p), err);
        if (r == 0)
                return sk_error_set(err, ENOENT, "sync state of site %lld not found",
                                    (long long)site_id);
        if (r < 0 || (hash && (r = dup_text(&q, 1, hash, err)) < 0))
                return r;
        if (generation)
                *generation = sk_db_num(&q, 0);
        return 0;
}

static int site_sync_set(sk_store *s, int64_t site_id, int64_t generation, const char *hash,
                         sk_error **err)
{
        int r = require(err, "hash", hash);
        const sk_param p[] = {SK_NUM(site_id), SK_NUM(generation), SK_TEXT(hash)};
        return r < 0 ? r
                     : write_checked(sk_db_of(s), SK_ST_SYNC_SET, p, N(p), site_id, NULL, err,
                                     "site_sync_set");
}

static int join_token_add(sk_store *s, const char *token_hash, int64_t site_id, int64_t expires,
                          sk_error **err)
{
        int r = require(err, "token_hash", token_hash);
        const sk_param p[] = {SK_TEXT(token_hash), SK_NUM(site_id), SK_NUM(expires)};
        return r < 0 ? r
                     : write_checked(sk_db_of(s), SK_ST_JOIN_ADD, p, N(p), site_id,
                                     "join token already exists", err, "join_token_add");
}

static int join_token_get(sk_store *s, const char *token_hash, sk_join_token *out, sk_error **err)
{
        int r = require(err, "token_hash", token_hash);
        if (r < 0)
                return r;
        _cleanup_query_ sk_query q = {0};
        const sk_param p[] = {SK_TEXT(token_hash)};
        if ((r = sk_db_find(sk_db_of(s), &q, SK_ST_JOIN_GET, p, N(p), err)) == 0)
                return sk_error_set(err, ENOENT, "join token not found");
        if (r == 1 && out)
                *out = (sk_join_token){
                    .site_id = sk_db_num(&q, 0),
                    .expires = sk_db_num(&q, 1),
                    .used = sk_db_num(&q, 2),
                };
        return r < 0 ? r : 0;
}

static int join_token_use(sk_store *s, const char *token_hash, int64_t now, sk_error **err)
{
        int r = require(err, "token_hash", token_hash);
        if (r < 0)
                return r;
        if (now <= 0)
                return sk_error_set_path(err, EINVAL, "now", "store: now must be positive");
        const sk_param p[] = {SK_TEXT(token_hash), SK_NUM(now)};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_JOIN_USE, p, N(p), err, "join_token_use");
        if (n != 0)
                return n < 0 ? (int)n : 0;
        /* Nothing updated: unknown, or used before. */
        if ((r = join_token_get(s, token_hash, NULL, err)) < 0)
                return r;
        return sk_error_set(err, EALREADY, "join token was already used");
}

/* ---- Hosts. */

static int host_add(sk_store *s, int64_t site_id, const char *name, const char *labels_json,
                    int64_t now, int64_t *id, sk_error **err)
{
        int r = require(err, "name", name);
        if (r < 0)
                return r;
        _cleanup_query_ sk_query q = {0};
        const sk_param p[] = {SK_NUM(site_id), SK_TEXT(name),
                              SK_TEXT(labels_json ? labels_json : "{}"), SK_NUM(now)};
        r = write_call(sk_db_of(s), &q, SK_ST_HOST_ADD, p, N(p), err);
        if (r == SK_DB_UNIQUE)
                return sk_error_set(err, EEXIST, "site %lld already has a host named %s",
                                    (long long)site_id, name);
        if (r != 0)
                return write_error(&q, r, site_id, NULL, err, "host_add");
        if ((r = sk_db_next(&q, err)) < 0)
                return r;
        if (id)
                *id = r == 1 ? sk_db_num(&q, 0) : 0;
        return 0;
}

/* The id is the site's; where the database keeps an id sequence by hand (SQLite), it is put
 * back where it was, so the tower's own ids go on from below the site-given range. */
static int host_adopt(sk_store *s, int64_t site_id, int64_t id, const char *name,
                      const char *labels_json, int64_t now, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        int r = require(err, "name", name);
        _cleanup_tx_ sk_tx t = {0};
        if (r < 0 || (r = sk_tx_begin(&t, db, err)) < 0)
                return r;
        _cleanup_query_ sk_query q = {0};
        if ((r = sk_db_find(db, &q, SK_ST_HOST_SEQ_GET, NULL, 0, err)) < 0)
                return r;
        const sk_param seq[] = {SK_NUM(r == 1 ? sk_db_num(&q, 0) : 0)};
        const sk_param p[] = {SK_NUM(id), SK_NUM(site_id), SK_TEXT(name),
                              SK_TEXT(labels_json ? labels_json : "{}"), SK_NUM(now)};
        if ((r = sk_db_run(db, &q, SK_ST_HOST_ADOPT, p, N(p), err)) == SK_DB_UNIQUE)
                return sk_error_set(err, EEXIST, "host id %lld or name %s is taken on site %lld",
                                    (long long)id, name, (long long)site_id);
        if ((r = write_error(&q, r, site_id, NULL, err, "host_adopt")) < 0)
                return r;
        int64_t w = sk_db_write(db, SK_ST_HOST_SEQ_SET, seq, N(seq), err, "host_adopt");
        return w < 0 ? (int)w : sk_tx_commit(&t, err);
}

static int host_get(sk_store *s, int64_t host_id, sk_host_fn fn, void *user, sk_error **err)
{
        const sk_param p[] = {SK_NUM(host_id)};
        return WALK_ONE(sk_db_of(s), SK_ST_HOST_GET, p, call_host, fn, user, err,
                        sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id));
}

static int host_list(sk_store *s, int64_t site_id, sk_host_fn fn, void *user, sk_error **err)
{
        const sk_param p[] = {SK_NUM(site_id)};
        return walk(sk_db_of(s), SK_ST_HOST_LIST, p, N(p), call_host, (any_fn)fn, user, NULL, err);
}

/* status_json NULL: a heartbeat only, the last status stays. */
static int host_seen(sk_store *s, int64_t host_id, int64_t now, const char *status_json,
                     sk_error **err)
{
        const sk_param p[] = {SK_NUM(host_id), SK_NUM(now), SK_TEXT(status_json)};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_HOST_SEEN, p, N(p), err, "host_seen");
        if (n == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        return n < 0 ? (int)n : 0;
}

static int host_delete(sk_store *s, int64_t host_id, int64_t now, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        _cleanup_tx_ sk_tx t = {0};
        int r = sk_tx_begin(&t, db, err);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_NUM(host_id), SK_NUM(now)};
        int64_t n = sk_db_write(db, SK_ST_HOST_REMOVE_MARK, p, 2, err, "host_delete");
        if (n >= 0)
                n = sk_db_write(db, SK_ST_HOST_DELETE, p, 1, err, "host_delete");
        if (n == 0)
                return sk_error_set(err, ENOENT, "host %lld not found", (long long)host_id);
        if (n < 0 || (r = revision_bump(db, err)) < 0 || (r = sk_tx_commit(&t, err)) < 0)
                return n < 0 ? (int)n : r;
        return 0;
}

static int host_removed_list(sk_store *s, int64_t site_id, int64_t **ids, size_t *n, sk_error **err)
{
        *ids = NULL;
        *n = 0;
        _cleanup_query_ sk_query q = {0};
        const sk_param p[] = {SK_NUM(site_id)};
        int r = sk_db_run(sk_db_of(s), &q, SK_ST_HOST_REMOVED_LIST, p, N(p), err);
        _cleanup_free_ int64_t *out = NULL;
        size_t len = 0;
        while (r == 0 && (r = sk_db_next(&q, err)) == 1) {
                int64_t *more = realloc(out, (len + 1) * sizeof(*out));
                if (!more)
                        return sk_error_set(err, ENOMEM, "out of memory");
                out = more;
                out[len++] = sk_db_num(&q, 0);
                r = 0;
        }
        if (r != 0)
                return r > 0 ? sk_db_fail(&q, err, "host_removed_list") : r;
        *ids = take_ptr(&out);
        *n = len;
        return 0;
}

/* ---- Instances. */

static int instance_rows_check(const sk_instance_row *rows, size_t n, sk_error **err)
{
        if (n > 0 && !rows)
                return sk_error_set_path(err, EINVAL, "rows", "store: rows is required");
        for (size_t i = 0; i < n; i++) {
                if (!rows[i].instance || !rows[i].json)
                        return sk_error_set(err, EINVAL, "store: rows[%zu]: %s is required", i,
                                            rows[i].instance ? "json" : "instance");
        }
        return 0;
}

static int instance_insert(sk_store_db *db, int64_t site_id, int64_t host_id,
                           const sk_instance_row *row, int64_t now, sk_error **err)
{
        _cleanup_query_ sk_query q = {0};
        const sk_param p[] = {SK_NUM(site_id), SK_NUM(host_id), SK_TEXT(row->instance),
                              SK_TEXT(row->json), SK_NUM(row->updated ? row->updated : now)};
        int r = sk_db_run(db, &q, SK_ST_INST_INSERT, p, N(p), err);
        if (r == SK_DB_FOREIGN_KEY)
                return sk_error_set(err, ENOENT, "host %lld of site %lld not found",
                                    (long long)host_id, (long long)site_id);
        if (r == SK_DB_UNIQUE)
                return sk_error_set(err, EEXIST, "instance %s reported twice", row->instance);
        return r > 0 ? sk_db_fail(&q, err, "instances_replace") : r;
}

/* The rows' own site_id and host_id are ignored: the report is the host's. A row with
 * updated 0 gets the current time. */
static int instances_replace(sk_store *s, int64_t site_id, int64_t host_id,
                             const sk_instance_row *rows, size_t n, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        _cleanup_tx_ sk_tx t = {0};
        int r = instance_rows_check(rows, n, err);
        if (r < 0 || (r = sk_tx_begin(&t, db, err)) < 0)
                return r;
        const sk_param host[] = {SK_NUM(host_id)};
        int64_t w = sk_db_write(db, SK_ST_INST_DELETE_HOST, host, 1, err, "instances_replace");
        if (w < 0)
                return (int)w;
        int64_t now = now_ms();
        for (size_t i = 0; i < n; i++) {
                if ((r = instance_insert(db, site_id, host_id, &rows[i], now, err)) < 0)
                        return r;
        }
        return sk_tx_commit(&t, err);
}

static int instances_list(sk_store *s, int64_t site_id, const char *prefix, sk_instance_fn fn,
                          void *user, sk_error **err)
{
        if (!prefix)
                prefix = "";
        _cleanup_free_ char *end = NULL;
        int r = sk_store_prefix_end(prefix, &end, err);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_NUM(site_id), SK_TEXT(prefix), SK_TEXT(end)};
        return walk(sk_db_of(s), site_id ? SK_ST_INST_LIST_SITE : SK_ST_INST_LIST,
                    site_id ? p : p + 1, site_id ? 3 : 2, call_instance, (any_fn)fn, user, NULL,
                    err);
}

static int instances_delete_site(sk_store *s, int64_t site_id, sk_error **err)
{
        const sk_param p[] = {SK_NUM(site_id)};
        int64_t n =
            sk_db_write(sk_db_of(s), SK_ST_INST_DELETE_SITE, p, N(p), err, "instances_delete_site");
        return n < 0 ? (int)n : 0;
}

/* ---- Users: passwords, tokens, the audit trail, settings. */

static int password_set(sk_store *s, const char *tenant, const char *user, const char *hash,
                        sk_error **err)
{
        int r = REQUIRE(err, {"tenant", tenant}, {"user", user}, {"hash", hash});
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(tenant), SK_TEXT(user), SK_TEXT(hash), SK_NUM(now_ms())};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_PW_SET, p, N(p), err, "password_set");
        return n < 0 ? (int)n : 0;
}

/* The first column of the one row a statement finds, copied to *out; ENOENT with the
 * caller's message (set by missing when it returns). */
static int get_text(sk_store_db *db, enum sk_stmt id, const sk_param *p, size_t n, char **out,
                    sk_error **err)
{
        _cleanup_query_ sk_query q = {0};
        int r = sk_db_find(db, &q, id, p, n, err);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return dup_text(&q, 0, out, err);
}

static int password_get(sk_store *s, const char *tenant, const char *user, char **hash,
                        sk_error **err)
{
        int r = REQUIRE(err, {"tenant", tenant}, {"user", user});
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(tenant), SK_TEXT(user)};
        r = get_text(sk_db_of(s), SK_ST_PW_GET, p, N(p), hash, err);
        if (r == -ENOENT)
                return sk_error_set(err, ENOENT, "user %s/%s has no password", tenant, user);
        return r;
}

/* A login token (kind "login") or, with name, an API token. */
static int token_insert(sk_store *s, const char *token_hash, const char *tenant, const char *user,
                        const char *role, int64_t expires, const char *name, sk_error **err)
{
        int r = REQUIRE(err, {"token_hash", token_hash}, {"tenant", tenant}, {"user", user},
                        {"role", role});
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(token_hash), SK_TEXT(tenant),  SK_TEXT(user), SK_TEXT(role),
                              SK_NUM(expires),     SK_NUM(now_ms()), SK_TEXT(name)};
        enum sk_stmt id = name ? SK_ST_TOKEN_ADD_API : SK_ST_TOKEN_ADD;
        return write_checked(sk_db_of(s), id, p, name ? 7 : 6, 0, "token already exists", err,
                             "token_add");
}

static int token_add(sk_store *s, const char *token_hash, const char *tenant, const char *user,
                     const char *role, int64_t expires, sk_error **err)
{
        return token_insert(s, token_hash, tenant, user, role, expires, NULL, err);
}

static int api_token_add(sk_store *s, const char *token_hash, const char *tenant, const char *user,
                         const char *role, int64_t expires, const char *name, sk_error **err)
{
        return token_insert(s, token_hash, tenant, user, role, expires, name ? name : "", err);
}

static int token_get(sk_store *s, const char *token_hash, sk_token_fn fn, void *user,
                     sk_error **err)
{
        int r = require(err, "token_hash", token_hash);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(token_hash)};
        return WALK_ONE(sk_db_of(s), SK_ST_TOKEN_GET, p, call_token, fn, user, err,
                        sk_error_set(err, ENOENT, "token not found"));
}

static int token_revoke(sk_store *s, const char *token_hash, sk_error **err)
{
        int r = require(err, "token_hash", token_hash);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(token_hash)};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_TOKEN_REVOKE, p, N(p), err, "token_revoke");
        if (n == 0)
                return sk_error_set(err, ENOENT, "token not found");
        return n < 0 ? (int)n : 0;
}

static int token_list(sk_store *s, const char *tenant, const char *user, sk_token_fn fn,
                      void *user_data, sk_error **err)
{
        int r = require(err, "tenant", tenant);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(tenant), SK_TEXT(user)};
        return walk(sk_db_of(s), SK_ST_TOKEN_LIST, p, N(p), call_token, (any_fn)fn, user_data, NULL,
                    err);
}

static int event_add(sk_store *s, const sk_event_row *ev, sk_error **err)
{
        int r = REQUIRE(err, {"tenant", ev->tenant}, {"actor", ev->actor}, {"method", ev->method},
                        {"path", ev->path});
        if (r < 0)
                return r;
        const sk_param p[] = {SK_NUM(ev->time),
                              SK_TEXT(ev->tenant),
                              SK_TEXT(ev->actor),
                              SK_TEXT(ev->method),
                              SK_TEXT(ev->path),
                              SK_TEXT(ev->resource ? ev->resource : ""),
                              SK_TEXT(ev->address ? ev->address : ""),
                              SK_NUM(ev->status)};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_EVENT_ADD, p, N(p), err, "event_add");
        return n < 0 ? (int)n : 0;
}

static int event_list(sk_store *s, int64_t since, sk_event_fn fn, void *user, sk_error **err)
{
        const sk_param p[] = {SK_NUM(since)};
        return walk(sk_db_of(s), SK_ST_EVENT_LIST, p, N(p), call_event, (any_fn)fn, user, NULL,
                    err);
}

/* Retention: events older than `before`, then all but the newest `keep` (keep < 0: no
 * count limit). Returns how many went. */
static int event_prune(sk_store *s, int64_t before, int64_t keep, sk_error **err)
{
        const sk_param age[] = {SK_NUM(before)};
        int64_t aged =
            sk_db_write(sk_db_of(s), SK_ST_EVENT_PRUNE_AGE, age, N(age), err, "event_prune");
        if (aged < 0 || keep < 0)
                return (int)aged;
        const sk_param count[] = {SK_NUM(keep)};
        int64_t over =
            sk_db_write(sk_db_of(s), SK_ST_EVENT_PRUNE_COUNT, count, N(count), err, "event_prune");
        return over < 0 ? (int)over : (int)(aged + over);
}

/* The dialect's advisory lock; SQLite has none: one process owns the file and BEGIN
 * IMMEDIATE already serializes writers. */
static int lock(sk_store *s, int64_t key, sk_error **err)
{
        sk_store_db *db = sk_db_of(s);
        if (db->depth <= 0)
                return sk_error_set(err, EINVAL, "store: lock outside a transaction");
        const sk_param p[] = {SK_NUM(key)};
        int64_t n = sk_db_write(db, SK_ST_LOCK, p, N(p), err, "lock");
        return n < 0 ? (int)n : 0;
}

static int setting_get(sk_store *s, const char *key, char **value, sk_error **err)
{
        int r = require(err, "key", key);
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(key)};
        r = get_text(sk_db_of(s), SK_ST_SETTING_GET, p, N(p), value, err);
        if (r == -ENOENT)
                return sk_error_set(err, ENOENT, "setting %s not found", key);
        return r;
}

static int setting_add(sk_store *s, const char *key, const char *value, sk_error **err)
{
        int r = REQUIRE(err, {"key", key}, {"value", value});
        if (r < 0)
                return r;
        const sk_param p[] = {SK_TEXT(key), SK_TEXT(value)};
        int64_t n = sk_db_write(sk_db_of(s), SK_ST_SETTING_ADD, p, N(p), err, "setting_add");
        if (n == 0)
                return sk_error_set(err, EEXIST, "setting %s is already set", key);
        return n < 0 ? (int)n : 0;
}

static void store_close(sk_store *s)
{
        sk_db_close(sk_db_of(s));
}

const sk_store_ops sk_store_db_ops = {
    .abi = SK_STORE_ABI,
    .close = store_close,
    .begin = sk_db_begin,
    .commit = sk_db_commit,
    .rollback = sk_db_rollback,
    .resource_put = resource_put,
    .resource_get = resource_get,
    .resource_get_by_id = resource_get_by_id,
    .resource_list = resource_list,
    .resource_delete = resource_delete,
    .revision = revision,
    .site_sync_get = site_sync_get,
    .site_sync_set = site_sync_set,
    .join_token_add = join_token_add,
    .join_token_get = join_token_get,
    .join_token_use = join_token_use,
    .host_add = host_add,
    .host_adopt = host_adopt,
    .host_get = host_get,
    .host_list = host_list,
    .host_seen = host_seen,
    .host_delete = host_delete,
    .host_removed_list = host_removed_list,
    .instances_replace = instances_replace,
    .instances_list = instances_list,
    .instances_delete_site = instances_delete_site,
    .password_set = password_set,
    .password_get = password_get,
    .token_add = token_add,
    .token_get = token_get,
    .token_revoke = token_revoke,
    .api_token_add = api_token_add,
    .token_list = token_list,
    .event_add = event_add,
    .event_list = event_list,
    .event_prune = event_prune,
    .lock = lock,
    .setting_get = setting_get,
    .setting_add = setting_add,
};
