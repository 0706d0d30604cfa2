/* What the hosts of a site agree on through raft (docs/site-cluster.md): the state every
 * host keeps (and snapshots), and the commands (raft entries) that change it.
 *   state:   {"desired": DOC | null, "hosts": {"<id>": HOST}, "placements": [PLACEMENT],
 *             "unplaced": [UNPLACED], "removed": [id], "join-tokens": {"<sha256 hex>":
 *             {"expires": ms}}, "local-count": n, "local-joins": {"<sha256 hex>": id}}
 *   command: {"op": "desired", "doc": DOC} | {"op": "host", "host": HOST}
 *            | {"op": "host-remove", "id": 3}
 *            | {"op": "sched", "placements": [...], "unplaced": [...]}
 *            | {"op": "join-token", "hash": HEX, "expires": ms, "now": ms}
 *            | {"op": "join-use", "hash": HEX, "now": ms, "site-id": S}
 *            | {"op": "site-ca", "generation": N, "certificate": PEM, "key": PEM,
 *               "sha256": HEX}
 * DOC, HOST, PLACEMENT and UNPLACED are model/desired.h, host.h and instance.h. A state
 * from before a field existed reads with that field empty. Ownership as in model/app.h. */
#ifndef SK_MODEL_SITE_STATE_H
#define SK_MODEL_SITE_STATE_H

#include <jansson.h>

#include "common/error.h"
#include "model/desired.h"
#include "model/field.h"
#include "model/host.h"
#include "model/instance.h"
#include "model/resource.h"

typedef struct sk_join_token {
        char *hash; /* sha256 of the token, 64 lowercase hex digits */
        int64_t expires;
} sk_join_token;

typedef struct sk_local_join {
        char *hash;
        int64_t host_id; /* the id the token's use gave */
} sk_local_join;

typedef struct sk_site_state {
        sk_desired_doc *desired; /* NULL until the tower sent one */
        SK_LIST(sk_host) hosts;  /* each with its id: the key it is listed under */
        SK_LIST(sk_placement) placements;
        SK_LIST(sk_unplaced) unplaced;
        SK_LIST(int64_t) removed; /* ascending */
        SK_LIST(sk_join_token) join_tokens;
        int64_t local_count;
        SK_LIST(sk_local_join) local_joins;
} sk_site_state;

typedef enum sk_site_op {
        SK_SITE_OP_DESIRED,
        SK_SITE_OP_HOST,
        SK_SITE_OP_HOST_REMOVE,
        SK_SITE_OP_SCHED,
        SK_SITE_OP_JOIN_TOKEN,
        SK_SITE_OP_JOIN_USE,
        SK_SITE_OP_SITE_CA
} sk_site_op;

/* One command: op says which of the other fields it has (the others are unset). */
typedef struct sk_site_command {
        int op;                           /* sk_site_op */
        sk_desired_doc *doc;              /* desired: with its generation */
        sk_host *host;                    /* host: with its id */
        int64_t id;                       /* host-remove */
        SK_LIST(sk_placement) placements; /* sched */
        SK_LIST(sk_unplaced) unplaced;    /* sched */
        char *hash;                       /* join-token, join-use */
        int64_t expires;                  /* join-token */
        int64_t now;                      /* join-token, join-use: the leader's clock */
        int64_t site_id;                  /* join-use */
        int64_t generation;               /* site-ca: a newer site CA generation */
        char *certificate;                /* site-ca: PEM */
        char *key;                        /* site-ca: PEM */
        char *sha256;                     /* site-ca: the certificate's fingerprint */
} sk_site_command;

extern const sk_model sk_site_state_table;
extern const sk_model sk_site_command_table;

SK_RESOURCE_DECLARE(site_state, sk_site_state)
SK_RESOURCE_DECLARE(site_command, sk_site_command)

const sk_host *sk_site_state_host(const sk_site_state *s, int64_t id);

#define _cleanup_site_state_   __attribute__((cleanup(sk_site_state_freep)))
#define _cleanup_site_command_ __attribute__((cleanup(sk_site_command_freep)))

#endif
