/* The tower's HTTPS server: libmicrohttpd with GnuTLS adapted to the pure API of api.h,
 * with suspended long-polls that cost no thread. */
#ifndef SK_TOWER_HTTP_H
#define SK_TOWER_HTTP_H

#include <stdint.h>

#include "common/error.h"
#include "tower/api.h"

typedef struct sk_tower_http sk_tower_http;

typedef struct sk_tower_http_opts {
        const char *listen;   /* "ADDR:PORT", "[::1]:PORT"; port 0 picks a free one */
        const char *cert_pem; /* server certificate and key */
        const char *key_pem;
        const char *ca_pem; /* trusted for client certificates */
        /* Connection admission (docs/security.md); 0: the default. */
        unsigned conn_per_address;  /* unauthenticated connections from one address */
        unsigned conn_reserve;      /* connections strangers never get (default: a quarter) */
        unsigned conn_per_identity; /* authenticated connections of one host or user */
        unsigned header_timeout_s;  /* idle limit before a request authenticates */
        unsigned threads;           /* request threads (libmicrohttpd's pool); 0: the default */
} sk_tower_http_opts;

#define SK_TOWER_CONN_PER_ADDRESS  128
#define SK_TOWER_CONN_PER_IDENTITY 64
#define SK_TOWER_HEADER_TIMEOUT_S  10
#define SK_TOWER_HTTP_THREADS      4
#define SK_TOWER_HTTP_THREADS_MAX  64
/* `?match=` jobs queued or running at a time; more are answered 429 at once. */
#define SK_TOWER_MATCH_QUEUE_MAX 4

/* Starts serving api (borrowed) on its pool of request threads; *port gets the bound port. */
int sk_tower_http_start(sk_tower_api *api, const sk_tower_http_opts *opts, sk_tower_http **out,
                        uint16_t *port, sk_error **err);
/* Answers held long-polls, stops the server and frees it. */
void sk_tower_http_stop(sk_tower_http *h);

/* For replicas sharing a store, from any thread: recompute the sites' desired documents
 * now (another replica changed the store), as the request thread does after a write; and
 * wake the long-polls this server holds for a site whose sync state moved elsewhere. */
void sk_tower_http_refresh(sk_tower_http *h);
void sk_tower_http_wake_site(sk_tower_http *h, int64_t site_id);

/* How many client-certificate chains were verified so far (once per connection). */
unsigned long sk_tower_http_peer_checks(const sk_tower_http *h);

/* Splits "ADDR:PORT" / "[V6]:PORT" into its parts; caller frees host. */
int sk_tower_split_listen(const char *listen, char **host, char **port, sk_error **err);

#endif
