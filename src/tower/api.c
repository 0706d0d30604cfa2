/* The router and the one authentication check every request passes through. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "model/spec.h"
#include "tower/api_int.h"
#include "tower/siteca.h"

#define PRUNE_EVERY_MS (60LL * 1000)

/* Who may call a route: a set of roles, and conditions on the tenant the request works in. */
enum {
        R_VIEWER = 1 << 0,
        R_DEVELOPER = 1 << 1,
        R_OPERATOR = 1 << 2,
        R_ADMIN = 1 << 3,
        R_ALL = R_VIEWER | R_DEVELOPER | R_OPERATOR | R_ADMIN,
        R_DEV_UP = R_DEVELOPER | R_OPERATOR | R_ADMIN,
        R_OPS_UP = R_OPERATOR | R_ADMIN,
};
enum {
        F_PROVIDER = 1 << 0, /* the tenant worked in must be a provider (sites, hosts) */
        F_SELF = 1 << 1,     /* a user may always call it on itself ({name} is the caller) */
        F_METRICS = 1 << 2,  /* a metrics token (role "metrics") may call it, and only these */
};

typedef struct route {
        const char *method;
        const char *pattern; /* segments; "{name}" matches any one segment */
        const char *kind;    /* the resource kind (plural) the handler works on, or NULL */
        sk_tower_handler fn;
        sk_tower_auth auth;
        unsigned roles; /* SK_AUTH_USER: who may call it; 0 nobody (deny by default) */
        unsigned flags;
} route_def;

#define RES_ROUTES(kind, write_roles, wflags)                                                        \
        {"GET", "/v1/" kind, kind, sk_tower_h_list, SK_AUTH_USER, R_ALL, 0},                         \
            {"GET", "/v1/" kind "/{name}", kind, sk_tower_h_get, SK_AUTH_USER, R_ALL, 0},            \
            {"PUT", "/v1/" kind "/{name}", kind, sk_tower_h_put, SK_AUTH_USER, write_roles, wflags}, \
        {                                                                                            \
                "DELETE", "/v1/" kind "/{name}", kind, sk_tower_h_delete, SK_AUTH_USER,              \
                    write_roles, wflags                                                              \
        }

/* Every path the API answers, and the one authorization table (docs/api.md, "Roles"): the
 * router checks it before any handler runs, so a route without roles is refused to all.
 * Specific paths come before the generic ones. */
static const route_def ROUTES[] = {
    {"GET", "/metrics", NULL, sk_tower_h_metrics, SK_AUTH_USER, R_ADMIN, F_PROVIDER | F_METRICS},
    {"POST", "/v1/login", NULL, sk_tower_h_login, SK_AUTH_NONE, 0, 0},
    {"POST", "/v1/join", NULL, sk_tower_h_join, SK_AUTH_NONE, 0, 0},
    {"GET", "/v1/sync/desired", NULL, sk_tower_h_sync_desired, SK_AUTH_HOST, 0, 0},
    {"POST", "/v1/sync/status", NULL, sk_tower_h_sync_status, SK_AUTH_HOST, 0, 0},
    {"GET", "/v1/sync/site-ca", NULL, sk_tower_h_sync_site_ca, SK_AUTH_HOST, 0, 0},
    {"GET", "/v1/whoami", NULL, sk_tower_h_whoami, SK_AUTH_USER, R_ALL, 0},
    {"GET", "/v1/hosts", NULL, sk_tower_h_hosts, SK_AUTH_USER, R_ALL, F_PROVIDER},
    {"DELETE", "/v1/hosts/{name}", "hosts", sk_tower_h_host_delete, SK_AUTH_USER, R_OPS_UP,
     F_PROVIDER},
    {"GET", "/v1/instances", NULL, sk_tower_h_instances, SK_AUTH_USER, R_ALL, 0},
    {"GET", "/v1/events", NULL, sk_tower_h_events, SK_AUTH_USER, R_ADMIN, 0},
    {"GET", "/v1/tokens", NULL, sk_tower_h_tokens_list, SK_AUTH_USER, R_ALL, 0},
    {"POST", "/v1/tokens", NULL, sk_tower_h_token_create, SK_AUTH_USER, R_ALL, 0},
    {"DELETE", "/v1/tokens/{name}", NULL, sk_tower_h_token_revoke, SK_AUTH_USER, R_ALL, 0},
    {"POST", "/v1/sites/{name}/tokens", "sites", sk_tower_h_site_token, SK_AUTH_USER, R_OPS_UP,
     F_PROVIDER},
    {"PUT", "/v1/users/{name}/password", "users", sk_tower_h_password, SK_AUTH_USER, R_ADMIN,
     F_SELF},
    RES_ROUTES("tenants", R_ADMIN, F_PROVIDER),
    RES_ROUTES("users", R_ADMIN, 0),
    RES_ROUTES("sites", R_OPS_UP, F_PROVIDER),
    RES_ROUTES("applications", R_DEV_UP, 0),
    RES_ROUTES("deployments", R_DEV_UP, 0),
};

size_t sk_tower_route_count(void)
{
        return SK_ARRAY_SIZE(ROUTES);
}

void sk_tower_route_at(size_t i, const char **method, const char **pattern, const char **auth)
{
        static const char *const auths[] = {"none", "user", "host"};
        *method = ROUTES[i].method;
        *pattern = ROUTES[i].pattern;
        *auth = auths[ROUTES[i].auth];
}

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
        api->events_max_age_ms = SK_TOWER_EVENTS_MAX_AGE_MS;
        api->events_max = SK_TOWER_EVENTS_MAX;
        api->logins = sk_login_limit_new();
        if (!api->logins) {
                free(api);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        *out = api;
        return 0;
}

void sk_tower_api_free(sk_tower_api *api)
{
        if (!api)
                return;
        free(api->metrics);
        sk_login_limit_free(api->logins);
        free(api);
}

void sk_tower_api_set_hooks(sk_tower_api *api, sk_tower_notify_fn notify,
                            sk_tower_waiting_fn waiting, void *ctx)
{
        api->notify = notify;
        api->waiting = waiting;
        api->hook_ctx = ctx;
}

void sk_tower_api_set_conn_stats(sk_tower_api *api, sk_tower_conn_stats_fn fn)
{
        api->conn_stats = fn;
}

void sk_tower_api_set_clock(sk_tower_api *api, int64_t (*now_ms)(void))
{
        api->now = now_ms;
}

void sk_tower_api_set_retention(sk_tower_api *api, int64_t max_age_ms, int64_t max_events)
{
        api->events_max_age_ms = max_age_ms;
        api->events_max = max_events;
        api->pruned_at = 0;
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
        if (sk_sha256_hex(secret, strlen(secret), out) < 0)
                out[0] = '\0'; /* matches no stored hash */
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

int sk_tower_role_rank(const char *role)
{
        static const char *const ranks[] = {"viewer", "developer", "operator", "admin"};
        for (size_t i = 0; role && i < SK_ARRAY_SIZE(ranks); i++)
                if (strcmp(role, ranks[i]) == 0)
                        return (int)i;
        return -1;
}

typedef struct token_copy {
        char *tenant, *user, *role, *kind, *hash;
        int64_t expires;
        bool revoked;
} token_copy;

static void token_copy_free(token_copy *t)
{
        free(t->tenant);
        free(t->user);
        free(t->role);
        free(t->kind);
        free(t->hash);
}

static int copy_token(const sk_token_row *row, void *user)
{
        token_copy *out = user;
        out->tenant = strdup(row->tenant);
        out->user = strdup(row->user);
        out->role = strdup(row->role);
        out->kind = strdup(row->kind ? row->kind : "login");
        out->hash = strdup(row->hash ? row->hash : "");
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

/* Who the bearer token belongs to, with the role that applies now. */
static int auth_token(sk_tower_ctx *c, sk_error **err)
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
        __attribute__((cleanup(token_copy_free))) token_copy t = {0};
        int r = c->api->store->ops->token_get(c->api->store, hex, copy_token, &t, NULL);
        if (r == -ENOENT)
                return sk_error_set(err, EACCES, "unknown token");
        if (r < 0)
                return sk_error_set(err, -r, "token lookup failed");
        if (!t.tenant || !t.user || !t.role || !t.kind || !t.hash)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (t.revoked)
                return sk_error_set(err, EACCES, "token revoked");
        if (t.expires && t.expires <= sk_tower_now(c->api))
                return sk_error_set(err, EACCES, "token expired");
        /* The user as stored now: a deleted user's tokens stop, a new role applies at once. */
        _cleanup_free_ char *role = NULL;
        r = c->api->store->ops->resource_get(c->api->store, t.tenant, "user", t.user, "", user_role,
                                             &role, NULL);
        if (r < 0 || !role)
                return sk_error_set(err, EACCES, "the token's user no longer exists");
        c->api_token = strcmp(t.kind, "api") == 0;
        /* an API token never has more than its own role, nor more than its user now */
        if (c->api_token && sk_tower_role_rank(t.role) < sk_tower_role_rank(role)) {
                free(role);
                role = take_ptr(&t.role);
        }
        c->tenant = take_ptr(&t.tenant);
        c->user = take_ptr(&t.user);
        c->role = take_ptr(&role);
        c->token_id = strndup(t.hash, SK_TOWER_TOKEN_ID_LEN);
        return c->token_id ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

/* The tenant the request works in: the caller's own, or with ?tenant= one below it. A
 * tenant outside the caller's subtree is a 404 whether it exists or not. */
static int auth_scope(sk_tower_ctx *c, sk_error **err)
{
        int r = sk_tenancy_load(c->api->store, &c->tn, err);
        if (r < 0)
                return r;
        const char *want = sk_tower_query(c, "tenant");
        if (want && strcmp(want, c->tenant) != 0) {
                if (!sk_spec_valid_name(want))
                        return sk_error_set_path(err, EINVAL, "tenant",
                                                 "tenant must be a DNS label");
                if (!sk_tenancy_within(c->tn, want, c->tenant))
                        return sk_error_set_path(err, ENOENT, "tenant", "no tenant named %s", want);
                if (strcmp(c->role, "admin") != 0)
                        return sk_error_set(err, EPERM,
                                            "only admins of tenant %s may work in tenant %s",
                                            c->tenant, want);
        }
        c->scope = strdup(want ? want : c->tenant);
        return c->scope ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

/* The one authorization check: the route's roles, then its conditions. */
static int authorize(sk_tower_ctx *c, const route_def *rt, sk_error **err)
{
        int rank = sk_tower_role_rank(c->role);
        /* an API token acts within its role only, never as its user on itself */
        bool self = (rt->flags & F_SELF) && !c->api_token && c->name &&
                    strcmp(c->scope, c->tenant) == 0 && strcmp(c->name, c->user) == 0;
        /* a metrics token reads /metrics and nothing else */
        self = self || ((rt->flags & F_METRICS) && c->api_token &&
                        strcmp(c->role, SK_TOWER_METRICS_ROLE) == 0);
        if (!self && (rank < 0 || !(rt->roles & (1u << rank))))
                return sk_error_set(err, EPERM, "role %s may not %s %s", c->role, rt->method,
                                    rt->pattern);
        if ((rt->flags & F_PROVIDER) && !sk_tenancy_is_provider(c->tn, c->scope))
                return sk_error_set(err, EPERM,
                                    "tenant %s is an application tenant; only providers %s %s",
                                    c->scope, strcmp(rt->method, "GET") == 0 ? "read" : "write",
                                    rt->kind ? rt->kind : "hosts");
        return 0;
}

static int auth_user(sk_tower_ctx *c, const route_def *rt, sk_error **err)
{
        int r = auth_token(c, err);
        if (r >= 0)
                r = auth_scope(c, err);
        if (r >= 0)
                r = authorize(c, rt, err);
        return r;
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
        sk_pki_chain chain = {"", ""};
        int r = c->req->verify_peer(c->req->peer_ctx, &uri, &chain, err);
        if (r < 0)
                return sk_error_set(err, EACCES, "client certificate refused");
        if (sk_pki_parse_host_uri(uri, &c->site_id, &c->host_id) < 0)
                return sk_error_set(err, EACCES, "client certificate is not a host's (%s)", uri);
        /* A retired generation's key may be in a removed host's hands. */
        r = sk_tower_site_ca_check(c->api->store, c->site_id, c->host_id, &chain, err);
        if (r < 0)
                return r;
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

/* Matches path against pattern segment by segment, capturing {name}. */
static bool match_path(const char *pattern, const char *path, char *name, size_t cap)
{
        name[0] = '\0';
        while (*pattern && *path) {
                if (*pattern != '/' || *path != '/')
                        return false;
                pattern++, path++;
                size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
                if (pl == 6 && strncmp(pattern, "{name}", 6) == 0) {
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
        case EAGAIN:
                *status = 429;
                return "too-many-requests";
        case E2BIG:
                *status = 414;
                return "uri-too-long";
        case EMSGSIZE:
                *status = 431;
                return "headers-too-large";
        case EMFILE:
                *status = 503;
                return "busy";
        default:
                *status = 500;
                return "internal";
        }
}

void sk_tower_error_response(sk_tower_response *resp, int r, const sk_error *e)
{
        int status;
        int code = r < 0 ? -r : r;
        const char *name = error_code(code, &status);
        const char *msg = sk_error_msg(e, code);
        if (status == 500)
                sk_errorf("request failed: %s", msg);
        json_t *message = json_string(status == 500 ? "internal error (see the tower's log)" : msg);
        if (!message) /* the message quotes request bytes that are not UTF-8 */
                message = json_string("the request's method, path or a value in it is not "
                                      "valid UTF-8");
        json_t *o = json_pack("{s:s, s:o}", "code", name, "message", message);
        if (e && e->path)
                json_object_set_new(o, "path", json_string(e->path));
        if (e && e->column > 0)
                json_object_set_new(o, "column", json_integer(e->column));
        json_decref(resp->body);
        resp->body = json_pack("{s:o}", "error", o);
        resp->status = status;
        resp->wait_site = 0;
}

/* Retention, at most once a minute: the trail stays bounded whatever floods it. */
static void prune_events(sk_tower_api *api, int64_t now)
{
        if (api->pruned_at && now - api->pruned_at < PRUNE_EVERY_MS)
                return;
        api->pruned_at = now;
        _cleanup_error_ sk_error *e = NULL;
        int64_t before = api->events_max_age_ms > 0 ? now - api->events_max_age_ms : INT64_MIN;
        int r = api->store->ops->event_prune(api->store, before, api->events_max, &e);
        if (r < 0)
                sk_errorf("audit retention: %s", sk_error_msg(e, -r));
        else if (r > 0)
                sk_debug("audit retention: %d old events removed", r);
}

/* The audit trail: every change a known caller asked for, allowed or not, and every login
 * (a flood of refused logins once a minute, not per attempt). */
static void audit(sk_tower_ctx *c, const route_def *rt, int status)
{
        if (c->no_audit)
                return;
        const char *tenant = c->audit_tenant ? c->audit_tenant : c->scope ? c->scope : c->tenant;
        if (!tenant || (!c->audit_actor && !c->user))
                return;
        _cleanup_free_ char *actor = NULL;
        if (!c->audit_actor &&
            asprintf(&actor, "%s/%s%s%s", c->tenant, c->user, c->api_token ? " token " : "",
                     c->api_token && c->token_id ? c->token_id : "") < 0)
                return;
        _cleanup_free_ char *resource = NULL;
        if (rt->kind && c->name && asprintf(&resource, "%s/%s", rt->kind, c->name) < 0)
                return;
        sk_event_row ev = {.time = sk_tower_now(c->api),
                           .tenant = tenant,
                           .actor = c->audit_actor ? c->audit_actor : actor,
                           .method = c->req->method,
                           .path = c->req->path,
                           .resource = resource ? resource : "",
                           .address = c->req->remote_addr ? c->req->remote_addr : "",
                           .status = status};
        _cleanup_error_ sk_error *e = NULL;
        if (c->api->store->ops->event_add(c->api->store, &ev, &e) < 0)
                sk_errorf("audit: %s", sk_error_msg(e, EIO));
        prune_events(c->api, ev.time);
}

void sk_tower_api_handle(sk_tower_api *api, const sk_tower_request *req, sk_tower_response *resp)
{
        memset(resp, 0, sizeof(*resp));
        resp->route = "unmatched";
        char name[256];
        const route_def *rt = NULL;
        bool path_known = false;
        for (size_t i = 0; i < SK_ARRAY_SIZE(ROUTES) && !rt; i++) {
                if (!match_path(ROUTES[i].pattern, req->path, name, sizeof(name)))
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
                sk_tower_error_response(resp, r, e);
                return;
        }
        resp->route = rt->pattern;
        sk_tower_ctx c = {.api = api, .req = req, .resp = resp};
        c.kind = rt->kind;
        c.name = name[0] ? name : NULL;
        int r = 0;
        if (rt->auth == SK_AUTH_USER)
                r = auth_user(&c, rt, &e);
        else if (rt->auth == SK_AUTH_HOST)
                r = auth_host(&c, &e);
        resp->authenticated = r >= 0 && rt->auth != SK_AUTH_NONE;
        if (resp->authenticated && rt->auth == SK_AUTH_HOST)
                snprintf(resp->identity, sizeof(resp->identity), "host:%lld/%lld",
                         (long long)c.site_id, (long long)c.host_id);
        else if (resp->authenticated)
                snprintf(resp->identity, sizeof(resp->identity), "user:%s/%s", c.tenant, c.user);
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
                sk_tower_error_response(resp, r, e);
        /* a dry run that passed stored nothing, so it leaves no trace; a refused one does */
        bool dry_ok = sk_tower_query(&c, "dry-run") && resp->status < 300;
        if (write && rt->auth != SK_AUTH_HOST && !resp->job && !dry_ok)
                audit(&c, rt, resp->status);
        free(c.tenant);
        free(c.user);
        free(c.role);
        free(c.scope);
        free(c.token_id);
        free(c.audit_tenant);
        free(c.audit_actor);
        sk_tenancy_free(c.tn);
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
                int r = s->ops->api_token_add(s, hash, SK_TOWER_ROOT, "admin", "admin", 0,
                                              "admin.token", err);
                if (r < 0)
                        return r;
                *admin_token = take_ptr(&tok);
        }
        return sk_tower_sync_refresh(api, true, err);
}
