/* The site-local API over this node (cluster_int.h): siteroutes.h's function table, and
 * requests forwarded to the leader. */
#include "common/cleanup.h"
#include "site/cluster_int.h"

#define FORWARD_TIMEOUT_MS 5000

static bool is_leader(void *ctx)
{
        return sk_cluster_is_leader(ctx);
}

static char *leader_address(void *ctx)
{
        return sk_cluster_leader_address(ctx);
}

static bool is_removed(void *ctx, int64_t host)
{
        sk_cluster *cl = ctx;
        pthread_mutex_lock(&cl->lock);
        bool r = sk_fsm_is_removed(&cl->f, host);
        pthread_mutex_unlock(&cl->lock);
        return r;
}

static int heartbeat(void *ctx, int64_t host, json_t *report)
{
        return sk_cluster_take_report(ctx, host, report);
}

static json_t *hosts_view(void *ctx)
{
        return sk_cluster_hosts_view(ctx);
}

static json_t *instances_view(void *ctx)
{
        return sk_cluster_instances_view(ctx);
}

/* Asks the leader (the views and the joins are its): METHOD path there. */
static int forward(void *ctx, const char *method, const char *path, const json_t *body,
                   json_t **answer)
{
        sk_cluster *cl = ctx;
        _cleanup_free_ char *leader = sk_cluster_leader_address(cl);
        if (!leader) {
                *answer = sk_siteapi_error("unavailable", "the site has no leader right now");
                return 503;
        }
        sk_site_client *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        long status = 0;
        int r = sk_site_client_new(cl->dir, &c, &err);
        if (r >= 0)
                sk_site_client_pin(c, sk_cluster_site_ca_retired, cl);
        if (r >= 0)
                r = sk_site_client_call(c, leader, method, path, body, FORWARD_TIMEOUT_MS, &status,
                                        answer, &err);
        sk_site_client_free(c);
        if (r < 0) {
                *answer = sk_siteapi_error("unavailable", "the leader at %s: %s", leader,
                                           sk_error_msg(err, r));
                return 503;
        }
        return (int)status;
}

static const sk_site_ops cluster_ops = {
    .is_leader = is_leader,
    .leader_address = leader_address,
    .is_removed = is_removed,
    .heartbeat = heartbeat,
    .hosts_view = hosts_view,
    .instances_view = instances_view,
    .forward = forward,
    .make_token = sk_cluster_make_token,
    .join = sk_cluster_sign_join,
};

int sk_cluster_api_start(sk_cluster *cl, sk_error **err)
{
        sk_site_routes routes = {
            .ops = &cluster_ops, .ctx = cl, .site = cl->site, .ca_pem = cl->ca_pem};
        return sk_siteapi_new(&routes, &cl->api, err);
}
