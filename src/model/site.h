/* A site (DESIGN.md section 4, docs/resources.md): its labels, device rules and
 * host-lost-after. Ownership as in model/app.h. */
#ifndef SK_MODEL_SITE_H
#define SK_MODEL_SITE_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

/* label -> device nodes: exactly one of match (a glob under /dev/) and udev is set. */
typedef struct sk_device_rule {
        char *label;
        char *match;
        sk_kvs udev;
} sk_device_rule;

typedef struct sk_site {
        char *name;
        char *tenant;   /* the provider that owns it: set in the desired document only */
        json_t *labels; /* object of strings (sk_expr_match's form), without system/ ones */
        SK_LIST(sk_device_rule) devices;
        sk_duration host_lost_after; /* 1s..1h, default 5s */
} sk_site;

/* The site as a desired document carries it: no kind, with its tenant. */
extern const sk_model sk_site_desired_table;

/* A `kind: site` document. */
extern const sk_model sk_site_table;
SK_RESOURCE_DECLARE(site, sk_site)

#define _cleanup_site_ __attribute__((cleanup(sk_site_freep)))

#endif
