/* A tower replica's ear on a shared PostgreSQL store: a dedicated libpq connection that
 * LISTENs on skerry_revision (the store moved) and skerry_site (a site's sync state moved,
 * payload: the site id), watched by its own thread. */
#ifndef SK_TOWER_LISTEN_H
#define SK_TOWER_LISTEN_H

#include <stdint.h>

#include "common/error.h"

typedef struct sk_tower_listener sk_tower_listener;

typedef struct sk_tower_listener_cbs {
        /* Something may have changed: a revision notification (several are coalesced into
         * one call), a reconnect (notifications may have been missed while away), or
         * `idle_ms` without any. */
        void (*revision)(void *ctx);
        /* The sync state of site_id changed on some replica. */
        void (*site)(void *ctx, int64_t site_id);
        void *ctx;
        int idle_ms; /* 0: 5000 */
} sk_tower_listener_cbs;

/* Connects (failing at once with a message naming the database, host and port, never the
 * conninfo) and starts the thread. Callbacks run on that thread. */
int sk_tower_listener_start(const char *conninfo, const sk_tower_listener_cbs *cbs,
                            sk_tower_listener **out, sk_error **err);
/* Stops the thread (no callback runs after it returns) and closes the connection. */
void sk_tower_listener_stop(sk_tower_listener *l);

#endif
