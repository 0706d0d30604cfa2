/* The store interface (tower/store.h). The tests in the first part use only sk_store_ops on
 * an opened store, so every backend runs the same ones: a backend adds a setup that opens
 * it and one STORE_TESTS(setup, teardown) line. The SQLite part checks what only that
 * backend has (file, schema version, WAL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "tower/store.h"

typedef struct fixture {
        sk_store *s;
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
            cmocka_unit_test_setup_teardown(test_instances, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_site_delete_cascades, setup, teardown),           \
            cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),                      \
            cmocka_unit_test_setup_teardown(test_tokens, setup, teardown)

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

int main(void)
{
        const struct CMUnitTest tests[] = {
            STORE_TESTS(sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_reopen, sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_settings, sqlite_setup, sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_newer_schema, sqlite_setup,
                                            sqlite_teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_bad_file, sqlite_setup, sqlite_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
