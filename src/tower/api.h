/* The tower's HTTP API as pure functions: a request struct in, a status and a JSON body
 * out. No sockets here (http.c adapts libmicrohttpd to this), so the router, the
 * authentication check and every handler are unit-tested against a real store.
 *
 * Calls are made from one thread at a time: the HTTP server's request threads take turns
 * under its API lock; jobs (below) run outside it. */
#ifndef SK_TOWER_API_H
#define SK_TOWER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/pki.h"
#include "tower/store.h"

#define SK_TOWER_BODY_MAX   (1024 * 1024)
#define SK_TOWER_ROOT       "default" /* the provider tenant whose admins manage all */
#define SK_TOWER_WAIT_MAX_S 60

typedef struct sk_tower_api sk_tower_api;

/* Slow work (Argon2id password hashing, matching an expression over many sites) that must
 * not hold up the request threads nor the API lock: the server runs it on the worker
 * thread of its lane and then hands the request to the API again with the finished job in
 * sk_tower_request.job. run() touches nothing but the job itself. */
typedef struct sk_tower_job sk_tower_job;
enum { SK_TOWER_LANE_HASH, SK_TOWER_LANE_MATCH, SK_TOWER_JOB_LANES };
struct sk_tower_job {
        void (*run)(sk_tower_job *job);
        void (*free)(sk_tower_job *job);
        unsigned lane; /* SK_TOWER_LANE_*: jobs of a lane run one at a time */
};

typedef struct sk_tower_request {
        const char *method;
        const char *path;          /* without the query string */
        const json_t *query;       /* object of string values; NULL when none */
        const char *authorization; /* the Authorization header, or NULL */
        const char *body;
        size_t body_len;
        /* The TLS layer: whether the client presented a certificate, and a verifier that
         * chains it to the CA and returns its URI SAN and the SHA-256 of the site CA that
         * signed it ("" when the tower CA did) and of the leaf (sk_pki_verify_peer_ca). */
        bool has_peer_cert;
        int (*verify_peer)(void *ctx, char **uri, sk_pki_chain *chain, sk_error **err);
        void *peer_ctx;
        sk_tower_job *job;       /* the finished job of the previous round, or NULL */
        const char *remote_addr; /* the client's address (audit, login lockout), or NULL */
} sk_tower_request;

typedef struct sk_tower_response {
        int status;
        json_t *body;       /* owned; NULL: no body */
        char *text;         /* owned; a text/plain body instead (metrics) */
        const char *route;  /* the route pattern (static), for metrics */
        bool authenticated; /* the caller proved who it is (a valid token or certificate) */
        char identity[160]; /* then who: "host:SITE-ID/HOST-ID" or "user:TENANT/USER" */
        /* A long-poll with nothing new: hold the request until site wait_site's document
         * changes or wait_ms pass, then handle it again (204 once the wait is over). */
        int64_t wait_site;
        int64_t wait_ms;
        /* Run this job off the request thread, then handle the same request again with it
         * (the server owns it from here and frees it when the request ends). */
        sk_tower_job *job;
} sk_tower_response;

/* Wakes the long-polls of a site whose desired document changed. */
typedef void (*sk_tower_notify_fn)(void *ctx, int64_t site_id);
/* The number of long-polls held now, for /metrics. */
typedef long (*sk_tower_waiting_fn)(void *ctx);

/* The connection admission figures now, for /metrics (docs/security.md). */
typedef void (*sk_tower_conn_stats_fn)(void *ctx, long *strangers, long *proven, long *refused);

/* store and ca are borrowed and must outlive the api. */
int sk_tower_api_new(sk_store *store, sk_ca *ca, sk_tower_api **out, sk_error **err);
void sk_tower_api_free(sk_tower_api *api);
void sk_tower_api_set_hooks(sk_tower_api *api, sk_tower_notify_fn notify,
                            sk_tower_waiting_fn waiting, void *ctx);
/* Audit retention (docs/security.md): events older than max_age_ms (0: no age limit) or
 * beyond the newest max_events (< 0: no count limit) are removed, checked at most once a
 * minute as events are added. */
#define SK_TOWER_EVENTS_MAX_AGE_MS (90LL * 24 * 3600 * 1000)
#define SK_TOWER_EVENTS_MAX        100000
void sk_tower_api_set_retention(sk_tower_api *api, int64_t max_age_ms, int64_t max_events);
/* The server's admission figures, called with the hooks' ctx; NULL: none. */
void sk_tower_api_set_conn_stats(sk_tower_api *api, sk_tower_conn_stats_fn fn);
/* Tests move time; NULL restores the real clock (unix milliseconds). */
void sk_tower_api_set_clock(sk_tower_api *api, int64_t (*now_ms)(void));

/* Ensures tenant `default` and user `admin` exist; when admin_token is non-NULL, also
 * makes a never-expiring admin API token and returns it there (caller frees). */
int sk_tower_bootstrap(sk_tower_api *api, char **admin_token, sk_error **err);

/* Routes, authenticates and answers one request. Always fills resp. */
void sk_tower_api_handle(sk_tower_api *api, const sk_tower_request *req, sk_tower_response *resp);
void sk_tower_response_clear(sk_tower_response *resp);
/* Fills resp with the JSON error body of a negative errno r (the status the router gives
 * it: -EINVAL 400, -EFBIG 413, -E2BIG 414, -EMSGSIZE 431, -EAGAIN 429, -EMFILE 503, ...)
 * and e's message, path and column. For answers given before routing (http.c). */
void sk_tower_error_response(sk_tower_response *resp, int r, const sk_error *e);

/* Recomputes every site's desired document when the store revision moved since the last
 * time (force: regardless), bumping generations and notifying where content changed. */
int sk_tower_sync_refresh(sk_tower_api *api, bool force, sk_error **err);
/* The desired document of a site without its generation (what is hashed). */
int sk_tower_sync_desired(sk_tower_api *api, int64_t site_id, json_t **doc, sk_error **err);

/* The route table, for the authorization matrix test: method, pattern ("{name}" for a
 * path segment) and who authenticates ("none", "user", "host"). */
size_t sk_tower_route_count(void);
void sk_tower_route_at(size_t i, const char **method, const char **pattern, const char **auth);

/* Counts one answered request for /metrics. */
void sk_tower_api_count(sk_tower_api *api, const char *route, int status);

#endif
