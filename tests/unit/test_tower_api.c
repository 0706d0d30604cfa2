/* The tower's API without sockets: router, authentication, resources, join and site sync
 * against a real SQLite store and a real CA in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/pki.h"
#include "tower/api.h"
#include "tower/siteca.h"
#include "tower/store.h"

typedef struct fx {
        char dir[64];
        sk_store *store;
        sk_ca *ca;
        sk_tower_api *api;
        char *admin;
        int64_t notified[64];
        size_t n_notified;
        char *peer_uri;           /* what the fake TLS layer reports as the client's URI */
        const char *peer_site_ca; /* and the fingerprint of the site CA in its chain */
        const char *peer_leaf;    /* and of its own certificate */
} fx;

static int64_t fake_now;
static int64_t clock_now(void)
{
        return fake_now;
}

static void on_notify(void *ctx, int64_t site)
{
        fx *f = ctx;
        if (f->n_notified < 64)
                f->notified[f->n_notified++] = site;
}

static long no_waiting(void *ctx)
{
        return 3;
}

/* Stands in for the TLS layer, which hands over the URI that sk_pki_verify_peer read. */
static int fake_peer(void *ctx, char **uri, sk_pki_chain *chain, sk_error **err)
{
        fx *f = ctx;
        snprintf(chain->site_ca, SK_PKI_FP_LEN, "%s", f->peer_site_ca ? f->peer_site_ca : "");
        snprintf(chain->leaf, SK_PKI_FP_LEN, "%s", f->peer_leaf ? f->peer_leaf : "");
        if (!f->peer_uri)
                return sk_error_set(err, EACCES, "certificate does not chain to the CA");
        *uri = strdup(f->peer_uri);
        return 0;
}

static int setup(void **state)
{
        fx *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/sk-tower-api-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char db[128];
        snprintf(db, sizeof(db), "%s/tower.db", f->dir);
        assert_int_equal(sk_store_sqlite_open(db, &f->store, NULL), 0);
        assert_int_equal(sk_ca_open(f->dir, &f->ca, NULL), 0);
        assert_int_equal(sk_tower_api_new(f->store, f->ca, &f->api, NULL), 0);
        sk_tower_api_set_hooks(f->api, on_notify, no_waiting, f);
        sk_error *err = NULL;
        int r = sk_tower_bootstrap(f->api, &f->admin, &err);
        if (r < 0)
                fail_msg("bootstrap: %s", sk_error_msg(err, r));
        fake_now = (int64_t)time(NULL) * 1000;
        sk_tower_api_set_clock(f->api, clock_now);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fx *f = *state;
        sk_tower_api_free(f->api);
        sk_ca_free(f->ca);
        f->store->ops->close(f->store);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f->admin);
        free(f->peer_uri);
        free(f);
        return 0;
}

typedef struct call_opts {
        const char *token;    /* bearer token, or NULL */
        const char *query[6]; /* key, value, key, value... */
        bool peer;            /* present a client certificate */
} call_opts;

/* Makes one request; returns the status and leaves the body in *out (caller decrefs). */
static int call(fx *f, const char *method, const char *path, const char *body, const call_opts *o,
                json_t **out)
{
        _cleanup_json_ json_t *q = json_object();
        char auth[256] = "";
        if (o && o->token)
                snprintf(auth, sizeof(auth), "Bearer %s", o->token);
        for (size_t i = 0; o && i + 1 < 6 && o->query[i]; i += 2)
                json_object_set_new(q, o->query[i], json_string(o->query[i + 1]));
        sk_tower_request req = {.method = method,
                                .path = path,
                                .query = q,
                                .authorization = auth[0] ? auth : NULL,
                                .body = body,
                                .body_len = body ? strlen(body) : 0,
                                .has_peer_cert = o && o->peer,
                                .verify_peer = fake_peer,
                                .peer_ctx = f};
        sk_tower_response resp;
        /* as the server does: slow jobs run between two rounds of the same request */
        sk_tower_job *job = NULL;
        for (;;) {
                req.job = job;
                sk_tower_api_handle(f->api, &req, &resp);
                if (!resp.job)
                        break;
                assert_null(job);
                job = resp.job;
                resp.job = NULL;
                sk_tower_response_clear(&resp);
                job->run(job);
        }
        if (job)
                job->free(job);
        int status = resp.status;
        if (out)
                *out = resp.text ? json_string(resp.text) : json_incref(resp.body);
        sk_tower_response_clear(&resp);
        return status;
}

static int admin_call(fx *f, const char *method, const char *path, const char *body, json_t **out)
{
        call_opts o = {.token = f->admin};
        return call(f, method, path, body, &o, out);
}

static const char *err_code(const json_t *j)
{
        return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}
static const char *err_path(const json_t *j)
{
        return json_string_value(json_object_get(json_object_get(j, "error"), "path"));
}
static const char *err_msg(const json_t *j)
{
        return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

#define SITE_BODY(name, labels) "{\"kind\":\"site\",\"name\":\"" name "\",\"labels\":" labels "}"
#define APP_BODY(version, replicas)                                                                \
        "{\"kind\":\"application\",\"name\":\"pos\",\"version\":\"" version "\","                  \
        "\"services\":[{\"name\":\"api\",\"replicas\":" #replicas ",\"containers\":"               \
        "[{\"name\":\"api\",\"image\":\"localhost/pos:" version "\"}]}]}"
#define DEP_BODY(version, sites)                                                                   \
        "{\"kind\":\"deployment\",\"name\":\"pos-stores\",\"application\":\"pos\","                \
        "\"version\":\"" version "\",\"sites\":\"" sites "\"}"

static void put_ok(fx *f, const char *path, const char *body, const char *result)
{
        json_t *j = NULL;
        int st = admin_call(f, "PUT", path, body, &j);
        if (st != 200)
                fail_msg("PUT %s: %d %s", path, st, json_dumps(j, 0));
        assert_string_equal(json_string_value(json_object_get(j, "result")), result);
        json_decref(j);
}

static void test_auth_and_routing(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        assert_int_equal(admin_call(f, "GET", "/v1/whoami", NULL, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), "default");
        assert_string_equal(json_string_value(json_object_get(j, "user")), "admin");
        assert_string_equal(json_string_value(json_object_get(j, "role")), "admin");
        json_decref(j);

        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, NULL, &j), 401);
        assert_string_equal(err_code(j), "unauthenticated");
        json_decref(j);
        call_opts bad = {.token = "not-a-token"};
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &bad, &j), 401);
        assert_string_equal(err_msg(j), "unknown token");
        json_decref(j);
        /* a host certificate is no user credential */
        call_opts host = {.peer = true};
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &host, &j), 401);
        assert_non_null(strstr(err_msg(j), "host certificates are not accepted"));
        json_decref(j);

        assert_int_equal(admin_call(f, "GET", "/v1/nothing", NULL, &j), 404);
        assert_string_equal(err_code(j), "not-found");
        json_decref(j);
        assert_int_equal(admin_call(f, "PATCH", "/v1/sites/x", NULL, &j), 405);
        assert_string_equal(err_code(j), "method-not-allowed");
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/sites/Bad_Name", NULL, &j), 400);
        assert_string_equal(err_path(j), "name");
        json_decref(j);
        assert_int_equal(admin_call(f, "PUT", "/v1/sites/s1", "{not json", &j), 400);
        assert_string_equal(err_code(j), "bad-json");
        json_decref(j);
}

static void test_login_password_roles(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        assert_int_equal(
            admin_call(f, "PUT", "/v1/users/admin/password", "{\"password\":\"short\"}", &j), 400);
        assert_string_equal(err_path(j), "password");
        json_decref(j);
        assert_int_equal(admin_call(f, "PUT", "/v1/users/admin/password",
                                    "{\"password\":\"correct horse\"}", &j),
                         200);
        json_decref(j);
        assert_int_equal(
            call(f, "POST", "/v1/login",
                 "{\"tenant\":\"default\",\"user\":\"admin\",\"password\":\"wrong one\"}", NULL,
                 &j),
            401);
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/login",
                              "{\"tenant\":\"default\",\"user\":\"admin\",\"password\":\"correct "
                              "horse\"}",
                              NULL, &j),
                         200);
        char *tok = strdup(json_string_value(json_object_get(j, "token")));
        assert_non_null(json_string_value(json_object_get(j, "expires")));
        json_decref(j);
        call_opts o = {.token = tok};
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &o, &j), 200);
        json_decref(j);
        /* a day later the login token has expired; the admin token never does */
        fake_now += 25LL * 3600 * 1000;
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &o, &j), 401);
        assert_string_equal(err_msg(j), "token expired");
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/whoami", NULL, &j), 200);
        json_decref(j);
        free(tok);

        /* a viewer reads but does not write */
        put_ok(f, "/v1/users/vera", "{\"kind\":\"user\",\"name\":\"vera\",\"role\":\"viewer\"}",
               "created");
        assert_int_equal(
            admin_call(f, "PUT", "/v1/users/vera/password", "{\"password\":\"vera's secret\"}", &j),
            200);
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/login",
                              "{\"tenant\":\"default\",\"user\":\"vera\",\"password\":\"vera's "
                              "secret\"}",
                              NULL, &j),
                         200);
        tok = strdup(json_string_value(json_object_get(j, "token")));
        json_decref(j);
        o.token = tok;
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &o, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "PUT", "/v1/sites/s1", SITE_BODY("s1", "{}"), &o, &j), 403);
        assert_string_equal(err_code(j), "forbidden");
        json_decref(j);
        call_opts other = {.token = tok, .query = {"tenant", "default"}};
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &other, &j), 200);
        json_decref(j);
        /* a tenant outside the caller's subtree is not found, whether it exists or not */
        other.query[1] = "acme";
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &other, &j), 404);
        assert_string_equal(err_path(j), "tenant");
        json_decref(j);
        /* a deleted user's tokens stop at once */
        assert_int_equal(admin_call(f, "DELETE", "/v1/users/vera", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &o, &j), 401);
        json_decref(j);
        free(tok);
}

static void test_tenants(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/tenants/acme",
               "{\"kind\":\"tenant\",\"name\":\"acme\",\"type\":\"application\"}", "created");
        assert_int_equal(admin_call(f, "PUT", "/v1/users/al",
                                    "{\"kind\":\"user\",\"name\":\"al\",\"tenant\":\"nope\","
                                    "\"role\":\"admin\"}",
                                    &j),
                         400);
        assert_string_equal(err_path(j), "tenant");
        json_decref(j);
        put_ok(f, "/v1/users/al",
               "{\"kind\":\"user\",\"name\":\"al\",\"tenant\":\"acme\",\"role\":\"admin\"}",
               "created");
        call_opts acme = {.token = f->admin, .query = {"tenant", "acme"}};
        assert_int_equal(call(f, "GET", "/v1/users/al", NULL, &acme, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/users/al", NULL, &j), 404);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/tenants/acme", NULL, &j), 409);
        json_decref(j);
        assert_int_equal(call(f, "DELETE", "/v1/users/al", NULL, &acme, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/tenants/acme", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &acme, &j), 404);
        assert_string_equal(err_path(j), "tenant");
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/tenants/default", NULL, &j), 409);
        json_decref(j);
}

static void test_sites_and_match(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/sites/store-001",
               SITE_BODY("store-001", "{\"chain\":\"acme\",\"region\":\"north\"}"), "created");
        put_ok(f, "/v1/sites/store-001",
               SITE_BODY("store-001", "{\"chain\":\"acme\",\"region\":\"north\"}"), "unchanged");
        put_ok(f, "/v1/sites/store-002", SITE_BODY("store-002", "{\"chain\":\"bolt\"}"), "created");
        put_ok(f, "/v1/sites/store-002", SITE_BODY("store-002", "{\"chain\":\"bolt\",\"x\":\"y\"}"),
               "updated");
        assert_int_equal(
            admin_call(f, "PUT", "/v1/sites/store-003", SITE_BODY("store-004", "{}"), &j), 400);
        assert_string_equal(err_path(j), "name");
        json_decref(j);

        assert_int_equal(admin_call(f, "GET", "/v1/sites/store-001", NULL, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), "default");
        assert_non_null(json_string_value(json_object_get(j, "created")));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "labels"), "chain")), "acme");
        json_decref(j);

        call_opts m = {.token = f->admin,
                       .query = {"match", "chain = acme or system/name = store-002"}};
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &m, &j), 200);
        assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
        json_decref(j);
        m.query[1] = "system/tenant = default and region = north";
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &m, &j), 200);
        assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
        json_decref(j);
        m.query[1] = "chain = = acme";
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &m, &j), 400);
        assert_string_equal(err_code(j), "invalid");
        assert_true(json_integer_value(json_object_get(json_object_get(j, "error"), "column")) > 0);
        json_decref(j);

        assert_int_equal(admin_call(f, "DELETE", "/v1/sites/store-002", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/sites/store-002", NULL, &j), 404);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/sites/store-002", NULL, &j), 404);
        json_decref(j);
}

static void test_applications_and_deployments(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/applications/pos", APP_BODY("2.1.0", 2), "created");
        put_ok(f, "/v1/applications/pos", APP_BODY("10.0.0", 1), "created");
        put_ok(f, "/v1/applications/pos", APP_BODY("2.1.0", 2), "unchanged");
        assert_int_equal(admin_call(f, "PUT", "/v1/applications/pos", APP_BODY("2.1.0", 3), &j),
                         409);
        assert_string_equal(err_code(j), "conflict");
        json_decref(j);
        /* the same version again in other words is the same (keys in any order, defaults
         * spelled out); a cpu written otherwise is other content */
#define ENV_APP(env, cpu)                                                                          \
        "{\"kind\":\"app\",\"name\":\"pos\",\"version\":\"3.0.0\",\"services\":[{\"name\":"        \
        "\"api\",\"resources\":{\"cpu\":" cpu "},\"containers\":[{\"name\":\"api\",\"image\":"     \
        "\"x\",\"env\":" env "}]}]}"
        put_ok(f, "/v1/applications/pos", ENV_APP("{\"B\":\"1\",\"A\":\"2\"}", "0.5"), "created");
        put_ok(f, "/v1/applications/pos",
               "{\"services\":[{\"containers\":[{\"env\":{\"A\":\"2\",\"B\":\"1\"},\"image\":"
               "\"x\",\"name\":\"api\",\"restart\":\"always\"}],\"resources\":{\"cpu\":0.5},"
               "\"replicas\":1,\"name\":\"api\"}],\"version\":\"3.0.0\",\"name\":\"pos\"}",
               "unchanged");
        put_ok(f, "/v1/applications/pos", ENV_APP("{\"B\":\"1\",\"A\":\"2\"}", "0.5"), "unchanged");
        assert_int_equal(admin_call(f, "PUT", "/v1/applications/pos",
                                    ENV_APP("{\"B\":\"1\",\"A\":\"2\"}", "\"500m\""), &j),
                         409);
        json_decref(j);
        call_opts v3 = {.token = f->admin, .query = {"version", "3.0.0"}};
        assert_int_equal(call(f, "DELETE", "/v1/applications/pos", NULL, &v3, &j), 200);
        json_decref(j);

        assert_int_equal(admin_call(f, "GET", "/v1/applications/pos", NULL, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "version")), "10.0.0");
        json_t *vs = json_object_get(j, "versions");
        assert_int_equal(json_array_size(vs), 2);
        assert_string_equal(json_string_value(json_array_get(vs, 0)), "2.1.0");
        assert_string_equal(json_string_value(json_array_get(vs, 1)), "10.0.0");
        json_decref(j);
        call_opts v = {.token = f->admin, .query = {"version", "2.1.0"}};
        assert_int_equal(call(f, "GET", "/v1/applications/pos", NULL, &v, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "version")), "2.1.0");
        json_decref(j);

        assert_int_equal(admin_call(f, "PUT", "/v1/deployments/pos-stores",
                                    "{\"kind\":\"deployment\",\"name\":\"pos-stores\","
                                    "\"application\":\"nope\",\"version\":\"*\",\"sites\":\"a\"}",
                                    &j),
                         400);
        assert_string_equal(err_path(j), "application");
        json_decref(j);
        assert_int_equal(admin_call(f, "PUT", "/v1/deployments/pos-stores",
                                    DEP_BODY("3.0.0", "chain = acme"), &j),
                         400);
        assert_string_equal(err_path(j), "version");
        json_decref(j);
        put_ok(f, "/v1/deployments/pos-stores", DEP_BODY("2.1.0", "chain = acme"), "created");
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{\"chain\":\"acme\"}"), "created");
        put_ok(f, "/v1/sites/store-002", SITE_BODY("store-002", "{\"chain\":\"bolt\"}"), "created");

        assert_int_equal(admin_call(f, "GET", "/v1/deployments/pos-stores", NULL, &j), 200);
        json_t *st = json_object_get(j, "status");
        assert_int_equal(json_array_size(json_object_get(st, "sites")), 1);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(st, "sites"), 0), "site")),
                            "store-001");
        assert_int_equal(json_integer_value(json_object_get(st, "desired")), 2);
        assert_int_equal(json_integer_value(json_object_get(st, "running")), 0);
        json_decref(j);

        /* versions in use stay */
        call_opts del = {.token = f->admin, .query = {"version", "2.1.0"}};
        assert_int_equal(call(f, "DELETE", "/v1/applications/pos", NULL, &del, &j), 409);
        json_decref(j);
        del.query[1] = "10.0.0";
        assert_int_equal(call(f, "DELETE", "/v1/applications/pos", NULL, &del, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/applications/pos", NULL, &j), 409);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/deployments/pos-stores", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "DELETE", "/v1/applications/pos", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/applications", NULL, &j), 200);
        assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
        json_decref(j);
}

static char *new_join_token(fx *f, const char *site)
{
        char path[128];
        snprintf(path, sizeof(path), "/v1/sites/%s/tokens", site);
        json_t *j = NULL;
        assert_int_equal(admin_call(f, "POST", path, NULL, &j), 200);
        char *tok = strdup(json_string_value(json_object_get(j, "token")));
        json_decref(j);
        return tok;
}

static char *join_body(const char *token, const char *name)
{
        char *key = NULL, *csr = NULL;
        assert_int_equal(sk_pki_make_key_and_csr(name, &key, &csr, NULL), 0);
        json_t *b = json_pack("{s:s, s:s, s:s, s:{s:s}}", "token", token, "csr", csr, "name", name,
                              "labels", "role", "till");
        char *text = json_dumps(b, 0);
        json_decref(b);
        free(key);
        free(csr);
        return text;
}

/* Joins host name to site; returns the host's URI. */
static char *join(fx *f, const char *site, const char *name)
{
        _cleanup_free_ char *tok = new_join_token(f, site);
        _cleanup_free_ char *body = join_body(tok, name);
        json_t *j = NULL;
        int st = call(f, "POST", "/v1/join", body, NULL, &j);
        if (st != 200)
                fail_msg("join: %d %s", st, json_dumps(j, 0));
        char *uri = NULL;
        assert_true(asprintf(&uri, "skerry://site/%lld/host/%lld",
                             (long long)json_integer_value(json_object_get(j, "site-id")),
                             (long long)json_integer_value(json_object_get(j, "host-id"))) > 0);
        assert_non_null(
            strstr(json_string_value(json_object_get(j, "certificate")), "BEGIN CERTIFICATE"));
        json_decref(j);
        return uri;
}

static void test_join(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{}"), "created");
        _cleanup_free_ char *tok = new_join_token(f, "store-001");
        _cleanup_free_ char *body = join_body(tok, "h1");
        assert_int_equal(call(f, "POST", "/v1/join", body, NULL, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "site")), "store-001");
        assert_string_equal(json_string_value(json_object_get(j, "host")), "h1");
        assert_non_null(strstr(json_string_value(json_object_get(j, "ca")), "BEGIN CERTIFICATE"));
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/join", body, NULL, &j), 401);
        assert_string_equal(err_msg(j), "join token already used");
        json_decref(j);
        _cleanup_free_ char *unknown = join_body("no-such-token", "h2");
        assert_int_equal(call(f, "POST", "/v1/join", unknown, NULL, &j), 401);
        assert_string_equal(err_msg(j), "unknown join token");
        json_decref(j);

        _cleanup_free_ char *tok2 = new_join_token(f, "store-001");
        _cleanup_free_ char *dup = join_body(tok2, "h1");
        assert_int_equal(call(f, "POST", "/v1/join", dup, NULL, &j), 409);
        json_decref(j);
        /* the failed join did not use up the token */
        _cleanup_free_ char *again = join_body(tok2, "h2");
        assert_int_equal(call(f, "POST", "/v1/join", again, NULL, &j), 200);
        json_decref(j);

        _cleanup_free_ char *tok3 = new_join_token(f, "store-001");
        fake_now += 3601LL * 1000;
        _cleanup_free_ char *late = join_body(tok3, "h3");
        assert_int_equal(call(f, "POST", "/v1/join", late, NULL, &j), 401);
        assert_string_equal(err_msg(j), "join token expired");
        json_decref(j);

        assert_int_equal(
            admin_call(f, "POST", "/v1/sites/store-001/tokens", "{\"ttl\":\"9000h\"}", &j), 400);
        assert_string_equal(err_path(j), "ttl");
        json_decref(j);

        call_opts q = {.token = f->admin, .query = {"site", "store-001"}};
        assert_int_equal(call(f, "GET", "/v1/hosts", NULL, &q, &j), 200);
        assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(json_array_get(json_object_get(j, "items"), 0), "labels"), "role")),
            "till");
        json_decref(j);
}

static void test_sync(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{\"chain\":\"acme\"}"), "created");
        f->peer_uri = join(f, "store-001", "h1");
        call_opts host = {.peer = true, .query = {"wait", "5"}};
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 200);
        int64_t gen = json_integer_value(json_object_get(j, "generation"));
        assert_true(gen >= 1);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "site"), "name")),
                            "store-001");
        assert_int_equal(json_array_size(json_object_get(j, "deployments")), 0);
        json_decref(j);

        /* nothing new: the request is to be held */
        char g[32];
        snprintf(g, sizeof(g), "%lld", (long long)gen);
        call_opts same = {.peer = true, .query = {"generation", g, "wait", "5"}};
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &same, &j), 204);
        assert_null(j);

        /* user tokens are refused on host routes; unknown certificates too */
        call_opts user = {.token = f->admin, .peer = true};
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &user, &j), 401);
        json_decref(j);
        call_opts nocert = {0};
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &nocert, &j), 401);
        assert_string_equal(err_msg(j), "no client certificate");
        json_decref(j);

        /* a deployment that selects the site reaches it with a new generation */
        f->n_notified = 0;
        put_ok(f, "/v1/applications/pos", APP_BODY("1.0.0", 1), "created");
        assert_int_equal(f->n_notified, 0); /* an application alone changes no site */
        put_ok(f, "/v1/deployments/pos-stores", DEP_BODY("*", "chain = acme"), "created");
        assert_int_equal(f->n_notified, 1);
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &same, &j), 200);
        assert_int_equal(json_integer_value(json_object_get(j, "generation")), gen + 1);
        json_t *d = json_array_get(json_object_get(j, "deployments"), 0);
        assert_string_equal(json_string_value(json_object_get(d, "version")), "1.0.0");
        assert_string_equal(json_string_value(json_object_get(json_object_get(d, "spec"), "name")),
                            "pos");
        json_decref(j);

        /* "*" follows a newer version; relabelling the site away drops the deployment */
        f->n_notified = 0;
        put_ok(f, "/v1/applications/pos", APP_BODY("1.1.0", 1), "created");
        assert_int_equal(f->n_notified, 1);
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{\"chain\":\"bolt\"}"), "updated");
        assert_int_equal(f->n_notified, 2);
        snprintf(g, sizeof(g), "%lld", (long long)gen + 1);
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &same, &j), 200);
        assert_int_equal(json_integer_value(json_object_get(j, "generation")), gen + 3);
        assert_int_equal(json_array_size(json_object_get(j, "deployments")), 0);
        json_decref(j);

        /* status reports become instances and deployment status; each instance is parsed
         * and validated (model/instance.h), and a bad one is named by its place */
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{\"chain\":\"acme\"}"), "updated");
        assert_int_equal(call(f, "POST", "/v1/sync/status",
                              "{\"host\":\"h1\",\"instances\":[{\"instance\":\"default/"
                              "pos-stores/api/0\",\"tenant\":\"default\",\"deployment\":"
                              "\"pos-stores\",\"service\":\"api\",\"state\":\"sleepy\"}]}",
                              &host, &j),
                         400);
        assert_string_equal(err_path(j), "instances[0].state");
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/sync/status",
                              "{\"host\":\"h1\",\"instances\":[{\"instance\":\"x\"}]}", &host, &j),
                         400);
        assert_string_equal(err_path(j), "instances[0].tenant");
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/sync/status",
                              "{\"host\":\"h1\",\"capacity\":{\"cpu\":2000},\"instances\":["
                              "{\"instance\":\"default/pos-stores/api/0\",\"tenant\":"
                              "\"default\",\"deployment\":\"pos-stores\",\"service\":\"api\","
                              "\"replica\":0,\"site\":\"elsewhere\",\"version\":\"1.1.0\","
                              "\"state\":\"running\"}]}",
                              &host, &j),
                         200);
        json_decref(j);
        assert_int_equal(
            call(f, "POST", "/v1/sync/status", "{\"host\":\"h9\",\"instances\":[]}", &host, &j),
            400);
        assert_string_equal(err_path(j), "host");
        json_decref(j);
        call_opts q = {.token = f->admin, .query = {"site", "store-001"}};
        assert_int_equal(call(f, "GET", "/v1/instances", NULL, &q, &j), 200);
        json_t *it = json_array_get(json_object_get(j, "items"), 0);
        assert_string_equal(json_string_value(json_object_get(it, "host")), "h1");
        assert_string_equal(json_string_value(json_object_get(it, "site")), "store-001");
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/v1/deployments/pos-stores", NULL, &j), 200);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(j, "status"), "running")), 1);
        json_decref(j);

        /* a deleted site forgets its hosts: their certificates stop working */
        assert_int_equal(admin_call(f, "DELETE", "/v1/sites/store-001", NULL, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 401);
        json_decref(j);
}

static void test_sync_scope(void **state)
{
        fx *f = *state;
        put_ok(f, "/v1/applications/pos", APP_BODY("1.0.0", 1), "created");
        put_ok(f, "/v1/deployments/pos-stores", DEP_BODY("*", "chain = acme"), "created");
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{\"chain\":\"acme\"}"), "created");
        put_ok(f, "/v1/sites/store-002", SITE_BODY("store-002", "{\"chain\":\"bolt\"}"), "created");
        int64_t s1 = f->notified[f->n_notified - 2], s2 = f->notified[f->n_notified - 1];
        assert_true(s1 != s2);
        /* a site write touches that site alone */
        f->n_notified = 0;
        put_ok(f, "/v1/sites/store-002", SITE_BODY("store-002", "{\"chain\":\"acme\"}"), "updated");
        assert_int_equal(f->n_notified, 1);
        assert_int_equal(f->notified[0], s2);
        /* users change no site */
        put_ok(f, "/v1/users/bob", "{\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\"}",
               "created");
        assert_int_equal(f->n_notified, 1);
        /* a new version reaches both sites of the "*" deployment */
        put_ok(f, "/v1/applications/pos", APP_BODY("1.0.1", 1), "created");
        assert_int_equal(f->n_notified, 3);
        json_t *doc = NULL;
        assert_int_equal(sk_tower_sync_desired(f->api, s2, &doc, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(doc, "deployments"), 0), "version")),
                            "1.0.1");
        json_decref(doc);
}

static char *login_token(fx *f, const char *tenant, const char *user, const char *pw, int want)
{
        char body[256];
        snprintf(body, sizeof(body), "{\"tenant\":\"%s\",\"user\":\"%s\",\"password\":\"%s\"}",
                 tenant, user, pw);
        json_t *j = NULL;
        call_opts o = {0};
        int st = call(f, "POST", "/v1/login", body, &o, &j);
        if (st != want)
                fail_msg("login %s/%s: %d, want %d", tenant, user, st, want);
        char *tok = st == 200 ? strdup(json_string_value(json_object_get(j, "token"))) : NULL;
        if (st != 200 && st != 429)
                assert_string_equal(err_msg(j), "wrong tenant, user or password");
        if (st == 429)
                assert_string_equal(err_msg(j), "too many failed logins; try again later");
        json_decref(j);
        return tok;
}

/* Application tenants deploy only onto the sites their provider assigned them; quotas go
 * into each assigned site's document; a tenant sees no other tenant's sites or hosts. */
#define S1_HASHED                                                                                  \
        "{\"deployments\":[{\"application\":\"pos\",\"name\":\"pos-stores\",\"spec\":{\"kind\":"   \
        "\"application\",\"name\":\"pos\",\"services\":[{\"containers\":[{\"image\":\"localhost/"  \
        "pos:1.0.0\",\"name\":\"api\",\"restart\":\"always\"}],\"name\":\"api\",\"network\":{"     \
        "\"outbound\":\"deny\"},\"replicas\":1}],\"version\":\"1.0.0\"},\"tenant\":\"acme\","      \
        "\"version\":\"1.0.0\"}],\"quotas\":{\"acme\":{\"cpu\":4000,\"instances\":20,\"memory\":"  \
        "8589934592}},\"site\":{\"host-lost-after\":\"5s\",\"labels\":{\"chain\":\"shared\"},"     \
        "\"name\":\"s1\",\"tenant\":\"retail\"}}"

static void test_tenancy_sync(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/tenants/retail",
               "{\"kind\":\"tenant\",\"name\":\"retail\",\"type\":\"provider\"}", "created");
        call_opts retail = {.token = f->admin, .query = {"tenant", "retail"}};
        call_opts acme = {.token = f->admin, .query = {"tenant", "acme"}};
        assert_int_equal(call(f, "PUT", "/v1/tenants/acme",
                              "{\"kind\":\"tenant\",\"name\":\"acme\",\"sites\":\"chain = "
                              "shared\",\"quota-per-site\":{\"cpu\":4,\"memory\":\"8Gi\","
                              "\"instances\":20}}",
                              &retail, &j),
                         200);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "item"), "parent")), "retail");
        json_decref(j);
        /* a provider assigns no sites; a tenant does not move */
        assert_int_equal(call(f, "PUT", "/v1/tenants/acme",
                              "{\"kind\":\"tenant\",\"name\":\"acme\",\"parent\":\"default\"}",
                              &retail, &j),
                         400);
        assert_string_equal(err_path(j), "parent");
        json_decref(j);
        assert_int_equal(call(f, "PUT", "/v1/tenants/acme",
                              "{\"kind\":\"tenant\",\"name\":\"acme\",\"type\":\"provider\"}",
                              &retail, &j),
                         400);
        assert_string_equal(err_path(j), "type");
        json_decref(j);
        assert_int_equal(
            call(f, "PUT", "/v1/sites/s1", SITE_BODY("s1", "{\"chain\":\"shared\"}"), &retail, &j),
            200);
        json_decref(j);
        /* the root's own site has the same labels, but root is not acme's provider */
        put_ok(f, "/v1/sites/s2", SITE_BODY("s2", "{\"chain\":\"shared\"}"), "created");
        assert_int_equal(
            call(f, "PUT", "/v1/sites/s3", SITE_BODY("s3", "{\"chain\":\"other\"}"), &retail, &j),
            200);
        json_decref(j);
        assert_int_equal(call(f, "PUT", "/v1/applications/pos", APP_BODY("1.0.0", 1), &acme, &j),
                         200);
        json_decref(j);
        /* the deployment's own expression selects everything: the assignment narrows it */
        assert_int_equal(
            call(f, "PUT", "/v1/deployments/pos-stores", DEP_BODY("*", "chain"), &acme, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/deployments/pos-stores", NULL, &acme, &j), 200);
        json_t *sites = json_object_get(json_object_get(j, "status"), "sites");
        assert_int_equal(json_array_size(sites), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(sites, 0), "site")),
                            "s1");
        json_decref(j);
        /* an application tenant sees its assigned sites by name and labels, nothing else */
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &acme, &j), 200);
        json_t *items = json_object_get(j, "items");
        assert_int_equal(json_array_size(items), 1);
        assert_null(json_object_get(json_array_get(items, 0), "host-lost-after"));
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/sites/s2", NULL, &acme, &j), 404);
        json_decref(j);
        call_opts acme_hosts = {.token = f->admin, .query = {"tenant", "acme", "site", "s1"}};
        assert_int_equal(call(f, "GET", "/v1/hosts", NULL, &acme_hosts, &j), 403);
        json_decref(j);

        /* the sync documents: s1 carries the deployment and acme's quota, s2 and s3 neither */
        int64_t s1 = 0;
        json_t *doc = NULL;
        for (int64_t id = 1; id < 64 && !s1; id++) {
                if (sk_tower_sync_desired(f->api, id, &doc, NULL) < 0)
                        continue;
                const char *n =
                    json_string_value(json_object_get(json_object_get(doc, "site"), "name"));
                if (strcmp(n, "s1") == 0) {
                        s1 = id;
                        /* what the site's generation hashes: byte for byte what the tower
                         * hashed before it built the document from structs */
                        char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
                        assert_string_equal(text, S1_HASHED);
                        free(text);
                        assert_int_equal(json_array_size(json_object_get(doc, "deployments")), 1);
                        json_t *q = json_object_get(json_object_get(doc, "quotas"), "acme");
                        assert_int_equal(json_integer_value(json_object_get(q, "cpu")), 4000);
                        assert_int_equal(json_integer_value(json_object_get(q, "memory")),
                                         8LL * 1024 * 1024 * 1024);
                        assert_int_equal(json_integer_value(json_object_get(q, "instances")), 20);
                } else {
                        assert_int_equal(json_array_size(json_object_get(doc, "deployments")), 0);
                        assert_null(json_object_get(doc, "quotas"));
                }
                json_decref(doc);
        }
        assert_true(s1 > 0);

        /* a provider with sub-tenants cannot go; deleting a child is its parent's business */
        assert_int_equal(admin_call(f, "DELETE", "/v1/tenants/retail", NULL, &j), 409);
        json_decref(j);
}

/* API tokens, revocation, the lockout and the audit trail. */
static void test_tokens_lockout_events(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/users/dev", "{\"kind\":\"user\",\"name\":\"dev\",\"role\":\"developer\"}",
               "created");
        assert_int_equal(
            admin_call(f, "PUT", "/v1/users/dev/password", "{\"password\":\"dev secret\"}", &j),
            200);
        json_decref(j);
        char *dev = login_token(f, "default", "dev", "dev secret", 200);
        call_opts o = {.token = dev};
        /* no more than one's own role */
        assert_int_equal(call(f, "POST", "/v1/tokens", "{\"role\":\"admin\"}", &o, &j), 403);
        assert_string_equal(err_path(j), "role");
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/tokens",
                              "{\"role\":\"viewer\",\"ttl\":\"1h\",\"name\":\"ci\"}", &o, &j),
                         200);
        char *api = strdup(json_string_value(json_object_get(j, "token")));
        char *api_id = strdup(json_string_value(json_object_get(j, "id")));
        json_decref(j);
        call_opts a = {.token = api};
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &a, &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "role")), "viewer");
        json_decref(j);
        assert_int_equal(call(f, "PUT", "/v1/applications/pos", APP_BODY("1.0.0", 1), &a, &j), 403);
        json_decref(j);
        /* nor may it change its user's password, nor make tokens */
        assert_int_equal(
            call(f, "PUT", "/v1/users/dev/password", "{\"password\":\"taken over\"}", &a, &j), 403);
        json_decref(j);
        assert_int_equal(call(f, "POST", "/v1/tokens", NULL, &a, &j), 403);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/tokens", NULL, &o, &j), 200);
        assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
        json_decref(j);
        /* revoked: refused with that reason; an expired one likewise */
        char path[64];
        snprintf(path, sizeof(path), "/v1/tokens/%s", api_id);
        assert_int_equal(call(f, "DELETE", path, NULL, &o, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &a, &j), 401);
        assert_string_equal(err_msg(j), "token revoked");
        json_decref(j);
        assert_int_equal(call(f, "DELETE", "/v1/tokens/ffffffffffff", NULL, &o, &j), 404);
        json_decref(j);

        /* five failures lock the user: then even the right password is refused, as is an
         * unknown user with the same message as a wrong password */
        char *none = login_token(f, "default", "nobody", "whatever", 401);
        for (int i = 0; i < 5; i++)
                free(login_token(f, "default", "dev", "wrong", 401));
        free(login_token(f, "default", "dev", "dev secret", 429));
        fake_now += 31 * 1000; /* the first lock lasts 30 s */
        char *again = login_token(f, "default", "dev", "dev secret", 200);

        /* the audit trail: admins read it, with the failed logins in it */
        assert_int_equal(call(f, "GET", "/v1/events", NULL, &o, &j), 403);
        json_decref(j);
        call_opts since = {.token = f->admin, .query = {"since", "1h"}};
        assert_int_equal(call(f, "GET", "/v1/events", NULL, &since, &j), 200);
        size_t i, logins_failed = 0, revokes = 0;
        json_t *ev;
        json_array_foreach(json_object_get(j, "items"), i, ev)
        {
                const char *p = json_string_value(json_object_get(ev, "path"));
                int st = (int)json_integer_value(json_object_get(ev, "status"));
                if (strcmp(p, "/v1/login") == 0 && st == 401 &&
                    strcmp(json_string_value(json_object_get(ev, "actor")), "default/dev") == 0)
                        logins_failed++;
                if (strcmp(p, path) == 0 && st == 200)
                        revokes++;
        }
        assert_int_equal(logins_failed, 5);
        assert_int_equal(revokes, 1);
        json_decref(j);
        call_opts bad = {.token = f->admin, .query = {"since", "yesterday"}};
        assert_int_equal(call(f, "GET", "/v1/events", NULL, &bad, &j), 400);
        assert_string_equal(err_path(j), "since");
        json_decref(j);
        free(none);
        free(again);
        free(dev);
        free(api);
        free(api_id);
}

/* A site-local host's certificate: key and chain "leaf + site CA", signed by site_ca. */
static char *site_signed(const char *site_ca, const char *site_key, int64_t site_id, int64_t n,
                         char **uri)
{
        _cleanup_ca_ sk_ca *sca = NULL;
        assert_int_equal(sk_ca_load_site(site_ca, site_key, &sca, NULL), 0);
        _cleanup_free_ char *key = NULL, *csr = NULL, *leaf = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("ghost", &key, &csr, NULL), 0);
        int64_t id = SK_PKI_LOCAL_ID_BASE + site_id * (1LL << 24) + n;
        assert_true(
            asprintf(uri, "skerry://site/%lld/host/%lld", (long long)site_id, (long long)id) > 0);
        assert_int_equal(sk_ca_sign_client(sca, csr, "ghost", *uri, 30, &leaf, NULL), 0);
        char *chain = NULL;
        assert_true(asprintf(&chain, "%s%s", leaf, site_ca) > 0);
        return chain;
}

/* The status body of the leader reporting a host that joined with the tower down. */
static char *adopt_body(const char *name, const char *uri, const char *chain)
{
        int64_t site = 0, host = 0;
        assert_int_equal(sk_pki_parse_host_uri(uri, &site, &host), 0);
        _cleanup_json_ json_t *b =
            json_pack("{s:s, s:I, s:[]}", "host", name, "host-id", (json_int_t)host, "instances");
        if (chain)
                json_object_set_new(b, "certificate", json_string(chain));
        return json_dumps(b, 0);
}

/* Removing a host re-keys the site CA (docs/security.md): the tower refuses hosts the
 * retired generation signed and adopts only hosts the current one signed. */
static void test_site_ca_rekey(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        put_ok(f, "/v1/sites/store-001", SITE_BODY("store-001", "{}"), "created");
        _cleanup_free_ char *h1 = join(f, "store-001", "h1");
        _cleanup_free_ char *h2 = join(f, "store-001", "h2");
        int64_t site_id = 0;
        assert_int_equal(sk_pki_parse_host_uri(h1, &site_id, NULL), 0);
        _cleanup_free_ char *c1 = NULL, *k1 = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, site_id, &c1, &k1, NULL), 0);
        char fp1[SK_PKI_FP_LEN];
        assert_int_equal(sk_pki_fingerprint(c1, fp1, NULL), 0);
        call_opts host = {.peer = true};

        /* Generation 1 came with every join: the document does not announce it. */
        free(f->peer_uri);
        f->peer_uri = strdup(h1);
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 200);
        assert_null(json_object_get(j, "site-ca"));
        json_decref(j);

        /* Adoption needs the host's certificate, chained through the site CA. */
        _cleanup_free_ char *u1 = NULL, *u2 = NULL, *u3 = NULL, *u4 = NULL;
        _cleanup_free_ char *g1 = site_signed(c1, k1, site_id, 1, &u1);
        _cleanup_free_ char *b1 = adopt_body("ghost1", u1, NULL);
        assert_int_equal(call(f, "POST", "/v1/sync/status", b1, &host, &j), 400);
        assert_non_null(strstr(err_msg(j), "certificate"));
        json_decref(j);
        _cleanup_free_ char *b1c = adopt_body("ghost1", u1, g1);
        assert_int_equal(call(f, "POST", "/v1/sync/status", b1c, &host, &j), 200);
        json_decref(j);
        /* a certificate of another host id does not vouch for this one */
        free(site_signed(c1, k1, site_id, 2, &u2)); /* its id alone: the chain is g1 */
        _cleanup_free_ char *bx = adopt_body("ghost2", u2, g1);
        assert_int_equal(call(f, "POST", "/v1/sync/status", bx, &host, &j), 401);
        assert_non_null(strstr(err_msg(j), "not host"));
        json_decref(j);
        /* the adopted host itself is accepted with its generation-1 chain */
        free(f->peer_uri);
        f->peer_uri = strdup(u1);
        f->peer_site_ca = fp1;
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 200);
        json_decref(j);

        /* Removing h2 retires generation 1. */
        assert_int_equal(call(f, "DELETE", "/v1/hosts/h2", NULL,
                              &(call_opts){.token = f->admin, .query = {"site", "store-001"}}, &j),
                         200);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 401);
        assert_non_null(strstr(err_msg(j), "retired site CA"));
        json_decref(j);
        /* ...unless it is the very certificate the tower adopted (its private key stayed
         * with that host: the retired key cannot make it again). */
        char leaf1[SK_PKI_FP_LEN];
        assert_int_equal(sk_pki_fingerprint(g1, leaf1, NULL), 0);
        f->peer_leaf = leaf1;
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 200);
        json_t *leaves = json_object_get(json_object_get(j, "site-ca"), "leaves");
        assert_int_equal(json_array_size(leaves), 1);
        assert_string_equal(json_string_value(json_array_get(leaves, 0)), leaf1);
        json_decref(j);
        f->peer_leaf = NULL;

        /* The document announces generation 2; the leader fetches its key. */
        free(f->peer_uri);
        f->peer_uri = strdup(h1);
        f->peer_site_ca = NULL;
        assert_int_equal(call(f, "GET", "/v1/sync/desired", NULL, &host, &j), 200);
        json_t *ann = json_object_get(j, "site-ca");
        assert_int_equal(json_integer_value(json_object_get(ann, "generation")), 2);
        _cleanup_free_ char *fp2 = strdup(json_string_value(json_object_get(ann, "sha256")));
        assert_string_not_equal(fp2, fp1);
        json_decref(j);
        assert_int_equal(call(f, "GET", "/v1/sync/site-ca", NULL, &host, &j), 200);
        assert_int_equal(json_integer_value(json_object_get(j, "generation")), 2);
        assert_string_equal(json_string_value(json_object_get(j, "sha256")), fp2);
        _cleanup_free_ char *c2 = strdup(json_string_value(json_object_get(j, "certificate")));
        _cleanup_free_ char *k2 = strdup(json_string_value(json_object_get(j, "key")));
        json_decref(j);

        /* A host the removed one invents with the old key is not adopted... */
        _cleanup_free_ char *g3 = site_signed(c1, k1, site_id, 3, &u3);
        _cleanup_free_ char *b3 = adopt_body("ghost3", u3, g3);
        assert_int_equal(call(f, "POST", "/v1/sync/status", b3, &host, &j), 401);
        assert_non_null(strstr(err_msg(j), "retired site CA"));
        json_decref(j);
        /* ...one the current generation signed is. */
        _cleanup_free_ char *g4 = site_signed(c2, k2, site_id, 4, &u4);
        _cleanup_free_ char *b4 = adopt_body("ghost4", u4, g4);
        assert_int_equal(call(f, "POST", "/v1/sync/status", b4, &host, &j), 200);
        json_decref(j);

        /* The removed host is refused, as before; so is the site-ca route to it. */
        free(f->peer_uri);
        f->peer_uri = strdup(h2);
        assert_int_equal(call(f, "GET", "/v1/sync/site-ca", NULL, &host, &j), 401);
        json_decref(j);
}

/* /metrics: a provider's admins or its metrics tokens, and no other tenant's figures. */
static void test_metrics(void **state)
{
        fx *f = *state;
        json_t *j = NULL;
        sk_tower_api_count(f->api, "/v1/whoami", 200);
        call_opts anon = {0};
        assert_int_equal(call(f, "GET", "/metrics", NULL, &anon, &j), 401);
        json_decref(j);
        put_ok(f, "/v1/sites/s0", SITE_BODY("s0", "{}"), "created");
        put_ok(f, "/v1/tenants/retail",
               "{\"kind\":\"tenant\",\"name\":\"retail\",\"type\":\"provider\"}", "created");
        call_opts retail = {.token = f->admin, .query = {"tenant", "retail"}};
        assert_int_equal(call(f, "PUT", "/v1/sites/r1", SITE_BODY("r1", "{}"), &retail, &j), 200);
        json_decref(j);
        assert_int_equal(call(f, "PUT", "/v1/sites/r2", SITE_BODY("r2", "{}"), &retail, &j), 200);
        json_decref(j);
        assert_int_equal(admin_call(f, "GET", "/metrics", NULL, &j), 200);
        const char *text = json_string_value(j);
        assert_non_null(
            strstr(text, "skerry_tower_requests_total{route=\"/v1/whoami\",status=\"200\"} 1"));
        assert_non_null(strstr(text, "skerry_tower_longpolls_waiting 3"));
        assert_non_null(strstr(text, "skerry_tower_sites 3\n"));
        json_decref(j);
        /* a provider below the root: its own sites, none of the tower-wide figures */
        assert_int_equal(call(f, "GET", "/metrics", NULL, &retail, &j), 200);
        text = json_string_value(j);
        assert_non_null(strstr(text, "skerry_tower_sites 2\n"));
        assert_null(strstr(text, "skerry_tower_requests_total"));
        assert_null(strstr(text, "skerry_tower_longpolls_waiting"));
        json_decref(j);
        /* a metrics token reads /metrics and nothing else */
        assert_int_equal(
            admin_call(f, "PUT", "/v1/users/admin/password", "{\"password\":\"admin secret\"}", &j),
            200);
        json_decref(j);
        char *session = login_token(f, "default", "admin", "admin secret", 200);
        call_opts o = {.token = session};
        assert_int_equal(call(f, "POST", "/v1/tokens", "{\"role\":\"metrics\"}", &o, &j), 200);
        call_opts m = {.token = json_string_value(json_object_get(j, "token"))};
        json_t *mj = NULL;
        assert_int_equal(call(f, "GET", "/metrics", NULL, &m, &mj), 200);
        assert_non_null(strstr(json_string_value(mj), "skerry_tower_sites 3\n"));
        json_decref(mj);
        assert_int_equal(call(f, "GET", "/v1/whoami", NULL, &m, &mj), 403);
        json_decref(mj);
        assert_int_equal(call(f, "GET", "/v1/sites", NULL, &m, &mj), 403);
        json_decref(mj);
        json_decref(j);
        free(session);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_auth_and_routing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_login_password_roles, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sites_and_match, setup, teardown),
            cmocka_unit_test_setup_teardown(test_applications_and_deployments, setup, teardown),
            cmocka_unit_test_setup_teardown(test_join, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sync_scope, setup, teardown),
            cmocka_unit_test_setup_teardown(test_site_ca_rekey, setup, teardown),
            cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tenancy_sync, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tokens_lockout_events, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
