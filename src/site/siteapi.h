/* The site-local API (docs/site-cluster.md): HTTP/1.1 + JSON between the hosts of a site
 * (heartbeats to the leader) and for `skerry --site-local` on the site itself.
 *
 * It shares the raft port: raft_tls verifies the peer (same CA, same site, host
 * certificate) and hands a connection whose first bytes are an HTTP request to
 * sk_siteapi_add; a libmicrohttpd daemon without a listening socket reads requests in its
 * own thread and answers the quick ones there (heartbeats: nothing else may delay them);
 * the others run on a few worker threads while their connection is suspended, so a slow
 * one (a request forwarded to a leader that does not answer) holds only a worker. A client
 * that sends its request slowly holds nothing: the daemon's thread polls. The client side
 * (sk_site_client) speaks TLS to that port with this host's certificate and refuses a server that
 * is not a host of the same site. */
#ifndef SK_SITE_SITEAPI_H
#define SK_SITE_SITEAPI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "site/siteroutes.h"

#define SK_SITEAPI_BODY_MAX (1 << 20)
/* Workers for the requests that are not quick (siteroutes.h), and how many may wait. */
#define SK_SITEAPI_WORKERS   4
#define SK_SITEAPI_QUEUE_MAX 64

typedef struct sk_siteapi sk_siteapi;

/* Serves routes (copied; what it points to must outlive the API). */
int sk_siteapi_new(const sk_site_routes *routes, sk_siteapi **out, sk_error **err);
/* A verified connection (raft_tls's on_http): fd is taken. Any thread. */
void sk_siteapi_add(sk_siteapi *api, int fd, int64_t host_id);
void sk_siteapi_free(sk_siteapi *api);

/* {"error": {"code": code, "message": msg}} */
json_t *sk_siteapi_error(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef struct sk_site_client sk_site_client;

/* Credentials from an agent data folder (DIR/ca.pem, DIR/cert.pem, DIR/key.pem); the
 * server must hold a host certificate of the same CA and site. */
int sk_site_client_new(const char *data_dir, sk_site_client **out, sk_error **err);
void sk_site_client_free(sk_site_client *c);
/* A server whose chain goes through a retired site CA generation is refused
 * (docs/security.md): by default any site CA but DIR/site-ca.pem's; with a pin, one for
 * which is_retired_ca answers true. */
void sk_site_client_pin(sk_site_client *c,
                        bool (*is_retired_ca)(const char *fp, const char *leaf_fp, void *user),
                        void *user);
/* METHOD https://addr/path with an optional JSON body. 0 when an answer came: *status and
 * *answer (parsed JSON, or NULL when the body is empty or not JSON). */
int sk_site_client_call(sk_site_client *c, const char *addr, const char *method, const char *path,
                        const json_t *body, long timeout_ms, long *status, json_t **answer,
                        sk_error **err);

#endif
