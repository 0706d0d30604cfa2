/* The router and the one authentication check every request passes through. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "model/spec.h"
#include "tower/api_int.h"

static const char *const KINDS[] = {"tenants", "users", "sites", "applications", "deployments"};

typedef struct route {
        const char *method;
        const char *pattern; /* segments; "{kind}" matches a resource kind, "{name}" any */
        sk_tower_handler fn;
        sk_tower_auth auth;
} route_def;

/* Specific paths come before the generic {kind} ones. */
static const route_def ROUTES[] = {
    {"GET", "/metrics", sk_tower_h_metrics, SK_AUTH_NONE},
    {"POST", "/v1/login", sk_tower_h_login, SK_AUTH_NONE},
    {"POST", "/v1/join", sk_tower_h_join, SK_AUTH_NONE},
    {"GET", "/v1/sync/desired", sk_tower_h_sync_desired, SK_AUTH_HOST},
    {"POST", "/v1/sync/status", sk_tower_h_sync_status, SK_AUTH_HOST},
    {"GET", "/v1/whoami", sk_tower_h_whoami, SK_AUTH_USER},
    {"GET", "/v1/hosts", sk_tower_h_hosts, SK_AUTH_USER},
    {"GET", "/v1/instances", sk_tower_h_instances, SK_AUTH_USER},
    {"POST", "/v1/sites/{name}/tokens", sk_tower_h_site_token, SK_AUTH_USER},
    {"PUT", "/v1/users/{name}/password", sk_tower_h_password, SK_AUTH_USER},
    {"GET", "/v1/{kind}", sk_tower_h_list, SK_AUTH_USER},
    {"GET", "/v1/{kind}/{name}", sk_tower_h_get, SK_AUTH_USER},
    {"PUT", "/v1/{kind}/{name}", sk_tower_h_put, SK_AUTH_USER},
    {"DELETE", "/v1/{kind}/{name}", sk_tower_h_delete, SK_AUTH_USER},
};

static int64_t real_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sk_tower_now(const sk_tower_api *api)
{
        return api->now ? api->now() : real_now();
}

int sk_tower_api_new(sk_store *store, sk_ca *ca, sk_tower_api **out, sk_error **err)
{
        if (sodium_init() < 0)
                return sk_error_set(err, EIO, "libsodium failed to initialise");
        sk_tower_api *api = calloc(1, sizeof(*api));
        if (!api)
                return sk_error_set(err, ENOMEM, "out of memory");
        api->store = store;
        api->ca = ca;
        api->sync_rev = -1;
        *out = api;
        return 0;
}

void sk_tower_api_free(sk_tower_api *api)
{
        if (!api)
                return;
        free(api->metrics);
        free(api);
}

void sk_tower_api_set_hooks(sk_tower_api *api, sk_tower_notify_fn notify,
                            sk_tower_waiting_fn waiting, void *ctx)
{
        api->notify = notify;
        api->waiting = waiting;
        api->hook_ctx = ctx;
}

void sk_tower_api_set_clock(sk_tower_api *api, int64_t (*now_ms)(void))
{
        api->now = now_ms;
}

void sk_tower_response_clear(sk_tower_response *resp)
{
        json_decref(resp->body);
        free(resp->text);
        memset(resp, 0, sizeof(*resp));
}

void sk_tower_reply(sk_tower_ctx *c, int status, json_t *body)
{
        json_decref(c->resp->body);
        c->resp->status = status;
        c->resp->body = body;
}

const char *sk_tower_query(const sk_tower_ctx *c, const char *key)
{
        if (!c->req->query)
                return NULL;
        return json_string_value(json_object_get(c->req->query, key));
}

int sk_tower_body(const sk_tower_ctx *c, json_t **out, sk_error **err)
{
        json_error_t je;
        if (!c->req->body || c->req->body_len == 0)
                return sk_error_set(err, EBADMSG, "the request needs a JSON body");
        json_t *j = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                return sk_error_set_pos(err, EBADMSG, je.line, je.column,
                                        "body is not JSON: %s (line %d, column %d)", je.text,
                                        je.line, je.column);
        if (!json_is_object(j)) {
                json_decref(j);
                return sk_error_set(err, EBADMSG, "body must be a JSON object");
        }
        *out = j;
        return 0;
}

char *sk_tower_rfc3339(int64_t ms)
{
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        char buf[32];
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}

void sk_tower_hash_hex(const char *secret, char out[65])
{
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
        sodium_bin2hex(out, 65, h, sizeof(h));
}

int sk_tower_new_secret(char **secret, char **hash)
{
        unsigned char raw[32];
        char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
        char hex[65];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        sk_tower_hash_hex(b64, hex);
        *secret = strdup(b64);
        *hash = strdup(hex);
        sodium_memzero(b64, sizeof(b64));
        if (!*secret || !*hash) {
                free(*secret);
                free(*hash);
                return -ENOMEM;
        }
        return 0;
}

bool sk_tower_is_root_admin(const sk_tower_ctx *c)
{
        return c->tenant && strcmp(c->tenant, SK_TOWER_ROOT) == 0 && c->role &&
               strcmp(c->role, "admin") == 0;
}

static int role_rank(const char *role)
{
        static const char *const ranks[] = {"viewer", "developer", "operator", "admin"};
        for (size_t i = 0; role && i < SK_ARRAY_SIZE(ranks); i++)
                if (strcmp(role, ranks[i]) == 0)
                        return (int)i;
        return -1;
}

/* Who may change what: developers ship applications and deployments, operators also run
 * sites, admins manage users; tenants belong to the root tenant's admins. */
int sk_tower_require_write(const sk_tower_ctx *c, const char *kind, sk_error **err)
{
        int need = 1;
        if (strcmp(kind, "site") == 0)
                need = 2;
        else if (strcmp(kind, "user") == 0)
                need = 3;
        else if (strcmp(kind, "tenant") == 0) {
                if (!sk_tower_is_root_admin(c))
                        return sk_error_set(err, EPERM,
                                            "only admins of tenant %s may change tenants",
                                            SK_TOWER_ROOT);
                return 0;
        }
        if (role_rank(c->role) < need)
                return sk_error_set(err, EPERM, "role %s may not change %ss", c->role, kind);
        return 0;
}

static int copy_token(const sk_token_row *row, void *user)
{
        sk_token_row *out = user;
        out->tenant = strdup(row->tenant);
        out->user = strdup(row->user);
        out->role = strdup(row->role);
        out->expires = row->expires;
        out->revoked = row->revoked;
        return 0;
}

static int row_found(const sk_resource_row *row, void *user)
{
        return 0;
}

static int user_role(const sk_resource_row *row, void *user)
{
        json_t *doc = json_loads(row->json, 0, NULL);
        const char *role = json_string_value(json_object_get(doc, "role"));
        *(char **)user = strdup(role ? role : "viewer");
        json_decref(doc);
        return 0;
}

static int auth_user(sk_tower_ctx *c, sk_error **err)
{
        const char *h = c->req->authorization;
        if (!h) {
                if (c->req->has_peer_cert)
                        return sk_error_set(err, EACCES,
                                            "host certificates are not accepted here; send "
                                            "a bearer token");
                return sk_error_set(err, EACCES, "no bearer token (Authorization header)");
        }
        if (strncasecmp(h, "Bearer ", 7) != 0 || !h[7])
                return sk_error_set(err, EACCES, "the Authorization header must be 'Bearer TOKEN'");
        char hex[65];
        sk_tower_hash_hex(h + 7, hex);
        sk_token_row t = {0};
        int r = c->api->store->ops->token_get(c->api->store, hex, copy_token, &t, NULL);
        c->tenant = (char *)t.tenant;
        c->user = (char *)t.user;
        c->role = (char *)t.role;
        if (r == -ENOENT)
                return sk_error_set(err, EACCES, "unknown token");
        if (r < 0)
                return sk_error_set(err, -r, "token lookup failed");
        if (!c->tenant || !c->user || !c->role)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (t.revoked)
                return sk_error_set(err, EACCES, "token revoked");
        if (t.expires && t.expires <= sk_tower_now(c->api))
                return sk_error_set(err, EACCES, "token expired");
        /* The user as stored now: a deleted user's tokens stop, a new role applies at once. */
        _cleanup_free_ char *role = NULL;
        r = c->api->store->ops->resource_get(c->api->store, c->tenant, "user", c->user, "",
                                             user_role, &role, NULL);
        if (r < 0 || !role)
                return sk_error_set(err, EACCES, "the token's user %s/%s no longer exists",
                                    c->tenant, c->user);
        free(c->role);
        c->role = take_ptr(&role);
        const char *want = sk_tower_query(c, "tenant");
        if (want && strcmp(want, c->tenant) != 0) {
                if (!sk_tower_is_root_admin(c))
                        return sk_error_set(
                            err, EPERM, "only admins of tenant %s may use ?tenant=", SK_TOWER_ROOT);
                if (!sk_spec_valid_name(want))
                        return sk_error_set_path(err, EINVAL, "tenant",
                                                 "tenant must be a DNS label");
                if (c->api->store->ops->resource_get(c->api->store, SK_TOWER_ROOT, "tenant", want,
                                                     "", row_found, NULL, NULL) < 0)
                        return sk_error_set_path(err, ENOENT, "tenant", "no tenant named %s", want);
        }
        c->scope = strdup(want ? want : c->tenant);
        return c->scope ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

static int host_exists(const sk_host_row *row, void *user)
{
        *(int64_t *)user = row->site_id;
        return 0;
}

static int row_exists(const sk_resource_row *row, void *user)
{
        *(bool *)user = strcmp(row->kind, "site") == 0;
        return 0;
}

static int auth_host(sk_tower_ctx *c, sk_error **err)
{
        if (c->req->authorization)
                return sk_error_set(err, EACCES,
                                    "user tokens are not accepted here; present the host "
                                    "certificate");
        if (!c->req->has_peer_cert || !c->req->verify_peer)
                return sk_error_set(err, EACCES, "no client certificate");
        _cleanup_free_ char *uri = NULL;
        int r = c->req->verify_peer(c->req->peer_ctx, &uri, err);
        if (r < 0)
                return sk_error_set(err, EACCES, "client certificate refused");
        if (sk_pki_parse_host_uri(uri, &c->site_id, &c->host_id) < 0)
                return sk_error_set(err, EACCES, "client certificate is not a host's (%s)", uri);
        int64_t site = 0;
        r = c->api->store->ops->host_get(c->api->store, c->host_id, host_exists, &site, NULL);
        if (r < 0 || site != c->site_id)
                return sk_error_set(err, EACCES, "host %lld of site %lld is not known",
                                    (long long)c->host_id, (long long)c->site_id);
        bool is_site = false;
        r = c->api->store->ops->resource_get_by_id(c->api->store, c->site_id, row_exists, &is_site,
                                                   NULL);
        if (r < 0 || !is_site)
                return sk_error_set(err, EACCES, "site %lld no longer exists",
                                    (long long)c->site_id);
        return 0;
}

/* Matches path against pattern segment by segment, capturing {kind} and {name}. */
static bool match_path(const char *pattern, const char *path, char *kind, char *name, size_t cap)
{
        kind[0] = name[0] = '\0';
        while (*pattern && *path) {
                if (*pattern != '/' || *path != '/')
                        return false;
                pattern++, path++;
                size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
                if (pl == 6 && strncmp(pattern, "{kind}", 6) == 0) {
                        bool ok = false;
                        for (size_t i = 0; i < SK_ARRAY_SIZE(KINDS); i++)
                                if (strlen(KINDS[i]) == sl && strncmp(KINDS[i], path, sl) == 0)
                                        ok = true;
                        if (!ok || sl >= cap)
                                return false;
                        memcpy(kind, path, sl);
                        kind[sl] = '\0';
                } else if (pl == 6 && strncmp(pattern, "{name}", 6) == 0) {
                        if (sl == 0 || sl >= cap)
                                return false;
                        memcpy(name, path, sl);
                        name[sl] = '\0';
                } else if (pl != sl || strncmp(pattern, path, sl) != 0) {
                        return false;
                }
                pattern += pl, path += sl;
        }
        return *pattern == '\0' && (*path == '\0' || strcmp(path, "/") == 0);
}

static const char *error_code(int code, int *status)
{
        switch (code) {
        case EINVAL:
                *status = 400;
                return "invalid";
        case EBADMSG:
                *status = 400;
                return "bad-json";
        case EACCES:
                *status = 401;
                return "unauthenticated";
        case EPERM:
                *status = 403;
                return "forbidden";
        case ENOENT:
                *status = 404;
                return "not-found";
        case EEXIST:
        case EBUSY:
                *status = 409;
                return "conflict";
        case EFBIG:
                *status = 413;
                return "too-large";
        case ENOTSUP:
                *status = 405;
                return "method-not-allowed";
        default:
                *status = 500;
                return "internal";
        }
}

static void reply_error(sk_tower_response *resp, int r, const sk_error *e)
{
        int status;
        int code = r < 0 ? -r : r;
        const char *name = error_code(code, &status);
        const char *msg = sk_error_msg(e, code);
        if (status == 500)
                sk_errorf("request failed: %s", msg);
        json_t *o = json_pack("{s:s, s:s}", "code", name, "message",
                              status == 500 ? "internal error (see the tower's log)" : msg);
        if (e && e->path)
                json_object_set_new(o, "path", json_string(e->path));
        if (e && e->column > 0)
                json_object_set_new(o, "column", json_integer(e->column));
        json_decref(resp->body);
        resp->body = json_pack("{s:o}", "error", o);
        resp->status = status;
        resp->wait_site = 0;
}

void sk_tower_api_handle(sk_tower_api *api, const sk_tower_request *req, sk_tower_response *resp)
{
        memset(resp, 0, sizeof(*resp));
        resp->route = "unmatched";
        char kind[64], name[256];
        const route_def *rt = NULL;
        bool path_known = false;
        for (size_t i = 0; i < SK_ARRAY_SIZE(ROUTES) && !rt; i++) {
                if (!match_path(ROUTES[i].pattern, req->path, kind, name, sizeof(name)))
                        continue;
                path_known = true;
                if (strcmp(ROUTES[i].method, req->method) == 0)
                        rt = &ROUTES[i];
        }
        _cleanup_error_ sk_error *e = NULL;
        if (!rt) {
                int r = path_known ? sk_error_set(&e, ENOTSUP, "%s is not allowed on %s",
                                                  req->method, req->path)
                                   : sk_error_set(&e, ENOENT, "no such path: %s", req->path);
                reply_error(resp, r, e);
                return;
        }
        resp->route = rt->pattern;
        sk_tower_ctx c = {.api = api, .req = req, .resp = resp};
        c.kind = kind[0] ? kind : NULL;
        c.name = name[0] ? name : NULL;
        int r = 0;
        if (rt->auth == SK_AUTH_USER)
                r = auth_user(&c, &e);
        else if (rt->auth == SK_AUTH_HOST)
                r = auth_host(&c, &e);
        if (r >= 0 && c.name && !sk_spec_valid_name(c.name))
                r = sk_error_set_path(&e, EINVAL, "name", "'%s' is not a valid name (a DNS label)",
                                      c.name);
        bool write = strcmp(req->method, "GET") != 0;
        int64_t rev_before = -1;
        if (r >= 0 && write && api->store->ops->revision(api->store, &rev_before, NULL) < 0)
                rev_before = -1;
        if (r >= 0) {
                r = rt->fn(&c, &e);
                /* Writes move the store revision; let the sync engine see them now. */
                if (r >= 0 && !resp->job && write) {
                        _cleanup_error_ sk_error *se = NULL;
                        if (sk_tower_sync_after_write(api, rev_before, c.sync_only, &se) < 0)
                                sk_errorf("site sync refresh failed: %s", sk_error_msg(se, EIO));
                }
        }
        if (r < 0)
                reply_error(resp, r, e);
        free(c.tenant);
        free(c.user);
        free(c.role);
        free(c.scope);
}

void sk_tower_api_count(sk_tower_api *api, const char *route, int status)
{
        for (size_t i = 0; i < api->n_metrics; i++) {
                if (api->metrics[i].route == route && api->metrics[i].status == status) {
                        api->metrics[i].count++;
                        return;
                }
        }
        if (api->n_metrics == api->cap_metrics) {
                size_t cap = api->cap_metrics ? api->cap_metrics * 2 : 32;
                sk_tower_metric *m = realloc(api->metrics, cap * sizeof(*m));
                if (!m)
                        return;
                api->metrics = m;
                api->cap_metrics = cap;
        }
        api->metrics[api->n_metrics++] = (sk_tower_metric){route, status, 1};
}

int sk_tower_bootstrap(sk_tower_api *api, char **admin_token, sk_error **err)
{
        sk_store *s = api->store;
        static const char *const docs[][4] = {
            {"tenant", SK_TOWER_ROOT,
             "{\"kind\":\"tenant\",\"name\":\"default\","
             "\"type\":\"provider\"}"},
            {"user", "admin",
             "{\"kind\":\"user\",\"name\":\"admin\",\"tenant\":"
             "\"default\",\"role\":\"admin\"}"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(docs); i++) {
                int r = s->ops->resource_get(s, SK_TOWER_ROOT, docs[i][0], docs[i][1], "",
                                             row_found, NULL, NULL);
                if (r == 0)
                        continue;
                json_error_t je;
                _cleanup_json_ json_t *doc = json_loads(docs[i][2], 0, &je);
                _cleanup_json_ json_t *norm = NULL;
                r = sk_spec_validate(doc, &norm, err);
                if (r < 0)
                        return sk_error_prefix(err, "built-in %s %s", docs[i][0], docs[i][1]), r;
                _cleanup_free_ char *text = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
                r = s->ops->resource_put(s, SK_TOWER_ROOT, docs[i][0], docs[i][1], "", text, NULL,
                                         err);
                if (r < 0)
                        return r;
        }
        if (admin_token) {
                _cleanup_free_ char *tok = NULL, *hash = NULL;
                if (sk_tower_new_secret(&tok, &hash) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                int r = s->ops->token_add(s, hash, SK_TOWER_ROOT, "admin", "admin", 0, err);
                if (r < 0)
                        return r;
                *admin_token = take_ptr(&tok);
        }
        return sk_tower_sync_refresh(api, true, err);
}
