/* The resource handlers: tenants, users, sites, applications, deployments, plus site join
 * tokens, login, passwords, whoami, hosts and instances. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "model/app.h"
#include "model/deployment.h"
#include "model/labelexpr.h"
#include "model/resource.h"
#include "model/site.h"
#include "model/spec.h"
#include "model/tenant.h"
#include "tower/api_int.h"
#include "tower/siteca.h"

#define LOGIN_TTL_MS    (24LL * 3600 * 1000)
#define JOIN_TTL_MS     (3600LL * 1000)
#define JOIN_TTL_MAX_MS (7LL * 24 * 3600 * 1000)
#define DUMP_FLAGS      (JSON_COMPACT | JSON_SORT_KEYS)

/* Rows collected from the store as RESOURCE objects, with their row ids alongside. */
typedef struct rows {
        json_t *items;
        int64_t *ids;
        size_t n;
        int failed;
} rows;

static void rows_free(rows *r)
{
        json_decref(r->items);
        free(r->ids);
}
#define _cleanup_rows_ __attribute__((cleanup(rows_free)))

static json_t *to_resource(const sk_resource_row *row)
{
        json_t *doc = json_loads(row->json, 0, NULL);
        if (!json_is_object(doc)) {
                json_decref(doc);
                return NULL;
        }
        _cleanup_free_ char *created = sk_tower_rfc3339(row->created);
        _cleanup_free_ char *updated = sk_tower_rfc3339(row->updated);
        json_object_set_new(doc, "tenant", json_string(row->tenant));
        json_object_set_new(doc, "created", json_string(created ? created : ""));
        json_object_set_new(doc, "updated", json_string(updated ? updated : ""));
        return doc;
}

static int collect(const sk_resource_row *row, void *user)
{
        rows *r = user;
        json_t *doc = to_resource(row);
        int64_t *ids = realloc(r->ids, (r->n + 1) * sizeof(*ids));
        if (!doc || !ids) {
                json_decref(doc);
                r->failed = -ENOMEM;
                if (ids)
                        r->ids = ids;
                return 0;
        }
        r->ids = ids;
        r->ids[r->n++] = row->id;
        json_array_append_new(r->items, doc);
        return 0;
}

static int rows_init(rows *r)
{
        memset(r, 0, sizeof(*r));
        r->items = json_array();
        return r->items ? 0 : -ENOMEM;
}

static int list_rows(sk_tower_api *api, const char *tenant, const char *kind, rows *out,
                     sk_error **err)
{
        if (rows_init(out) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = api->store->ops->resource_list(api->store, tenant, kind, collect, out, err);
        if (r < 0)
                return r;
        return out->failed ? sk_error_set(err, EIO, "a stored %s is not valid JSON", kind) : 0;
}

static int get_rows(sk_tower_api *api, const char *tenant, const char *kind, const char *name,
                    const char *version, rows *out, sk_error **err)
{
        if (rows_init(out) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = api->store->ops->resource_get(api->store, tenant, kind, name, version, collect, out,
                                              NULL);
        if (r == -ENOENT || (r >= 0 && out->n == 0))
                return sk_error_set(err, ENOENT, "no %s named %s%s%s in tenant %s", kind, name,
                                    version && *version ? " version " : "",
                                    version && *version ? version : "", tenant);
        if (r < 0)
                return sk_error_set(err, -r, "reading %s %s failed", kind, name);
        return out->failed ? sk_error_set(err, EIO, "a stored %s is not valid JSON", kind) : 0;
}

static const char *singular(const char *plural)
{
        const sk_kind_info *k = sk_kind_lookup(plural);
        return k ? k->name : plural;
}

/* Where a kind's rows live: tenants under the root tenant, the rest in the scope. */
static const char *home(const sk_tower_ctx *c, const char *kind)
{
        return strcmp(kind, "tenant") == 0 ? SK_TOWER_ROOT : c->scope;
}

int sk_tower_site_find(sk_tower_api *api, const char *tenant, const char *name, int64_t *id,
                       json_t **doc, sk_error **err)
{
        _cleanup_rows_ rows rs = {0};
        int r;
        if (tenant) {
                r = get_rows(api, tenant, "site", name, "", &rs, err);
                if (r < 0)
                        return r;
        } else {
                r = list_rows(api, NULL, "site", &rs, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < rs.n; i++) {
                json_t *it = json_array_get(rs.items, i);
                if (strcmp(json_string_value(json_object_get(it, "name")), name) != 0)
                        continue;
                *id = rs.ids[i];
                if (doc)
                        *doc = json_incref(it);
                return 0;
        }
        return sk_error_set(err, ENOENT, "no site named %s", name);
}

json_t *sk_tower_site_labels(const json_t *site_doc, const char *tenant)
{
        json_t *labels = json_object_get(site_doc, "labels");
        json_t *out = json_is_object(labels) ? json_deep_copy(labels) : json_object();
        if (!out)
                return NULL;
        json_object_set_new(out, "system/name",
                            json_string(json_string_value(json_object_get(site_doc, "name"))));
        json_object_set_new(out, "system/tenant", json_string(tenant));
        return out;
}

/* Versions of an application, ascending, and the index of the newest. */
static json_t *versions_of(const json_t *items, size_t *newest)
{
        size_t n = json_array_size(items);
        const char **v = calloc(n ? n : 1, sizeof(*v));
        json_t *out = json_array();
        if (!v || !out) {
                free(v);
                json_decref(out);
                return NULL;
        }
        for (size_t i = 0; i < n; i++)
                v[i] =
                    json_string_value(json_object_get(json_array_get(items, i), "version")) ?: "";
        /* insertion sort: a handful of versions */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && sk_version_compare(v[j - 1], v[j]) > 0; j--) {
                        const char *t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        for (size_t i = 0; i < n; i++)
                json_array_append_new(out, json_string(v[i]));
        for (size_t i = 0; newest && i < n; i++) {
                const char *vi =
                    json_string_value(json_object_get(json_array_get(items, i), "version"));
                if (vi && strcmp(vi, v[n - 1]) == 0)
                        *newest = i;
        }
        free(v);
        return out;
}

int sk_tower_app_newest(sk_tower_api *api, const char *tenant, const char *app, char **version,
                        sk_error **err)
{
        _cleanup_rows_ rows rs = {0};
        int r = get_rows(api, tenant, "application", app, NULL, &rs, err);
        if (r < 0)
                return r;
        size_t newest = 0;
        _cleanup_json_ json_t *vs = versions_of(rs.items, &newest);
        if (!vs)
                return sk_error_set(err, ENOMEM, "out of memory");
        *version = strdup(json_string_value(json_array_get(vs, json_array_size(vs) - 1)));
        return *version ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

/* The newest version of an application, with "versions" added. */
static json_t *app_view(const json_t *items)
{
        size_t newest = 0;
        json_t *vs = versions_of(items, &newest);
        if (!vs)
                return NULL;
        json_t *doc = json_deep_copy(json_array_get(items, newest));
        if (doc)
                json_object_set_new(doc, "versions", vs);
        else
                json_decref(vs);
        return doc;
}

/* Tenants a caller sees: its scope, and for admins every tenant below it. */
static bool tenant_visible(const sk_tower_ctx *c, const char *name)
{
        if (strcmp(name, c->scope) == 0)
                return true;
        return strcmp(c->role, "admin") == 0 && sk_tenancy_within(c->tn, name, c->scope);
}

/* A tenant as the caller sees it: its parent named only to those who see the parent (an
 * application tenant learns nothing of the provider above it). */
static json_t *tenant_view(const sk_tower_ctx *c, json_t *doc)
{
        const char *parent = json_string_value(json_object_get(doc, "parent"));
        if (!parent || tenant_visible(c, parent))
                return json_incref(doc);
        json_t *v = json_copy(doc);
        json_object_del(v, "parent");
        return v;
}

static bool app_scope(const sk_tower_ctx *c)
{
        return !sk_tenancy_is_provider(c->tn, c->scope);
}

/* An application tenant sees the sites assigned to it, by name and labels alone. */
static int assigned_sites(sk_tower_ctx *c, const char *name, rows *out, sk_error **err)
{
        _cleanup_rows_ rows all = {0};
        int r = list_rows(c->api, NULL, "site", &all, err);
        if (r < 0)
                return r;
        if (rows_init(out) < 0 || !(out->ids = calloc(all.n + 1, sizeof(int64_t))))
                return sk_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < all.n; i++) {
                json_t *it = json_array_get(all.items, i);
                const char *owner = json_string_value(json_object_get(it, "tenant"));
                const char *n = json_string_value(json_object_get(it, "name"));
                if (name && strcmp(n, name) != 0)
                        continue;
                _cleanup_json_ json_t *labels = sk_tower_site_labels(it, owner);
                if (!labels || !sk_tenancy_site_assigned(c->tn, c->scope, owner, labels))
                        continue;
                json_t *view = json_pack("{s:s, s:s, s:O}", "kind", "site", "name", n, "labels",
                                         json_object_get(it, "labels") ?: json_object());
                if (!view)
                        return sk_error_set(err, ENOMEM, "out of memory");
                json_array_append_new(out->items, view);
                out->ids[out->n++] = all.ids[i];
        }
        if (name && out->n == 0)
                return sk_error_set(err, ENOENT, "no site named %s", name);
        return 0;
}

/* A site by name as the caller sees it: its own (providers) or assigned to it. */
static int visible_site(sk_tower_ctx *c, const char *name, int64_t *id, sk_error **err)
{
        if (!app_scope(c))
                return sk_tower_site_find(c->api, c->scope, name, id, NULL, err);
        _cleanup_rows_ rows rs = {0};
        int r = assigned_sites(c, name, &rs, err);
        if (r < 0)
                return r;
        *id = rs.ids[0];
        return 0;
}

int sk_tower_h_list(sk_tower_ctx *c, sk_error **err)
{
        const char *kind = singular(c->kind);
        const json_t *matched = sk_tower_match_done(c);
        if (matched) {
                sk_tower_reply(c, 200, json_pack("{s:O}", "items", (json_t *)matched));
                return 0;
        }
        _cleanup_rows_ rows rs = {0};
        int r = strcmp(kind, "site") == 0 && app_scope(c)
                    ? assigned_sites(c, NULL, &rs, err)
                    : list_rows(c->api, home(c, kind), kind, &rs, err);
        if (r < 0)
                return r;
        json_t *items = rs.items;
        _cleanup_json_ json_t *out = json_array();
        if (strcmp(kind, "tenant") == 0) {
                size_t i;
                json_t *it;
                json_array_foreach(items, i, it)
                {
                        if (tenant_visible(c, json_string_value(json_object_get(it, "name"))))
                                json_array_append_new(out, tenant_view(c, it));
                }
        } else if (strcmp(kind, "application") == 0) {
                /* one entry per name: its newest version */
                size_t i = 0;
                while (i < rs.n) {
                        const char *name =
                            json_string_value(json_object_get(json_array_get(items, i), "name"));
                        _cleanup_json_ json_t *group = json_array();
                        while (i < rs.n && strcmp(json_string_value(json_object_get(
                                                      json_array_get(items, i), "name")),
                                                  name) == 0)
                                json_array_append(group, json_array_get(items, i++));
                        json_t *v = app_view(group);
                        if (!v)
                                return sk_error_set(err, ENOMEM, "out of memory");
                        json_array_append_new(out, v);
                }
        } else if (strcmp(kind, "site") == 0 && sk_tower_query(c, "match")) {
                r = sk_tower_match_sites(c, sk_tower_query(c, "match"), &rs.items, err);
                if (r != 0)
                        return r < 0 ? r : 0;
                json_array_extend(out, rs.items);
        } else {
                json_array_extend(out, items);
        }
        /* `skerry get deployments` shows running/desired without one GET per row */
        size_t i;
        json_t *it;
        json_array_foreach(strcmp(kind, "deployment") == 0 ? out : NULL, i, it)
        {
                json_t *status = NULL;
                r = sk_tower_deployment_status(
                    c->api, c->scope, json_string_value(json_object_get(it, "name")), &status, err);
                if (r < 0)
                        return r;
                json_object_set_new(it, "status", status);
        }
        sk_tower_reply(c, 200, json_pack("{s:O}", "items", out));
        return 0;
}

int sk_tower_h_get(sk_tower_ctx *c, sk_error **err)
{
        const char *kind = singular(c->kind);
        const char *version = sk_tower_query(c, "version");
        bool versioned = strcmp(kind, "application") == 0;
        if (strcmp(kind, "tenant") == 0 && !tenant_visible(c, c->name))
                return sk_error_set(err, ENOENT, "no tenant named %s", c->name);
        _cleanup_rows_ rows rs = {0};
        int r = strcmp(kind, "site") == 0 && app_scope(c)
                    ? assigned_sites(c, c->name, &rs, err)
                    : get_rows(c->api, home(c, kind), kind, c->name, versioned ? version : "", &rs,
                               err);
        if (r < 0)
                return r;
        json_t *doc;
        if (versioned && !version) {
                doc = app_view(rs.items);
        } else if (versioned) {
                doc = json_incref(json_array_get(rs.items, 0));
                /* the list of versions helps there too */
                _cleanup_rows_ rows all = {0};
                if (get_rows(c->api, c->scope, kind, c->name, NULL, &all, NULL) == 0)
                        json_object_set_new(doc, "versions", versions_of(all.items, NULL));
        } else if (strcmp(kind, "tenant") == 0) {
                doc = tenant_view(c, json_array_get(rs.items, 0));
        } else {
                doc = json_incref(json_array_get(rs.items, 0));
        }
        if (!doc)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (strcmp(kind, "deployment") == 0) {
                json_t *status = NULL;
                r = sk_tower_deployment_status(c->api, c->scope, c->name, &status, err);
                if (r < 0) {
                        json_decref(doc);
                        return r;
                }
                json_object_set_new(doc, "status", status);
        }
        sk_tower_reply(c, 200, doc);
        return 0;
}

/* A document as PUT parsed it, of the kind its path names. */
typedef struct typed_doc {
        sk_kind kind;
        union {
                void *any;
                sk_tenant *tenant;
                sk_user *user;
                sk_site *site;
                sk_app *app;
                sk_deployment *deployment;
        };
} typed_doc;

static void typed_doc_free(typed_doc *d)
{
        if (d->any)
                sk_resource_free(sk_spec_model(d->kind), d->any);
        d->any = NULL;
}
#define _cleanup_typed_doc_ __attribute__((cleanup(typed_doc_free)))

/* Parses and validates in one pass (model/spec.h): the struct is what the checks read and
 * what is stored. */
static int typed_parse(sk_kind kind, const json_t *in, typed_doc *d, sk_error **err)
{
        d->kind = kind;
        switch (kind) {
        case SK_KIND_TENANT:
                return sk_tenant_from_json(in, &d->tenant, err);
        case SK_KIND_USER:
                return sk_user_from_json(in, &d->user, err);
        case SK_KIND_SITE:
                return sk_site_from_json(in, &d->site, err);
        case SK_KIND_APPLICATION:
                return sk_app_from_json(in, &d->app, err);
        case SK_KIND_DEPLOYMENT:
                return sk_deployment_from_json(in, &d->deployment, err);
        default:
                return sk_resource_from_json(sk_spec_model(kind), in, &d->any, err);
        }
}

static const char *typed_name(const typed_doc *d)
{
        switch (d->kind) {
        case SK_KIND_TENANT:
                return d->tenant->name;
        case SK_KIND_USER:
                return d->user->name;
        case SK_KIND_SITE:
                return d->site->name;
        case SK_KIND_APPLICATION:
                return d->app->name;
        case SK_KIND_DEPLOYMENT:
                return d->deployment->name;
        default:
                return NULL;
        }
}

/* One stored document of a kind, as its struct (-ENOENT when there is none). */
typedef struct stored_doc {
        sk_kind kind;
        void *obj;
        int r;
} stored_doc;

static int parse_row(const sk_resource_row *row, void *user)
{
        stored_doc *sd = user;
        _cleanup_json_ json_t *doc = json_loads(row->json, 0, NULL);
        sd->r = doc ? sk_resource_from_json(sk_spec_model(sd->kind), doc, &sd->obj, NULL) : -EIO;
        return 0;
}

static int stored_typed(sk_tower_api *api, const char *tenant, sk_kind kind, const char *name,
                        const char *version, void **obj)
{
        stored_doc sd = {kind, NULL, -ENOENT};
        int r = api->store->ops->resource_get(api->store, tenant, sk_kind_get(kind)->name, name,
                                              version, parse_row, &sd, NULL);
        *obj = sd.obj;
        return r < 0 ? r : sd.r;
}

/* A tenant is written by the admins of its parent provider (the root: also by its own):
 * the parent is the scope it was made in and never changes. */
static int check_tenant(sk_tower_ctx *c, sk_tenant *t, sk_error **err)
{
        bool provider = t->type == SK_TENANT_PROVIDER;
        bool exists = sk_tenancy_exists(c->tn, c->name);
        if (strcmp(c->name, SK_TOWER_ROOT) == 0) {
                if (!provider)
                        return sk_error_set_path(err, EINVAL, "type",
                                                 "tenant %s must stay a provider", SK_TOWER_ROOT);
                if (t->parent)
                        return sk_error_set_path(err, EINVAL, "parent", "tenant %s has no parent",
                                                 SK_TOWER_ROOT);
                if (strcmp(c->scope, SK_TOWER_ROOT) != 0)
                        return sk_error_set(err, ENOENT, "no tenant named %s", c->name);
                return 0;
        }
        if (exists &&
            (strcmp(c->name, c->scope) == 0 || !sk_tenancy_within(c->tn, c->name, c->scope)))
                return strcmp(c->name, c->scope) == 0
                           ? sk_error_set(err, EPERM,
                                          "tenant %s is changed by the admins of its parent %s",
                                          c->name, sk_tenancy_parent(c->tn, c->name))
                           : sk_error_set_path(err, EEXIST, "name", "the tenant name %s is taken",
                                               c->name);
        if (exists && sk_tenancy_is_provider(c->tn, c->name) != provider)
                return sk_error_set_path(err, EINVAL, "type",
                                         "a tenant's type does not change (tenant %s is %s)",
                                         c->name,
                                         sk_tenancy_is_provider(c->tn, c->name) ? "a provider"
                                                                                : "an application "
                                                                                  "tenant");
        const char *parent = exists ? sk_tenancy_parent(c->tn, c->name) : c->scope;
        if (t->parent && strcmp(t->parent, parent) != 0)
                return sk_error_set_path(err, EINVAL, "parent",
                                         "must be %s (%s); a tenant does not move", parent,
                                         exists ? "its parent" : "the tenant it is made in");
        if (t->sites.text && provider)
                return sk_error_set_path(err, EINVAL, "sites",
                                         "only application tenants are assigned sites; a "
                                         "provider uses the sites it owns");
        char *p = strdup(parent);
        if (!p)
                return sk_error_set(err, ENOMEM, "out of memory");
        free(t->parent);
        t->parent = p;
        return 0;
}

/* Checks a user document's tenant: the scope unless a root admin names another. */
static int user_home(sk_tower_ctx *c, sk_user *u, const char **tenant, sk_error **err)
{
        if (!u->tenant && !(u->tenant = strdup(c->scope)))
                return sk_error_set(err, ENOMEM, "out of memory");
        /* the router let an admin of the scope through: the scope and below are its own */
        if (!sk_tenancy_within(c->tn, u->tenant, c->scope))
                return sk_error_set_path(err, EINVAL, "tenant", "no tenant named %s", u->tenant);
        *tenant = u->tenant;
        return 0;
}

/* The application (and version) must exist; the `sites` expression was compiled with the
 * document. */
static int check_deployment(sk_tower_ctx *c, const sk_deployment *d, sk_error **err)
{
        _cleanup_rows_ rows rs = {0};
        if (get_rows(c->api, c->scope, "application", d->application, NULL, &rs, NULL) < 0)
                return sk_error_set_path(err, EINVAL, "application",
                                         "no application named %s in tenant %s", d->application,
                                         c->scope);
        if (d->version && strcmp(d->version, "*") != 0) {
                _cleanup_app_ sk_app *app = NULL;
                if (stored_typed(c->api, c->scope, SK_KIND_APPLICATION, d->application, d->version,
                                 (void **)&app) == -ENOENT)
                        return sk_error_set_path(err, EINVAL, "version",
                                                 "application %s has no version %s", d->application,
                                                 d->version);
        }
        return 0;
}

/* Versions are immutable: the same version again must carry the same document. Compared
 * as stored: the store keeps a mapping's keys sorted (a container's env), so the new one is
 * read back from the text that would be stored. */
static int check_app_version(sk_tower_ctx *c, const sk_app *app, const char *text, sk_error **err)
{
        _cleanup_app_ sk_app *old = NULL, *same = NULL;
        int r = stored_typed(c->api, c->scope, SK_KIND_APPLICATION, c->name, app->version,
                             (void **)&old);
        if (r == -ENOENT)
                return 0;
        _cleanup_json_ json_t *doc = r < 0 ? NULL : json_loads(text, 0, NULL);
        if (!doc || sk_app_from_json(doc, &same, NULL) < 0 || !sk_app_equal(old, same))
                return sk_error_set_path(err, EEXIST, "version",
                                         "application %s version %s is already stored with "
                                         "other content; versions are immutable",
                                         c->name, app->version);
        return 0;
}

/* The document of the request's body, parsed and validated as the kind of its path. */
static int put_parse(sk_tower_ctx *c, const sk_kind_info *info, typed_doc *d, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = sk_tower_body(c, &body, err);
        if (r < 0)
                return r;
        const json_t *k = json_object_get(body, "kind");
        const sk_kind_info *given = k ? sk_kind_lookup(json_string_value(k)) : info;
        if (given && given->appliable && given != info)
                return sk_error_set_path(err, EINVAL, "kind", "must be %s on /v1/%s", info->name,
                                         c->kind);
        if (!k)
                json_object_set_new(body, "kind", json_string(info->name));
        _cleanup_json_ json_t *in = NULL;
        r = sk_spec_input(info->kind, body, &in, err);
        if (r >= 0)
                r = typed_parse(info->kind, in, d, err);
        if (r < 0)
                return r == -ENOMEM ? r : sk_error_set(err, EINVAL, "invalid %s", info->name);
        const char *name = typed_name(d);
        if (!name || strcmp(name, c->name) != 0)
                return sk_error_set_path(err, EINVAL, "name", "must match the path (%s)", c->name);
        return 0;
}

/* `?dry-run=1`: every check ran; say what the write would do and store nothing. */
static int dry_run_reply(sk_tower_ctx *c, const char *tenant, const char *kind, const char *version,
                         const json_t *norm, sk_error **err)
{
        const char *result = "created";
        _cleanup_rows_ rows rs = {0};
        if (get_rows(c->api, tenant, kind, c->name, version, &rs, NULL) == 0) {
                _cleanup_json_ json_t *old = json_deep_copy(json_array_get(rs.items, 0));
                if (!old)
                        return sk_error_set(err, ENOMEM, "out of memory");
                json_object_del(old, "tenant");
                json_object_del(old, "created");
                json_object_del(old, "updated");
                _cleanup_json_ json_t *cmp = json_deep_copy(norm);
                if (cmp && strcmp(kind, "user") != 0)
                        json_object_del(cmp, "tenant");
                result = cmp && json_equal(old, cmp) ? "unchanged" : "updated";
        }
        sk_tower_reply(c, 200,
                       json_pack("{s:s, s:b, s:O}", "result", result, "dry-run", 1, "item", norm));
        return 0;
}

int sk_tower_h_put(sk_tower_ctx *c, sk_error **err)
{
        const char *kind = singular(c->kind);
        const sk_kind_info *info = sk_kind_lookup(kind);
        if (!info || !sk_spec_model(info->kind))
                return sk_error_set(err, EINVAL, "a %s cannot be applied", kind);
        _cleanup_typed_doc_ typed_doc d = {0};
        int r = put_parse(c, info, &d, err);
        if (r < 0)
                return r;
        const char *tenant = home(c, kind);
        const char *version = "";
        if (info->kind == SK_KIND_USER)
                r = user_home(c, d.user, &tenant, err);
        else if (info->kind == SK_KIND_APPLICATION)
                version = d.app->version;
        else if (info->kind == SK_KIND_DEPLOYMENT)
                r = check_deployment(c, d.deployment, err);
        else if (info->kind == SK_KIND_TENANT)
                r = check_tenant(c, d.tenant, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *norm = sk_model_write(sk_spec_model(info->kind), d.any);
        if (!norm)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (sk_tower_query(c, "dry-run"))
                return dry_run_reply(c, tenant, kind, version, norm, err);
        _cleanup_free_ char *text = json_dumps(norm, DUMP_FLAGS);
        if (!text)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (info->kind == SK_KIND_APPLICATION && (r = check_app_version(c, d.app, text, err)) < 0)
                return r;
        sk_store *s = c->api->store;
        int64_t id = 0;
        r = s->ops->resource_put(s, tenant, kind, c->name, version, text, &id, err);
        if (r < 0)
                return r;
        /* a site's document depends on itself alone, users on none; a tenant's assignment
         * and quota on every site */
        if (strcmp(kind, "site") == 0)
                c->sync_only = id;
        else if (strcmp(kind, "user") == 0)
                c->sync_only = -1;
        static const char *const results[] = {"unchanged", "created", "updated"};
        const char *result = r <= SK_PUT_UPDATED ? results[r] : "updated";
        _cleanup_rows_ rows rs = {0};
        r = get_rows(c->api, tenant, kind, c->name, version, &rs, err);
        if (r < 0)
                return r;
        sk_tower_reply(
            c, 200, json_pack("{s:s, s:O}", "result", result, "item", json_array_get(rs.items, 0)));
        return 0;
}

/* What app_in_use looks for, and what it found. */
typedef struct app_use {
        const char *app, *version, *newest;
        char *by; /* the deployment that uses it */
        int bad;  /* a stored deployment did not parse */
} app_use;

static int dep_uses(const sk_resource_row *row, void *user)
{
        app_use *u = user;
        _cleanup_json_ json_t *doc = json_loads(row->json, 0, NULL);
        _cleanup_deployment_ sk_deployment *d = NULL;
        if (!doc || sk_deployment_from_json(doc, &d, NULL) < 0) {
                u->bad = -EIO;
                return 1;
        }
        const char *v = d->version ? d->version : "*";
        if (strcmp(d->application, u->app) != 0)
                return 0;
        if (u->version && strcmp(v, u->version) != 0 &&
            !(strcmp(v, "*") == 0 && u->newest && strcmp(u->newest, u->version) == 0))
                return 0;
        u->by = strdup(d->name);
        return u->by ? 1 : (u->bad = -ENOMEM, 1);
}

/* Whether a deployment of the tenant holds the application (at version, NULL: any). */
static int app_in_use(sk_tower_ctx *c, const char *version, sk_error **err)
{
        _cleanup_free_ char *newest = NULL;
        sk_tower_app_newest(c->api, c->scope, c->name, &newest, NULL);
        app_use u = {c->name, version, newest, NULL, 0};
        int r = c->api->store->ops->resource_list(c->api->store, c->scope, "deployment", dep_uses,
                                                  &u, err);
        _cleanup_free_ char *by = u.by;
        if (r < 0)
                return r;
        if (u.bad)
                return sk_error_set(err, -u.bad, "a stored deployment is not valid");
        if (by)
                return sk_error_set(err, EBUSY, "deployment %s uses application %s%s%s", by,
                                    c->name, version ? " version " : "", version ? version : "");
        return 0;
}

static int any_row(const sk_resource_row *row, void *user)
{
        return 1;
}

/* A tenant goes only once it holds nothing, so no resource is left without an owner. */
static int tenant_in_use(sk_tower_ctx *c, const char *tenant, sk_error **err)
{
        /* a provider's sub-tenants go first */
        _cleanup_rows_ rows ts = {0};
        int r = list_rows(c->api, SK_TOWER_ROOT, "tenant", &ts, err);
        if (r < 0)
                return r;
        size_t k;
        json_t *it;
        json_array_foreach(ts.items, k, it)
        {
                const char *n = json_string_value(json_object_get(it, "name"));
                if (strcmp(n, tenant) != 0 &&
                    strcmp(sk_tenancy_parent(c->tn, n) ?: "", tenant) == 0)
                        return sk_error_set(err, EBUSY, "tenant %s still has sub-tenants", tenant);
        }
        static const char *const kinds[] = {"user", "site", "application", "deployment"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(kinds); i++) {
                r = c->api->store->ops->resource_list(c->api->store, tenant, kinds[i], any_row,
                                                      NULL, err);
                if (r < 0)
                        return r;
                if (r > 0)
                        return sk_error_set(err, EBUSY, "tenant %s still has %ss", tenant,
                                            kinds[i]);
        }
        return 0;
}

int sk_tower_h_delete(sk_tower_ctx *c, sk_error **err)
{
        const char *kind = singular(c->kind);
        int r = 0;
        const char *version = "";
        int64_t site_id = 0;
        if (strcmp(kind, "tenant") == 0 && strcmp(c->name, SK_TOWER_ROOT) == 0)
                return sk_error_set(err, EBUSY, "tenant %s cannot be deleted", SK_TOWER_ROOT);
        if (strcmp(kind, "user") == 0 && strcmp(c->scope, SK_TOWER_ROOT) == 0 &&
            strcmp(c->name, "admin") == 0)
                return sk_error_set(err, EBUSY, "the built-in admin cannot be deleted");
        if (strcmp(kind, "tenant") == 0) {
                /* a tenant goes by the hands of its parent's admins, and from nobody else's view */
                if (!sk_tenancy_within(c->tn, c->name, c->scope))
                        return sk_error_set(err, ENOENT, "no tenant named %s", c->name);
                if (strcmp(c->name, c->scope) == 0)
                        return sk_error_set(err, EPERM,
                                            "tenant %s is deleted by the admins of its parent %s",
                                            c->name, sk_tenancy_parent(c->tn, c->name));
                r = tenant_in_use(c, c->name, err);
                if (r < 0)
                        return r;
        }
        if (strcmp(kind, "application") == 0) {
                version = sk_tower_query(c, "version");
                r = app_in_use(c, version, err);
                if (r < 0)
                        return r;
        }
        if (strcmp(kind, "site") == 0) {
                r = sk_tower_site_find(c->api, c->scope, c->name, &site_id, NULL, err);
                if (r < 0)
                        return r;
        }
        sk_store *s = c->api->store;
        r = s->ops->begin(s, err);
        if (r < 0)
                return r;
        r = s->ops->resource_delete(s, home(c, kind), kind, c->name, version, NULL);
        if (r == 0 || r == -ENOENT) {
                s->ops->rollback(s);
                return sk_error_set(err, ENOENT, "no %s named %s%s%s", kind, c->name,
                                    version && *version ? " version " : "",
                                    version && *version ? version : "");
        }
        if (r >= 0 && site_id)
                r = s->ops->instances_delete_site(s, site_id, err);
        if (r >= 0)
                r = s->ops->commit(s, err);
        if (r < 0) {
                s->ops->rollback(s);
                return r;
        }
        if (strcmp(kind, "site") == 0 || strcmp(kind, "user") == 0)
                c->sync_only = -1;
        sk_tower_reply(c, 200, json_pack("{s:s}", "result", "deleted"));
        return 0;
}

int sk_tower_h_site_token(sk_tower_ctx *c, sk_error **err)
{
        int r;
        int64_t ttl = JOIN_TTL_MS;
        if (c->req->body_len) {
                _cleanup_json_ json_t *body = NULL;
                r = sk_tower_body(c, &body, err);
                if (r < 0)
                        return r;
                json_t *t = json_object_get(body, "ttl");
                if (t && (!json_is_string(t) || sk_duration_ms(json_string_value(t), &ttl) < 0 ||
                          ttl <= 0 || ttl > JOIN_TTL_MAX_MS))
                        return sk_error_set_path(err, EINVAL, "ttl",
                                                 "must be a duration from 1s to 7 days (168h)");
        }
        int64_t site_id;
        r = sk_tower_site_find(c->api, c->scope, c->name, &site_id, NULL, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *tok = NULL, *hash = NULL;
        if (sk_tower_new_secret(&tok, &hash) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int64_t expires = sk_tower_now(c->api) + ttl;
        r = c->api->store->ops->join_token_add(c->api->store, hash, site_id, expires, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *exp = sk_tower_rfc3339(expires);
        sk_tower_reply(
            c, 200,
            json_pack("{s:s, s:s, s:s}", "token", tok, "site", c->name, "expires", exp ? exp : ""));
        return 0;
}

/* Argon2id (about 0.1 s and 64 MiB a time) runs as a job off the request thread. */
typedef struct pw_job {
        sk_tower_job base;
        sk_login_limit *limit; /* a login's check: counted in flight for throttle_key */
        char *throttle_key;
        bool verify; /* verify password against hash; else hash password into hash */
        char *password;
        char hash[crypto_pwhash_STRBYTES];
        bool ok;
        bool unknown; /* verified against a stand-in: fails whatever the outcome */
} pw_job;

static void pw_run(sk_tower_job *job)
{
        pw_job *j = (pw_job *)job;
        if (j->verify)
                j->ok = crypto_pwhash_str_verify(j->hash, j->password, strlen(j->password)) == 0;
        else
                j->ok = crypto_pwhash_str(j->hash, j->password, strlen(j->password),
                                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                          crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
}

static void pw_free(sk_tower_job *job)
{
        pw_job *j = (pw_job *)job;
        if (j->limit && j->throttle_key)
                sk_login_limit_end(j->limit, j->throttle_key);
        free(j->throttle_key);
        if (j->password) {
                sodium_memzero(j->password, strlen(j->password));
                free(j->password);
        }
        free(j);
}

static int pw_start(sk_tower_ctx *c, bool verify, const char *hash, const char *password,
                    sk_error **err)
{
        pw_job *j = calloc(1, sizeof(*j));
        if (!j || !(j->password = strdup(password))) {
                free(j);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        j->base = (sk_tower_job){pw_run, pw_free, SK_TOWER_LANE_HASH};
        j->verify = verify;
        if (hash)
                snprintf(j->hash, sizeof(j->hash), "%s", hash);
        c->resp->job = &j->base;
        return 0;
}

/* The finished job of this request, or NULL in the first round. */
static const pw_job *pw_done(const sk_tower_ctx *c)
{
        const sk_tower_job *job = c->req->job;
        return job && job->run == pw_run ? (const pw_job *)job : NULL;
}

/* Verified when the user has no password, so that an unknown user costs the same time. */
static const char DUMMY_HASH[] = "$argon2id$v=19$m=65536,t=2,p=1$4EFhqX36fm95yIp/SxBYfw$"
                                 "AIrJ47ZNqRfmE95xD580jbun61dQtZbM0muozJqq4jg";
#define LOGIN_FAILS_USER 5  /* per user at one address */
#define LOGIN_FAILS_ADDR 20 /* per address, whoever it names */
#define LOGIN_IN_FLIGHT  2  /* password checks queued or running per address */
#define LOGIN_REFUSED    "wrong tenant, user or password"
#define LOGIN_LOCKED     "too many failed logins; try again later"

int sk_tower_h_login(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = sk_tower_body(c, &body, err);
        if (r < 0)
                return r;
        const char *fields[] = {"tenant", "user", "password"};
        const char *v[3];
        for (size_t i = 0; i < 3; i++) {
                v[i] = json_string_value(json_object_get(body, fields[i]));
                if (!v[i] || !*v[i])
                        return sk_error_set_path(err, EINVAL, fields[i], "must be a string");
        }
        bool names_ok = sk_spec_valid_name(v[0]) && sk_spec_valid_name(v[1]);
        /* The lockout counts a user per address, so strangers elsewhere cannot lock a user
         * out, and an address whoever it names. */
        const char *addr = c->req->remote_addr ? c->req->remote_addr : "";
        _cleanup_free_ char *ukey = NULL, *akey = NULL;
        if (asprintf(&ukey, "user:%s/%s@%s", v[0], v[1], addr) < 0 ||
            asprintf(&akey, "addr:%s", addr) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (names_ok) {
                c->audit_tenant = strdup(v[0]);
                if (asprintf(&c->audit_actor, "%s/%s", v[0], v[1]) < 0)
                        c->audit_actor = NULL;
        }
        sk_store *s = c->api->store;
        int64_t now = sk_tower_now(c->api);
        const pw_job *done = pw_done(c);
        /* A locked pair or address, or an address with its checks already in flight, is
         * refused before any password is hashed, with a message that says nothing about
         * whether the user exists; a flood of refusals is audited once a minute. */
        if (!done) {
                bool locked = sk_login_limit_locked(c->api->logins, ukey, now) ||
                              sk_login_limit_locked(c->api->logins, akey, now);
                if (locked || !sk_login_limit_begin(c->api->logins, akey, LOGIN_IN_FLIGHT, now)) {
                        c->no_audit = !sk_login_limit_note(c->api->logins, ukey, now);
                        return sk_error_set(err, EAGAIN, LOGIN_LOCKED);
                }
                _cleanup_free_ char *hash = NULL;
                if (names_ok)
                        s->ops->password_get(s, v[0], v[1], &hash, NULL);
                r = pw_start(c, true, hash ? hash : DUMMY_HASH, v[2], err);
                if (r < 0) {
                        sk_login_limit_end(c->api->logins, akey);
                        return r;
                }
                pw_job *j = (pw_job *)c->resp->job;
                j->unknown = !hash;
                j->limit = c->api->logins;
                j->throttle_key = strdup(akey);
                if (!j->throttle_key) {
                        sk_login_limit_end(c->api->logins, akey);
                        j->limit = NULL;
                }
                return 0;
        }
        _cleanup_rows_ rows user = {0};
        if (!done->ok || done->unknown ||
            get_rows(c->api, v[0], "user", v[1], "", &user, NULL) < 0) {
                sk_login_limit_fail(c->api->logins, ukey, LOGIN_FAILS_USER, now);
                sk_login_limit_fail(c->api->logins, akey, LOGIN_FAILS_ADDR, now);
                return sk_error_set(err, EACCES, LOGIN_REFUSED);
        }
        sk_login_limit_reset(c->api->logins, ukey);
        const char *role =
            json_string_value(json_object_get(json_array_get(user.items, 0), "role"));
        _cleanup_free_ char *tok = NULL, *th = NULL;
        if (sk_tower_new_secret(&tok, &th) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int64_t expires = now + LOGIN_TTL_MS;
        r = s->ops->token_add(s, th, v[0], v[1], role ? role : "viewer", expires, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *exp = sk_tower_rfc3339(expires);
        th[SK_TOWER_TOKEN_ID_LEN] = '\0';
        sk_tower_reply(
            c, 200,
            json_pack("{s:s, s:s, s:s}", "token", tok, "id", th, "expires", exp ? exp : ""));
        return 0;
}

int sk_tower_h_password(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = sk_tower_body(c, &body, err);
        if (r < 0)
                return r;
        const char *pw = json_string_value(json_object_get(body, "password"));
        if (!pw || strlen(pw) < 8)
                return sk_error_set_path(err, EINVAL, "password",
                                         "must be a string of at least 8 characters");
        _cleanup_rows_ rows user = {0};
        r = get_rows(c->api, c->scope, "user", c->name, "", &user, err);
        if (r < 0)
                return r;
        const pw_job *done = pw_done(c);
        if (!done)
                return pw_start(c, false, NULL, pw, err);
        if (!done->ok)
                return sk_error_set(err, ENOMEM, "hashing the password failed");
        r = c->api->store->ops->password_set(c->api->store, c->scope, c->name, done->hash, err);
        if (r < 0)
                return r;
        sk_tower_reply(c, 200, json_pack("{s:s}", "result", "updated"));
        return 0;
}

int sk_tower_h_whoami(sk_tower_ctx *c, sk_error **err)
{
        sk_tower_reply(
            c, 200,
            json_pack("{s:s, s:s, s:s}", "tenant", c->tenant, "user", c->user, "role", c->role));
        return 0;
}

typedef struct host_acc {
        json_t *items;
        const char *site;
} host_acc;

static int host_to_json(const sk_host_row *row, void *user)
{
        host_acc *a = user;
        _cleanup_free_ char *joined = sk_tower_rfc3339(row->joined);
        _cleanup_free_ char *seen = row->last_seen ? sk_tower_rfc3339(row->last_seen) : NULL;
        json_t *labels = json_loads(row->labels_json ? row->labels_json : "{}", 0, NULL);
        json_t *status = json_loads(row->status_json ? row->status_json : "{}", 0, NULL);
        json_t *h =
            json_pack("{s:s, s:s, s:I, s:o, s:s, s:o}", "name", row->name, "site", a->site, "id",
                      (json_int_t)row->id, "labels", labels ? labels : json_object(), "joined",
                      joined ? joined : "", "status", status ? status : json_object());
        if (h && seen)
                json_object_set_new(h, "last-seen", json_string(seen));
        /* What the site's leader reports of the host (docs/site-cluster.md): its role, state,
         * labels with the built-in and device ones, devices, capacity, address. */
        static const char *const lifted[] = {"role",    "state",    "labels",
                                             "devices", "capacity", "address"};
        for (size_t i = 0; h && status && i < SK_ARRAY_SIZE(lifted); i++) {
                json_t *v = json_object_get(status, lifted[i]);
                if (v)
                        json_object_set(h, lifted[i], v);
        }
        json_array_append_new(a->items, h);
        return 0;
}

int sk_tower_h_hosts(sk_tower_ctx *c, sk_error **err)
{
        const char *site = sk_tower_query(c, "site");
        if (!site)
                return sk_error_set_path(err, EINVAL, "site", "the query parameter is required");
        int64_t site_id;
        int r = sk_tower_site_find(c->api, c->scope, site, &site_id, NULL, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *items = json_array();
        host_acc a = {items, site};
        r = c->api->store->ops->host_list(c->api->store, site_id, host_to_json, &a, err);
        if (r < 0)
                return r;
        sk_tower_reply(c, 200, json_pack("{s:O}", "items", items));
        return 0;
}

typedef struct host_find {
        const char *name;
        int64_t id;
} host_find;

static int host_named(const sk_host_row *row, void *user)
{
        host_find *f = user;
        if (strcmp(row->name, f->name) != 0)
                return 0;
        f->id = row->id;
        return 1;
}

int sk_tower_h_host_delete(sk_tower_ctx *c, sk_error **err)
{
        const char *site = sk_tower_query(c, "site");
        if (!site)
                return sk_error_set_path(err, EINVAL, "site", "the query parameter is required");
        int64_t site_id;
        int r = sk_tower_site_find(c->api, c->scope, site, &site_id, NULL, err);
        if (r < 0)
                return r;
        sk_store *s = c->api->store;
        host_find f = {c->name, 0};
        r = s->ops->host_list(s, site_id, host_named, &f, err);
        if (r < 0)
                return r;
        if (!f.id)
                return sk_error_set_path(err, ENOENT, "name", "site %s has no host named %s", site,
                                         c->name);
        /* The host row goes (its certificate is refused from now on, as every host request
         * looks the row up) and its id goes into the site's desired document as removed. */
        r = s->ops->host_delete(s, f.id, sk_tower_now(c->api), err);
        if (r < 0)
                return r;
        /* The removed host holds the site CA key: a new generation retires it, and the
         * desired document announces it (docs/security.md). After the removal, so that any
         * document announcing the new generation also lists the removed host (the leader
         * hands the key only to hosts that are not). */
        int gen = 0;
        r = sk_tower_site_ca_rekey(s, c->api->ca, site_id, &gen, err);
        if (r < 0) {
                sk_errorf("host %s removed from site %s, but re-keying its site CA failed", c->name,
                          site);
                return sk_error_prefix(err,
                                       "host %s was removed, but re-keying the site CA "
                                       "failed",
                                       c->name),
                       r;
        }
        c->sync_only = site_id;
        sk_info("host %s (host-id %lld) removed from site %s%s", c->name, (long long)f.id, site,
                gen > 0 ? "; its site CA re-keyed" : "");
        sk_tower_reply(c, 200, json_pack("{s:s}", "result", "deleted"));
        return 0;
}

static int instance_to_json(const sk_instance_row *row, void *user)
{
        json_t *doc = json_loads(row->json, 0, NULL);
        if (doc)
                json_array_append_new(user, doc);
        return 0;
}

int sk_tower_h_instances(sk_tower_ctx *c, sk_error **err)
{
        const char *site = sk_tower_query(c, "site");
        _cleanup_rows_ rows sites = {0};
        int r;
        if (site) {
                int64_t id;
                r = visible_site(c, site, &id, err);
                if (r < 0)
                        return r;
                r = rows_init(&sites);
                if (r < 0 || !(sites.ids = malloc(sizeof(int64_t))))
                        return sk_error_set(err, ENOMEM, "out of memory");
                sites.ids[0] = id;
                sites.n = 1;
        } else {
                r = app_scope(c) ? assigned_sites(c, NULL, &sites, err)
                                 : list_rows(c->api, c->scope, "site", &sites, err);
                if (r < 0)
                        return r;
        }
        /* on a provider's own sites it sees every tenant's; an application tenant its own */
        _cleanup_free_ char *prefix = NULL;
        if (app_scope(c) && asprintf(&prefix, "%s/", c->scope) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *items = json_array();
        for (size_t i = 0; i < sites.n; i++) {
                r = c->api->store->ops->instances_list(c->api->store, sites.ids[i], prefix,
                                                       instance_to_json, items, err);
                if (r < 0)
                        return r;
        }
        sk_tower_reply(c, 200, json_pack("{s:O}", "items", items));
        return 0;
}
