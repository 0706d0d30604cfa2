/* The authorization matrix (issue 4), generated from the tower's route table: for every
 * route and method, every role of the tenant that owns the resource, of a sibling tenant
 * and of the parent provider asks once, against a fresh copy of one store, and gets the
 * expected answer. A route without an expectation here fails the test, and so does an
 * expectation for a route that no longer exists.
 *
 * The tenant tree:
 *   default (root provider)
 *   +- retail (provider; owns site store-1, labels chain=shared)
 *   |  +- acme   (application; sites: chain = shared)   kiosk, old, deployment kiosk-all
 *   |  +- globex (application; sites: chain = shared)   gonly
 *   |  +- spare  (application, empty)
 *   +- other (provider; owns site far-1, also chain=shared)
 * Every tenant but spare has the users viewer, developer, operator and admin (so the provider's
 * admin setting {self}'s password in acme sets acme's admin's); acme also has target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/cleanup.h"
#include "tower/api.h"
#include "tower/store.h"

static const char *const ROLES[] = {"viewer", "developer", "operator", "admin"};
/* spare stays empty: it is the tenant the matrix deletes */
static const char *const TENANTS[] = {"default", "retail", "other", "acme", "globex"};

/* Who owns what a row of the matrix asks about, and who is its sibling and provider. */
typedef struct subject {
        const char *owner, *sibling, *provider;
} subject;
static const subject ACME = {"acme", "globex", "retail"};
static const subject RETAIL = {"retail", "other", "default"};

/* Expected answers for viewer, developer, operator, admin: A allowed (2xx), F 403,
 * N 404 (existence does not leak), I 400 (allowed, but not meaningful in that tenant). */
typedef struct expect {
        const char *method, *pattern, *auth;
        const subject *subj; /* NULL: no user roles (public or host routes) */
        const char *path;    /* "{self}" becomes the caller's user name */
        const char *query;   /* an extra query parameter "key=value", or NULL */
        const char *body;
        const char *owner, *sibling, *provider;
} expect;

#define APP(name)                                                                                  \
        "{\"kind\":\"application\",\"name\":\"" name "\",\"version\":\"1.0.0\",\"services\":"      \
        "[{\"name\":\"web\",\"containers\":[{\"name\":\"web\",\"image\":\"localhost/k:1\"}]}]}"
#define DEP                                                                                        \
        "{\"kind\":\"deployment\",\"name\":\"kiosk-all\",\"application\":\"kiosk\",\"sites\":"     \
        "\"chain = shared\"}"
#define USER(name, role) "{\"kind\":\"user\",\"name\":\"" name "\",\"role\":\"" role "\"}"
#define SITE(name)       "{\"kind\":\"site\",\"name\":\"" name "\",\"labels\":{\"chain\":\"shared\"}}"

static const expect MATRIX[] = {
    /* public and host routes: no roles */
    {"POST", "/v1/login", "none", NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {"POST", "/v1/join", "none", NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/v1/sync/desired", "host", NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {"POST", "/v1/sync/status", "host", NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/v1/sync/site-ca", "host", NULL, NULL, NULL, NULL, NULL, NULL, NULL},

    {"GET", "/v1/whoami", "user", &ACME, "/v1/whoami", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    /* metrics: a provider's admins */
    {"GET", "/metrics", "user", &RETAIL, "/metrics", NULL, NULL, "FFFA", "NNNN", "FFFA"},
    {"GET", "/metrics", "user", &ACME, "/metrics", NULL, NULL, "FFFF", "NNNN", "FFFF"},
    /* hosts: providers only, and never an application tenant's */
    {"GET", "/v1/hosts", "user", &RETAIL, "/v1/hosts", "site=store-1", NULL, "AAAA", "NNNN",
     "FFFA"},
    {"GET", "/v1/hosts", "user", &ACME, "/v1/hosts", "site=store-1", NULL, "FFFF", "NNNN", "FFFF"},
    {"DELETE", "/v1/hosts/{name}", "user", &RETAIL, "/v1/hosts/h1", "site=store-1", NULL, "FFAA",
     "NNNN", "FFFA"},
    {"DELETE", "/v1/hosts/{name}", "user", &ACME, "/v1/hosts/h1", "site=store-1", NULL, "FFFF",
     "NNNN", "FFFF"},
    {"GET", "/v1/instances", "user", &ACME, "/v1/instances", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    {"GET", "/v1/instances", "user", &ACME, "/v1/instances", "site=far-1", NULL, "NNNN", "NNNN",
     "FFFN"},
    {"GET", "/v1/events", "user", &ACME, "/v1/events", NULL, NULL, "FFFA", "NNNN", "FFFA"},
    {"GET", "/v1/tokens", "user", &ACME, "/v1/tokens", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    {"POST", "/v1/tokens", "user", &ACME, "/v1/tokens", NULL,
     "{\"role\":\"viewer\",\"ttl\":\"1h\"}", "AAAA", "NNNN", "FFFI"},
    /* someone else's token is not found; an admin of the tenant (or above) revokes it */
    {"DELETE", "/v1/tokens/{name}", "user", &ACME, "/v1/tokens/{target-token}", NULL, NULL, "NNNA",
     "NNNN", "FFFA"},
    {"POST", "/v1/sites/{name}/tokens", "user", &RETAIL, "/v1/sites/store-1/tokens", NULL, NULL,
     "FFAA", "NNNN", "FFFA"},
    {"POST", "/v1/sites/{name}/tokens", "user", &ACME, "/v1/sites/store-1/tokens", NULL, NULL,
     "FFFF", "NNNN", "FFFF"},
    {"PUT", "/v1/users/{name}/password", "user", &ACME, "/v1/users/target/password", NULL,
     "{\"password\":\"long enough\"}", "FFFA", "NNNN", "FFFA"},
    {"PUT", "/v1/users/{name}/password", "user", &ACME, "/v1/users/{self}/password", NULL,
     "{\"password\":\"long enough\"}", "AAAA", "NNNN", "FFFA"},

    {"GET", "/v1/tenants", "user", &ACME, "/v1/tenants", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    {"GET", "/v1/tenants/{name}", "user", &ACME, "/v1/tenants/acme", NULL, NULL, "AAAA", "NNNN",
     "FFFA"},
    {"GET", "/v1/tenants/{name}", "user", &ACME, "/v1/tenants/globex", NULL, NULL, "NNNN", "NNNN",
     "FFFN"},
    {"PUT", "/v1/tenants/{name}", "user", &RETAIL, "/v1/tenants/acme", NULL,
     "{\"kind\":\"tenant\",\"name\":\"acme\",\"type\":\"application\",\"sites\":\"chain = x\"}",
     "FFFA", "NNNN", "FFFA"},
    {"PUT", "/v1/tenants/{name}", "user", &ACME, "/v1/tenants/newco", NULL,
     "{\"kind\":\"tenant\",\"name\":\"newco\"}", "FFFF", "NNNN", "FFFF"},
    {"DELETE", "/v1/tenants/{name}", "user", &RETAIL, "/v1/tenants/spare", NULL, NULL, "FFFA",
     "NNNN", "FFFA"},

    {"GET", "/v1/users", "user", &ACME, "/v1/users", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    {"GET", "/v1/users/{name}", "user", &ACME, "/v1/users/target", NULL, NULL, "AAAA", "NNNN",
     "FFFA"},
    {"PUT", "/v1/users/{name}", "user", &ACME, "/v1/users/target", NULL, USER("target", "operator"),
     "FFFA", "NNNN", "FFFA"},
    {"DELETE", "/v1/users/{name}", "user", &ACME, "/v1/users/target", NULL, NULL, "FFFA", "NNNN",
     "FFFA"},

    /* sites: an application tenant reads those assigned to it and writes none */
    {"GET", "/v1/sites", "user", &ACME, "/v1/sites", NULL, NULL, "AAAA", "NNNN", "FFFA"},
    {"GET", "/v1/sites/{name}", "user", &ACME, "/v1/sites/store-1", NULL, NULL, "AAAA", "NNNN",
     "FFFA"},
    {"GET", "/v1/sites/{name}", "user", &ACME, "/v1/sites/far-1", NULL, NULL, "NNNN", "NNNN",
     "FFFN"},
    {"PUT", "/v1/sites/{name}", "user", &ACME, "/v1/sites/store-1", NULL, SITE("store-1"), "FFFF",
     "NNNN", "FFFF"},
    {"PUT", "/v1/sites/{name}", "user", &RETAIL, "/v1/sites/store-2", NULL, SITE("store-2"), "FFAA",
     "NNNN", "FFFA"},
    {"DELETE", "/v1/sites/{name}", "user", &ACME, "/v1/sites/store-1", NULL, NULL, "FFFF", "NNNN",
     "FFFF"},
    {"DELETE", "/v1/sites/{name}", "user", &RETAIL, "/v1/sites/store-1", NULL, NULL, "FFAA", "NNNN",
     "FFFA"},

    {"GET", "/v1/applications", "user", &ACME, "/v1/applications", NULL, NULL, "AAAA", "NNNN",
     "FFFA"},
    {"GET", "/v1/applications/{name}", "user", &ACME, "/v1/applications/kiosk", NULL, NULL, "AAAA",
     "NNNN", "FFFA"},
    /* a sibling's application is as absent as one that never was */
    {"GET", "/v1/applications/{name}", "user", &ACME, "/v1/applications/gonly", NULL, NULL, "NNNN",
     "NNNN", "FFFN"},
    {"PUT", "/v1/applications/{name}", "user", &ACME, "/v1/applications/kiosk", NULL, APP("kiosk"),
     "FAAA", "NNNN", "FFFA"},
    {"DELETE", "/v1/applications/{name}", "user", &ACME, "/v1/applications/old", NULL, NULL, "FAAA",
     "NNNN", "FFFA"},
    {"DELETE", "/v1/applications/{name}", "user", &ACME, "/v1/applications/gonly", NULL, NULL,
     "FNNN", "NNNN", "FFFN"},

    {"GET", "/v1/deployments", "user", &ACME, "/v1/deployments", NULL, NULL, "AAAA", "NNNN",
     "FFFA"},
    {"GET", "/v1/deployments/{name}", "user", &ACME, "/v1/deployments/kiosk-all", NULL, NULL,
     "AAAA", "NNNN", "FFFA"},
    {"PUT", "/v1/deployments/{name}", "user", &ACME, "/v1/deployments/kiosk-all", NULL, DEP, "FAAA",
     "NNNN", "FFFA"},
    {"DELETE", "/v1/deployments/{name}", "user", &ACME, "/v1/deployments/kiosk-all", NULL, NULL,
     "FAAA", "NNNN", "FFFA"},
};

typedef struct fx {
        char dir[64];
        char template[128];
        char target_token_id[16];
} fx;

static char *token_of(const char *tenant, const char *user)
{
        char *t = NULL;
        assert_true(asprintf(&t, "tok-%s-%s", tenant, user) > 0);
        return t;
}

static void hash_hex(const char *secret, char out[65])
{
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
        sodium_bin2hex(out, 65, h, sizeof(h));
}

/* One request; returns the status. */
static int call(sk_tower_api *api, const char *method, const char *path, const char *token,
                const char *tenant_q, const char *extra_q, const char *body, json_t **out)
{
        _cleanup_json_ json_t *q = json_object();
        if (tenant_q)
                json_object_set_new(q, "tenant", json_string(tenant_q));
        if (extra_q) {
                const char *eq = strchr(extra_q, '=');
                _cleanup_free_ char *k = strndup(extra_q, (size_t)(eq - extra_q));
                json_object_set_new(q, k, json_string(eq + 1));
        }
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", token ? token : "");
        sk_tower_request req = {.method = method,
                                .path = path,
                                .query = q,
                                .authorization = token ? auth : NULL,
                                .body = body,
                                .body_len = body ? strlen(body) : 0,
                                .remote_addr = "127.0.0.1"};
        sk_tower_response resp;
        sk_tower_job *job = NULL;
        for (;;) {
                req.job = job;
                sk_tower_api_handle(api, &req, &resp);
                if (!resp.job)
                        break;
                job = resp.job;
                resp.job = NULL;
                sk_tower_response_clear(&resp);
                job->run(job);
        }
        if (job)
                job->free(job);
        int status = resp.status;
        if (out)
                *out = json_incref(resp.body);
        sk_tower_response_clear(&resp);
        return status;
}

static void must(sk_tower_api *api, const char *admin, const char *method, const char *path,
                 const char *tenant_q, const char *body)
{
        json_t *j = NULL;
        int st = call(api, method, path, admin, tenant_q, NULL, body, &j);
        if (st != 200) {
                _cleanup_free_ char *text = json_dumps(j, 0);
                fail_msg("setup %s %s?tenant=%s: %d %s", method, path, tenant_q ? tenant_q : "", st,
                         text);
        }
        json_decref(j);
}

static int row_id(const sk_resource_row *row, void *user)
{
        *(int64_t *)user = row->id;
        return 0;
}

/* Builds the tree once; every case starts from a copy of this store file. */
static int group_setup(void **state)
{
        fx *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/sk-authz-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->template, sizeof(f->template), "%s/template.db", f->dir);
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(f->template, &s, NULL), 0);
        sk_tower_api *api = NULL;
        assert_int_equal(sk_tower_api_new(s, NULL, &api, NULL), 0);
        _cleanup_free_ char *admin = NULL;
        assert_int_equal(sk_tower_bootstrap(api, &admin, NULL), 0);

        must(api, admin, "PUT", "/v1/tenants/retail", NULL,
             "{\"kind\":\"tenant\",\"name\":\"retail\",\"type\":\"provider\"}");
        must(api, admin, "PUT", "/v1/tenants/other", NULL,
             "{\"kind\":\"tenant\",\"name\":\"other\",\"type\":\"provider\"}");
        static const char *const apps[] = {"acme", "globex", "spare"};
        for (size_t i = 0; i < 3; i++) {
                char body[256];
                snprintf(body, sizeof(body),
                         "{\"kind\":\"tenant\",\"name\":\"%s\",\"type\":\"application\"%s}",
                         apps[i], i < 2 ? ",\"sites\":\"chain = shared\"" : "");
                char path[64];
                snprintf(path, sizeof(path), "/v1/tenants/%s", apps[i]);
                must(api, admin, "PUT", path, "retail", body);
        }
        must(api, admin, "PUT", "/v1/sites/store-1", "retail", SITE("store-1"));
        must(api, admin, "PUT", "/v1/sites/far-1", "other", SITE("far-1"));
        int64_t store1 = 0; /* with a host h1, for DELETE /v1/hosts/h1 */
        assert_int_equal(
            s->ops->resource_get(s, "retail", "site", "store-1", "", row_id, &store1, NULL), 0);
        assert_int_equal(s->ops->host_add(s, store1, "h1", "{}", 1, NULL, NULL), 0);
        must(api, admin, "PUT", "/v1/applications/kiosk", "acme", APP("kiosk"));
        must(api, admin, "PUT", "/v1/applications/old", "acme", APP("old"));
        must(api, admin, "PUT", "/v1/deployments/kiosk-all", "acme", DEP);
        must(api, admin, "PUT", "/v1/applications/gonly", "globex", APP("gonly"));
        must(api, admin, "PUT", "/v1/users/target", "acme", USER("target", "viewer"));
        for (size_t t = 0; t < SK_ARRAY_SIZE(TENANTS); t++) {
                for (size_t r = 0; r < SK_ARRAY_SIZE(ROLES); r++) {
                        char path[64], body[128];
                        snprintf(path, sizeof(path), "/v1/users/%s", ROLES[r]);
                        snprintf(body, sizeof(body),
                                 "{\"kind\":\"user\",\"name\":\"%s\",\"role\":\"%s\"}", ROLES[r],
                                 ROLES[r]);
                        if (strcmp(TENANTS[t], "default") != 0 || strcmp(ROLES[r], "admin") != 0)
                                must(api, admin, "PUT", path, TENANTS[t], body);
                        _cleanup_free_ char *tok = token_of(TENANTS[t], ROLES[r]);
                        char hex[65];
                        hash_hex(tok, hex);
                        assert_int_equal(
                            s->ops->token_add(s, hex, TENANTS[t], ROLES[r], ROLES[r], 0, NULL), 0);
                }
        }
        char hex[65];
        hash_hex("tok-acme-target", hex);
        assert_int_equal(s->ops->token_add(s, hex, "acme", "target", "viewer", 0, NULL), 0);
        snprintf(f->target_token_id, sizeof(f->target_token_id), "%.12s", hex);
        sk_tower_api_free(api);
        s->ops->close(s);
        *state = f;
        return 0;
}

static int group_teardown(void **state)
{
        fx *f = *state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static bool status_fits(char want, int status)
{
        switch (want) {
        case 'A':
                return status >= 200 && status < 300;
        case 'F':
                return status == 403;
        case 'N':
                return status == 404;
        case 'I':
                return status == 400;
        default:
                return false;
        }
}

static void copy_file(const char *from, const char *to)
{
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && rm -f '%s-wal' '%s-shm'", from, to, to, to);
        assert_int_equal(system(cmd), 0);
}

/* One actor (tenant, role) asks for one row of the matrix on a fresh store. */
static int run_case(fx *f, const expect *e, const char *tenant, size_t role, bool as_owner,
                    char *got, size_t cap)
{
        char db[100];
        snprintf(db, sizeof(db), "%.80s/case.db", f->dir);
        copy_file(f->template, db);
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(db, &s, NULL), 0);
        sk_tower_api *api = NULL;
        assert_int_equal(sk_tower_api_new(s, NULL, &api, NULL), 0);
        char path[160];
        const char *p = e->path;
        const char *self = strstr(p, "{self}"), *tt = strstr(p, "{target-token}");
        if (self)
                snprintf(path, sizeof(path), "%.*s%s%s", (int)(self - p), p, ROLES[role], self + 6);
        else if (tt)
                snprintf(path, sizeof(path), "%.*s%s%s", (int)(tt - p), p, f->target_token_id,
                         tt + 14);
        else
                snprintf(path, sizeof(path), "%s", p);
        _cleanup_free_ char *tok = token_of(tenant, ROLES[role]);
        json_t *j = NULL;
        int st = call(api, e->method, path, tok, as_owner ? NULL : e->subj->owner, e->query,
                      e->body, &j);
        _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        snprintf(got, cap, "%s", text ? text : "");
        json_decref(j);
        sk_tower_api_free(api);
        s->ops->close(s);
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s-wal' '%s-shm'", db, db, db);
        assert_int_equal(system(cmd), 0);
        return st;
}

static void test_matrix(void **state)
{
        fx *f = *state;
        int failures = 0;
        size_t cases = 0;
        bool used[SK_ARRAY_SIZE(MATRIX)] = {0};
        for (size_t i = 0; i < sk_tower_route_count(); i++) {
                const char *method, *pattern, *auth;
                sk_tower_route_at(i, &method, &pattern, &auth);
                bool found = false;
                for (size_t m = 0; m < SK_ARRAY_SIZE(MATRIX); m++) {
                        const expect *e = &MATRIX[m];
                        if (strcmp(e->method, method) != 0 || strcmp(e->pattern, pattern) != 0)
                                continue;
                        found = used[m] = true;
                        if (strcmp(e->auth, auth) != 0) {
                                print_error("%s %s: authenticates as %s, want %s\n", method,
                                            pattern, auth, e->auth);
                                failures++;
                        }
                        if (!e->subj)
                                continue;
                        const char *groups[3] = {e->subj->owner, e->subj->sibling,
                                                 e->subj->provider};
                        const char *want[3] = {e->owner, e->sibling, e->provider};
                        for (size_t g = 0; g < 3; g++) {
                                assert_int_equal(strlen(want[g]), SK_ARRAY_SIZE(ROLES));
                                for (size_t r = 0; r < SK_ARRAY_SIZE(ROLES); r++) {
                                        char got[512];
                                        int st =
                                            run_case(f, e, groups[g], r, g == 0, got, sizeof(got));
                                        cases++;
                                        if (status_fits(want[g][r], st))
                                                continue;
                                        print_error("%s %s%s%s as %s/%s%s: %d, want %c  %s\n",
                                                    method, e->path, e->query ? "?" : "",
                                                    e->query ? e->query : "", groups[g], ROLES[r],
                                                    g ? " (?tenant=owner)" : "", st, want[g][r],
                                                    got);
                                        failures++;
                                }
                        }
                }
                if (!found) {
                        print_error("route %s %s has no row in the authorization matrix\n", method,
                                    pattern);
                        failures++;
                }
        }
        for (size_t m = 0; m < SK_ARRAY_SIZE(MATRIX); m++) {
                if (!used[m]) {
                        print_error("matrix row %s %s names no route\n", MATRIX[m].method,
                                    MATRIX[m].pattern);
                        failures++;
                }
        }
        print_message("%zu cases\n", cases);
        assert_int_equal(failures, 0);
}

/* Host routes refuse every user token, whatever its role. */
static void test_host_routes_refuse_users(void **state)
{
        fx *f = *state;
        for (size_t m = 0; m < SK_ARRAY_SIZE(MATRIX); m++) {
                if (strcmp(MATRIX[m].auth, "host") != 0)
                        continue;
                expect e = MATRIX[m];
                e.path = e.pattern;
                subject self = {"default", NULL, NULL};
                e.subj = &self;
                char got[512];
                assert_int_equal(run_case(f, &e, "default", 3, true, got, sizeof(got)), 401);
        }
}

int main(void)
{
        if (sodium_init() < 0)
                return 1;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_matrix),
            cmocka_unit_test(test_host_routes_refuse_users),
        };
        return cmocka_run_group_tests_name("authorization matrix", tests, group_setup,
                                           group_teardown);
}
