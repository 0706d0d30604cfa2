/* The uplink to the tower, over mutual TLS with the join's certificate (DIR/cert.pem,
 * DIR/key.pem, verified against DIR/ca.pem).
 *
 * A sync thread long-polls GET /v1/sync/desired; a new document is written atomically to
 * DIR/desired.json (a site whose raft state is lost seeds it from there) and handed to the
 * site cluster (on_desired). A status thread POSTs /v1/sync/status for every host of the
 * site (reports) whenever it changes and at least every 5 s (the heartbeat). Both reconnect with
 * capped exponential backoff (0.5 s .. 15 s) and log once per change of reachability. Both stop
 * within about a second of sk_uplink_stop, even mid-request. */
#ifndef SK_SITE_UPLINK_H
#define SK_SITE_UPLINK_H

#include <jansson.h>
#include <stdint.h>

#include "common/error.h"

#define SK_UPLINK_WAIT_S       30
#define SK_UPLINK_HEARTBEAT_MS 5000
#define SK_UPLINK_BACKOFF_MIN  500
#define SK_UPLINK_BACKOFF_MAX  15000

typedef struct sk_uplink sk_uplink;

typedef struct sk_uplink_config {
        const char *data_dir;
        const char *tower; /* URL */
        const char *host;
        int64_t generation; /* of the desired document already held, 0: none */
        /* Required. The site cluster's leader: a new desired document (already persisted;
         * borrowed), and the status bodies to post, one per host of the site (a new
         * reference to an array of POST /v1/sync/status bodies). Called from the uplink's
         * threads. */
        void (*on_desired)(const json_t *doc, void *user);
        json_t *(*reports)(void *user);
        /* Optional: the tower refused this host's certificate (401) on the sync. Called from
         * the sync thread after each such answer. */
        void (*on_refused)(void *user);
        /* Optional, both or neither: site CA generations (docs/security.md). site_ca_held
         * is the generation the site's state holds; when a desired document announces a
         * newer one ("site-ca": {"generation"}), the sync thread fetches it
         * (GET /v1/sync/site-ca) and hands the answer to on_site_ca (borrowed). */
        int64_t (*site_ca_held)(void *user);
        void (*on_site_ca)(const json_t *answer, void *user);
        int64_t site_ca_announced; /* by the document already held, 0: none */
        void *user;
} sk_uplink_config;

int sk_uplink_new(const sk_uplink_config *cfg, sk_uplink **out, sk_error **err);
int sk_uplink_start(sk_uplink *u, sk_error **err);
/* The status changed: post it now. Any thread. */
void sk_uplink_notify(sk_uplink *u);
void sk_uplink_stop(sk_uplink *u);
void sk_uplink_free(sk_uplink *u);

/* DIR/desired.json as the last sync left it; -ENOENT when there is none. */
int sk_desired_load(const char *dir, json_t **doc, sk_error **err);

#endif
