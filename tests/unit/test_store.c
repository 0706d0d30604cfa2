/* The store interface (tower/store.h). The tests in the first part use only sk_store_ops on
 * an opened store, so every backend runs the same ones: a backend adds a setup that opens
 * it and one STORE_TESTS(setup, teardown) line. The SQLite part checks what only that
 * backend has (file, schema version, WAL); the PostgreSQL part runs against a private
 * server (tests/lib/postgres-service.sh) and checks migrations, NOTIFY, reconnects and two
 * stores sharing one database (tower replicas). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "tower/store.h"

typedef struct fixture {
        sk_store *s;
        sk_store *s2; /* a second store on the same data, for tests that need one */
        PGconn *conn; /* a raw connection of a PostgreSQL test, closed by the teardown */
        char dir[64];
        char path[128];
} fixture;

static sk_store *store_of(void **state)
{
        return ((fixture *)*state)->s;
}

/* Collects "name@version" (resources), names (hosts) or instances, comma separated. */
typedef struct collect {
        char buf[1024];
        int n;
        int stop_at; /* stop (returning 42) once this many were seen; 0 never */
        int64_t last_id;
} collect;

static void collect_add(collect *c, const char *item)
{
        size_t len = strlen(c->buf);
        snprintf(c->buf + len, sizeof(c->buf) - len, "%s%s", len ? "," : "", item);
        c->n++;
}

static int collect_resource(const sk_resource_row *row, void *user)
{
        collect *c = user;
        char item[256];
        if (*row->version)
                snprintf(item, sizeof(item), "%s/%s@%s", row->tenant, row->name, row->version);
        else
                snprintf(item, sizeof(item), "%s/%s", row->tenant, row->name);
        collect_add(c, item);
        c->last_id = row->id;
        return c->stop_at && c->n >= c->stop_at ? 42 : 0;
}

static int collect_host(const sk_host_row *row, void *user)
{
        collect_add(user, row->name);
        return 0;
}

static int collect_instance(const sk_instance_row *row, void *user)
{
        collect_add(user, row->instance);
        return 0;
}

/* Copies the one row a get returns. */
typedef struct resource_copy {
        int64_t id, created, updated;
        char tenant[64], kind[64], name[64], version[64], json[256];
} resource_copy;

static int copy_resource(const sk_resource_row *row, void *user)
{
        resource_copy *c = user;
        c->id = row->id;
        c->created = row->created;
        c->updated = row->updated;
        snprintf(c->tenant, sizeof(c->tenant), "%s", row->tenant);
        snprintf(c->kind, sizeof(c->kind), "%s", row->kind);
        snprintf(c->name, sizeof(c->name), "%s", row->name);
        snprintf(c->version, sizeof(c->version), "%s", row->version);
        snprintf(c->json, sizeof(c->json), "%s", row->json);
        return 0;
}

typedef struct host_copy {
        int64_t id, site_id, joined, last_seen;
        char name[64], labels[256], status[256];
} host_copy;

static int copy_host(const sk_host_row *row, void *user)
{
        host_copy *c = user;
        c->id = row->id;
        c->site_id = row->site_id;
        c->joined = row->joined;
        c->last_seen = row->last_seen;
        snprintf(c->name, sizeof(c->name), "%s", row->name);
        snprintf(c->labels, sizeof(c->labels), "%s", row->labels_json);
        snprintf(c->status, sizeof(c->status), "%s", row->status_json);
        return 0;
}

typedef struct token_copy {
        char tenant[64], user[64], role[64];
        int64_t expires;
        bool revoked;
} token_copy;

static int copy_token(const sk_token_row *row, void *user)
{
        token_copy *c = user;
        snprintf(c->tenant, sizeof(c->tenant), "%s", row->tenant);
        snprintf(c->user, sizeof(c->user), "%s", row->user);
        snprintf(c->role, sizeof(c->role), "%s", row->role);
        c->expires = row->expires;
        c->revoked = row->revoked;
        return 0;
}

static int64_t revision(sk_store *s)
{
        int64_t rev = -1;
        assert_int_equal(s->ops->revision(s, &rev, NULL), 0);
        return rev;
}

static int64_t put(sk_store *s, const char *tenant, const char *kind, const char *name,
                   const char *version, const char *json, int expect)
{
        _cleanup_error_ sk_error *err = NULL;
        int64_t id = 0;
        int r = s->ops->resource_put(s, tenant, kind, name, version, json, &id, &err);
        if (r != expect)
                fail_msg("put %s %s: got %d (%s), want %d", kind, name, r, sk_error_msg(err, r),
                         expect);
        return id;
}

static int64_t add_site(sk_store *s, const char *name)
{
        return put(s, "default", "site", name, "", "{\"labels\":{}}", SK_PUT_CREATED);
}

static bool exists(sk_store *s, const char *tenant, const char *kind, const char *name,
                   const char *version)
{
        int r = s->ops->resource_get(s, tenant, kind, name, version, NULL, NULL, NULL);
        if (r != 0 && r != -ENOENT)
                fail_msg("resource_get %s %s: %d", kind, name, r);
        return r == 0;
}

/* ---- backend-neutral tests ---- */

static void test_put_get(void **state)
{
        sk_store *s = store_of(state);
        assert_int_equal(s->ops->abi, SK_STORE_ABI);
        int64_t id = put(s, "default", "application", "pos", "1.0.0", "{\"a\":1}", SK_PUT_CREATED);
        assert_true(id > 0);
        assert_int_equal(
            put(s, "default", "application", "pos", "1.0.0", "{\"a\":1}", SK_PUT_UNCHANGED), id);

        resource_copy c = {0};
        assert_int_equal(s->ops->resource_get(s, "default", "application", "pos", "1.0.0",
                                              copy_resource, &c, NULL),
                         0);
        assert_int_equal(c.id, id);
        assert_string_equal(c.tenant, "default");
        assert_string_equal(c.kind, "application");
        assert_string_equal(c.name, "pos");
        assert_string_equal(c.version, "1.0.0");
        assert_string_equal(c.json, "{\"a\":1}");
        assert_true(c.created > 1600000000000LL);
        assert_int_equal(c.updated, c.created);

        /* A different document (even only whitespace) is an update of the same row. */
        assert_int_equal(
            put(s, "default", "application", "pos", "1.0.0", "{\"a\": 1}", SK_PUT_UPDATED), id);
        resource_copy d = {0};
        assert_int_equal(s->ops->resource_get_by_id(s, id, copy_resource, &d, NULL), 0);
        assert_string_equal(d.json, "{\"a\": 1}");
        assert_int_equal(d.created, c.created);
        assert_true(d.updated >= c.updated);

        /* Unversioned kinds: NULL and "" are the same version. */
        int64_t t = put(s, "default", "tenant", "acme", NULL, "{}", SK_PUT_CREATED);
        assert_int_equal(put(s, "default", "tenant", "acme", "", "{}", SK_PUT_UNCHANGED), t);
        /* The same name in another tenant or kind is another row. */
        assert_int_not_equal(put(s, "other", "application", "pos", "1.0.0", "{}", SK_PUT_CREATED),
                             id);
        assert_int_not_equal(put(s, "default", "deployment", "pos", "", "{}", SK_PUT_CREATED), id);

        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(
            s->ops->resource_get(s, "default", "application", "nope", NULL, NULL, NULL, &err),
            -ENOENT);
        assert_string_equal(err->msg, "application nope not found");
        sk_error_free(&err);
        assert_int_equal(
            s->ops->resource_get(s, "default", "application", "pos", "9.9.9", NULL, NULL, &err),
            -ENOENT);
        assert_string_equal(err->msg, "application pos version 9.9.9 not found");
        sk_error_free(&err);
        assert_int_equal(s->ops->resource_get_by_id(s, id + 1000, NULL, NULL, &err), -ENOENT);
        assert_non_null(strstr(err->msg, "not found"));
        sk_error_free(&err);

        assert_int_equal(
            s->ops->resource_put(s, "default", "application", NULL, "", "{}", NULL, &err), -EINVAL);
        assert_string_equal(err->path, "name");
        sk_error_free(&err);
        assert_int_equal(
            s->ops->resource_put(s, "default", "application", "x", "", NULL, NULL, &err), -EINVAL);
        assert_string_equal(err->path, "json");
}

static void test_revision(sk_store *s, int64_t *rev, int64_t delta)
{
        int64_t now = revision(s);
        assert_int_equal(now, *rev + delta);
        *rev = now;
}

static void test_revision_bumps(void **state)
{
        sk_store *s = store_of(state);
        int64_t rev = revision(s);
        put(s, "default", "site", "a", "", "{}", SK_PUT_CREATED);
        test_revision(s, &rev, 1);
        put(s, "default", "site", "a", "", "{}", SK_PUT_UNCHANGED);
        test_revision(s, &rev, 0);
        put(s, "default", "site", "a", "", "{\"x\":1}", SK_PUT_UPDATED);
        test_revision(s, &rev, 1);
        assert_int_equal(s->ops->resource_delete(s, "default", "site", "nope", NULL, NULL),
                         -ENOENT);
        test_revision(s, &rev, 0);
        assert_int_equal(s->ops->resource_delete(s, "default", "site", "a", NULL, NULL), 1);
        test_revision(s, &rev, 1);
        /* Several writes in one transaction: each one counts. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "b", "", "{}", SK_PUT_CREATED);
        put(s, "default", "site", "c", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        test_revision(s, &rev, 2);
}

static void test_versions(void **state)
{
        sk_store *s = store_of(state);
        put(s, "default", "application", "pos", "2.0.0", "{\"v\":2}", SK_PUT_CREATED);
        put(s, "default", "application", "pos", "1.0.0", "{\"v\":1}", SK_PUT_CREATED);
        put(s, "default", "application", "pos", "1.1.0", "{\"v\":11}", SK_PUT_CREATED);
        put(s, "default", "application", "other", "1.0.0", "{}", SK_PUT_CREATED);
        put(s, "acme", "application", "pos", "3.0.0", "{}", SK_PUT_CREATED);

        collect c = {0};
        assert_int_equal(s->ops->resource_get(s, "default", "application", "pos", NULL,
                                              collect_resource, &c, NULL),
                         0);
        assert_string_equal(c.buf, "default/pos@1.0.0,default/pos@1.1.0,default/pos@2.0.0");

        resource_copy one = {0};
        assert_int_equal(s->ops->resource_get(s, "default", "application", "pos", "1.1.0",
                                              copy_resource, &one, NULL),
                         0);
        assert_string_equal(one.json, "{\"v\":11}");

        /* The callback stops the walk, and its value comes back. */
        collect stop = {.stop_at = 2};
        assert_int_equal(s->ops->resource_get(s, "default", "application", "pos", NULL,
                                              collect_resource, &stop, NULL),
                         42);
        assert_int_equal(stop.n, 2);

        assert_int_equal(s->ops->resource_delete(s, "default", "application", "pos", "1.0.0", NULL),
                         1);
        assert_false(exists(s, "default", "application", "pos", "1.0.0"));
        assert_true(exists(s, "default", "application", "pos", "2.0.0"));
        assert_int_equal(s->ops->resource_delete(s, "default", "application", "pos", NULL, NULL),
                         2);
        assert_false(exists(s, "default", "application", "pos", NULL));
        assert_true(exists(s, "default", "application", "other", "1.0.0"));
        assert_true(exists(s, "acme", "application", "pos", "3.0.0"));

        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->resource_delete(s, "default", "application", "pos", NULL, &err),
                         -ENOENT);
        assert_string_equal(err->msg, "application pos not found");
}

static void test_list(void **state)
{
        sk_store *s = store_of(state);
        put(s, "zeta", "deployment", "b", "", "{}", SK_PUT_CREATED);
        put(s, "acme", "deployment", "z", "", "{}", SK_PUT_CREATED);
        put(s, "acme", "deployment", "a", "", "{}", SK_PUT_CREATED);
        put(s, "acme", "application", "a", "1", "{}", SK_PUT_CREATED);
        put(s, "acme", "application", "a", "0", "{}", SK_PUT_CREATED);

        collect all = {0};
        assert_int_equal(s->ops->resource_list(s, NULL, "deployment", collect_resource, &all, NULL),
                         0);
        assert_string_equal(all.buf, "acme/a,acme/z,zeta/b");

        collect acme = {0};
        assert_int_equal(
            s->ops->resource_list(s, "acme", "application", collect_resource, &acme, NULL), 0);
        assert_string_equal(acme.buf, "acme/a@0,acme/a@1");

        collect none = {0};
        assert_int_equal(
            s->ops->resource_list(s, "nobody", "deployment", collect_resource, &none, NULL), 0);
        assert_int_equal(none.n, 0);

        collect stop = {.stop_at = 1};
        assert_int_equal(
            s->ops->resource_list(s, NULL, "deployment", collect_resource, &stop, NULL), 42);
        assert_string_equal(stop.buf, "acme/a");
}

/* A callback that calls the store again (the same query) while the outer walk runs. */
typedef struct nested {
        sk_store *s;
        collect inner;
} nested;

static int nested_get(const sk_resource_row *row, void *user)
{
        nested *n = user;
        return n->s->ops->resource_get(n->s, row->tenant, "application", row->name, NULL,
                                       collect_resource, &n->inner, NULL);
}

static void test_reentrant(void **state)
{
        sk_store *s = store_of(state);
        put(s, "default", "deployment", "d1", "", "{}", SK_PUT_CREATED);
        put(s, "default", "deployment", "d2", "", "{}", SK_PUT_CREATED);
        put(s, "default", "application", "d1", "1", "{}", SK_PUT_CREATED);
        put(s, "default", "application", "d2", "1", "{}", SK_PUT_CREATED);
        put(s, "default", "application", "d2", "2", "{}", SK_PUT_CREATED);
        nested n = {.s = s};
        assert_int_equal(s->ops->resource_list(s, "default", "deployment", nested_get, &n, NULL),
                         0);
        assert_string_equal(n.inner.buf, "default/d1@1,default/d2@1,default/d2@2");
}

static void test_transactions(void **state)
{
        sk_store *s = store_of(state);
        int64_t rev = revision(s);

        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "gone", "", "{}", SK_PUT_CREATED);
        assert_true(exists(s, "default", "site", "gone", ""));
        s->ops->rollback(s);
        assert_false(exists(s, "default", "site", "gone", ""));
        assert_int_equal(revision(s), rev);

        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "kept", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        assert_true(exists(s, "default", "site", "kept", ""));

        /* Nested: the inner commit does not write; the outer rollback discards both. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "outer", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "inner", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        s->ops->rollback(s);
        assert_false(exists(s, "default", "site", "outer", ""));
        assert_false(exists(s, "default", "site", "inner", ""));

        /* An inner rollback undoes only its part. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "outer", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "inner", "", "{}", SK_PUT_CREATED);
        s->ops->rollback(s);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        assert_true(exists(s, "default", "site", "outer", ""));
        assert_false(exists(s, "default", "site", "inner", ""));

        /* A failing call inside a transaction leaves the transaction usable. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "t1", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->host_add(s, 999999, "h", "{}", 1, NULL, NULL), -ENOENT);
        put(s, "default", "site", "t2", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        assert_true(exists(s, "default", "site", "t1", ""));
        assert_true(exists(s, "default", "site", "t2", ""));

        _cleanup_error_ sk_error *err = NULL;
        assert_true(s->ops->commit(s, &err) < 0);
        assert_non_null(err);
        s->ops->rollback(s); /* without begin: nothing to do */
}

static void test_site_sync(void **state)
{
        sk_store *s = store_of(state);
        int64_t site = add_site(s, "store-001");
        int64_t gen = -1;
        _cleanup_free_ char *hash = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->site_sync_get(s, site, &gen, &hash, &err), -ENOENT);
        assert_non_null(strstr(err->msg, "not found"));
        sk_error_free(&err);

        assert_int_equal(s->ops->site_sync_set(s, site, 1, "abc", NULL), 0);
        assert_int_equal(s->ops->site_sync_get(s, site, &gen, &hash, NULL), 0);
        assert_int_equal(gen, 1);
        assert_string_equal(hash, "abc");
        free(take_ptr(&hash));

        assert_int_equal(s->ops->site_sync_set(s, site, 7, "def", NULL), 0);
        assert_int_equal(s->ops->site_sync_get(s, site, &gen, &hash, NULL), 0);
        assert_int_equal(gen, 7);
        assert_string_equal(hash, "def");

        assert_int_equal(s->ops->site_sync_set(s, site + 1000, 1, "x", &err), -ENOENT);
        assert_non_null(strstr(err->msg, "site"));
}

static void test_join_tokens(void **state)
{
        sk_store *s = store_of(state);
        int64_t site = add_site(s, "store-001");
        assert_int_equal(s->ops->join_token_add(s, "h1", site, 5000, NULL), 0);

        sk_join_token jt = {0};
        assert_int_equal(s->ops->join_token_get(s, "h1", &jt, NULL), 0);
        assert_int_equal(jt.site_id, site);
        assert_int_equal(jt.expires, 5000);
        assert_int_equal(jt.used, 0);

        assert_int_equal(s->ops->join_token_use(s, "h1", 1234, NULL), 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->join_token_use(s, "h1", 1300, &err), -EALREADY);
        assert_non_null(err);
        sk_error_free(&err);
        assert_int_equal(s->ops->join_token_get(s, "h1", &jt, NULL), 0);
        assert_int_equal(jt.used, 1234);

        assert_int_equal(s->ops->join_token_use(s, "unknown", 1, &err), -ENOENT);
        sk_error_free(&err);
        assert_int_equal(s->ops->join_token_get(s, "unknown", &jt, &err), -ENOENT);
        sk_error_free(&err);
        assert_int_equal(s->ops->join_token_add(s, "h1", site, 9000, &err), -EEXIST);
        sk_error_free(&err);
        assert_int_equal(s->ops->join_token_add(s, "h2", site + 1000, 9000, &err), -ENOENT);
}

static void test_hosts(void **state)
{
        sk_store *s = store_of(state);
        int64_t a = add_site(s, "a"), b = add_site(s, "b");
        int64_t h1 = 0, h2 = 0, h3 = 0;
        assert_int_equal(s->ops->host_add(s, a, "h2", "{\"role\":\"till\"}", 100, &h2, NULL), 0);
        assert_int_equal(s->ops->host_add(s, a, "h1", NULL, 200, &h1, NULL), 0);
        assert_int_equal(s->ops->host_add(s, b, "h1", "{}", 300, &h3, NULL), 0);
        assert_true(h1 > 0 && h2 > 0 && h3 > 0 && h1 != h2 && h1 != h3);

        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->host_add(s, a, "h1", "{}", 400, NULL, &err), -EEXIST);
        assert_non_null(strstr(err->msg, "h1"));
        sk_error_free(&err);
        assert_int_equal(s->ops->host_add(s, b + 1000, "h9", "{}", 400, NULL, &err), -ENOENT);
        sk_error_free(&err);

        host_copy c = {0};
        assert_int_equal(s->ops->host_get(s, h2, copy_host, &c, NULL), 0);
        assert_int_equal(c.id, h2);
        assert_int_equal(c.site_id, a);
        assert_string_equal(c.name, "h2");
        assert_string_equal(c.labels, "{\"role\":\"till\"}");
        assert_string_equal(c.status, "{}");
        assert_int_equal(c.joined, 100);
        assert_int_equal(c.last_seen, 100);
        assert_int_equal(s->ops->host_get(s, h1, copy_host, &c, NULL), 0);
        assert_string_equal(c.labels, "{}");

        collect list = {0};
        assert_int_equal(s->ops->host_list(s, a, collect_host, &list, NULL), 0);
        assert_string_equal(list.buf, "h1,h2");

        assert_int_equal(s->ops->host_seen(s, h2, 500, "{\"cpu\":1}", NULL), 0);
        assert_int_equal(s->ops->host_get(s, h2, copy_host, &c, NULL), 0);
        assert_int_equal(c.last_seen, 500);
        assert_int_equal(c.joined, 100);
        assert_string_equal(c.status, "{\"cpu\":1}");
        /* A heartbeat without a status keeps the last one. */
        assert_int_equal(s->ops->host_seen(s, h2, 600, NULL, NULL), 0);
        assert_int_equal(s->ops->host_get(s, h2, copy_host, &c, NULL), 0);
        assert_int_equal(c.last_seen, 600);
        assert_string_equal(c.status, "{\"cpu\":1}");

        assert_int_equal(s->ops->host_seen(s, h3 + 1000, 1, "{}", &err), -ENOENT);
        sk_error_free(&err);
        assert_int_equal(s->ops->host_get(s, h3 + 1000, copy_host, &c, &err), -ENOENT);
}

/* A removed host is forgotten with its instance rows, its id remembered for its site. */
static void test_host_delete(void **state)
{
        sk_store *s = store_of(state);
        int64_t a = add_site(s, "a"), b = add_site(s, "b");
        int64_t h1 = 0, h2 = 0, h3 = 0, hb = 0;
        assert_int_equal(s->ops->host_add(s, a, "h1", "{}", 1, &h1, NULL), 0);
        assert_int_equal(s->ops->host_add(s, a, "h2", "{}", 1, &h2, NULL), 0);
        assert_int_equal(s->ops->host_add(s, a, "h3", "{}", 1, &h3, NULL), 0);
        assert_int_equal(s->ops->host_add(s, b, "h1", "{}", 1, &hb, NULL), 0);
        sk_instance_row rows[] = {{.instance = "default/pos/api/0", .json = "{}"}};
        assert_int_equal(s->ops->instances_replace(s, a, h2, rows, 1, NULL), 0);
        assert_int_equal(s->ops->instances_replace(s, a, h1, rows, 1, NULL), 0);

        int64_t *ids = NULL;
        size_t n = 99;
        assert_int_equal(s->ops->host_removed_list(s, a, &ids, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_null(ids);

        int64_t rev = revision(s);
        assert_int_equal(s->ops->host_delete(s, h3, 10, NULL), 0);
        assert_int_equal(s->ops->host_delete(s, h2, 11, NULL), 0);
        assert_true(revision(s) > rev);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->host_delete(s, h2, 12, &err), -ENOENT);
        sk_error_free(&err);
        host_copy c = {0};
        assert_int_equal(s->ops->host_get(s, h2, copy_host, &c, &err), -ENOENT);
        sk_error_free(&err);

        collect left = {0};
        assert_int_equal(s->ops->host_list(s, a, collect_host, &left, NULL), 0);
        assert_string_equal(left.buf, "h1");
        collect insts = {0};
        assert_int_equal(s->ops->instances_list(s, a, NULL, collect_instance, &insts, NULL), 0);
        assert_int_equal(insts.n, 1); /* h1's row stays, h2's went with it */

        assert_int_equal(s->ops->host_removed_list(s, a, &ids, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_true(ids[0] < ids[1]);
        assert_true((ids[0] == h2 && ids[1] == h3) || (ids[0] == h3 && ids[1] == h2));
        free(ids);
        assert_int_equal(s->ops->host_removed_list(s, b, &ids, &n, NULL), 0);
        assert_int_equal(n, 0);
        free(ids);

        /* The name is free again and the new host gets a new id. */
        int64_t again = 0;
        assert_int_equal(s->ops->host_add(s, a, "h2", "{}", 20, &again, NULL), 0);
        assert_true(again != h2);
}

static void test_instances(void **state)
{
        sk_store *s = store_of(state);
        int64_t a = add_site(s, "a"), b = add_site(s, "b");
        int64_t h1 = 0, h2 = 0, hb = 0;
        assert_int_equal(s->ops->host_add(s, a, "h1", "{}", 1, &h1, NULL), 0);
        assert_int_equal(s->ops->host_add(s, a, "h2", "{}", 1, &h2, NULL), 0);
        assert_int_equal(s->ops->host_add(s, b, "h1", "{}", 1, &hb, NULL), 0);

        sk_instance_row r1[] = {
            {.instance = "default/pos/api/1", .json = "{\"state\":\"running\"}"},
            {.instance = "default/pos/api/0", .json = "{}", .updated = 77},
            {.instance = "acme/cam/rec/0", .json = "{}"},
        };
        sk_instance_row r2[] = {{.instance = "default/pos/web/0", .json = "{}"}};
        sk_instance_row rb[] = {{.instance = "default/pos/api/0", .json = "{}"}};
        assert_int_equal(s->ops->instances_replace(s, a, h1, r1, 3, NULL), 0);
        assert_int_equal(s->ops->instances_replace(s, a, h2, r2, 1, NULL), 0);
        assert_int_equal(s->ops->instances_replace(s, b, hb, rb, 1, NULL), 0);

        collect c = {0};
        assert_int_equal(s->ops->instances_list(s, a, NULL, collect_instance, &c, NULL), 0);
        assert_string_equal(c.buf,
                            "acme/cam/rec/0,default/pos/api/0,default/pos/api/1,default/pos/web/0");
        collect p = {0};
        assert_int_equal(
            s->ops->instances_list(s, a, "default/pos/api/", collect_instance, &p, NULL), 0);
        assert_string_equal(p.buf, "default/pos/api/0,default/pos/api/1");
        collect all = {0};
        assert_int_equal(
            s->ops->instances_list(s, 0, "default/pos/api/0", collect_instance, &all, NULL), 0);
        assert_string_equal(all.buf, "default/pos/api/0,default/pos/api/0");
        collect none = {0};
        assert_int_equal(
            s->ops->instances_list(s, a, "default/pos/apj", collect_instance, &none, NULL), 0);
        assert_int_equal(none.n, 0);

        /* A new report replaces the host's rows, and only that host's. */
        sk_instance_row r1b[] = {{.instance = "default/pos/api/9", .json = "{}"}};
        assert_int_equal(s->ops->instances_replace(s, a, h1, r1b, 1, NULL), 0);
        collect after = {0};
        assert_int_equal(s->ops->instances_list(s, a, NULL, collect_instance, &after, NULL), 0);
        assert_string_equal(after.buf, "default/pos/api/9,default/pos/web/0");
        assert_int_equal(s->ops->instances_replace(s, a, h1, NULL, 0, NULL), 0);
        collect empty = {0};
        assert_int_equal(s->ops->instances_list(s, a, NULL, collect_instance, &empty, NULL), 0);
        assert_string_equal(empty.buf, "default/pos/web/0");

        /* A host of another site, or a duplicate instance, fails and changes nothing. */
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->instances_replace(s, a, hb, r2, 1, &err), -ENOENT);
        sk_error_free(&err);
        sk_instance_row dup[] = {{.instance = "x", .json = "{}"}, {.instance = "x", .json = "{}"}};
        assert_int_equal(s->ops->instances_replace(s, a, h2, dup, 2, &err), -EEXIST);
        sk_error_free(&err);
        collect same = {0};
        assert_int_equal(s->ops->instances_list(s, a, NULL, collect_instance, &same, NULL), 0);
        assert_string_equal(same.buf, "default/pos/web/0");

        assert_int_equal(s->ops->instances_delete_site(s, a, NULL), 0);
        collect gone = {0};
        assert_int_equal(s->ops->instances_list(s, 0, NULL, collect_instance, &gone, NULL), 0);
        assert_string_equal(gone.buf, "default/pos/api/0");
}

/* A prefix is a range on both backends: exact for names of several bytes a character, for
 * a last character that has no successor (U+10FFFF), and no character is a wildcard. */
static void test_instance_prefixes(void **state)
{
        sk_store *s = store_of(state);
        int64_t a = add_site(s, "a"), h = 0;
        assert_int_equal(s->ops->host_add(s, a, "h1", "{}", 1, &h, NULL), 0);
        static const char *const names[] = {"t/caf\xc3\xa9/0",
                                            "t/caf\xc3\xa9s/0",
                                            "t/caf\xc3\xaa/0",
                                            "t/cafe/0",
                                            "t/\xf4\x8f\xbf\xbf",
                                            "t/\xf4\x8f\xbf\xbfx",
                                            "t0",
                                            "t/a_b/0",
                                            "t/axb/0",
                                            "t/a%/0",
                                            "t/ab%/0"};
        sk_instance_row rows[SK_ARRAY_SIZE(names)];
        for (size_t i = 0; i < SK_ARRAY_SIZE(names); i++)
                rows[i] = (sk_instance_row){.instance = names[i], .json = "{}"};
        assert_int_equal(s->ops->instances_replace(s, a, h, rows, SK_ARRAY_SIZE(rows), NULL), 0);
        static const struct {
                const char *prefix, *want;
        } cases[] = {
            {"t/caf\xc3\xa9", "t/caf\xc3\xa9/0,t/caf\xc3\xa9s/0"},
            {"t/\xf4\x8f\xbf\xbf", "t/\xf4\x8f\xbf\xbf,t/\xf4\x8f\xbf\xbfx"},
            {"t/a_", "t/a_b/0"},
            {"t/a%", "t/a%/0"},
            {"t0", "t0"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                collect c = {0};
                assert_int_equal(
                    s->ops->instances_list(s, a, cases[i].prefix, collect_instance, &c, NULL), 0);
                assert_string_equal(c.buf, cases[i].want);
                collect all = {0};
                assert_int_equal(
                    s->ops->instances_list(s, 0, cases[i].prefix, collect_instance, &all, NULL), 0);
                assert_string_equal(all.buf, cases[i].want);
        }
}

static void test_site_delete_cascades(void **state)
{
        sk_store *s = store_of(state);
        int64_t a = add_site(s, "a"), b = add_site(s, "b");
        int64_t ha = 0, hb = 0;
        assert_int_equal(s->ops->host_add(s, a, "h1", "{}", 1, &ha, NULL), 0);
        assert_int_equal(s->ops->host_add(s, b, "h1", "{}", 1, &hb, NULL), 0);
        sk_instance_row row = {.instance = "default/pos/api/0", .json = "{}"};
        assert_int_equal(s->ops->instances_replace(s, a, ha, &row, 1, NULL), 0);
        assert_int_equal(s->ops->instances_replace(s, b, hb, &row, 1, NULL), 0);
        assert_int_equal(s->ops->site_sync_set(s, a, 3, "ha", NULL), 0);
        assert_int_equal(s->ops->site_sync_set(s, b, 4, "hb", NULL), 0);
        assert_int_equal(s->ops->join_token_add(s, "ta", a, 100, NULL), 0);
        assert_int_equal(s->ops->join_token_add(s, "tb", b, 100, NULL), 0);

        assert_int_equal(s->ops->resource_delete(s, "default", "site", "a", NULL, NULL), 1);

        collect hosts = {0};
        assert_int_equal(s->ops->host_list(s, a, collect_host, &hosts, NULL), 0);
        assert_int_equal(hosts.n, 0);
        assert_int_equal(s->ops->host_get(s, ha, NULL, NULL, NULL), -ENOENT);
        int64_t gen;
        assert_int_equal(s->ops->site_sync_get(s, a, &gen, NULL, NULL), -ENOENT);
        assert_int_equal(s->ops->join_token_get(s, "ta", NULL, NULL), -ENOENT);
        collect inst = {0};
        assert_int_equal(s->ops->instances_list(s, 0, NULL, collect_instance, &inst, NULL), 0);
        assert_int_equal(inst.n, 1);

        /* The other site keeps everything. */
        assert_int_equal(s->ops->host_get(s, hb, NULL, NULL, NULL), 0);
        assert_int_equal(s->ops->site_sync_get(s, b, &gen, NULL, NULL), 0);
        assert_int_equal(gen, 4);
        assert_int_equal(s->ops->join_token_get(s, "tb", NULL, NULL), 0);
        collect instb = {0};
        assert_int_equal(s->ops->instances_list(s, b, NULL, collect_instance, &instb, NULL), 0);
        assert_int_equal(instb.n, 1);
}

static void test_passwords(void **state)
{
        sk_store *s = store_of(state);
        char *hash = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->password_get(s, "acme", "alice", &hash, &err), -ENOENT);
        assert_non_null(strstr(err->msg, "acme/alice"));
        sk_error_free(&err);

        assert_int_equal(s->ops->password_set(s, "acme", "alice", "$argon2id$one", NULL), 0);
        assert_int_equal(s->ops->password_set(s, "other", "alice", "$argon2id$other", NULL), 0);
        assert_int_equal(s->ops->password_get(s, "acme", "alice", &hash, NULL), 0);
        assert_string_equal(hash, "$argon2id$one");
        free(hash);
        assert_int_equal(s->ops->password_set(s, "acme", "alice", "$argon2id$two", NULL), 0);
        assert_int_equal(s->ops->password_get(s, "acme", "alice", &hash, NULL), 0);
        assert_string_equal(hash, "$argon2id$two");
        free(hash);

        /* Deleting the user resource takes its password and tokens along. */
        put(s, "acme", "user", "alice", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->token_add(s, "tok", "acme", "alice", "admin", 0, NULL), 0);
        assert_int_equal(s->ops->resource_delete(s, "acme", "user", "alice", NULL, NULL), 1);
        assert_int_equal(s->ops->password_get(s, "acme", "alice", &hash, NULL), -ENOENT);
        assert_int_equal(s->ops->token_get(s, "tok", NULL, NULL, NULL), -ENOENT);
        assert_int_equal(s->ops->password_get(s, "other", "alice", &hash, NULL), 0);
        assert_string_equal(hash, "$argon2id$other");
        free(hash);
}

static void test_tokens(void **state)
{
        sk_store *s = store_of(state);
        assert_int_equal(s->ops->token_add(s, "t1", "acme", "alice", "developer", 9999, NULL), 0);
        assert_int_equal(s->ops->token_add(s, "t2", "acme", "bob", "viewer", 0, NULL), 0);

        token_copy c = {0};
        assert_int_equal(s->ops->token_get(s, "t1", copy_token, &c, NULL), 0);
        assert_string_equal(c.tenant, "acme");
        assert_string_equal(c.user, "alice");
        assert_string_equal(c.role, "developer");
        assert_int_equal(c.expires, 9999);
        assert_false(c.revoked);

        assert_int_equal(s->ops->token_revoke(s, "t1", NULL), 0);
        assert_int_equal(s->ops->token_get(s, "t1", copy_token, &c, NULL), 0);
        assert_true(c.revoked);
        assert_int_equal(s->ops->token_revoke(s, "t1", NULL), 0);
        assert_int_equal(s->ops->token_get(s, "t2", copy_token, &c, NULL), 0);
        assert_false(c.revoked);

        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->token_get(s, "nope", copy_token, &c, &err), -ENOENT);
        sk_error_free(&err);
        assert_int_equal(s->ops->token_revoke(s, "nope", &err), -ENOENT);
        sk_error_free(&err);
        assert_int_equal(s->ops->token_add(s, "t2", "acme", "eve", "admin", 0, &err), -EEXIST);
        sk_error_free(&err);
        assert_int_equal(s->ops->token_add(s, "t3", "acme", "eve", NULL, 0, &err), -EINVAL);
        assert_string_equal(err->path, "role");
}

typedef struct token_list_acc {
        char hashes[4][8];
        char kinds[4][8];
        char names[4][16];
        size_t n;
} token_list_acc;

static int list_token(const sk_token_row *row, void *user)
{
        token_list_acc *a = user;
        if (a->n < 4) {
                snprintf(a->hashes[a->n], sizeof(a->hashes[0]), "%s", row->hash);
                snprintf(a->kinds[a->n], sizeof(a->kinds[0]), "%s", row->kind);
                snprintf(a->names[a->n], sizeof(a->names[0]), "%s", row->name);
        }
        a->n++;
        return 0;
}

/* API tokens keep their kind and name; listing is per tenant and optionally per user. */
static void test_token_list(void **state)
{
        sk_store *s = store_of(state);
        assert_int_equal(s->ops->token_add(s, "t1", "acme", "alice", "developer", 0, NULL), 0);
        assert_int_equal(
            s->ops->api_token_add(s, "t2", "acme", "alice", "viewer", 5000, "ci", NULL), 0);
        assert_int_equal(s->ops->token_add(s, "t3", "acme", "bob", "admin", 0, NULL), 0);
        assert_int_equal(s->ops->token_add(s, "t4", "other", "alice", "admin", 0, NULL), 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->api_token_add(s, "t1", "acme", "x", "viewer", 0, "", &err),
                         -EEXIST);
        sk_error_free(&err);

        token_list_acc a = {0};
        assert_int_equal(s->ops->token_list(s, "acme", "alice", list_token, &a, NULL), 0);
        assert_int_equal(a.n, 2);
        bool seen_api = false;
        for (size_t i = 0; i < a.n; i++) {
                if (strcmp(a.hashes[i], "t2") == 0) {
                        seen_api = true;
                        assert_string_equal(a.kinds[i], "api");
                        assert_string_equal(a.names[i], "ci");
                } else {
                        assert_string_equal(a.hashes[i], "t1");
                        assert_string_equal(a.kinds[i], "login");
                }
        }
        assert_true(seen_api);
        memset(&a, 0, sizeof(a));
        assert_int_equal(s->ops->token_list(s, "acme", NULL, list_token, &a, NULL), 0);
        assert_int_equal(a.n, 3);
        memset(&a, 0, sizeof(a));
        assert_int_equal(s->ops->token_list(s, "nobody", NULL, list_token, &a, NULL), 0);
        assert_int_equal(a.n, 0);

        token_copy c = {0};
        assert_int_equal(s->ops->token_get(s, "t2", copy_token, &c, NULL), 0);
        assert_string_equal(c.role, "viewer");
        assert_int_equal(c.expires, 5000);

        /* a deleted user's API tokens go too */
        put(s, "acme", "user", "alice", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->resource_delete(s, "acme", "user", "alice", NULL, NULL), 1);
        assert_int_equal(s->ops->token_get(s, "t2", NULL, NULL, NULL), -ENOENT);
        memset(&a, 0, sizeof(a));
        assert_int_equal(s->ops->token_list(s, "acme", NULL, list_token, &a, NULL), 0);
        assert_int_equal(a.n, 1);
        assert_string_equal(a.hashes[0], "t3");
}

typedef struct event_acc {
        char actors[4][32];
        char resources[4][32];
        int status[4];
        int64_t time[4];
        size_t n;
} event_acc;

static int list_event(const sk_event_row *row, void *user)
{
        event_acc *a = user;
        if (a->n < 4) {
                snprintf(a->actors[a->n], sizeof(a->actors[0]), "%s", row->actor);
                snprintf(a->resources[a->n], sizeof(a->resources[0]), "%s", row->resource);
                a->status[a->n] = row->status;
                a->time[a->n] = row->time;
                assert_true(row->id > 0);
                assert_non_null(row->address);
        }
        a->n++;
        return 0;
}

/* The audit trail keeps every field, in order, and filters by time. */
static void test_events(void **state)
{
        sk_store *s = store_of(state);
        sk_event_row ev = {.time = 1000,
                           .tenant = "acme",
                           .actor = "acme/alice",
                           .method = "PUT",
                           .path = "/v1/sites/s1",
                           .resource = "site/s1",
                           .address = "127.0.0.1",
                           .status = 200};
        assert_int_equal(s->ops->event_add(s, &ev, NULL), 0);
        ev = (sk_event_row){.time = 2000,
                            .tenant = "other",
                            .actor = "other/bob token ab12",
                            .method = "DELETE",
                            .path = "/v1/applications/kiosk",
                            .status = 403};
        assert_int_equal(s->ops->event_add(s, &ev, NULL), 0);
        _cleanup_error_ sk_error *err = NULL;
        ev.actor = NULL;
        assert_int_equal(s->ops->event_add(s, &ev, &err), -EINVAL);
        assert_string_equal(err->path, "actor");

        event_acc a = {0};
        assert_int_equal(s->ops->event_list(s, 0, list_event, &a, NULL), 0);
        assert_int_equal(a.n, 2);
        assert_string_equal(a.actors[0], "acme/alice");
        assert_string_equal(a.resources[0], "site/s1");
        assert_int_equal(a.status[0], 200);
        assert_int_equal(a.time[0], 1000);
        assert_string_equal(a.actors[1], "other/bob token ab12");
        assert_string_equal(a.resources[1], "");
        assert_int_equal(a.status[1], 403);
        memset(&a, 0, sizeof(a));
        assert_int_equal(s->ops->event_list(s, 1500, list_event, &a, NULL), 0);
        assert_int_equal(a.n, 1);
        assert_int_equal(a.time[0], 2000);
}

/* Audit retention: by age, then by count keeping the newest. */
static void test_event_prune(void **state)
{
        sk_store *s = store_of(state);
        for (int i = 1; i <= 10; i++) {
                sk_event_row ev = {.time = i * 1000,
                                   .tenant = "acme",
                                   .actor = "acme/alice",
                                   .method = "POST",
                                   .path = "/v1/login",
                                   .status = 401};
                assert_int_equal(s->ops->event_add(s, &ev, NULL), 0);
        }
        assert_int_equal(s->ops->event_prune(s, 3500, -1, NULL), 3);
        event_acc a = {0};
        assert_int_equal(s->ops->event_list(s, 0, list_event, &a, NULL), 0);
        assert_int_equal(a.n, 7);
        assert_int_equal(a.time[0], 4000);
        assert_int_equal(s->ops->event_prune(s, 0, 4, NULL), 3);
        memset(&a, 0, sizeof(a));
        assert_int_equal(s->ops->event_list(s, 0, list_event, &a, NULL), 0);
        assert_int_equal(a.n, 4);
        assert_int_equal(a.time[0], 7000);
        assert_int_equal(s->ops->event_prune(s, 0, 4, NULL), 0);
        assert_int_equal(s->ops->event_prune(s, 0, 0, NULL), 4);
}

/* Names order and match as bytes, whatever the backend's locale: upper case first, and no
 * character of a prefix is a wildcard. */
static void test_byte_order(void **state)
{
        sk_store *s = store_of(state);
        put(s, "b", "deployment", "x", "", "{}", SK_PUT_CREATED);
        put(s, "B", "deployment", "x", "", "{}", SK_PUT_CREATED);
        put(s, "a", "deployment", "x", "", "{}", SK_PUT_CREATED);
        put(s, "a", "deployment", "a-b", "", "{}", SK_PUT_CREATED);
        put(s, "a", "deployment", "aB", "", "{}", SK_PUT_CREATED);
        put(s, "a", "deployment", "ab", "", "{}", SK_PUT_CREATED);
        collect all = {0};
        assert_int_equal(s->ops->resource_list(s, NULL, "deployment", collect_resource, &all, NULL),
                         0);
        assert_string_equal(all.buf, "B/x,a/a-b,a/aB,a/ab,a/x,b/x");

        int64_t site = add_site(s, "a"), h = 0;
        assert_int_equal(s->ops->host_add(s, site, "h1", "{}", 1, &h, NULL), 0);
        sk_instance_row rows[] = {
            {.instance = "t/a_b/0", .json = "{}"}, {.instance = "t/axb/0", .json = "{}"},
            {.instance = "t/a%b/0", .json = "{}"}, {.instance = "t/a\\b/0", .json = "{}"},
            {.instance = "t/A/0", .json = "{}"},   {.instance = "t/caf\xc3\xa9/0", .json = "{}"},
        };
        assert_int_equal(s->ops->instances_replace(s, site, h, rows, 6, NULL), 0);
        const struct {
                const char *prefix, *want;
        } cases[] = {
            {"t/a_", "t/a_b/0"},
            {"t/a%", "t/a%b/0"},
            {"t/a\\", "t/a\\b/0"},
            {"t/a", "t/a%b/0,t/a\\b/0,t/a_b/0,t/axb/0"},
            {"t/", "t/A/0,t/a%b/0,t/a\\b/0,t/a_b/0,t/axb/0,t/caf\xc3\xa9/0"},
            {"t/caf\xc3\xa9/", "t/caf\xc3\xa9/0"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                collect c = {0};
                assert_int_equal(
                    s->ops->instances_list(s, site, cases[i].prefix, collect_instance, &c, NULL),
                    0);
                if (strcmp(c.buf, cases[i].want) != 0)
                        fail_msg("prefix %s: got %s, want %s", cases[i].prefix, c.buf,
                                 cases[i].want);
        }
}

#define STORE_TESTS(setup, teardown)                                                               \
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),                            \
            cmocka_unit_test_setup_teardown(test_revision_bumps, setup, teardown),                 \
            cmocka_unit_test_setup_teardown(test_versions, setup, teardown),                       \
            cmocka_unit_test_setup_teardown(test_list, setup, teardown),                           \
            cmocka_unit_test_setup_teardown(test_reentrant, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),                   \
            cmocka_unit_test_setup_teardown(test_site_sync, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_join_tokens, setup, teardown),                    \
            cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),                          \
            cmocka_unit_test_setup_teardown(test_host_delete, setup, teardown),                    \
            cmocka_unit_test_setup_teardown(test_instances, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_instance_prefixes, setup, teardown),              \
            cmocka_unit_test_setup_teardown(test_site_delete_cascades, setup, teardown),           \
            cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),                         \
            cmocka_unit_test_setup_teardown(test_token_list, setup, teardown),                     \
            cmocka_unit_test_setup_teardown(test_events, setup, teardown),                         \
            cmocka_unit_test_setup_teardown(test_event_prune, setup, teardown),                    \
            cmocka_unit_test_setup_teardown(test_byte_order, setup, teardown)

/* ---- SQLite ---- */

static int sqlite_setup(void **state)
{
        fixture *f = calloc(1, sizeof(*f));
        if (!f)
                return -1;
        snprintf(f->dir, sizeof(f->dir), "/tmp/skerry-store-XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        snprintf(f->path, sizeof(f->path), "%s/tower.db", f->dir);
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_sqlite_open(f->path, &f->s, &err);
        if (r < 0) {
                fprintf(stderr, "open %s: %s\n", f->path, sk_error_msg(err, r));
                rmdir(f->dir);
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static void remove_db(const char *path)
{
        char p[256];
        unlink(path);
        snprintf(p, sizeof(p), "%s-wal", path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", path);
        unlink(p);
}

static int sqlite_teardown(void **state)
{
        fixture *f = *state;
        if (f->s)
                f->s->ops->close(f->s);
        remove_db(f->path);
        int r = rmdir(f->dir);
        free(f);
        return r;
}

static int64_t raw_int(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        int rc = sqlite3_step(st);
        int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                fail_msg("%s: %d", sql, rc);
        return v;
}

static void test_sqlite_reopen(void **state)
{
        fixture *f = *state;
        sk_store *s = f->s;
        int64_t id = add_site(s, "store-001");
        int64_t h = 0;
        assert_int_equal(s->ops->host_add(s, id, "h1", "{}", 1, &h, NULL), 0);
        int64_t rev = revision(s);
        s->ops->close(s);
        f->s = NULL;

        int64_t version = raw_int(f->path, "PRAGMA user_version");
        assert_true(version >= 1);
        assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 1);

        /* Reopening runs no step again (a second CREATE TABLE would fail the open) and keeps
         * the data and the revision counter. */
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_sqlite_open(f->path, &f->s, &err);
        if (r < 0)
                fail_msg("reopen: %s", sk_error_msg(err, r));
        s = f->s;
        assert_int_equal(raw_int(f->path, "PRAGMA user_version"), version);
        assert_int_equal(revision(s), rev);
        resource_copy c = {0};
        assert_int_equal(s->ops->resource_get_by_id(s, id, copy_resource, &c, NULL), 0);
        assert_string_equal(c.name, "store-001");
        assert_int_equal(s->ops->host_get(s, h, NULL, NULL, NULL), 0);
        /* Ids are not reused after a delete: a site's id goes into host certificates. */
        assert_int_equal(s->ops->resource_delete(s, "default", "site", "store-001", NULL, NULL), 1);
        assert_true(add_site(s, "store-002") != id);
}

static void test_sqlite_settings(void **state)
{
        fixture *f = *state;
        assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_journal_mode WHERE "
                                          "journal_mode = 'wal'"),
                         1);
        struct stat st;
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_sqlite_newer_schema(void **state)
{
        fixture *f = *state;
        f->s->ops->close(f->s);
        f->s = NULL;
        assert_int_equal(raw_int(f->path, "PRAGMA user_version = 9999"), -1);
        _cleanup_error_ sk_error *err = NULL;
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(f->path, &s, &err), -ENOTSUP);
        assert_non_null(strstr(err->msg, "9999"));
        assert_null(s);
}

static void test_sqlite_bad_file(void **state)
{
        fixture *f = *state;
        char path[160];
        snprintf(path, sizeof(path), "%s/junk.db", f->dir);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        for (int i = 0; i < 256; i++)
                fputs("this is not a database ", fp);
        fclose(fp);
        _cleanup_error_ sk_error *err = NULL;
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(path, &s, &err), -EIO);
        assert_non_null(strstr(err->msg, path));
        remove_db(path);

        sk_error_free(&err);
        snprintf(path, sizeof(path), "%s/missing/dir/x.db", f->dir);
        assert_true(sk_store_sqlite_open(path, &s, &err) < 0);
        assert_non_null(strstr(err->msg, path));
}

/* ---- PostgreSQL ---- */

/* The server of this run, started by the group setup. Its test database has an ICU
 * collation that orders "a,b,B", so the tests show that the store orders bytes by itself;
 * every test starts from an empty public schema. */
static struct {
        char dir[64];
        char conninfo[512];
        bool started;
} pg;

/* Runs tests/lib/postgres-service.sh VERB pg.dir; the first line it prints lands in out. */
static int pg_service(const char *verb, char *out, size_t len)
{
        return sk_test_service("tests/lib/postgres-service.sh", verb, pg.dir, out, len);
}

static PGconn *pg_connect(const char *conninfo)
{
        PGconn *c = PQconnectdb(conninfo);
        if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "connect %s: %s", conninfo, PQerrorMessage(c));
                PQfinish(c);
                return NULL;
        }
        return c;
}

static int pg_exec(PGconn *c, const char *sql)
{
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (rc < 0)
                fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return rc;
}

/* Runs sql on the test database from a connection of its own. */
static int pg_admin(const char *sql)
{
        PGconn *c = pg_connect(pg.conninfo);
        if (!c)
                return -1;
        int r = pg_exec(c, sql);
        PQfinish(c);
        return r;
}

/* The first column of the first row as an integer, -1 without rows. */
static int64_t pg_raw_int(const char *sql)
{
        PGconn *c = pg_connect(pg.conninfo);
        assert_non_null(c);
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        int64_t v =
            st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
        PQclear(r);
        PQfinish(c);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                fail_msg("%s: %s", sql, PQresStatus(st));
        return v;
}

static int pg_group_teardown(void **state)
{
        if (!pg.started)
                return 0;
        pg.started = false;
        int r = pg_service("stop", NULL, 0);
        if (r < 0)
                fprintf(stderr, "postgres-service.sh stop %s failed\n", pg.dir);
        if (rmdir(pg.dir) < 0) {
                fprintf(stderr, "rmdir %s: %s\n", pg.dir, strerror(errno));
                r = -1;
        }
        return r;
}

static int pg_group_setup(void **state)
{
        if (access("tests/lib/postgres-service.sh", X_OK) != 0) {
                fprintf(stderr, "PostgreSQL store tests: tests/lib/postgres-service.sh not found: "
                                "run the tests from the repository root\n");
                return -1;
        }
        snprintf(pg.dir, sizeof(pg.dir), "/tmp/skerry-pg-XXXXXX");
        if (!mkdtemp(pg.dir)) {
                fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
                return -1;
        }
        pg.started = true;
        char server[256] = "";
        if (pg_service("start", server, sizeof(server)) < 0 || !*server) {
                fprintf(stderr, "PostgreSQL store tests: the test server did not start (its "
                                "message is above). Is PostgreSQL 15 installed? "
                                "scripts/install-deps.sh installs it (Debian package "
                                "postgresql).\n");
                pg_group_teardown(state);
                return -1;
        }
        PGconn *c = pg_connect(server);
        int r = c ? 0 : -1;
        if (r == 0)
                r = pg_exec(c, "SET client_min_messages = warning");
        if (r == 0)
                r = pg_exec(c, "DROP DATABASE IF EXISTS skerry_test");
        if (r == 0)
                r = pg_exec(c, "CREATE DATABASE skerry_test TEMPLATE template0 ENCODING 'UTF8'"
                               " LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
        PQfinish(c);
        /* libpq takes the last of repeated keywords. */
        snprintf(pg.conninfo, sizeof(pg.conninfo), "%s dbname=skerry_test", server);
        if (r < 0)
                pg_group_teardown(state);
        return r;
}

static int pg_setup(void **state)
{
        if (pg_admin("SET client_min_messages = warning;"
                     " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public") < 0)
                return -1;
        fixture *f = calloc(1, sizeof(*f));
        if (!f)
                return -1;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_pg_open(pg.conninfo, &f->s, &err);
        if (r < 0) {
                fprintf(stderr, "open %s: %s\n", pg.conninfo, sk_error_msg(err, r));
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int pg_teardown(void **state)
{
        fixture *f = *state;
        if (f->s)
                f->s->ops->close(f->s);
        if (f->s2)
                f->s2->ops->close(f->s2);
        PQfinish(f->conn);
        free(f);
        return 0;
}

static void test_pg_reopen(void **state)
{
        fixture *f = *state;
        sk_store *s = f->s;
        int64_t id = add_site(s, "store-001");
        int64_t h = 0;
        assert_int_equal(s->ops->host_add(s, id, "h1", "{}", 1, &h, NULL), 0);
        int64_t rev = revision(s);
        s->ops->close(s);
        f->s = NULL;

        int64_t version = pg_raw_int("SELECT version FROM schema_version");
        assert_true(version >= 1);
        assert_int_equal(pg_raw_int("SELECT count(*) FROM resources"), 1);

        /* Reopening runs no step again (a second CREATE TABLE would fail the open) and keeps
         * the data and the revision counter. */
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_pg_open(pg.conninfo, &f->s, &err);
        if (r < 0)
                fail_msg("reopen: %s", sk_error_msg(err, r));
        s = f->s;
        assert_int_equal(pg_raw_int("SELECT version FROM schema_version"), version);
        assert_int_equal(revision(s), rev);
        resource_copy c = {0};
        assert_int_equal(s->ops->resource_get_by_id(s, id, copy_resource, &c, NULL), 0);
        assert_string_equal(c.name, "store-001");
        assert_int_equal(s->ops->host_get(s, h, NULL, NULL, NULL), 0);
        /* Ids are not reused after a delete: site and host ids go into host certificates. */
        assert_int_equal(s->ops->resource_delete(s, "default", "site", "store-001", NULL, NULL), 1);
        int64_t id2 = add_site(s, "store-002");
        assert_true(id2 != id);
        int64_t h2 = 0;
        assert_int_equal(s->ops->host_add(s, id2, "h1", "{}", 1, &h2, NULL), 0);
        assert_true(h2 != h);
}

static void test_pg_newer_schema(void **state)
{
        fixture *f = *state;
        f->s->ops->close(f->s);
        f->s = NULL;
        assert_int_equal(pg_admin("UPDATE schema_version SET version = 9999"), 0);
        _cleanup_error_ sk_error *err = NULL;
        sk_store *s = NULL;
        assert_int_equal(sk_store_pg_open(pg.conninfo, &s, &err), -ENOTSUP);
        assert_non_null(strstr(err->msg, "9999"));
        assert_null(s);
}

static void test_pg_bad_conninfo(void **state)
{
        _cleanup_error_ sk_error *err = NULL;
        sk_store *s = NULL;
        assert_int_equal(sk_store_pg_open(NULL, &s, &err), -EINVAL);
        assert_string_equal(err->path, "conninfo");
        sk_error_free(&err);

        assert_int_equal(sk_store_pg_open("this is not a conninfo", &s, &err), -EIO);
        assert_non_null(strstr(err->msg, "store"));
        sk_error_free(&err);

        /* Nothing listens on port 1: refused at once. The message names the server but
         * never the password. */
        assert_int_equal(sk_store_pg_open("host=127.0.0.1 port=1 dbname=skerry user=postgres "
                                          "password=sekrit connect_timeout=5",
                                          &s, &err),
                         -EIO);
        assert_non_null(strstr(err->msg, "127.0.0.1:1"));
        assert_null(strstr(err->msg, "sekrit"));
        sk_error_free(&err);

        char info[600];
        snprintf(info, sizeof(info), "%s dbname=no_such_db", pg.conninfo);
        assert_int_equal(sk_store_pg_open(info, &s, &err), -EIO);
        assert_non_null(strstr(err->msg, "no_such_db"));
        assert_null(s);
}

/* Waits (5 s at most) for the next notification on c and checks it. */
static void expect_notify(PGconn *c, int64_t revision_value)
{
        for (;;) {
                assert_int_equal(PQconsumeInput(c), 1);
                PGnotify *n = PQnotifies(c);
                if (n) {
                        char want[32];
                        snprintf(want, sizeof(want), "%lld", (long long)revision_value);
                        bool ok = strcmp(n->relname, "skerry_revision") == 0 &&
                                  strcmp(n->extra, want) == 0;
                        if (!ok)
                                fail_msg("notification %s \"%s\", want skerry_revision \"%s\"",
                                         n->relname, n->extra, want);
                        PQfreemem(n);
                        return;
                }
                struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
                if (poll(&p, 1, 5000) != 1)
                        fail_msg("no notification for revision %lld within 5 s",
                                 (long long)revision_value);
        }
}

static void test_pg_notify(void **state)
{
        fixture *f = *state;
        sk_store *s = f->s;
        f->conn = pg_connect(pg.conninfo);
        assert_non_null(f->conn);
        assert_int_equal(pg_exec(f->conn, "LISTEN skerry_revision"), 0);

        put(s, "default", "site", "a", "", "{}", SK_PUT_CREATED);
        int64_t rev = revision(s);
        expect_notify(f->conn, rev);

        /* Neither a rolled-back write nor an unchanged one notifies: notifications arrive in
         * commit order, so the next one is the next committed bump. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "b", "", "{}", SK_PUT_CREATED);
        s->ops->rollback(s);
        put(s, "default", "site", "a", "", "{}", SK_PUT_UNCHANGED);
        put(s, "default", "site", "c", "", "{}", SK_PUT_CREATED);
        assert_int_equal(revision(s), rev + 1);
        expect_notify(f->conn, rev + 1);

        /* One per write, delivered at commit. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "d", "", "{}", SK_PUT_CREATED);
        put(s, "default", "site", "e", "", "{}", SK_PUT_CREATED);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        expect_notify(f->conn, rev + 2);
        expect_notify(f->conn, rev + 3);
        assert_int_equal(s->ops->resource_delete(s, "default", "site", "d", NULL, NULL), 1);
        expect_notify(f->conn, rev + 4);
}

/* Two stores on one database: what tower replicas do. */
static void test_pg_replicas(void **state)
{
        fixture *f = *state;
        sk_store *a = f->s;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_pg_open(pg.conninfo, &f->s2, &err);
        if (r < 0)
                fail_msg("second open: %s", sk_error_msg(err, r));
        sk_store *b = f->s2;

        int64_t id = add_site(a, "store-001");
        assert_int_equal(revision(b), revision(a));
        assert_int_equal(
            put(b, "default", "site", "store-001", "", "{\"labels\":{}}", SK_PUT_UNCHANGED), id);
        assert_int_equal(put(b, "default", "site", "store-001", "", "{\"labels\":{\"x\":\"y\"}}",
                             SK_PUT_UPDATED),
                         id);
        resource_copy c = {0};
        assert_int_equal(a->ops->resource_get_by_id(a, id, copy_resource, &c, NULL), 0);
        assert_string_equal(c.json, "{\"labels\":{\"x\":\"y\"}}");
        int64_t h = 0;
        assert_int_equal(b->ops->host_add(b, id, "h1", "{}", 1, &h, NULL), 0);
        assert_int_equal(a->ops->host_get(a, h, NULL, NULL, NULL), 0);

        /* The other store sees a transaction's writes only once it commits. */
        assert_int_equal(a->ops->begin(a, NULL), 0);
        put(a, "default", "site", "store-002", "", "{}", SK_PUT_CREATED);
        assert_false(exists(b, "default", "site", "store-002", ""));
        assert_int_equal(a->ops->commit(a, NULL), 0);
        assert_true(exists(b, "default", "site", "store-002", ""));
        assert_int_equal(revision(b), revision(a));
}

/* Ends every other session on the test database (and waits until they are gone). */
static void kill_sessions(void)
{
        assert_true(pg_raw_int("SELECT count(pg_terminate_backend(pid, 5000))"
                               " FROM pg_stat_activity WHERE datname = current_database()"
                               " AND pid <> pg_backend_pid()") >= 1);
}

static void test_pg_reconnect(void **state)
{
        fixture *f = *state;
        sk_store *s = f->s;
        put(s, "default", "site", "a", "", "{}", SK_PUT_CREATED);
        int64_t rev = revision(s);

        /* The call that finds the connection gone fails; the next one reconnects. */
        kill_sessions();
        _cleanup_error_ sk_error *err = NULL;
        int64_t v = 0;
        assert_int_equal(s->ops->revision(s, &v, &err), -EIO);
        assert_non_null(err);
        sk_error_free(&err);
        assert_int_equal(revision(s), rev);
        assert_true(exists(s, "default", "site", "a", ""));
        put(s, "default", "site", "b", "", "{}", SK_PUT_CREATED);

        /* Inside a transaction the loss fails the transaction: nothing of it is written. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "c", "", "{}", SK_PUT_CREATED);
        kill_sessions();
        assert_int_equal(s->ops->resource_put(s, "default", "site", "d", "", "{}", NULL, &err),
                         -EIO);
        sk_error_free(&err);
        assert_true(s->ops->commit(s, &err) < 0);
        sk_error_free(&err);
        assert_false(exists(s, "default", "site", "c", ""));
        assert_false(exists(s, "default", "site", "d", ""));
        assert_true(exists(s, "default", "site", "b", ""));
        /* The depth was unwound: a new transaction is a real one again. */
        assert_int_equal(s->ops->begin(s, NULL), 0);
        put(s, "default", "site", "e", "", "{}", SK_PUT_CREATED);
        s->ops->rollback(s);
        assert_false(exists(s, "default", "site", "e", ""));
}

/* An error inside a nested transaction rolls back only the savepoint of the call. */
static void test_pg_error_in_savepoint(void **state)
{
        fixture *f = *state;
        sk_store *s = f->s;
        int64_t site = add_site(s, "a");
        assert_int_equal(s->ops->begin(s, NULL), 0);
        assert_int_equal(s->ops->begin(s, NULL), 0);
        assert_int_equal(s->ops->host_add(s, site, "h1", "{}", 1, NULL, NULL), 0);
        assert_int_equal(s->ops->host_add(s, site, "h1", "{}", 1, NULL, NULL), -EEXIST);
        assert_int_equal(s->ops->join_token_add(s, "t", site + 1000, 1, NULL), -ENOENT);
        assert_int_equal(s->ops->token_add(s, "tok", "acme", "alice", "admin", 0, NULL), 0);
        assert_int_equal(s->ops->token_add(s, "tok", "acme", "alice", "admin", 0, NULL), -EEXIST);
        assert_int_equal(s->ops->site_sync_set(s, site + 1000, 1, "x", NULL), -ENOENT);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        assert_int_equal(s->ops->commit(s, NULL), 0);
        collect hosts = {0};
        assert_int_equal(s->ops->host_list(s, site, collect_host, &hosts, NULL), 0);
        assert_string_equal(hosts.buf, "h1");
        assert_int_equal(s->ops->token_get(s, "tok", NULL, NULL, NULL), 0);
}

int main(void)
{
        const struct CMUnitTest sqlite_tests[] = {
            STORE_TESTS(sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_reopen, sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_settings, sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_newer_schema, sqlite_setup,
                                            sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_bad_file, sqlite_setup, sqlite_teardown),
        };
        const struct CMUnitTest pg_tests[] = {
            STORE_TESTS(pg_setup, pg_teardown),
            cmocka_unit_test_setup_teardown(test_pg_reopen, pg_setup, pg_teardown),
            cmocka_unit_test_setup_teardown(test_pg_newer_schema, pg_setup, pg_teardown),
            cmocka_unit_test(test_pg_bad_conninfo),
            cmocka_unit_test_setup_teardown(test_pg_notify, pg_setup, pg_teardown),
            cmocka_unit_test_setup_teardown(test_pg_replicas, pg_setup, pg_teardown),
            cmocka_unit_test_setup_teardown(test_pg_reconnect, pg_setup, pg_teardown),
            cmocka_unit_test_setup_teardown(test_pg_error_in_savepoint, pg_setup, pg_teardown),
        };
        int failed = cmocka_run_group_tests_name("store on SQLite", sqlite_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("store on PostgreSQL", pg_tests, pg_group_setup,
                                              pg_group_teardown);
        return failed;
}
