/* The supervisor: keeps this host's containers as the site placed them, through the
 * runtime seam. A thread reconciles every few seconds, at once on a new placement
 * (sk_supervisor_set_placed) and on runtime events (an events thread streams them for
 * this host's and site's labels). The decisions are reconcile.h's pure planner; this
 * module executes them and keeps the status report. Until it has a placement it touches
 * nothing: an agent that never heard from its site must not remove containers it finds. */
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
        void (*on_status)(void *user); /* the status report changed (supervisor thread) */
        void *user;
        int interval_ms; /* reconcile at least this often; 0: 3000 */
} sk_supervisor_config;

int sk_supervisor_new(const sk_supervisor_config *cfg, sk_supervisor **out, sk_error **err);
/* The instances this host runs, as the site cluster placed them (the array
 * sk_fsm_local_placed makes); takes a reference. Wakes the thread when it changed. */
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
