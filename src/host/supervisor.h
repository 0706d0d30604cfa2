/* The supervisor: keeps this host's containers as the desired document says, through the
 * runtime seam. A thread reconciles every few seconds, at once on a new desired document
 * (sk_supervisor_set_desired) and on runtime events (an events thread streams them for
 * this host's and site's labels). The decisions are reconcile.h's pure planner; this
 * module executes them and keeps the status report. Until it has a desired document it
 * touches nothing: an agent that never synced must not remove containers it finds. */
#ifndef SK_HOST_SUPERVISOR_H
#define SK_HOST_SUPERVISOR_H

#include <jansson.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/error.h"
#include "host/runtime.h"

typedef struct sk_supervisor sk_supervisor;

typedef struct sk_supervisor_config {
        sk_runtime *runtime;        /* borrowed: reconcile calls */
        sk_runtime *events_runtime; /* owned, or NULL for no events thread */
        const char *site;
        const char *host;
        const json_t *host_labels;     /* may be NULL */
        void (*on_status)(void *user); /* the status report changed (supervisor thread) */
        void *user;
        int interval_ms; /* reconcile at least this often; 0: 3000 */
} sk_supervisor_config;

int sk_supervisor_new(const sk_supervisor_config *cfg, sk_supervisor **out, sk_error **err);
/* A new desired document (GET /v1/sync/desired's body); takes a reference. Wakes. */
void sk_supervisor_set_desired(sk_supervisor *s, json_t *desired);
/* The instances this host runs, as the site cluster placed them (an array in the form
 * sk_fsm_local_placed makes); takes a reference. Replaces whatever set_desired gave. */
void sk_supervisor_set_placed(sk_supervisor *s, json_t *placed);
void sk_supervisor_wake(sk_supervisor *s);
/* One reconcile pass at now_ms (monotonic ms). Called by the thread; tests call it
 * directly. Returns the time the next pass is due (a backoff or retry ending) or 0. */
int sk_supervisor_pass(sk_supervisor *s, int64_t now_ms, int64_t *next_ms, sk_error **err);
/* The current status report: an array of INSTANCE (docs/api.md). New reference. */
json_t *sk_supervisor_status(sk_supervisor *s);

int sk_supervisor_start(sk_supervisor *s, sk_error **err);
/* Stops the threads; containers keep running. Waits for a runtime call in progress. */
void sk_supervisor_stop(sk_supervisor *s);
void sk_supervisor_free(sk_supervisor *s);

#endif
