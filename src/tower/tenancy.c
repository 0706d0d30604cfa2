/* The tenant tree (docs/tenancy.md): who is whose parent, which sites a tenant's
 * deployments may use, and the per-site quotas of application tenants. Loaded whole from
 * the store: tenants are few next to sites. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "model/desired.h"
#include "model/tenant.h"
#include "tower/api_int.h"

/* A parent chain longer than this is a loop in the stored data: treated as no parent. */
#define MAX_DEPTH 32

typedef struct tenant {
        char *name;
        char *parent; /* NULL for the root */
        bool provider;
        sk_tenant *doc; /* as stored, with its compiled `sites`; NULL when it does not parse */
} tenant;

struct sk_tenancy {
        tenant *t;
        size_t n;
};

void sk_tenancy_free(sk_tenancy *tn)
{
        if (!tn)
                return;
        for (size_t i = 0; i < tn->n; i++) {
                free(tn->t[i].name);
                free(tn->t[i].parent);
                sk_tenant_free(tn->t[i].doc);
        }
        free(tn->t);
        free(tn);
}

static int add_tenant(const sk_resource_row *row, void *user)
{
        sk_tenancy *tn = user;
        tenant *t = realloc(tn->t, (tn->n + 1) * sizeof(*t));
        if (!t)
                return -ENOMEM;
        tn->t = t;
        t = &tn->t[tn->n];
        memset(t, 0, sizeof(*t));
        if (!(t->name = strdup(row->name)))
                return -ENOMEM;
        tn->n++;
        /* A row that no longer parses keeps its place in the tree and is assigned nothing. */
        _cleanup_json_ json_t *doc = json_loads(row->json, 0, NULL);
        _cleanup_error_ sk_error *perr = NULL;
        if (!doc || sk_tenant_from_json(doc, &t->doc, &perr) < 0)
                sk_warn("stored tenant %s is not readable: %s", row->name,
                        sk_error_msg(perr, -EINVAL));
        t->provider = t->doc && t->doc->type == SK_TENANT_PROVIDER;
        const char *parent = t->doc ? t->doc->parent : NULL;
        if (strcmp(row->name, SK_TOWER_ROOT) != 0 &&
            !(t->parent = strdup(parent ? parent : SK_TOWER_ROOT)))
                return -ENOMEM;
        return 0;
}

int sk_tenancy_load(sk_store *s, sk_tenancy **out, sk_error **err)
{
        sk_tenancy *tn = calloc(1, sizeof(*tn));
        if (!tn)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = s->ops->resource_list(s, SK_TOWER_ROOT, "tenant", add_tenant, tn, err);
        if (r < 0) {
                sk_tenancy_free(tn);
                return r == -ENOMEM ? sk_error_set(err, ENOMEM, "out of memory") : r;
        }
        *out = tn;
        return 0;
}

static const tenant *find(const sk_tenancy *tn, const char *name)
{
        for (size_t i = 0; name && i < tn->n; i++)
                if (strcmp(tn->t[i].name, name) == 0)
                        return &tn->t[i];
        return NULL;
}

bool sk_tenancy_exists(const sk_tenancy *tn, const char *name)
{
        return find(tn, name) != NULL;
}

bool sk_tenancy_is_provider(const sk_tenancy *tn, const char *name)
{
        const tenant *t = find(tn, name);
        return t && t->provider;
}

const char *sk_tenancy_parent(const sk_tenancy *tn, const char *name)
{
        const tenant *t = find(tn, name);
        return t ? t->parent : NULL;
}

bool sk_tenancy_within(const sk_tenancy *tn, const char *name, const char *ancestor)
{
        const tenant *t = find(tn, name);
        for (int depth = 0; t && depth < MAX_DEPTH; depth++) {
                if (strcmp(t->name, ancestor) == 0)
                        return true;
                t = find(tn, t->parent);
        }
        return false;
}

bool sk_tenancy_site_assigned(const sk_tenancy *tn, const char *name, const char *site_tenant,
                              const json_t *labels)
{
        const tenant *t = find(tn, name);
        /* the owner first: no assignment is matched against another provider's sites */
        const tenant *owner = t;
        for (int depth = 0; owner && !owner->provider && depth < MAX_DEPTH; depth++)
                owner = find(tn, owner->parent);
        if (!owner || !owner->provider || strcmp(owner->name, site_tenant) != 0)
                return false;
        for (int depth = 0; t && depth < MAX_DEPTH; depth++) {
                /* a provider uses the sites it owns */
                if (t->provider)
                        return true;
                /* an application tenant: what its parent may use, narrowed by the assignment */
                const sk_expr *sites = t->doc ? t->doc->sites.expr : NULL;
                if (!sites || !sk_expr_match(sites, labels))
                        return false;
                t = find(tn, t->parent);
        }
        return false;
}

/* A quantity as the site's scheduler counts it, SK_UNSET when not set. */
static int64_t quantity_or_unset(const sk_quantity *q)
{
        return q->spelling == SK_SPELLING_NONE ? SK_UNSET : q->value;
}

int sk_tenancy_quotas(const sk_tenancy *tn, const char *site_tenant, const json_t *labels,
                      sk_desired_doc *doc)
{
        for (size_t i = 0; i < tn->n; i++) {
                const tenant *t = &tn->t[i];
                const sk_tenant_quota *q = t->doc ? t->doc->quota_per_site : NULL;
                if (!q || t->provider ||
                    !sk_tenancy_site_assigned(tn, t->name, site_tenant, labels))
                        continue;
                sk_site_quota *items =
                    realloc(doc->quotas.items, (doc->quotas.n + 1) * sizeof(*items));
                if (!items)
                        return -ENOMEM;
                doc->quotas.items = items;
                sk_site_quota *sq = &items[doc->quotas.n];
                *sq = (sk_site_quota){strdup(t->name), quantity_or_unset(&q->cpu),
                                      quantity_or_unset(&q->memory), q->instances};
                if (!sq->tenant)
                        return -ENOMEM;
                doc->quotas.n++;
        }
        return 0;
}
