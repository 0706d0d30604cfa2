/* Instances: where the site placed them, why it could not, and how they are doing
 * (docs/api.md INSTANCE, docs/scheduler.md). JSON forms:
 *   placement: {"instance": "tenant/deployment/service/replica", "host": "h1",
 *               "spec-hash": "hex", "from": "h2" (only while moving: h2 still runs it)}
 *   unplaced:  {"instance", "tenant", "deployment", "service", "replica" (absent for mode
 *               one-per-host), "host" (one-per-host only), "reason": "no host fits: ..."}
 *   status:    {"instance", "tenant", "deployment", "application", "version", "service",
 *               "replica", "site", "host", "state", "reason", "restarts",
 *               "containers": [{"name", "id", "state", "exit-code"}], "updated"}
 * Ownership as in model/app.h. */
#ifndef SK_MODEL_INSTANCE_H
#define SK_MODEL_INSTANCE_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

/* An instance id "tenant/deployment/service/replica", or "tenant/deployment/service" for
 * the one instance per host of a service of mode one-per-host (replica SK_UNSET). */
typedef struct sk_instance_id {
        char *tenant;
        char *deployment;
        char *service;
        int64_t replica;
} sk_instance_id;

/* -EINVAL when id is not of that shape (names are DNS labels, replica 0..999). */
int sk_instance_id_parse(const char *id, sk_instance_id *out);
char *sk_instance_id_format(const sk_instance_id *id);
void sk_instance_id_clear(sk_instance_id *id);

typedef struct sk_placement {
        char *instance;
        char *host;
        char *spec_hash; /* of the service when it was placed; "" when not known */
        char *from;      /* moving: the host that runs it until `host` does, else NULL */
} sk_placement;

typedef struct sk_unplaced {
        char *instance;
        char *tenant;
        char *deployment;
        char *service;
        int64_t replica; /* SK_UNSET for mode one-per-host */
        char *host;      /* one-per-host: the host it should run on, or NULL */
        char *reason;
} sk_unplaced;

typedef enum sk_instance_state {
        SK_STATE_PENDING,
        SK_STATE_STARTING,
        SK_STATE_RUNNING,
        SK_STATE_EXITED,
        SK_STATE_BACKOFF,
        SK_STATE_FAILED,
        SK_STATE_UNPLACEABLE /* instances only */
} sk_instance_state;

typedef struct sk_container_status {
        char *name;
        char *id;          /* "" before it was created */
        int state;         /* sk_instance_state */
        int64_t exit_code; /* default 0 */
} sk_container_status;

typedef struct sk_instance_status {
        char *instance;
        char *tenant;
        char *deployment;
        char *application; /* the optional ones are NULL or SK_UNSET when not reported */
        char *version;
        char *service;
        int64_t replica;
        char *site;
        char *host;
        int state; /* sk_instance_state */
        char *reason;
        int64_t restarts;
        SK_LIST(sk_container_status) containers;
        char *updated; /* RFC 3339, set by the tower */
} sk_instance_status;

extern const sk_model sk_placement_table;
extern const sk_model sk_unplaced_table;
extern const sk_model sk_instance_status_table;

SK_RESOURCE_DECLARE(placement, sk_placement)
SK_RESOURCE_DECLARE(unplaced, sk_unplaced)
SK_RESOURCE_DECLARE(instance_status, sk_instance_status)

const char *sk_instance_state_name(sk_instance_state s);

#define _cleanup_placement_       __attribute__((cleanup(sk_placement_freep)))
#define _cleanup_unplaced_        __attribute__((cleanup(sk_unplaced_freep)))
#define _cleanup_instance_status_ __attribute__((cleanup(sk_instance_status_freep)))

#endif
