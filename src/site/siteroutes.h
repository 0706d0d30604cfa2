/* The site-local API's request handler (docs/site-cluster.md, "The site-local API"): what
 * the site LAN can ask an agent, from the request line and body bytes to a status and a
 * JSON answer. Pure: the cluster's side is a function table, so tests and
 * tests/fuzz/fuzz_siteapi.c drive it without sockets or raft. */
#ifndef SK_SITE_SITEROUTES_H
#define SK_SITE_SITEROUTES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_site_request {
        const char *method, *path;
        const char *site; /* the ?site= query, or NULL */
        int64_t peer;     /* host id of the caller's certificate; 0: none (joining) */
        const char *body; /* raw bytes, or NULL */
        size_t len;
} sk_site_request;

/* A site-local join, its fields checked. */
typedef struct sk_site_join {
        const char *token; /* the token's secret part, 64 hex */
        const char *csr, *name;
        const json_t *labels; /* object or NULL */
        const char *address;
} sk_site_join;

/* What the handler asks of this node. Each returns an HTTP status and sets *answer where
 * it has one. Called on the thread the request runs on. */
typedef struct sk_site_ops {
        bool (*is_leader)(void *ctx); /* leading, with its barrier committed */
        char *(*leader_address)(void *ctx);
        bool (*is_removed)(void *ctx, int64_t host);
        /* A checked report (heartbeat.h), taken: 0, -EAGAIN when not the ready leader,
         * -EPERM when the host was removed. */
        int (*heartbeat)(void *ctx, int64_t host, json_t *report);
        json_t *(*hosts_view)(void *ctx);
        json_t *(*instances_view)(void *ctx);
        /* The same request to the leader (may wait on the network). */
        int (*forward)(void *ctx, const char *method, const char *path, const json_t *body,
                       json_t **answer);
        int (*make_token)(void *ctx, int64_t ttl_s, json_t **answer);
        int (*join)(void *ctx, const sk_site_join *join, json_t **answer);
} sk_site_ops;

typedef struct sk_site_routes {
        const sk_site_ops *ops;
        void *ctx;
        const char *site;   /* this site's name */
        const char *ca_pem; /* the tower's CA, which joining hosts pin */
} sk_site_routes;

/* Requests answered at once from memory (heartbeats, the CA): they run on the thread that
 * reads requests; every other request runs on a worker, so none can delay a heartbeat. */
bool sk_site_route_quick(const sk_site_request *rq);

/* Answers rq: the HTTP status, *answer a JSON body or NULL. */
int sk_site_route(const sk_site_routes *r, const sk_site_request *rq, json_t **answer);

#endif
