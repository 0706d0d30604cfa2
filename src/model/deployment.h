/* A deployment (DESIGN.md section 4, docs/resources.md): which application version runs on
 * which sites, and how a change rolls out. Its `sites` expression (and the canary's) is
 * compiled once, with the document, and kept here. Ownership as in model/app.h. */
#ifndef SK_MODEL_DEPLOYMENT_H
#define SK_MODEL_DEPLOYMENT_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"

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
int sk_deployment_from_json(const json_t *j, sk_deployment **out, sk_error **err);
json_t *sk_deployment_to_json(const sk_deployment *d);
bool sk_deployment_equal(const sk_deployment *a, const sk_deployment *b);
void sk_deployment_free(sk_deployment *d);

static inline void sk_deployment_freep(sk_deployment **d)
{
        sk_deployment_free(*d);
}
#define _cleanup_deployment_ __attribute__((cleanup(sk_deployment_freep)))

#endif
