/* Internals shared by the tower's API files (api.c: router and auth, resources.c: the
 * resource handlers, sync.c: join and site sync). Not for use outside src/tower. */
#ifndef SK_TOWER_API_INT_H
#define SK_TOWER_API_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "tower/api.h"

typedef struct sk_tower_metric {
        const char *route;
        int status;
        uint64_t count;
} sk_tower_metric;

/* Failed logins per key ("user:TENANT/USER@ADDRESS", "addr:ADDRESS"), for the lockout. */
typedef struct sk_login_limit sk_login_limit;
sk_login_limit *sk_login_limit_new(void);
void sk_login_limit_free(sk_login_limit *l);
/* Milliseconds the key stays locked from now; 0 when it is not. */
int64_t sk_login_limit_locked(sk_login_limit *l, const char *key, int64_t now);
/* Counts a failure; from `threshold` failures on, locks the key for 30 s, doubling with
 * every further failure up to an hour. */
void sk_login_limit_fail(sk_login_limit *l, const char *key, int threshold, int64_t now);
void sk_login_limit_reset(sk_login_limit *l, const char *key);
/* Throttle: counts a password check starting for key unless max are in flight already
 * (false: refuse it before any hashing); sk_login_limit_end when it is over. */
bool sk_login_limit_begin(sk_login_limit *l, const char *key, int max, int64_t now);
void sk_login_limit_end(sk_login_limit *l, const char *key);
/* Whether a refusal for key is the first of its flood (none noted in the last minute), so
 * the audit trail records a flood once, not per attempt. */
bool sk_login_limit_note(sk_login_limit *l, const char *key, int64_t now);

/* The tenant tree (tenancy.c), loaded from the store for one request or one refresh. */
typedef struct sk_tenancy sk_tenancy;
int sk_tenancy_load(sk_store *s, sk_tenancy **out, sk_error **err);
void sk_tenancy_free(sk_tenancy *tn);
bool sk_tenancy_exists(const sk_tenancy *tn, const char *name);
bool sk_tenancy_is_provider(const sk_tenancy *tn, const char *name);
/* The parent of a tenant; NULL for the root and unknown tenants. */
const char *sk_tenancy_parent(const sk_tenancy *tn, const char *name);
/* Whether name is ancestor or one of its descendants. */
bool sk_tenancy_within(const sk_tenancy *tn, const char *name, const char *ancestor);
/* Whether deployments of tenant `name` may use a site owned by site_tenant with those labels
 * (built-ins included): a provider its own sites, an application tenant those of its
 * parent's that its `sites` expression matches. */
bool sk_tenancy_site_assigned(const sk_tenancy *tn, const char *name, const char *site_tenant,
                              const json_t *labels);
/* Adds to doc's quotas those of the application tenants with a quota-per-site that are
 * assigned this site, in the units the site's scheduler counts (millicores, bytes,
 * instances). 0 or -ENOMEM. */
struct sk_desired_doc;
int sk_tenancy_quotas(const sk_tenancy *tn, const char *site_tenant, const json_t *labels,
                      struct sk_desired_doc *doc);

struct sk_tower_api {
        sk_store *store;
        sk_ca *ca;
        sk_tower_notify_fn notify;
        sk_tower_waiting_fn waiting;
        sk_tower_conn_stats_fn conn_stats;
        void *hook_ctx;
        int64_t (*now)(void);
        int64_t sync_rev; /* store revision at the last refresh; -1 before the first */
        sk_tower_metric *metrics;
        size_t n_metrics, cap_metrics;
        sk_login_limit *logins;
        /* audit retention: events older than this or beyond this many go */
        int64_t events_max_age_ms, events_max;
        int64_t pruned_at; /* when they last went (unix ms) */
};

typedef enum sk_tower_auth { SK_AUTH_NONE, SK_AUTH_USER, SK_AUTH_HOST } sk_tower_auth;

/* One request in flight: who asked, the path parameters and where the answer goes. */
typedef struct sk_tower_ctx {
        sk_tower_api *api;
        const sk_tower_request *req;
        sk_tower_response *resp;
        const char *kind; /* the resource kind of the route (plural), or NULL */
        const char *name; /* the {name} path segment, or NULL */
        /* user routes */
        char *tenant, *user, *role;
        char *scope;    /* the tenant the request works in: ?tenant= for admins of an ancestor */
        char *token_id; /* the public id of the caller's token */
        bool api_token; /* an API token (its own role), not a login */
        sk_tenancy *tn; /* the tenant tree as of this request */
        /* audit: set by handlers that know better than the router (login) */
        char *audit_tenant, *audit_actor;
        bool no_audit; /* a repeat of a flood already recorded */
        /* host routes */
        int64_t site_id, host_id;
        /* Which desired documents a write can have changed: 0 any (the default), > 0 only
         * that site's, < 0 none. Lets a site write skip recomputing every other site. */
        int64_t sync_only;
} sk_tower_ctx;

/* Handlers return 0 after filling c->resp, or a negative errno with err set; the router
 * turns -EINVAL into 400 invalid, -EBADMSG 400 bad-json, -EACCES 401, -EPERM 403,
 * -ENOENT 404, -EEXIST/-EBUSY 409, -EFBIG 413, anything else 500. */
typedef int (*sk_tower_handler)(sk_tower_ctx *c, sk_error **err);

int64_t sk_tower_now(const sk_tower_api *api);
void sk_tower_reply(sk_tower_ctx *c, int status, json_t *body);
const char *sk_tower_query(const sk_tower_ctx *c, const char *key);
/* Parses the body as a JSON object. */
int sk_tower_body(const sk_tower_ctx *c, json_t **out, sk_error **err);
/* "2026-11-27T23:41:44Z" from unix milliseconds; caller frees. */
char *sk_tower_rfc3339(int64_t ms);
/* 32 random bytes, base64url without padding, and its SHA-256 hex; caller frees both. */
int sk_tower_new_secret(char **secret, char **hash);
void sk_tower_hash_hex(const char *secret, char out[65]);
/* The rank of a role: viewer 0, developer 1, operator 2, admin 3; -1 for anything else. */
int sk_tower_role_rank(const char *role);
/* The role of an API token that reads /metrics of its tenant and nothing else. */
#define SK_TOWER_METRICS_ROLE "metrics"
/* The public id of a token: the first 12 hex digits of its SHA-256. */
#define SK_TOWER_TOKEN_ID_LEN 12

/* A site by name in a tenant (tenant NULL: any tenant, first match): its row id and the
 * stored document (owned by the caller). -ENOENT with a message when there is none. */
int sk_tower_site_find(sk_tower_api *api, const char *tenant, const char *name, int64_t *id,
                       json_t **doc, sk_error **err);
/* A site's labels with the built-ins system/name and system/tenant added. */
json_t *sk_tower_site_labels(const json_t *site_doc, const char *tenant);
/* The newest stored version of an application; caller frees. -ENOENT when none. */
int sk_tower_app_newest(sk_tower_api *api, const char *tenant, const char *app, char **version,
                        sk_error **err);

/* Handlers (resources.c) */
int sk_tower_h_list(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_get(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_put(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_delete(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_site_token(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_login(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_password(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_whoami(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_hosts(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_host_delete(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_instances(sk_tower_ctx *c, sk_error **err);
/* Handlers (tokens.c) */
int sk_tower_h_tokens_list(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_token_create(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_token_revoke(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_events(sk_tower_ctx *c, sk_error **err);
/* Handlers (sync.c) */
int sk_tower_h_join(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_sync_desired(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_sync_status(sk_tower_ctx *c, sk_error **err);
int sk_tower_h_sync_site_ca(sk_tower_ctx *c, sk_error **err);
/* Handlers (metrics.c) */
int sk_tower_h_metrics(sk_tower_ctx *c, sk_error **err);

/* After a write: refreshes site documents as c->sync_only allows (sync.c). */
int sk_tower_sync_after_write(sk_tower_api *api, int64_t rev_before, int64_t only, sk_error **err);

/* GET /v1/sites?match= (sitematch.c): keeps in *items the sites that expr_text selects.
 * 0: done here; 1: handed off as a job in c->resp->job (the items with it), answer nothing
 * now; the next round finds the result in sk_tower_match_done. Inline when the worst case,
 * the expression's cost times the sites, is at most SK_TOWER_MATCH_INLINE steps (~2 ms). */
#define SK_TOWER_MATCH_INLINE (1 << 20)
int sk_tower_match_sites(sk_tower_ctx *c, const char *expr_text, json_t **items, sk_error **err);
/* The sites the finished match job of this request kept, or NULL in the first round. */
const json_t *sk_tower_match_done(const sk_tower_ctx *c);

/* The deployment status block of GET /v1/deployments/NAME (sync.c). */
int sk_tower_deployment_status(sk_tower_api *api, const char *tenant, const char *name,
                               json_t **status, sk_error **err);

#endif
