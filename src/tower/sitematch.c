/* A label expression matched over a list of sites (GET /v1/sites?match=): inline when the
 * worst case is cheap, otherwise as a job on the match lane's worker, so that thousands of
 * sites times a costly expression hold neither a request thread nor the API lock. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/labelexpr.h"
#include "tower/api_int.h"

typedef struct match_job {
        sk_tower_job base;
        sk_expr *expr;
        json_t *items; /* the sites to match: owned by the job alone while it runs */
        json_t *kept;
} match_job;

/* The sites' labels with the built-ins, as deployments see them. */
static json_t *kept_of(const sk_expr *e, const json_t *items)
{
        json_t *kept = json_array();
        size_t i;
        const json_t *it;
        json_array_foreach(items, i, it)
        {
                _cleanup_json_ json_t *labels =
                    sk_tower_site_labels(it, json_string_value(json_object_get(it, "tenant")));
                if (kept && labels && sk_expr_match(e, labels))
                        json_array_append(kept, (json_t *)it);
        }
        return kept;
}

static void match_run(sk_tower_job *job)
{
        match_job *j = (match_job *)job;
        j->kept = kept_of(j->expr, j->items);
}

static void match_free(sk_tower_job *job)
{
        match_job *j = (match_job *)job;
        sk_expr_free(j->expr);
        json_decref(j->items);
        json_decref(j->kept);
        free(j);
}

const json_t *sk_tower_match_done(const sk_tower_ctx *c)
{
        const sk_tower_job *job = c->req->job;
        return job && job->run == match_run ? ((const match_job *)job)->kept : NULL;
}

int sk_tower_match_sites(sk_tower_ctx *c, const char *expr_text, json_t **items, sk_error **err)
{
        _cleanup_expr_ sk_expr *e = NULL;
        int r = sk_expr_parse_cached(expr_text, &e, err);
        if (r < 0) {
                if (err && *err && !(*err)->path)
                        (*err)->path = strdup("match");
                return sk_error_set(err, EINVAL, "bad expression");
        }
        if (sk_expr_cost(e) * json_array_size(*items) <= SK_TOWER_MATCH_INLINE) {
                json_t *kept = kept_of(e, *items);
                if (!kept)
                        return sk_error_set(err, ENOMEM, "out of memory");
                json_decref(*items);
                *items = kept;
                return 0;
        }
        match_job *j = calloc(1, sizeof(*j));
        if (!j)
                return sk_error_set(err, ENOMEM, "out of memory");
        j->base = (sk_tower_job){match_run, match_free, SK_TOWER_LANE_MATCH};
        j->expr = take_ptr(&e);
        j->items = take_ptr(items);
        c->resp->job = &j->base;
        return 1;
}
