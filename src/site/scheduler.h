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
 * Every type here has a JSON form (it lives in the raft log); the units there are the ones
 * the agent's status report uses: cpu in millicores, memory in bytes, both integers.
 *   host:      {"name": "h1", "labels": {...}, "capacity": {"cpu": 2000, "memory": 4294967296},
 *               "alive": true}
 *   placement: {"instance": "tenant/deployment/service/replica", "host": "h1",
 *               "spec-hash": "hex", "from": "h2" (only while moving: h2 still runs it)}
 *   quota:     {"tenant": "acme", "cpu": 4000, "memory": 8589934592, "instances": 20}
 *              (each limit optional)
 *   unplaced:  {"instance": "...", "tenant", "deployment", "service", "replica" (absent for
 *               mode one-per-host), "host" (one-per-host only), "reason": "no host fits: ..."}
 */
#ifndef SK_SITE_SCHEDULER_H
#define SK_SITE_SCHEDULER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define SK_SCHED_UNLIMITED (-1)

typedef struct sk_sched_host {
        char *name;
        json_t *labels; /* object of strings; system/name is implied when absent */
        int64_t cpu_millicores;
        int64_t memory_bytes;
        bool alive; /* false: lost (no contact for host-lost-after); its work moves */
} sk_sched_host;

typedef struct sk_sched_placement {
        char *instance;  /* "tenant/deployment/service/replica" */
        char *host;      /* the host that runs it */
        char *spec_hash; /* sk_sched_spec_hash() of the service when it was placed */
        char *from;      /* moving: the host that runs it until `host` does, else NULL */
} sk_sched_placement;

/* A tenant's quota on this site; SK_SCHED_UNLIMITED for a limit not set. */
typedef struct sk_sched_quota {
        char *tenant;
        int64_t cpu_millicores;
        int64_t memory_bytes;
        int64_t instances;
} sk_sched_quota;

typedef struct sk_sched_unplaced {
        char *instance; /* "t/d/s/replica", or "t/d/s" for mode one-per-host */
        char *tenant;
        char *deployment;
        char *service;
        int64_t replica; /* -1 for mode one-per-host */
        char *host;      /* one-per-host: the host it should run on, or NULL for none */
        char *reason;    /* "no host fits: h1, h2 lack device/camera; h3 has 200m cpu ..." */
} sk_sched_unplaced;

/* What the scheduler works from. `deployments` is the "deployments" array of the site's
 * desired document (docs/api.md, GET /v1/sync/desired): each {"tenant", "name", "spec":
 * APPLICATION} with the application as model/spec.c normalises it. */
typedef struct sk_sched_state {
        sk_sched_host *hosts;
        size_t n_hosts;
        sk_sched_placement *placements; /* the current placement map */
        size_t n_placements;
        sk_sched_quota *quotas; /* optional: tenants without an entry have no limit */
        size_t n_quotas;
        /* What the hosts report running (instance and host; spec_hash and from unused): a
         * move is done once its new host runs the instance. Not replicated: the leader's
         * latest heartbeats. */
        sk_sched_placement *running;
        size_t n_running;
} sk_sched_state;

typedef struct sk_sched_result {
        sk_sched_placement *placements; /* the new map, sorted by instance */
        size_t n_placements;
        sk_sched_unplaced *unplaced; /* in the order the desired document lists them */
        size_t n_unplaced;
} sk_sched_result;

/* Computes the new placement map. Errors only for malformed input (the message names the
 * field, e.g. "deployments[0].spec.services[1].placement.match-host-labels"); an instance
 * that has no host is not an error but an entry of out->unplaced. */
int sk_sched_run(const json_t *deployments, const sk_sched_state *state, sk_sched_result *out,
                 sk_error **err);

/* The hash that decides whether an instance's spec changed: over the service object
 * without `replicas` (scaling does not change the instances that run). */
char *sk_sched_spec_hash(const json_t *service);

/* JSON forms (see above). from_json: path prefixes error messages ("hosts[2]"); on error
 * nothing is left allocated in *out. */
json_t *sk_sched_host_to_json(const sk_sched_host *h);
int sk_sched_host_from_json(const json_t *j, const char *path, sk_sched_host *out, sk_error **err);
json_t *sk_sched_placement_to_json(const sk_sched_placement *p);
int sk_sched_placement_from_json(const json_t *j, const char *path, sk_sched_placement *out,
                                 sk_error **err);
json_t *sk_sched_quota_to_json(const sk_sched_quota *q);
int sk_sched_quota_from_json(const json_t *j, const char *path, sk_sched_quota *out,
                             sk_error **err);
/* A tenant's `quota-per-site` as the user wrote it ({cpu: 4, memory: 8Gi, instances: 20},
 * quantities as model/spec.h reads them); NULL quota_per_site means no limit. */
int sk_sched_quota_from_spec(const char *tenant, const json_t *quota_per_site, sk_sched_quota *out,
                             sk_error **err);
json_t *sk_sched_unplaced_to_json(const sk_sched_unplaced *u);

/* {"hosts": [...], "placements": [...], "quotas": [...], "running": [{"instance", "host"}]}
 * (each key optional when read). */
json_t *sk_sched_state_to_json(const sk_sched_state *s);
int sk_sched_state_from_json(const json_t *j, sk_sched_state *out, sk_error **err);
/* {"placements": [...], "unplaced": [...]} */
json_t *sk_sched_result_to_json(const sk_sched_result *r);

void sk_sched_host_clear(sk_sched_host *h);
void sk_sched_placement_clear(sk_sched_placement *p);
void sk_sched_quota_clear(sk_sched_quota *q);
void sk_sched_unplaced_clear(sk_sched_unplaced *u);
void sk_sched_state_clear(sk_sched_state *s);
void sk_sched_result_clear(sk_sched_result *r);

#define _cleanup_sched_state_  __attribute__((cleanup(sk_sched_state_clear)))
#define _cleanup_sched_result_ __attribute__((cleanup(sk_sched_result_clear)))

#endif
