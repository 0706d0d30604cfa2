/* The desired document: what the tower sends a site (docs/api.md, GET /v1/sync/desired)
 * and what the site's raft log keeps of it:
 *   {"generation": 12,
 *    "site": {"name", "tenant", "labels", "devices", "host-lost-after"},
 *    "deployments": [{"tenant", "name", "application", "version", "spec": APPLICATION}],
 *    "quotas": {"acme-apps": {"cpu": 4000, "memory": 8589934592, "instances": 20}},
 *    "removed-hosts": [7, 9],
 *    "site-ca": {"generation": 2, "sha256": HEX, "leaves": [HEX, ...]}}
 * quotas are in the units the site's scheduler counts (millicores, bytes, instances; a
 * missing key is no limit); quotas and removed-hosts are absent when empty. site-ca announces
 * the site CA generation hosts must accept once a host removal re-keyed it (docs/security.md,
 * "Host removal and the site CA"; absent before), with the fingerprints of the leaf
 * certificates the tower adopted, good in every generation (absent when none). Ownership as in
 * model/app.h: the document owns its site, deployments (with their applications) and
 * quotas. */
#ifndef SK_MODEL_DESIRED_H
#define SK_MODEL_DESIRED_H

#include <jansson.h>

#include "common/error.h"
#include "model/app.h"
#include "model/field.h"
#include "model/resource.h"
#include "model/site.h"

typedef struct sk_desired_deployment {
        char *tenant;
        char *name;
        char *application;
        char *version; /* concrete: the tower resolved "*" */
        sk_app spec;
} sk_desired_deployment;

/* A tenant's quota on this site; SK_UNSET for a limit not set. */
typedef struct sk_site_quota {
        char *tenant;
        int64_t cpu_millicores;
        int64_t memory_bytes;
        int64_t instances;
} sk_site_quota;

typedef struct sk_site_ca_announce {
        int64_t generation;
        char *sha256;
        SK_LIST(char *) leaves;
} sk_site_ca_announce;

typedef struct sk_desired_doc {
        int64_t generation; /* SK_UNSET in what the tower hashes before numbering it */
        sk_site site;
        SK_LIST(sk_desired_deployment) deployments; /* ordered by tenant and name */
        SK_LIST(sk_site_quota) quotas;
        SK_LIST(int64_t) removed_hosts;
        sk_site_ca_announce *site_ca; /* or NULL */
} sk_desired_doc;

extern const sk_model sk_desired_doc_table;

SK_RESOURCE_DECLARE(desired_doc, sk_desired_doc)

/* Lookups the site's consumers make (NULL when absent). */
const sk_desired_deployment *sk_desired_doc_deployment(const sk_desired_doc *d, const char *tenant,
                                                       const char *name);
const sk_site_quota *sk_desired_doc_quota(const sk_desired_doc *d, const char *tenant);
bool sk_desired_doc_removed(const sk_desired_doc *d, int64_t host_id);

#define _cleanup_desired_doc_ __attribute__((cleanup(sk_desired_doc_freep)))

#endif
