/* The tenant tree (docs/tenancy.md): who is whose parent, which sites a tenant's
 * deployments may use, and the per-site quotas of application tenants. Loaded whole from
 * the store: tenants are few next to sites. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/labelexpr.h"
#include "model/spec.h"
#include "tower/api_int.h"

/* A parent chain longer than this is a loop in the stored data: treated as no parent. */
#define MAX_DEPTH 32

typedef struct tenant {
        char *name;
        char *parent; /* NULL for the root */
        bool provider;
        sk_expr *sites; /* application tenants: the provider's assignment; NULL none */
        json_t *quota;  /* {"cpu": millicores, "memory": bytes, "instances": n} or NULL */
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
                sk_expr_free(tn->t[i].sites);
                json_decref(tn->t[i].quota);
        }
        free(tn->t);
        free(tn);
}

/* The quota in the units a site's scheduler counts in. */
static json_t *quota_of(const json_t *q)
{
        if (!json_is_object(q))
                return NULL;
        json_t *out = json_object();
        int64_t v;
        if (json_object_get(q, "cpu") && sk_quantity_cpu(json_object_get(q, "cpu"), &v) == 0)
                json_object_set_new(out, "cpu", json_integer(v));
        if (json_object_get(q, "memory") &&
            sk_quantity_memory(json_object_get(q, "memory"), &v) == 0)
                json_object_set_new(out, "memory", json_integer(v));
        if (json_is_integer(json_object_get(q, "instances")))
                json_object_set(out, "instances", json_object_get(q, "instances"));
        return out;
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
        _cleanup_json_ json_t *doc = json_loads(row->json, 0, NULL);
        if (!(t->name = strdup(row->name)))
                return -ENOMEM;
        tn->n++;
        const char *type = json_string_value(json_object_get(doc, "type"));
        const char *parent = json_string_value(json_object_get(doc, "parent"));
        const char *sites = json_string_value(json_object_get(doc, "sites"));
        t->provider = type && strcmp(type, "provider") == 0;
        if (strcmp(row->name, SK_TOWER_ROOT) != 0)
                t->parent = strdup(parent ? parent : SK_TOWER_ROOT);
        if (sites && sk_expr_parse_cached(sites, &t->sites, NULL) < 0)
                t->sites = NULL;
        t->quota = quota_of(json_object_get(doc, "quota-per-site"));
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
                if (!t->sites || !sk_expr_match(t->sites, labels))
                        return false;
                t = find(tn, t->parent);
        }
        return false;
}

json_t *sk_tenancy_quotas(const sk_tenancy *tn, const char *site_tenant, const json_t *labels)
{
        json_t *out = json_object();
        for (size_t i = 0; out && i < tn->n; i++) {
                const tenant *t = &tn->t[i];
                if (t->quota && !t->provider &&
                    sk_tenancy_site_assigned(tn, t->name, site_tenant, labels))
                        json_object_set(out, t->name, t->quota);
        }
        return out;
}
