/* Which instances this host runs: the seam the site scheduler (raft, next) replaces.
 *
 * Input: the site's desired document (as GET /v1/sync/desired answers it) and this host's
 * identity. Output: a JSON array of placed instances, each
 *   {"instance": "tenant/deployment/service/replica", "tenant", "deployment",
 *    "application", "version", "service", "replica", "spec": SERVICE}
 * For now every host runs every instance of every deployment: replicas 0..n-1, or one
 * for mode one-per-host. Pure: no I/O, no clock. */
#ifndef SK_AGENT_PLACEMENT_H
#define SK_AGENT_PLACEMENT_H

#include <jansson.h>

#include "common/error.h"

typedef struct sk_placement_host {
        const char *site;
        const char *host;
        const json_t *labels; /* host labels, may be NULL */
} sk_placement_host;

int sk_placement_local(const json_t *desired, const sk_placement_host *host, json_t **instances,
                       sk_error **err);

#endif
