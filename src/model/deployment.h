/* A deployment (DESIGN.md section 4, docs/resources.md): which application version runs on
 * which sites, and how a change rolls out. Its `sites` expression (and the canary's) is
 * compiled once, with the document, and kept here. Ownership as in model/app.h. */
#ifndef SK_MODEL_DEPLOYMENT_H
#define SK_MODEL_DEPLOYMENT_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

typedef enum sk_on_failure {
        SK_ON_FAILURE_HALT,
        SK_ON_FAILURE_CONTINUE,
        SK_ON_FAILURE_ROLLBACK
} sk_on_failure;

typedef struct sk_canary {
        sk_expr_text sites;
        sk_duration healthy_time;
} sk_canary;

typedef struct sk_strategy {
        sk_canary *canary;
        int64_t sites_in_parallel; /* 1..100000 or SK_UNSET */
        sk_duration healthy_time;
        int on_failure; /* sk_on_failure or SK_UNSET */
} sk_strategy;

typedef struct sk_deployment {
        char *name;
        char *application;
        char *version; /* "*" (the newest) or a version */
        sk_expr_text sites;
        sk_strategy *strategy;
} sk_deployment;

extern const sk_model sk_deployment_table;
SK_RESOURCE_DECLARE(deployment, sk_deployment)

#define _cleanup_deployment_ __attribute__((cleanup(sk_deployment_freep)))

#endif
