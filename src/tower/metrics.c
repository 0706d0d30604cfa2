/* GET /metrics: Prometheus text exposition of the tower's counters and gauges, for a
 * provider's admins or its metrics tokens: the sites and hosts of the tenant worked in and
 * those below it; the tower-wide figures (requests, long-polls) for the root tenant only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "tower/api_int.h"

typedef struct site_ids {
        const sk_tower_ctx *c;
        int64_t *ids;
        size_t n;
} site_ids;

static int add_id(const sk_resource_row *row, void *user)
{
        site_ids *s = user;
        if (!sk_tenancy_within(s->c->tn, row->tenant, s->c->scope))
                return 0;
        int64_t *ids = realloc(s->ids, (s->n + 1) * sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        s->ids = ids;
        s->ids[s->n++] = row->id;
        return 0;
}

static int count_host(const sk_host_row *row, void *user)
{
        (*(int64_t *)user)++;
        return 0;
}

int sk_tower_h_metrics(sk_tower_ctx *c, sk_error **err)
{
        sk_tower_api *api = c->api;
        site_ids sites = {.c = c};
        int64_t hosts = 0, n_sites = 0;
        int r = api->store->ops->resource_list(api->store, NULL, "site", add_id, &sites, err);
        for (size_t i = 0; r >= 0 && i < sites.n; i++)
                r = api->store->ops->host_list(api->store, sites.ids[i], count_host, &hosts, err);
        n_sites = (int64_t)sites.n;
        free(sites.ids);
        if (r < 0)
                return sk_error_set(err, -r, "counting sites and hosts failed");
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (strcmp(c->scope, SK_TOWER_ROOT) == 0) {
                fputs("# HELP skerry_tower_requests_total HTTP requests answered, by route and "
                      "status.\n# TYPE skerry_tower_requests_total counter\n",
                      f);
                for (size_t i = 0; i < api->n_metrics; i++)
                        fprintf(f, "skerry_tower_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                api->metrics[i].route, api->metrics[i].status,
                                (unsigned long long)api->metrics[i].count);
                fprintf(f,
                        "# HELP skerry_tower_longpolls_waiting Site sync long-polls held now.\n"
                        "# TYPE skerry_tower_longpolls_waiting gauge\n"
                        "skerry_tower_longpolls_waiting %ld\n",
                        api->waiting ? api->waiting(api->hook_ctx) : 0L);
                if (api->conn_stats) {
                        long strangers = 0, proven = 0, refused = 0;
                        api->conn_stats(api->hook_ctx, &strangers, &proven, &refused);
                        fprintf(f,
                                "# HELP skerry_tower_connections Connections held now: stranger "
                                "until a request on it authenticates, then proven.\n"
                                "# TYPE skerry_tower_connections gauge\n"
                                "skerry_tower_connections{state=\"stranger\"} %ld\n"
                                "skerry_tower_connections{state=\"proven\"} %ld\n"
                                "# HELP skerry_tower_connections_refused_total Connections "
                                "refused by the admission limits.\n"
                                "# TYPE skerry_tower_connections_refused_total counter\n"
                                "skerry_tower_connections_refused_total %ld\n",
                                strangers, proven, refused);
                }
        }
        fprintf(f,
                "# HELP skerry_tower_sites Sites of this tenant and those below it.\n"
                "# TYPE skerry_tower_sites gauge\n"
                "skerry_tower_sites %lld\n"
                "# HELP skerry_tower_hosts Hosts joined to those sites.\n"
                "# TYPE skerry_tower_hosts gauge\n"
                "skerry_tower_hosts %lld\n",
                (long long)n_sites, (long long)hosts);
        fclose(f);
        c->resp->status = 200;
        c->resp->text = text;
        return 0;
}
