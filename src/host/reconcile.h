/* The supervisor's decisions, as a pure function: given the desired containers, the
 * containers the runtime reports for this host and the clock, what to remove, create and
 * (re)start, and what state every instance is in. No I/O: the supervisor executes the
 * plan and reports back through sk_tracker_note_*.
 *
 * Rules: a container whose instance+container+spec-hash labels match a desired one is
 * adopted and never recreated; anything else carrying this host's label is removed
 * (undesired, outdated spec hash, duplicate); missing ones are created and started.
 * An exited container is restarted per its policy (always; on-failure when the exit code
 * is not 0; never) after a backoff of 1 s doubling to 60 s, reset once it ran 60 s; a
 * restart replaces it with a fresh container from the spec (REMOVE + CREATE). */
#ifndef SK_HOST_RECONCILE_H
#define SK_HOST_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "host/desired.h"
#include "host/runtime.h"

#define SK_BACKOFF_MIN_MS   1000
#define SK_BACKOFF_MAX_MS   60000
#define SK_BACKOFF_RESET_MS 60000

/* What the supervisor remembers per runtime container name across passes. */
typedef struct sk_track {
        char *name;
        int restarts;
        int64_t delay_ms;         /* the last backoff delay, 0: none yet */
        int64_t backoff_until_ms; /* waiting to restart until then, 0: not waiting */
        int64_t running_since_ms; /* first seen running (agent clock), 0: not running */
        char *create_error;       /* why the last pull/create failed, or NULL */
        int64_t create_retry_ms;  /* retry the pull/create then */
        int64_t create_delay_ms;
} sk_track;

typedef struct sk_tracker {
        sk_track *items;
        size_t n, cap;
} sk_tracker;

void sk_tracker_clear(sk_tracker *t);
sk_track *sk_tracker_get(sk_tracker *t, const char *name); /* creates; NULL on ENOMEM */
/* Outcomes the supervisor reports after executing an action. */
void sk_tracker_note_started(sk_tracker *t, const char *name, bool restart);
void sk_tracker_note_create_failed(sk_tracker *t, const char *name, const char *reason,
                                   int64_t now_ms);

typedef enum sk_action_kind {
        SK_ACTION_REMOVE, /* stop (10 s grace) and remove id */
        SK_ACTION_CREATE, /* pull, create and start want */
        SK_ACTION_START,  /* start id: created, never started (an agent stopped in between) */
} sk_action_kind;

typedef struct sk_action {
        sk_action_kind kind;
        const char *id;                   /* REMOVE, START: the container id */
        const sk_desired_container *want; /* CREATE, START */
        bool restart;                     /* CREATE: replaces an exited one, a restart */
} sk_action;

typedef struct sk_plan {
        sk_action *actions; /* removals first (independent of each other, so they may run
                               concurrently), then creates and starts breadth first:
                               replica 0 of every service before any replica 1 */
        size_t n;
        json_t *status;  /* array of INSTANCE (docs/api.md) without "updated" */
        int64_t next_ms; /* when a timer (backoff, retry) needs the next pass; 0: none */
} sk_plan;

/* Observed containers must carry exit codes for exited ones. The tracker is updated for
 * backoff scheduling only; its pointers into want must outlive the plan. */
int sk_reconcile_plan(const sk_desired_set *want, const sk_container_list *seen, const char *site,
                      const char *host, sk_tracker *tracker, int64_t now_ms, sk_plan *out,
                      sk_error **err);
void sk_plan_clear(sk_plan *p);

#endif
