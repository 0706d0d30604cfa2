/* docs/openapi.yaml stays true to the tower: loaded with the project's own YAML loader, it
 * must document every route of the router's table and no other, give every operation its
 * responses, resolve every $ref, and state the authentication and authorization the router
 * really enforces.
 *
 * The route table exposes method, pattern and authentication (sk_tower_route_at), not its
 * roles and conditions, so those are read off the router itself: every user route is asked
 * once by a user of each role (and by an application tenant's admin, and by a user naming
 * itself), and a refusal by the table (a 403 "role R may not ...", or "... is an application
 * tenant; only providers ...") is told apart from whatever the handler answers next.
 *
 * Each check also runs against a damaged copy of the document, to show that it can fail.
 * The file is found relative to the repository root (tests run from it) or $SKERRY_SRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "tower/api.h"
#include "tower/store.h"

static const char *const ROLES[] = {"viewer", "developer", "operator", "admin"};
#define N_ROLES      SK_ARRAY_SIZE(ROLES)
#define MAX_ROUTES   128
#define APP_TENANT   "apps"
#define PROBE_NAME   "probe-x"
#define HTTP_METHODS "get put post delete patch head options trace"

/* What the router enforces on one route, as observed. */
typedef struct observed {
        unsigned roles; /* bit r: ROLES[r] passes the table */
        bool provider;  /* refused in an application tenant */
        bool self;      /* a refused role passes when {name} is the caller */
} observed;

typedef struct fx {
        json_t *doc;
        char dir[64];
        observed obs[MAX_ROUTES];
} fx;

/* ---- the document ---- */

static char *read_all(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t cap = 0, n = 0;
        for (;;) {
                if (n + 4096 > cap) {
                        cap = cap ? cap * 2 : 65536;
                        char *b = realloc(buf, cap);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return NULL;
                        }
                        buf = b;
                }
                size_t got = fread(buf + n, 1, cap - n, f);
                n += got;
                if (got == 0)
                        break;
        }
        fclose(f);
        *len = n;
        return buf;
}

static json_t *load_doc(void)
{
        const char *src = getenv("SKERRY_SRC");
        char path[4096];
        snprintf(path, sizeof(path), "%s/docs/openapi.yaml", src && *src ? src : ".");
        size_t len = 0;
        _cleanup_free_ char *text = read_all(path, &len);
        if (!text) {
                print_error("cannot read %s: run the test from the repository root or set "
                            "SKERRY_SRC\n",
                            path);
                return NULL;
        }
        sk_yaml_docs docs = {0};
        _cleanup_error_ sk_error *err = NULL;
        if (sk_yaml_load(text, len, &docs, &err) < 0) {
                print_error("%s:%d:%d: %s\n", path, err ? err->line : 0, err ? err->column : 0,
                            sk_error_msg(err, EINVAL));
                return NULL;
        }
        json_t *doc = docs.n == 1 ? json_incref(docs.docs[0].value) : NULL;
        if (docs.n != 1)
                print_error("%s: %zu YAML documents, want one\n", path, docs.n);
        sk_yaml_docs_free(&docs);
        return doc;
}

/* A route pattern or an OpenAPI path with every "{...}" segment written "{}". */
static void normalise(const char *path, char *out, size_t cap)
{
        size_t o = 0;
        for (const char *p = path; *p && o + 3 < cap;) {
                if (*p == '{') {
                        const char *end = strchr(p, '}');
                        if (end) {
                                out[o++] = '{';
                                out[o++] = '}';
                                p = end + 1;
                                continue;
                        }
                }
                out[o++] = *p++;
        }
        out[o] = '\0';
}

static void lower(const char *in, char *out, size_t cap)
{
        size_t i = 0;
        for (; in[i] && i + 1 < cap; i++)
                out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
        out[i] = '\0';
}

static bool is_http_method(const char *key)
{
        char list[] = HTTP_METHODS;
        char *save = NULL;
        for (char *m = strtok_r(list, " ", &save); m; m = strtok_r(NULL, " ", &save))
                if (strcmp(m, key) == 0)
                        return true;
        return false;
}

/* The path item whose template matches pattern, and its key; NULL when none. */
static json_t *path_item(const json_t *doc, const char *pattern, const char **key)
{
        char want[512], have[512];
        normalise(pattern, want, sizeof(want));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(doc, "paths"), k, v)
        {
                normalise(k, have, sizeof(have));
                if (strcmp(want, have) == 0) {
                        if (key)
                                *key = k;
                        return v;
                }
        }
        return NULL;
}

/* The operation of a route in the document, or NULL. */
static json_t *route_op(const json_t *doc, const char *method, const char *pattern)
{
        char m[16];
        lower(method, m, sizeof(m));
        return json_object_get(path_item(doc, pattern, NULL), m);
}

/* A local reference "#/a/b~1c" resolved as a JSON pointer, or NULL. */
static json_t *resolve(const json_t *doc, const char *ref)
{
        if (!ref || strncmp(ref, "#/", 2) != 0)
                return NULL;
        json_t *at = (json_t *)doc;
        const char *p = ref + 2;
        while (at && *p) {
                size_t n = strcspn(p, "/");
                char key[256];
                size_t k = 0;
                for (size_t i = 0; i < n && k + 1 < sizeof(key); i++) {
                        if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                                key[k++] = p[i + 1] == '0' ? '~' : '/';
                                i++;
                        } else {
                                key[k++] = p[i];
                        }
                }
                key[k] = '\0';
                at = json_object_get(at, key);
                p += n;
                if (*p == '/')
                        p++;
        }
        return at;
}

/* An object, or what its $ref points at. */
static json_t *deref(const json_t *doc, json_t *v)
{
        json_t *ref = json_object_get(v, "$ref");
        return ref ? resolve(doc, json_string_value(ref)) : v;
}

/* ---- check: the route table and the paths agree ---- */

static int check_routes(const json_t *doc)
{
        int bad = 0;
        if (strcmp(json_string_value(json_object_get(doc, "openapi")) ?: "", "3.0.3") != 0) {
                print_error("openapi must be \"3.0.3\"\n");
                bad++;
        }
        json_t *info = json_object_get(doc, "info");
        if (!json_is_string(json_object_get(info, "title")) ||
            !json_is_string(json_object_get(info, "version"))) {
                print_error("info needs a title and a version (strings)\n");
                bad++;
        }
        for (size_t i = 0; i < sk_tower_route_count(); i++) {
                const char *method, *pattern, *auth;
                sk_tower_route_at(i, &method, &pattern, &auth);
                if (!route_op(doc, method, pattern)) {
                        print_error("route %s %s is not in docs/openapi.yaml\n", method, pattern);
                        bad++;
                }
        }
        const char *key;
        json_t *item;
        json_object_foreach(json_object_get(doc, "paths"), key, item)
        {
                const char *first = NULL;
                path_item(doc, key, &first);
                if (first && strcmp(first, key) != 0) {
                        print_error("paths %s and %s are the same template\n", first, key);
                        bad++;
                }
                const char *m;
                json_t *op;
                json_object_foreach(item, m, op)
                {
                        if (!is_http_method(m))
                                continue;
                        bool found = false;
                        char want[512], have[512], lm[16];
                        normalise(key, want, sizeof(want));
                        for (size_t i = 0; i < sk_tower_route_count() && !found; i++) {
                                const char *method, *pattern, *auth;
                                sk_tower_route_at(i, &method, &pattern, &auth);
                                normalise(pattern, have, sizeof(have));
                                lower(method, lm, sizeof(lm));
                                found = strcmp(want, have) == 0 && strcmp(lm, m) == 0;
                        }
                        if (!found) {
                                print_error("docs/openapi.yaml documents %s %s, which the "
                                            "tower does not route\n",
                                            m, key);
                                bad++;
                        }
                }
        }
        return bad;
}

/* ---- check: operations (responses, operationId, path parameters) ---- */

/* Whether params (path-level or operation-level) declare the path parameter name. */
static bool declares(const json_t *doc, const json_t *params, const char *name)
{
        size_t i;
        json_t *p;
        json_array_foreach(params, i, p)
        {
                json_t *r = deref(doc, p);
                if (strcmp(json_string_value(json_object_get(r, "in")) ?: "", "path") == 0 &&
                    strcmp(json_string_value(json_object_get(r, "name")) ?: "", name) == 0)
                        return json_is_true(json_object_get(r, "required"));
        }
        return false;
}

static int check_params(const json_t *doc, const char *key, const json_t *item, const char *m,
                        const json_t *op)
{
        int bad = 0;
        /* every template segment is declared, required, in path */
        for (const char *p = strchr(key, '{'); p; p = strchr(p + 1, '{')) {
                const char *end = strchr(p, '}');
                if (!end)
                        break;
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
                if (!declares(doc, json_object_get(item, "parameters"), name) &&
                    !declares(doc, json_object_get(op, "parameters"), name)) {
                        print_error("%s %s: no required path parameter \"%s\"\n", m, key, name);
                        bad++;
                }
        }
        /* and every path parameter is a template segment; every parameter is whole */
        const json_t *lists[] = {json_object_get(item, "parameters"),
                                 json_object_get(op, "parameters")};
        for (size_t l = 0; l < 2; l++) {
                size_t i;
                json_t *p;
                json_array_foreach(lists[l], i, p)
                {
                        json_t *r = deref(doc, p);
                        const char *in = json_string_value(json_object_get(r, "in"));
                        const char *name = json_string_value(json_object_get(r, "name"));
                        if (!in || !name || !json_object_get(r, "schema")) {
                                print_error("%s %s: parameter %zu lacks in, name or schema\n", m,
                                            key, i);
                                bad++;
                                continue;
                        }
                        char seg[80];
                        snprintf(seg, sizeof(seg), "{%s}", name);
                        if (strcmp(in, "path") == 0 && !strstr(key, seg)) {
                                print_error("%s %s: path parameter %s is not in the path\n", m, key,
                                            name);
                                bad++;
                        }
                }
        }
        return bad;
}

static int check_operations(const json_t *doc)
{
        int bad = 0;
        _cleanup_json_ json_t *ids = json_object();
        const char *key;
        json_t *item;
        json_object_foreach(json_object_get(doc, "paths"), key, item)
        {
                const char *m;
                json_t *op;
                json_object_foreach(item, m, op)
                {
                        if (!is_http_method(m))
                                continue;
                        const char *id = json_string_value(json_object_get(op, "operationId"));
                        if (!id || json_object_get(ids, id)) {
                                print_error("%s %s: operationId missing or not unique\n", m, key);
                                bad++;
                        } else {
                                json_object_set_new(ids, id, json_true());
                        }
                        json_t *responses = json_object_get(op, "responses");
                        if (!json_is_object(responses) || json_object_size(responses) == 0) {
                                print_error("%s %s: no responses\n", m, key);
                                bad++;
                        }
                        bool success = false;
                        const char *code;
                        json_t *resp;
                        json_object_foreach(responses, code, resp)
                        {
                                char *end = NULL;
                                long n = strtol(code, &end, 10);
                                bool numeric = end && !*end && n >= 100 && n <= 599;
                                success = success || (numeric && n < 300);
                                if (!numeric && strcmp(code, "default") != 0) {
                                        print_error("%s %s: response key %s is not a status\n", m,
                                                    key, code);
                                        bad++;
                                }
                                if (!json_is_string(
                                        json_object_get(deref(doc, resp), "description"))) {
                                        print_error("%s %s: response %s has no description\n", m,
                                                    key, code);
                                        bad++;
                                }
                        }
                        if (json_object_size(responses) && !success) {
                                print_error("%s %s: no 2xx response\n", m, key);
                                bad++;
                        }
                        bad += check_params(doc, key, item, m, op);
                }
        }
        return bad;
}

/* ---- check: every $ref resolves, and every component is used ---- */

static int walk_refs(const json_t *doc, const json_t *v, const char *where, json_t *used)
{
        int bad = 0;
        if (json_is_object(v)) {
                json_t *ref = json_object_get(v, "$ref");
                if (ref) {
                        const char *s = json_string_value(ref);
                        if (!resolve(doc, s)) {
                                print_error("%s: $ref %s does not resolve\n", where,
                                            s ? s : "(not a string)");
                                bad++;
                        } else {
                                json_object_set_new(used, s, json_true());
                        }
                }
                const char *k;
                json_t *child;
                json_object_foreach((json_t *)v, k, child)
                {
                        _cleanup_free_ char *p = sk_yaml_path_key(where, k);
                        bad += walk_refs(doc, child, p ? p : where, used);
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *child;
                json_array_foreach(v, i, child)
                {
                        _cleanup_free_ char *p = sk_yaml_path_index(where, i);
                        bad += walk_refs(doc, child, p ? p : where, used);
                }
        }
        return bad;
}

static int check_refs(const json_t *doc)
{
        _cleanup_json_ json_t *used = json_object();
        int bad = walk_refs(doc, doc, "", used);
        static const char *const sections[] = {"schemas", "parameters", "responses"};
        json_t *components = json_object_get(doc, "components");
        for (size_t s = 0; s < SK_ARRAY_SIZE(sections); s++) {
                const char *name;
                json_t *v;
                json_object_foreach(json_object_get(components, sections[s]), name, v)
                {
                        char ref[256];
                        snprintf(ref, sizeof(ref), "#/components/%s/%s", sections[s], name);
                        if (!json_object_get(used, ref)) {
                                print_error("%s is never used\n", ref);
                                bad++;
                        }
                }
        }
        return bad;
}

/* ---- check: authentication and authorization ---- */

static bool uses_bearer(const json_t *security)
{
        size_t i;
        json_t *req;
        json_array_foreach(security, i, req)
        {
                if (json_object_get(req, "bearer"))
                        return true;
        }
        return false;
}

static int check_auth(const json_t *doc, const observed *obs)
{
        int bad = 0;
        json_t *schemes = json_object_get(json_object_get(doc, "components"), "securitySchemes");
        json_t *bearer = json_object_get(schemes, "bearer");
        if (strcmp(json_string_value(json_object_get(bearer, "type")) ?: "", "http") != 0 ||
            strcmp(json_string_value(json_object_get(bearer, "scheme")) ?: "", "bearer") != 0) {
                print_error("components.securitySchemes.bearer must be http bearer\n");
                bad++;
        }
        for (size_t i = 0; i < sk_tower_route_count(); i++) {
                const char *method, *pattern, *auth;
                sk_tower_route_at(i, &method, &pattern, &auth);
                json_t *op = route_op(doc, method, pattern);
                if (!op)
                        continue; /* check_routes reports it */
                const char *said = json_string_value(json_object_get(op, "x-skerry-auth"));
                if (!said || strcmp(said, auth) != 0) {
                        print_error("%s %s: x-skerry-auth is %s, the route table says %s\n", method,
                                    pattern, said ? said : "missing", auth);
                        bad++;
                }
                json_t *security = json_object_get(op, "security");
                if (!security)
                        security = json_object_get(doc, "security");
                bool user = strcmp(auth, "user") == 0;
                if (user != uses_bearer(security) || (!user && json_array_size(security) != 0)) {
                        print_error("%s %s: security must be %s for a %s route\n", method, pattern,
                                    user ? "the bearer token" : "[]", auth);
                        bad++;
                }
                /* the roles, as a set of known role names */
                json_t *roles = json_object_get(op, "x-skerry-roles");
                unsigned said_roles = 0;
                size_t k;
                json_t *r;
                bool roles_ok = json_is_array(roles);
                json_array_foreach(roles, k, r)
                {
                        size_t j = 0;
                        while (j < N_ROLES && strcmp(json_string_value(r) ?: "", ROLES[j]) != 0)
                                j++;
                        if (j == N_ROLES || (said_roles & (1u << j)))
                                roles_ok = false;
                        else
                                said_roles |= 1u << j;
                }
                unsigned want = user ? obs[i].roles : 0;
                if (!roles_ok || said_roles != want) {
                        char list[64] = "";
                        for (size_t j = 0; j < N_ROLES; j++)
                                if (want & (1u << j))
                                        snprintf(list + strlen(list), sizeof(list) - strlen(list),
                                                 "%s%s", *list ? ", " : "", ROLES[j]);
                        print_error("%s %s: x-skerry-roles must be [%s] (what the route table "
                                    "admits)\n",
                                    method, pattern, list);
                        bad++;
                }
                bool provider = json_is_true(json_object_get(op, "x-skerry-provider-only"));
                if (provider != (user && obs[i].provider)) {
                        print_error("%s %s: x-skerry-provider-only must be %s\n", method, pattern,
                                    obs[i].provider ? "true" : "absent");
                        bad++;
                }
                bool self = json_is_true(json_object_get(op, "x-skerry-self"));
                if (self != (user && obs[i].self)) {
                        print_error("%s %s: x-skerry-self must be %s\n", method, pattern,
                                    obs[i].self ? "true" : "absent");
                        bad++;
                }
        }
        return bad;
}

/* ---- the router, asked ---- */

static void hash_hex(const char *secret, char out[65])
{
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
        sodium_bin2hex(out, 65, h, sizeof(h));
}

static void token_of(const char *tenant, const char *user, char *out, size_t cap)
{
        snprintf(out, cap, "tok-%s-%s", tenant, user);
}

/* One request (in tenant, when not NULL); returns the status and the error message. */
static int call(sk_tower_api *api, const char *method, const char *path, const char *tenant,
                const char *token, const char *body, char *msg, size_t cap)
{
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        _cleanup_json_ json_t *query = tenant ? json_pack("{s:s}", "tenant", tenant) : NULL;
        sk_tower_request req = {.method = method,
                                .path = path,
                                .query = query,
                                .authorization = auth,
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
                if (job)
                        job->free(job);
                job = resp.job;
                resp.job = NULL;
                sk_tower_response_clear(&resp);
                job->run(job);
        }
        if (job)
                job->free(job);
        const char *m =
            json_string_value(json_object_get(json_object_get(resp.body, "error"), "message"));
        snprintf(msg, cap, "%s", m ? m : "");
        int status = resp.status;
        sk_tower_response_clear(&resp);
        return status;
}

static void must(sk_tower_api *api, const char *token, const char *method, const char *path,
                 const char *tenant, const char *body)
{
        char msg[256];
        int st = call(api, method, path, tenant, token, body, msg, sizeof(msg));
        if (st != 200)
                fail_msg("setup %s %s: %d %s", method, path, st, msg);
}

/* Whether the route table refused the request for the caller's role. */
static bool refused_by_role(int status, const char *msg, const char *role)
{
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "role %s may not ", role);
        return status == 403 && strncmp(msg, prefix, strlen(prefix)) == 0;
}

/* pattern with {name} made name */
static void fill(const char *pattern, const char *name, char *out, size_t cap)
{
        const char *p = strstr(pattern, "{name}");
        if (p)
                snprintf(out, cap, "%.*s%s%s", (int)(p - pattern), pattern, name, p + 6);
        else
                snprintf(out, cap, "%s", pattern);
}

/* Users viewer, developer, operator and admin in the root provider, and an admin in an
 * application tenant; every request is without a body, so no handler changes anything
 * that a later probe looks at. */
static void probe_router(fx *f)
{
        char db[128];
        snprintf(db, sizeof(db), "%s/tower.db", f->dir);
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(db, &s, NULL), 0);
        sk_tower_api *api = NULL;
        assert_int_equal(sk_tower_api_new(s, NULL, &api, NULL), 0);
        _cleanup_free_ char *admin = NULL;
        assert_int_equal(sk_tower_bootstrap(api, &admin, NULL), 0);
        must(api, admin, "PUT", "/v1/tenants/" APP_TENANT, NULL,
             "{\"kind\":\"tenant\",\"name\":\"" APP_TENANT "\",\"type\":\"application\"}");
        must(api, admin, "PUT", "/v1/users/admin", APP_TENANT,
             "{\"kind\":\"user\",\"name\":\"admin\",\"role\":\"admin\"}");
        for (size_t r = 0; r < N_ROLES; r++) {
                char path[64], body[128], tok[64], hex[65];
                if (strcmp(ROLES[r], "admin") != 0) {
                        snprintf(path, sizeof(path), "/v1/users/%s", ROLES[r]);
                        snprintf(body, sizeof(body),
                                 "{\"kind\":\"user\",\"name\":\"%s\",\"role\":\"%s\"}", ROLES[r],
                                 ROLES[r]);
                        must(api, admin, "PUT", path, NULL, body);
                }
                token_of("default", ROLES[r], tok, sizeof(tok));
                hash_hex(tok, hex);
                assert_int_equal(s->ops->token_add(s, hex, "default", ROLES[r], ROLES[r], 0, NULL),
                                 0);
        }
        char app_tok[64], hex[65];
        token_of(APP_TENANT, "admin", app_tok, sizeof(app_tok));
        hash_hex(app_tok, hex);
        assert_int_equal(s->ops->token_add(s, hex, APP_TENANT, "admin", "admin", 0, NULL), 0);

        assert_true(sk_tower_route_count() <= MAX_ROUTES);
        for (size_t i = 0; i < sk_tower_route_count(); i++) {
                const char *method, *pattern, *auth;
                sk_tower_route_at(i, &method, &pattern, &auth);
                if (strcmp(auth, "user") != 0)
                        continue;
                observed *o = &f->obs[i];
                char path[256], msg[512], tok[64];
                fill(pattern, PROBE_NAME, path, sizeof(path));
                for (size_t r = 0; r < N_ROLES; r++) {
                        token_of("default", ROLES[r], tok, sizeof(tok));
                        int st = call(api, method, path, NULL, tok, NULL, msg, sizeof(msg));
                        if (!refused_by_role(st, msg, ROLES[r]))
                                o->roles |= 1u << r;
                }
                /* a refused role naming itself: users are named after their roles */
                for (size_t r = 0; strstr(pattern, "{name}") && r < N_ROLES; r++) {
                        if (o->roles & (1u << r))
                                continue;
                        char own[256];
                        fill(pattern, ROLES[r], own, sizeof(own));
                        token_of("default", ROLES[r], tok, sizeof(tok));
                        int st = call(api, method, own, NULL, tok, NULL, msg, sizeof(msg));
                        o->self = o->self || !refused_by_role(st, msg, ROLES[r]);
                }
                if (o->roles & (1u << 3)) {
                        int st = call(api, method, path, NULL, app_tok, NULL, msg, sizeof(msg));
                        o->provider = st == 403 && strstr(msg, "is an application tenant");
                }
        }
        sk_tower_api_free(api);
        s->ops->close(s);
}

static int group_setup(void **state)
{
        fx *f = calloc(1, sizeof(*f));
        if (!f)
                return -1;
        f->doc = load_doc();
        if (!f->doc) {
                free(f);
                return -1;
        }
        strcpy(f->dir, "/tmp/sk-openapi-XXXXXX");
        if (!mkdtemp(f->dir)) {
                json_decref(f->doc);
                free(f);
                return -1;
        }
        *state = f;
        probe_router(f);
        return 0;
}

static int group_teardown(void **state)
{
        fx *f = *state;
        if (!f) /* the setup failed before it made anything */
                return 0;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        int rc = system(cmd);
        json_decref(f->doc);
        free(f);
        return rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_routes_documented(void **state)
{
        fx *f = *state;
        assert_int_equal(check_routes(f->doc), 0);
}

static void test_operations_answer(void **state)
{
        fx *f = *state;
        assert_int_equal(check_operations(f->doc), 0);
}

static void test_refs_resolve(void **state)
{
        fx *f = *state;
        assert_int_equal(check_refs(f->doc), 0);
}

static void test_auth_and_roles(void **state)
{
        fx *f = *state;
        assert_int_equal(check_auth(f->doc, f->obs), 0);
}

/* The probes saw what docs/api.md's roles table says, so they are not blind. */
static void test_probes_see_the_table(void **state)
{
        fx *f = *state;
        unsigned events = 0, hosts = 0, site_tokens = 0, password = 0;
        bool provider_hosts = false, self_password = false;
        for (size_t i = 0; i < sk_tower_route_count(); i++) {
                const char *method, *pattern, *auth;
                sk_tower_route_at(i, &method, &pattern, &auth);
                if (strcmp(method, "GET") == 0 && strcmp(pattern, "/v1/events") == 0)
                        events = f->obs[i].roles;
                if (strcmp(method, "GET") == 0 && strcmp(pattern, "/v1/hosts") == 0) {
                        hosts = f->obs[i].roles;
                        provider_hosts = f->obs[i].provider;
                }
                if (strcmp(pattern, "/v1/sites/{name}/tokens") == 0)
                        site_tokens = f->obs[i].roles;
                if (strcmp(pattern, "/v1/users/{name}/password") == 0) {
                        password = f->obs[i].roles;
                        self_password = f->obs[i].self;
                }
        }
        assert_int_equal(events, 1u << 3);
        assert_int_equal(hosts, 0xfu);
        assert_true(provider_hosts);
        assert_int_equal(site_tokens, (1u << 2) | (1u << 3));
        assert_int_equal(password, 1u << 3);
        assert_true(self_password);
}

/* A copy of the document with one thing broken; every check must notice. */
static json_t *damaged(const fx *f)
{
        json_t *copy = json_deep_copy(f->doc);
        assert_non_null(copy);
        return copy;
}

static void test_checks_catch_damage(void **state)
{
        fx *f = *state;
        json_t *paths;
        print_message("the problems reported below are planted in copies of the document\n");

        /* a route without documentation */
        _cleanup_json_ json_t *d1 = damaged(f);
        paths = json_object_get(d1, "paths");
        assert_int_equal(json_object_del(json_object_get(paths, "/v1/whoami"), "get"), 0);
        assert_true(check_routes(d1) > 0);

        /* documentation without a route */
        _cleanup_json_ json_t *d2 = damaged(f);
        paths = json_object_get(d2, "paths");
        json_object_set(json_object_get(paths, "/v1/whoami"), "delete",
                        json_object_get(json_object_get(paths, "/v1/whoami"), "get"));
        assert_true(check_routes(d2) > 0);

        /* an operation without responses, and one whose path parameter is undeclared */
        _cleanup_json_ json_t *d3 = damaged(f);
        paths = json_object_get(d3, "paths");
        json_object_del(json_object_get(json_object_get(paths, "/v1/events"), "get"), "responses");
        assert_true(check_operations(d3) > 0);
        _cleanup_json_ json_t *d4 = damaged(f);
        paths = json_object_get(d4, "paths");
        json_object_del(json_object_get(paths, "/v1/users/{name}"), "parameters");
        assert_true(check_operations(d4) > 0);

        /* a $ref to nothing, and a component nobody uses */
        _cleanup_json_ json_t *d5 = damaged(f);
        json_t *schemas = json_object_get(json_object_get(d5, "components"), "schemas");
        json_object_set_new(json_object_get(schemas, "EventList"), "$ref",
                            json_string("#/components/schemas/NoSuchThing"));
        assert_true(check_refs(d5) > 0);
        _cleanup_json_ json_t *d6 = damaged(f);
        schemas = json_object_get(json_object_get(d6, "components"), "schemas");
        json_object_set_new(schemas, "Unused", json_pack("{s:s}", "type", "string"));
        assert_true(check_refs(d6) > 0);

        /* roles, provider-only, self and security that the router does not enforce */
        _cleanup_json_ json_t *d7 = damaged(f);
        paths = json_object_get(d7, "paths");
        json_object_set_new(json_object_get(json_object_get(paths, "/v1/events"), "get"),
                            "x-skerry-roles", json_pack("[s, s]", "viewer", "admin"));
        assert_true(check_auth(d7, f->obs) > 0);
        _cleanup_json_ json_t *d8 = damaged(f);
        paths = json_object_get(d8, "paths");
        json_object_del(json_object_get(json_object_get(paths, "/v1/hosts"), "get"),
                        "x-skerry-provider-only");
        assert_true(check_auth(d8, f->obs) > 0);
        _cleanup_json_ json_t *d9 = damaged(f);
        paths = json_object_get(d9, "paths");
        json_object_set_new(json_object_get(json_object_get(paths, "/v1/sync/desired"), "get"),
                            "security", json_pack("[{s:[]}]", "bearer"));
        assert_true(check_auth(d9, f->obs) > 0);
        _cleanup_json_ json_t *d10 = damaged(f);
        paths = json_object_get(d10, "paths");
        json_object_del(json_object_get(json_object_get(paths, "/v1/users/{name}/password"), "put"),
                        "x-skerry-self");
        assert_true(check_auth(d10, f->obs) > 0);
}

int main(void)
{
        if (sodium_init() < 0)
                return 1;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_routes_documented),    cmocka_unit_test(test_operations_answer),
            cmocka_unit_test(test_refs_resolve),         cmocka_unit_test(test_auth_and_roles),
            cmocka_unit_test(test_probes_see_the_table), cmocka_unit_test(test_checks_catch_damage),
        };
        return cmocka_run_group_tests_name("openapi document", tests, group_setup, group_teardown);
}
