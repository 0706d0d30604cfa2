/* The site scheduler (DESIGN.md section 7): which host of the site runs each instance.
 *
 * Pure: no I/O, no clock, no randomness; the same input always gives the same output, so
 * the raft leader can run it and every replica can check it. The rules are in
 * docs/scheduler.md. In short: filter the live hosts by the service's
 * placement.match-host-labels, placement.devices (host label device/<label>) and free
 * cpu/memory; prefer the host with the fewest instances of the same service, then the most
 * free memory, then the name. An instance whose host is alive and whose spec is unchanged
 * keeps its host; the placement map is the single truth, so a returning host never makes a
 * duplicate. The one exception, spread: when a replicated service without persistent
 * volumes has more than one instance more on one eligible host than on another that has
 * room, one replica moves there (make-before-break: its placement names the old host in
 * `from`, which keeps running it until the new host reports it running; one move per
 * service at a time, and every move narrows the gap, so it never flaps).
 *
 * Its inputs and outputs are the domain model's (src/model): the desired document with its
 * services as parsed once (a compiled match-host-labels expression, quantities in
 * millicores and bytes), the site's hosts (model/host.h), placements and unplaced
 * instances (model/instance.h). Their JSON forms are the model's; the scheduler has none.
 */
#ifndef SK_SITE_SCHEDULER_H
#define SK_SITE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/app.h"
#include "model/desired.h"
#include "model/host.h"
#include "model/instance.h"

/* What the scheduler works from besides the desired document (whose quotas it applies:
 * tenants without an entry have no limit). Borrowed: nothing here is changed or freed. */
typedef struct sk_sched_state {
        const sk_host *hosts; /* by name; system/name is implied when the labels lack it */
        size_t n_hosts;
        const sk_placement *placements; /* the current placement map */
        size_t n_placements;
        /* What the hosts report running (instance and host; spec_hash and from unused): a
         * move is done once its new host runs the instance. Not replicated: the leader's
         * latest heartbeats. */
        const sk_placement *running;
        size_t n_running;
} sk_sched_state;

/* Owned by the caller; sk_sched_result_clear releases it. */
typedef struct sk_sched_result {
        sk_placement *placements; /* the new map, sorted by instance */
        size_t n_placements;
        sk_unplaced *unplaced; /* in the order the desired document lists them */
        size_t n_unplaced;
} sk_sched_result;

/* Computes the new placement map. Errors only for input the model cannot rule out (a host
 * listed twice, a host without a name; the message names it); an instance that has no
 * host is not an error but an entry of out->unplaced. desired NULL: no deployments. */
int sk_sched_run(const sk_desired_doc *desired, const sk_sched_state *state, sk_sched_result *out,
                 sk_error **err);

/* The hash that decides whether an instance's spec changed: over the service's normalised
 * JSON without `replicas` (scaling does not change the instances that run). The same
 * value as before the typed model: a changed hash restarts every instance. */
char *sk_sched_spec_hash(const sk_service *service);

void sk_sched_result_clear(sk_sched_result *r);

#define _cleanup_sched_result_ __attribute__((cleanup(sk_sched_result_clear)))

#endif
