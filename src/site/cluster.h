/* The site cluster (docs/site-cluster.md): this host's raft node, in a thread of its own
 * running a libuv loop, with raft over mutual TLS (raft_tls) and the site-local API on the
 * same port (siteapi, served on threads of its own). cluster_int.h says which file does
 * what.
 *
 * Every host: replicates the FSM (cluster_fsm.h) and tells the agent when it changes.
 * The leader, once its barrier is committed: takes the hosts' heartbeats, keeps the host
 * inventory and liveness (liveness.h) in raft, adds hosts that report in to the raft
 * configuration and keeps 1, 3 or 5 voters (a dead voter is replaced by a live standby),
 * runs the scheduler on every change and stores its answer. The agent runs the uplink to
 * the tower while sk_cluster_is_leader says so. */
#ifndef SK_SITE_CLUSTER_H
#define SK_SITE_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/error.h"

typedef struct sk_cluster sk_cluster;

typedef struct sk_cluster_config {
        const char *data_dir; /* the agent's: DIR/raft holds raft's files; DIR/ca.pem,
                                 DIR/cert.pem, DIR/key.pem the identity */
        const char *address;  /* "IP:PORT": raft and the site-local API */
        const char *site;     /* site name, for status documents */
        const char *host;     /* this host's name */
        int64_t host_id;      /* from the certificate; the raft id */
        const json_t *peers;  /* [{"host", "host-id", "address"}] the tower named at join;
                                 empty or NULL: this host bootstraps the cluster */
        /* Something changed: the FSM, this node's role, the leader. Loop thread; must not
         * block. */
        void (*on_change)(void *user);
        void *user;
        /* Every time the cluster reads (liveness, hand-over, join tokens, last-seen); NULL:
         * the system's. Tests pass a fake one. */
        const sk_clock *clock;
        int election_ms;             /* 0: 1000 */
        int heartbeat_ms;            /* 0: 100 */
        unsigned snapshot_threshold; /* 0: 64 entries */
} sk_cluster_config;

int sk_cluster_new(const sk_cluster_config *cfg, sk_cluster **out, sk_error **err);
/* Starts the loop thread (and the raft node in it). */
int sk_cluster_start(sk_cluster *cl, sk_error **err);
/* Closes raft and joins the thread; containers are not touched. */
void sk_cluster_stop(sk_cluster *cl);
void sk_cluster_free(sk_cluster *cl);

/* Everything below is safe from any thread. */

/* Leader, with everything before its term committed. */
bool sk_cluster_is_leader(sk_cluster *cl);
/* The known leader's address (caller frees), or NULL. */
char *sk_cluster_leader_address(sk_cluster *cl);
/* An address to send a heartbeat to when no leader is known: peers and configuration in
 * turn (caller frees), or NULL. */
char *sk_cluster_next_peer(sk_cluster *cl);
/* "leader", "voter", "standby" (spare counts as standby) or NULL when not a member. */
const char *sk_cluster_role_of(sk_cluster *cl, int64_t host_id);

/* A deep copy of the FSM state (cluster_fsm.h): for tests and tools, not for a timer. */
json_t *sk_cluster_state(sk_cluster *cl);
/* Counts the entries that changed the state: what was read at the same count need not
 * be read again. */
uint64_t sk_cluster_seq(sk_cluster *cl);
/* The desired document's generation (0: none) and its site's device rules (a new
 * reference, or NULL). */
int64_t sk_cluster_generation(sk_cluster *cl);
json_t *sk_cluster_device_rules(sk_cluster *cl);
/* The instances placed on this host (sk_fsm_local_placed); -ENOENT before the state has
 * a desired document. */
int sk_cluster_local_placed(sk_cluster *cl, const json_t *discovery, json_t **placed,
                            sk_error **err);

/* What the leader's ticks did, for tests and benchmarks: an idle site's ticks build no
 * inventory entries and run no scheduler. */
typedef struct sk_cluster_work {
        uint64_t ticks, inventory_passes, schedules;
} sk_cluster_work;
void sk_cluster_work_done(sk_cluster *cl, sk_cluster_work *out);

/* Site CA generations (docs/security.md): the generation the state holds (0: none), and
 * the tower's answer of GET /v1/sync/site-ca for the leader to propose (otherwise -EAGAIN)
 * once the document announcing it is applied and every removed host is out of the raft
 * configuration. */
int64_t sk_cluster_site_ca_held(sk_cluster *cl);
/* The site CA generation the applied desired document announces (0: none). */
int64_t sk_cluster_site_ca_announced(sk_cluster *cl);
/* Whether fp (the SHA-256 of a site CA in a peer's chain) is not the site's current one
 * and leaf_fp (its certificate's) is not one the tower adopted; user is the cluster. For
 * raft_tls and sk_site_client_pin (any thread). */
bool sk_cluster_site_ca_retired(const char *fp, const char *leaf_fp, void *user);
int sk_cluster_submit_site_ca(sk_cluster *cl, const json_t *answer);

/* A new desired document from the tower (leader: proposed to raft; otherwise -EAGAIN). */
int sk_cluster_submit_desired(sk_cluster *cl, const json_t *doc);
/* Leader: hand leadership to another voter (at most once per SK_CLUSTER_STEP_ASIDE_MS);
 * nothing when this host is the only voter. The uplink calls it when the tower refuses
 * this host's certificate (a removed host never hears of its removal from the tower). */
#define SK_CLUSTER_STEP_ASIDE_MS 10000
void sk_cluster_step_aside(sk_cluster *cl);

/* The site's host-lost-after in ms as the replicated state says (default 5 s): the
 * agent paces its heartbeats by it (sk_liveness_beat_ms). */
int64_t sk_cluster_lost_after_ms(sk_cluster *cl);
/* A host's heartbeat (heartbeat.h; this host's own, the others' come through the site-local
 * API): taken when this node is the ready leader (0); -EPERM from a host removed from the
 * site; -EINVAL for a report heartbeat.h refuses; -EAGAIN otherwise. */
int sk_cluster_heartbeat(sk_cluster *cl, int64_t host_id, const json_t *report);
/* This host's heartbeat was answered by the host at address (the leader) at at_ms
 * (monotonic ms, on the cluster's clock): the last contact a new leader counts that host's
 * host-lost-after from. */
void sk_cluster_leader_contact(sk_cluster *cl, const char *address, int64_t at_ms);
/* Leader: every host's latest report, each with "role" and "state" (alive | lost) added,
 * as the tower's POST /v1/sync/status bodies. The leader's own carries the unplaced
 * instances (state "unplaceable"). */
json_t *sk_cluster_reports(sk_cluster *cl);
/* The site-local API's GET /v1/hosts and /v1/instances items from this node (leader). */
json_t *sk_cluster_hosts_view(sk_cluster *cl);
json_t *sk_cluster_instances_view(sk_cluster *cl);

#endif
