/* The site cluster's replicated state machine (docs/site-cluster.md): what every host of a
 * site agrees on through raft. Pure: no I/O, no clock, no locks (the cluster serialises).
 *
 * State, as JSON (also the snapshot's body):
 *   {"desired": DOC | null,     the site's desired document as the tower last sent it
 *    "hosts": {"<host-id>": HOST, ...},
 *    "placements": [PLACEMENT, ...], "unplaced": [UNPLACED, ...],   (scheduler.h forms)
 *    "removed": [host id, ...],  the deny list: hosts the tower removed (ascending)
 *    "join-tokens": {"<sha256 hex>": {"expires": ms}},   site-local join tokens, unused
 *    "local-count": n, "local-joins": {"<sha256 hex>": host id},   hosts joined site-locally
 *    "site-ca": {"generation", "certificate", "key", "sha256"}}   the site CA, once the
 *                                 leader brought in a generation the tower announced
 *   HOST: {"id": 3, "name": "h1", "address": "10.0.0.5:7443", "labels": {... with the
 *          built-ins system/name, system/arch, device/<label>}, "devices": DISCOVERY,
 *          "capacity": {"cpu": millicores, "memory": bytes}, "alive": true}
 *
 * Commands (raft entries) are JSON objects, NUL-padded to a multiple of 8 bytes (libraft
 * 0.15 shifts unpadded entries on followers):
 *   {"op": "desired", "doc": DOC}               its "removed-hosts" join "removed" and
 *                                                leave "hosts"
 *   {"op": "host", "host": HOST}                 insert or replace by id
 *   {"op": "host-remove", "id": 3}
 *   {"op": "sched", "placements": [...], "unplaced": [...]}
 *   {"op": "join-token", "hash": HEX, "expires": ms, "now": ms}   a site-local join token
 *   {"op": "join-use", "hash": HEX, "now": ms, "site-id": S}      uses it: the next local
 *                                                 host id, recorded under the hash
 *   {"op": "site-ca", "generation": N, "certificate": PEM, "key": PEM, "sha256": HEX}
 *                                                 a newer site CA generation (the leader
 *                                                 proposes it once every removed host is
 *                                                 out of the raft configuration)
 * Times in entries are the proposing leader's wall clock, so every host prunes alike. */
#ifndef SK_SITE_CLUSTER_FSM_H
#define SK_SITE_CLUSTER_FSM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/desired.h"

#define SK_FSM_DESIRED    1 /* what sk_fsm_apply changed */
#define SK_FSM_HOSTS      2
#define SK_FSM_PLACEMENTS 4
#define SK_FSM_JOINS      8
#define SK_FSM_SITE_CA    16

/* Host ids of site-local joins: 2^62 + site-id * 2^24 + n, far above the tower's own
 * sequence, so they never collide and name their site. */
#define SK_FSM_LOCAL_ID_BASE  (1LL << 62)
#define SK_FSM_LOCAL_SITE_MAX (1LL << 38)

#define SK_FSM_LOST_AFTER_DEFAULT_MS 5000

typedef struct sk_fsm {
        json_t *state;           /* the JSON above: what snapshots hold, byte for byte */
        sk_desired_doc *desired; /* state's "desired" as the model reads it, or NULL */
} sk_fsm;

int sk_fsm_init(sk_fsm *f);
void sk_fsm_clear(sk_fsm *f);

/* A command into a malloc'ed, NUL-padded buffer whose length is a multiple of 8. */
char *sk_fsm_encode(const json_t *cmd, size_t *len);
/* Applies one entry. Returns the SK_FSM_* bits it changed (0: nothing), or -EINVAL naming
 * the field of a malformed entry (which then changes nothing). */
int sk_fsm_apply(sk_fsm *f, const void *buf, size_t len, sk_error **err);
/* The whole state, encoded like a command. */
char *sk_fsm_snapshot(const sk_fsm *f, size_t *len);
/* Replaces the state with a snapshot's; on error the state is unchanged. */
int sk_fsm_restore(sk_fsm *f, const void *buf, size_t len, sk_error **err);

/* Borrowed views (NULL or empty when absent). The desired document is read by the model
 * once, when an entry or a snapshot brings it: an entry or snapshot whose document the
 * model refuses is refused, naming the field ("doc.deployments[0].name"). */
const sk_desired_doc *sk_fsm_desired(const sk_fsm *f);
const json_t *sk_fsm_hosts(const sk_fsm *f);
const json_t *sk_fsm_host(const sk_fsm *f, int64_t id);
int64_t sk_fsm_generation(const sk_fsm *f);
/* The host was removed from the site (the deny list): refuse it everywhere. */
bool sk_fsm_is_removed(const sk_fsm *f, int64_t host_id);
/* The site's host-lost-after in ms (default 5 s). */
int64_t sk_fsm_lost_after_ms(const sk_fsm *f);

/* The site CA (docs/security.md, "Host removal and the site CA"): the generation the state
 * holds (0: none), that entry (borrowed, NULL when none), the generation the desired
 * document announces (0: none), and the SHA-256 of the one peers' chains must go through:
 * the announced one, else the one held, else NULL (then the host's own DIR/site-ca.pem). */
int64_t sk_fsm_site_ca_generation(const sk_fsm *f);
const json_t *sk_fsm_site_ca(const sk_fsm *f);
int64_t sk_fsm_site_ca_announced(const sk_fsm *f);
const char *sk_fsm_site_ca_pin(const sk_fsm *f);
/* Whether the announcement lists leaf_fp: a certificate the tower adopted, good whichever
 * generation signed it (a retired key cannot make it again). */
bool sk_fsm_site_ca_allows_leaf(const sk_fsm *f, const char *leaf_fp);

/* The n-th (from 1) site-local host id of a site; 0 when out of range. */
int64_t sk_fsm_local_host_id(int64_t site_id, int64_t n);
/* Whether a join token with that hash is known and unexpired at now (ms). */
bool sk_fsm_join_token_valid(const sk_fsm *f, const char *hash, int64_t now);
/* The host id a used token gave, or 0. */
int64_t sk_fsm_join_result(const sk_fsm *f, const char *hash);

/* Runs the scheduler over the state. *cmd is a "sched" command when its answer differs
 * from the stored one, NULL when it is the same (or there is no desired document).
 * reports (optional): the leader's latest heartbeats, {"<host-id>": {"report": {"host",
 * "instances": [INSTANCE, ...]}}}; an instance moving to a host is done when that host
 * reports it running. */
int sk_fsm_schedule(const sk_fsm *f, const json_t *reports, json_t **cmd, sk_error **err);

/* The instances placed on host `name` (and those moving away from it, which it runs until
 * their new host does), in the form desired.h builds containers from
 * (desired.h), each with "devices": {label: [host paths]} from discovery (this host's
 * own, fresher than the state's) for the labels its containers ask for. */
int sk_fsm_local_placed(const sk_fsm *f, const char *name, const json_t *discovery, json_t **placed,
                        sk_error **err);

/* The unplaced instances as INSTANCE status documents (state "unplaceable"). */
json_t *sk_fsm_unplaced_status(const sk_fsm *f, const char *site, const char *host);

#endif
