/* Joining hosts and site sync: each site's desired document (its spec plus every
 * deployment that selects it, with the concrete application version), versioned by a
 * generation that moves only when the document's content does. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "model/app.h"
#include "model/deployment.h"
#include "model/desired.h"
#include "model/instance.h"
#include "model/labelexpr.h"
#include "model/site.h"
#include "model/spec.h"
#include "tower/api_int.h"
#include "tower/siteca.h"

#define HOST_CERT_DAYS 365
#define DUMP_FLAGS     (JSON_COMPACT | JSON_SORT_KEYS)
#define WAIT_DEFAULT_S 30

/* One deployment, parsed and resolved once per refresh: its `sites` expression is
 * compiled with the document (model/deployment.h). */
typedef struct plan {
        char *tenant;
        sk_deployment *dep;
        char *version; /* concrete */
        sk_app *app;   /* the application version; NULL when missing */
} plan;

typedef struct world {
        plan *plans;
        size_t n;
        sk_tenancy *tn; /* which sites each tenant's deployments may use, and quotas */
} world;

static void world_free(world *w)
{
        for (size_t i = 0; i < w->n; i++) {
                free(w->plans[i].tenant);
                sk_deployment_free(w->plans[i].dep);
                free(w->plans[i].version);
                sk_app_free(w->plans[i].app);
        }
        free(w->plans);
        sk_tenancy_free(w->tn);
        memset(w, 0, sizeof(*w));
}
#define _cleanup_world_ __attribute__((cleanup(world_free)))

typedef struct owned_row {
        char *tenant, *kind, *name, *version;
        json_t *doc;
        int64_t id;
} owned_row;

static void owned_row_free(owned_row *r)
{
        free(r->tenant);
        free(r->kind);
        free(r->name);
        free(r->version);
        json_decref(r->doc);
        memset(r, 0, sizeof(*r));
}
#define _cleanup_owned_row_ __attribute__((cleanup(owned_row_free)))

static int copy_row(const sk_resource_row *row, void *user)
{
        owned_row *o = user;
        owned_row_free(o);
        o->tenant = strdup(row->tenant);
        o->kind = strdup(row->kind);
        o->name = strdup(row->name);
        o->version = strdup(row->version ? row->version : "");
        o->doc = json_loads(row->json, 0, NULL);
        o->id = row->id;
        return 0;
}

/* A stored row as its struct; NULL when it does not parse (it then selects nothing). */
static void *parse_stored(const sk_model *t, const char *json)
{
        _cleanup_json_ json_t *doc = json_loads(json, 0, NULL);
        void *obj = NULL;
        if (doc && sk_resource_from_json(t, doc, &obj, NULL) < 0)
                obj = NULL;
        return obj;
}

static int add_plan(const sk_resource_row *row, void *user)
{
        world *w = user;
        plan *p = realloc(w->plans, (w->n + 1) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        w->plans = p;
        p = &w->plans[w->n];
        memset(p, 0, sizeof(*p));
        p->dep = parse_stored(&sk_deployment_table, row->json);
        if (!p->dep)
                return 0; /* unreadable rows select nothing */
        w->n++;
        return (p->tenant = strdup(row->tenant)) ? 0 : -ENOMEM;
}

static int app_row(const sk_resource_row *row, void *user)
{
        sk_app_free(*(sk_app **)user);
        *(sk_app **)user = parse_stored(&sk_app_table, row->json);
        return 0;
}

static int load_world(sk_tower_api *api, world *w, sk_error **err)
{
        sk_store *s = api->store;
        int r = sk_tenancy_load(s, &w->tn, err);
        if (r < 0)
                return r;
        r = s->ops->resource_list(s, NULL, "deployment", add_plan, w, err);
        if (r < 0)
                return r == -ENOMEM ? sk_error_set(err, ENOMEM, "out of memory") : r;
        for (size_t i = 0; i < w->n; i++) {
                plan *p = &w->plans[i];
                const char *v = p->dep->version ? p->dep->version : "*";
                if (strcmp(v, "*") == 0) {
                        if (sk_tower_app_newest(api, p->tenant, p->dep->application, &p->version,
                                                NULL) < 0)
                                continue;
                } else if (!(p->version = strdup(v))) {
                        return sk_error_set(err, ENOMEM, "out of memory");
                }
                s->ops->resource_get(s, p->tenant, "application", p->dep->application, p->version,
                                     app_row, &p->app, NULL);
        }
        return 0;
}

/* A deployment reaches a site its expression selects among those assigned to its tenant.
 * Tenancy first: a tenant's expression never runs on another provider's sites. */
static bool plan_selects(const world *w, const plan *p, const char *site_tenant,
                         const json_t *labels)
{
        return p->dep->sites.expr && p->app &&
               sk_tenancy_site_assigned(w->tn, p->tenant, site_tenant, labels) &&
               sk_expr_match(p->dep->sites.expr, labels);
}

static int site_row(sk_tower_api *api, int64_t site_id, owned_row *row, sk_error **err)
{
        int r = api->store->ops->resource_get_by_id(api->store, site_id, copy_row, row, NULL);
        if (r < 0 || !row->kind || strcmp(row->kind, "site") != 0 || !row->doc)
                return sk_error_set(err, ENOENT, "no site with id %lld", (long long)site_id);
        return 0;
}

/* The ids of the hosts removed from the site, for its leader to drop from the raft
 * configuration and refuse (docs/site-cluster.md); none when unreadable: the next refresh
 * tries again, as the document's hash then differs. */
static void removed_hosts(sk_tower_api *api, int64_t site_id, sk_desired_doc *d)
{
        int64_t *ids = NULL;
        size_t n = 0;
        if (api->store->ops->host_removed_list(api->store, site_id, &ids, &n, NULL) < 0 || n == 0) {
                free(ids);
                return;
        }
        d->removed_hosts.items = ids;
        d->removed_hosts.n = n;
}

/* The site CA generation hosts must accept (public: generation and fingerprint only; the
 * leader fetches the key from GET /v1/sync/site-ca). NULL until a removal re-keyed it:
 * generation 1 is the one every host got with its join, so it needs no announcing (and
 * issuing it at a join, which moves no store revision, leaves the documents as they are). */
static json_t *site_ca_announce(sk_tower_api *api, int64_t site_id)
{
        int gen = 0;
        char fp[SK_PKI_FP_LEN];
        if (sk_tower_site_ca_current(api->store, site_id, &gen, fp, NULL) < 0 || gen < 2)
                return NULL;
        json_t *o = json_pack("{s:i, s:s}", "generation", gen, "sha256", fp);
        json_t *leaves = sk_tower_site_leaves(api->store, site_id);
        if (o && json_array_size(leaves) > 0)
                json_object_set_new(o, "leaves", leaves);
        else
                json_decref(leaves);
        return o;
}

/* The desired document borrows its deployments' strings and applications from the plans
 * (one copy of each application however many sites it goes to): they are let go before
 * the document is freed. */
static void desired_release(sk_desired_doc *d)
{
        if (d->deployments.items)
                memset(d->deployments.items, 0, d->deployments.n * sizeof(*d->deployments.items));
        sk_model_free(&sk_desired_doc_table, d);
}
#define _cleanup_desired_ __attribute__((cleanup(desired_release)))

/* The site's document without its generation, as it is hashed. -EINVAL: the stored site
 * does not parse. */
static int desired_doc(sk_tower_api *api, const world *w, const owned_row *site, sk_desired_doc *d)
{
        memset(d, 0, sizeof(*d));
        d->generation = SK_UNSET;
        sk_site *parsed = NULL;
        if (!site->doc || sk_site_from_json(site->doc, &parsed, NULL) < 0)
                return -EINVAL;
        d->site = *parsed;
        free(parsed);
        _cleanup_json_ json_t *labels = sk_tower_site_labels(site->doc, site->tenant);
        if (!(d->site.tenant = strdup(site->tenant)) || !labels ||
            !(d->deployments.items = calloc(w->n + 1, sizeof(*d->deployments.items))))
                return -ENOMEM;
        for (size_t i = 0; i < w->n; i++) {
                const plan *p = &w->plans[i];
                if (plan_selects(w, p, site->tenant, labels))
                        d->deployments.items[d->deployments.n++] = (sk_desired_deployment){
                            p->tenant, p->dep->name, p->dep->application, p->version, *p->app};
        }
        if (sk_tenancy_quotas(w->tn, site->tenant, labels, d) < 0)
                return -ENOMEM;
        removed_hosts(api, site->id, d);
        return 0;
}

/* The document as JSON: the model's form, and the site CA generation the tower announces
 * (not part of the model yet: it is the tower's word about certificates, not a resource). */
static json_t *doc_json(sk_tower_api *api, int64_t site_id, const sk_desired_doc *d)
{
        json_t *doc = sk_desired_doc_to_json(d);
        json_t *ca = doc ? site_ca_announce(api, site_id) : NULL;
        if (ca)
                json_object_set_new(doc, "site-ca", ca);
        return doc;
}

static int sync_desired(sk_tower_api *api, int64_t site_id, int64_t generation, json_t **doc,
                        sk_error **err)
{
        _cleanup_world_ world w = {0};
        _cleanup_owned_row_ owned_row site = {0};
        int r = site_row(api, site_id, &site, err);
        if (r < 0)
                return r;
        r = load_world(api, &w, err);
        if (r < 0)
                return r;
        _cleanup_desired_ sk_desired_doc d = {0};
        r = desired_doc(api, &w, &site, &d);
        if (r == -EINVAL)
                return sk_error_set(err, EIO, "the stored site %s is not valid", site.name);
        d.generation = generation;
        *doc = r < 0 ? NULL : doc_json(api, site_id, &d);
        return *doc ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int sk_tower_sync_desired(sk_tower_api *api, int64_t site_id, json_t **doc, sk_error **err)
{
        return sync_desired(api, site_id, SK_UNSET, doc, err);
}

/* What a site compares generations by: the hash of its document without the generation,
 * keys sorted. */
static int hash_doc(sk_tower_api *api, int64_t site_id, const sk_desired_doc *d, char hex[65])
{
        _cleanup_json_ json_t *doc = doc_json(api, site_id, d);
        _cleanup_free_ char *text = doc ? json_dumps(doc, DUMP_FLAGS) : NULL;
        if (!text)
                return -ENOMEM;
        unsigned char h[32];
        crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
        sodium_bin2hex(hex, 65, h, sizeof(h));
        return 0;
}

typedef struct site_list {
        owned_row *rows;
        size_t n;
} site_list;

static int add_site(const sk_resource_row *row, void *user)
{
        site_list *l = user;
        owned_row *rs = realloc(l->rows, (l->n + 1) * sizeof(*rs));
        if (!rs)
                return -ENOMEM;
        l->rows = rs;
        memset(&rs[l->n], 0, sizeof(*rs));
        copy_row(row, &rs[l->n]);
        if (rs[l->n].doc)
                l->n++;
        else
                owned_row_free(&rs[l->n]);
        return 0;
}

static void site_list_free(site_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                owned_row_free(&l->rows[i]);
        free(l->rows);
}

/* Sets each changed site's new generation; collects the ids to notify after commit. */
static int refresh_sites(sk_tower_api *api, const world *w, const site_list *sites,
                         int64_t *changed, size_t *n_changed, sk_error **err)
{
        sk_store *s = api->store;
        for (size_t i = 0; i < sites->n; i++) {
                _cleanup_desired_ sk_desired_doc d = {0};
                int r = desired_doc(api, w, &sites->rows[i], &d);
                if (r == -EINVAL) {
                        /* one bad row must not hold back every other site */
                        sk_warn("the stored site %s/%s is not valid; not synced",
                                sites->rows[i].tenant, sites->rows[i].name);
                        continue;
                }
                char hex[65];
                if (r < 0 || hash_doc(api, sites->rows[i].id, &d, hex) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                int64_t gen = 0;
                _cleanup_free_ char *old = NULL;
                r = s->ops->site_sync_get(s, sites->rows[i].id, &gen, &old, NULL);
                if (r < 0 && r != -ENOENT)
                        return sk_error_set(err, -r, "reading the sync state of site %s failed",
                                            sites->rows[i].name);
                if (r == 0 && old && strcmp(old, hex) == 0)
                        continue;
                r = s->ops->site_sync_set(s, sites->rows[i].id, r == 0 ? gen + 1 : 1, hex, err);
                if (r < 0)
                        return r;
                changed[(*n_changed)++] = sites->rows[i].id;
        }
        return 0;
}

/* Recomputes the sites (only > 0: that one) in one transaction under the sync lock. Towers
 * sharing the store take turns here, and each reads deployments and sites only once it
 * holds the lock, so it sees every change committed before; comparing with the stored hash
 * under the lock then gives one content one generation, whichever replica gets there
 * first (the others find the hash equal). */
static int refresh_locked(sk_tower_api *api, int64_t only, int64_t **changed_out, size_t *n_changed,
                          sk_error **err)
{
        sk_store *s = api->store;
        int r = s->ops->begin(s, err);
        if (r < 0)
                return r;
        r = s->ops->lock(s, SK_STORE_LOCK_SYNC, err);
        _cleanup_world_ world w = {0};
        if (r >= 0)
                r = load_world(api, &w, err);
        site_list sites = {0};
        if (r >= 0 && only > 0)
                r = s->ops->resource_get_by_id(s, only, add_site, &sites, err);
        else if (r >= 0)
                r = s->ops->resource_list(s, NULL, "site", add_site, &sites, err);
        int64_t *changed = r >= 0 ? calloc(sites.n + 1, sizeof(int64_t)) : NULL;
        if (r >= 0 && !changed)
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0)
                r = refresh_sites(api, &w, &sites, changed, n_changed, err);
        if (r >= 0)
                r = s->ops->commit(s, err);
        else
                s->ops->rollback(s);
        site_list_free(&sites);
        if (r < 0) {
                free(changed);
                *n_changed = 0;
                return r;
        }
        *changed_out = changed;
        return 0;
}

/* only: 0 every site, > 0 that site alone, < 0 none (the write changed no document). */
static int refresh(sk_tower_api *api, bool force, int64_t only, sk_error **err)
{
        sk_store *s = api->store;
        int64_t rev = 0;
        int r = s->ops->revision(s, &rev, err);
        if (r < 0)
                return r;
        if ((!force && rev == api->sync_rev) || only < 0) {
                api->sync_rev = rev;
                return 0;
        }
        _cleanup_free_ int64_t *changed = NULL;
        size_t n_changed = 0;
        r = refresh_locked(api, only, &changed, &n_changed, err);
        if (r < 0)
                return r;
        api->sync_rev = rev;
        for (size_t i = 0; i < n_changed && api->notify; i++)
                api->notify(api->hook_ctx, changed[i]);
        return 0;
}

int sk_tower_sync_refresh(sk_tower_api *api, bool force, sk_error **err)
{
        return refresh(api, force, 0, err);
}

int sk_tower_sync_after_write(sk_tower_api *api, int64_t rev_before, int64_t only, sk_error **err)
{
        /* Narrowing is safe only when nothing else moved since the last refresh. */
        return refresh(api, false, api->sync_rev == rev_before ? only : 0, err);
}

static int parse_int_query(sk_tower_ctx *c, const char *key, int64_t min, int64_t max, int64_t dflt,
                           int64_t *out, sk_error **err)
{
        const char *v = sk_tower_query(c, key);
        if (!v) {
                *out = dflt;
                return 0;
        }
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < min || n > max)
                return sk_error_set_path(err, EINVAL, key, "must be an integer from %lld to %lld",
                                         (long long)min, (long long)max);
        *out = n;
        return 0;
}

int sk_tower_h_sync_desired(sk_tower_ctx *c, sk_error **err)
{
        int64_t want, wait;
        int r = parse_int_query(c, "generation", 0, INT64_MAX, -1, &want, err);
        if (r >= 0)
                r = parse_int_query(c, "wait", 0, SK_TOWER_WAIT_MAX_S, WAIT_DEFAULT_S, &wait, err);
        if (r < 0)
                return r;
        sk_store *s = c->api->store;
        int64_t gen = 0;
        _cleanup_free_ char *hash = NULL;
        r = s->ops->site_sync_get(s, c->site_id, &gen, &hash, NULL);
        if (r == -ENOENT) {
                r = sk_tower_sync_refresh(c->api, true, err);
                if (r >= 0)
                        r = s->ops->site_sync_get(s, c->site_id, &gen, &hash, err);
        }
        if (r < 0)
                return r;
        if (gen == want) {
                c->resp->status = 204;
                c->resp->wait_site = c->site_id;
                c->resp->wait_ms = wait * 1000;
                return 0;
        }
        json_t *doc = NULL;
        r = sync_desired(c->api, c->site_id, gen, &doc, err);
        if (r < 0)
                return r;
        sk_tower_reply(c, 200, doc);
        return 0;
}

static int host_name(const sk_host_row *row, void *user)
{
        *(char **)user = strdup(row->name);
        return 0;
}

typedef struct site_host {
        const char *name;
        int64_t id;
} site_host;

static int find_site_host(const sk_host_row *row, void *user)
{
        site_host *sh = user;
        if (strcmp(row->name, sh->name) == 0)
                sh->id = row->id;
        return 0;
}

/* The other hosts of a site with the address each reported, for a joining host. */
typedef struct peer_acc {
        json_t *items;
        int64_t except;
} peer_acc;

static int add_peer(const sk_host_row *row, void *user)
{
        peer_acc *a = user;
        _cleanup_json_ json_t *st = json_loads(row->status_json ? row->status_json : "{}", 0, NULL);
        const char *addr = json_string_value(json_object_get(st, "address"));
        if (row->id != a->except && addr)
                json_array_append_new(a->items,
                                      json_pack("{s:s, s:I, s:s}", "host", row->name, "host-id",
                                                (json_int_t)row->id, "address", addr));
        return 0;
}

typedef struct inst_rows {
        sk_instance_row *rows;
        sk_instance_status **st;
        char **texts;
        size_t n;
} inst_rows;

static void inst_rows_free(inst_rows *ir)
{
        for (size_t i = 0; i < ir->n; i++) {
                free(ir->texts[i]);
                sk_instance_status_free(ir->st[i]);
        }
        free(ir->texts);
        free(ir->st);
        free(ir->rows);
}

/* Replaces *field with a copy of value. */
static int set_text(char **field, const char *value)
{
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* One reported instance, parsed and validated (model/instance.h); errors name it by its
 * place in the report. */
static int parse_instance(const json_t *it, size_t i, sk_instance_status **out, sk_error **err)
{
        _cleanup_error_ sk_error *pe = NULL;
        int r = sk_instance_status_from_json(it, out, &pe);
        if (r >= 0)
                return 0;
        if (r == -ENOMEM)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "instances[%zu]%s%s", i, pe && pe->path && *pe->path ? "." : "",
                     pe && pe->path ? pe->path : "") < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        return sk_error_set_path(err, EINVAL, path, "%s", sk_error_msg(pe, r));
}

static int build_instances(sk_tower_ctx *c, json_t *list, const char *site, const char *host,
                           int64_t host_id, inst_rows *ir, sk_error **err)
{
        size_t n = json_array_size(list);
        int64_t now = sk_tower_now(c->api);
        _cleanup_free_ char *stamp = sk_tower_rfc3339(now);
        ir->rows = calloc(n + 1, sizeof(*ir->rows));
        ir->st = calloc(n + 1, sizeof(*ir->st));
        ir->texts = calloc(n + 1, sizeof(*ir->texts));
        if (!ir->rows || !ir->st || !ir->texts || !stamp)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                ir->n = i + 1;
                int r = parse_instance(json_array_get(list, i), i, &ir->st[i], err);
                if (r < 0)
                        return r;
                sk_instance_status *st = ir->st[i];
                /* the tower knows where it runs better than the report does */
                if (set_text(&st->site, site) < 0 || set_text(&st->host, host) < 0 ||
                    (!st->updated && set_text(&st->updated, stamp) < 0))
                        return sk_error_set(err, ENOMEM, "out of memory");
                _cleanup_json_ json_t *doc = sk_instance_status_to_json(st);
                if (!doc || !(ir->texts[i] = json_dumps(doc, DUMP_FLAGS)))
                        return sk_error_set(err, ENOMEM, "out of memory");
                ir->rows[i] =
                    (sk_instance_row){c->site_id, host_id, st->instance, ir->texts[i], now};
        }
        return 0;
}

/* The certificate the site signed for a host it reports: it must chain through the site's
 * current site CA and name that very host, so that the holder of a retired site CA key (a
 * removed host) cannot invent hosts. */
static int check_adopted_cert(sk_tower_ctx *c, const json_t *body, int64_t host_id,
                              char leaf_fp[SK_PKI_FP_LEN], sk_error **err)
{
        const char *pem = json_string_value(json_object_get(body, "certificate"));
        if (!pem)
                return sk_error_set_path(err, EINVAL, "certificate",
                                         "required for a host that joined the site while the "
                                         "tower was unreachable: its certificate and site CA");
        _cleanup_free_ char *uri = NULL;
        sk_pki_chain chain = {"", ""};
        _cleanup_error_ sk_error *why = NULL;
        int64_t site = 0, host = 0;
        int r = sk_pki_verify_pem(pem, sk_ca_cert_pem(c->api->ca), &uri, chain.site_ca, &why);
        if (r >= 0 && !chain.site_ca[0])
                r = sk_error_set(&why, EACCES, "not signed by a site CA");
        /* a host not adopted yet: only the current generation (no leaf is on file) */
        if (r >= 0)
                r = sk_tower_site_ca_check(c->api->store, c->site_id, host_id, &chain, &why);
        if (r >= 0 &&
            (sk_pki_parse_host_uri(uri, &site, &host) < 0 || site != c->site_id || host != host_id))
                r = sk_error_set(&why, EACCES, "it names %s, not host %lld of site %lld", uri,
                                 (long long)host_id, (long long)c->site_id);
        if (r < 0)
                return sk_error_set_path(err, EACCES, "certificate", "refused: %s",
                                         sk_error_msg(why, r));
        return sk_pki_fingerprint(pem, leaf_fp, err);
}

/* A host the site's leader reports that the tower does not know: one that joined the site
 * while the tower was unreachable, with an id from the site's own range
 * (docs/site-cluster.md). The leader is a host of that site, which already holds the site
 * CA that signed it, so its word names no more than its own site; the range keeps it from
 * naming another site's ids, and a removed id stays removed. *id stays 0 when the report
 * is not such a host. */
static int adopt_host(sk_tower_ctx *c, const json_t *body, const char *name, int64_t *id,
                      sk_error **err)
{
        sk_store *s = c->api->store;
        const json_t *hid = json_object_get(body, "host-id");
        int64_t host_id = json_integer_value(hid);
        if (!json_is_integer(hid) || !sk_pki_is_site_local_id(c->site_id, host_id))
                return 0;
        if (!sk_spec_valid_name(name))
                return sk_error_set_path(err, EINVAL, "host",
                                         "must be a DNS label ([a-z0-9-], 1..63)");
        char leaf_fp[SK_PKI_FP_LEN];
        int r = check_adopted_cert(c, body, host_id, leaf_fp, err);
        if (r < 0)
                return r;
        _cleanup_free_ int64_t *removed = NULL;
        size_t n = 0;
        r = s->ops->host_removed_list(s, c->site_id, &removed, &n, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (removed[i] == host_id)
                        return sk_error_set_path(err, EINVAL, "host-id",
                                                 "host %lld was removed from this site",
                                                 (long long)host_id);
        r = s->ops->begin(s, err);
        if (r < 0)
                return r;
        r = s->ops->host_adopt(s, c->site_id, host_id, name, "{}", sk_tower_now(c->api), err);
        /* Its very certificate stays good after a removal retires the generation that
         * signed it (docs/security.md). */
        if (r >= 0)
                r = sk_tower_site_leaf_keep(s, host_id, leaf_fp, err);
        if (r >= 0)
                r = s->ops->commit(s, err);
        else
                s->ops->rollback(s);
        if (r == -EEXIST)
                return sk_error_set_path(err, EEXIST, "host-id", "host id %lld or name %s is taken",
                                         (long long)host_id, name);
        if (r < 0)
                return r;
        sk_info("site-id %lld: adopted host %s (host-id %lld), which joined the site while the "
                "tower was unreachable",
                (long long)c->site_id, name, (long long)host_id);
        *id = host_id;
        return 0;
}

int sk_tower_h_sync_site_ca(sk_tower_ctx *c, sk_error **err)
{
        sk_tower_site_ca_info i;
        int r = sk_tower_site_ca_get(c->api->store, c->api->ca, c->site_id, false, &i, err);
        if (r == -ENOENT)
                return sk_error_set(err, ENOENT, "site %lld has no site CA yet",
                                    (long long)c->site_id);
        if (r < 0)
                return r;
        sk_tower_reply(c, 200,
                       json_pack("{s:i, s:s, s:s, s:s}", "generation", i.generation, "sha256",
                                 i.sha256, "certificate", i.cert_pem, "key", i.key_pem));
        sk_tower_site_ca_info_wipe(&i);
        return 0;
}

int sk_tower_h_sync_status(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = sk_tower_body(c, &body, err);
        if (r < 0)
                return r;
        sk_store *s = c->api->store;
        _cleanup_free_ char *name = NULL;
        r = s->ops->host_get(s, c->host_id, host_name, &name, err);
        if (r < 0)
                return r;
        _cleanup_owned_row_ owned_row site = {0};
        r = site_row(c->api, c->site_id, &site, err);
        if (r < 0)
                return r;
        /* The site's leader reports for every host of its site (docs/site-cluster.md). */
        const char *claimed = json_string_value(json_object_get(body, "host"));
        int64_t host_id = c->host_id;
        if (json_object_get(body, "host") && (!claimed || !name || strcmp(claimed, name) != 0)) {
                site_host sh = {claimed, 0};
                if (claimed)
                        s->ops->host_list(s, c->site_id, find_site_host, &sh, NULL);
                if (!sh.id && claimed) {
                        r = adopt_host(c, body, claimed, &sh.id, err);
                        if (r < 0)
                                return r;
                }
                if (!sh.id)
                        return sk_error_set_path(err, EINVAL, "host",
                                                 "must be a host of this certificate's site (%s)",
                                                 site.name);
                host_id = sh.id;
                free(name);
                name = strdup(claimed);
                if (!name)
                        return sk_error_set(err, ENOMEM, "out of memory");
        }
        json_t *list = json_object_get(body, "instances");
        if (list && !json_is_array(list))
                return sk_error_set_path(err, EINVAL, "instances", "must be a list");
        inst_rows ir = {0};
        r = build_instances(c, list, site.name, name, host_id, &ir, err);
        if (r >= 0) {
                /* a shallow copy: the rows still point into the instances */
                _cleanup_json_ json_t *rest = json_copy(body);
                json_object_del(rest, "instances");
                json_object_del(rest, "certificate");
                _cleanup_free_ char *status = json_dumps(rest, DUMP_FLAGS);
                r = s->ops->begin(s, err);
                if (r >= 0) {
                        r = s->ops->instances_replace(s, c->site_id, host_id, ir.rows, ir.n, err);
                        if (r >= 0)
                                r = s->ops->host_seen(s, host_id, sk_tower_now(c->api),
                                                      status ? status : "{}", err);
                        if (r >= 0)
                                r = s->ops->commit(s, err);
                        if (r < 0)
                                s->ops->rollback(s);
                }
        }
        inst_rows_free(&ir);
        if (r < 0)
                return r;
        sk_tower_reply(c, 200, json_pack("{s:s}", "result", "ok"));
        return 0;
}

/* A joining host's own labels: host labels as the spec has them, without the built-in
 * prefixes the tower and the agent set themselves (a host must not claim system/name or a
 * device it does not have). */
static int check_labels(const json_t *labels, sk_error **err)
{
        if (!labels)
                return 0;
        if (!json_is_object(labels) || json_object_size(labels) > 64)
                return sk_error_set_path(err, EINVAL, "labels",
                                         "must be an object of at most 64 string labels");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)labels, k, v)
        {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "labels.%s", k) < 0)
                        return -ENOMEM;
                if (!sk_spec_valid_label_key(k))
                        return sk_error_set_path(err, EINVAL, path, "is not a label key");
                if (!strncmp(k, "system/", 7) || !strncmp(k, "device/", 7))
                        return sk_error_set_path(err, EINVAL, path,
                                                 "the prefixes system/ and device/ are the "
                                                 "built-in labels'");
                const char *sv = json_string_value(v);
                bool ok = sv && strlen(sv) <= 256;
                for (const char *ch = sv; ok && *ch; ch++)
                        ok = !iscntrl((unsigned char)*ch);
                if (!ok)
                        return sk_error_set_path(err, EINVAL, path,
                                                 "must be a string of at most 256 characters "
                                                 "without control characters");
        }
        return 0;
}

/* Token checks, host row, certificate and token use: all or nothing. */
static int join_tx(sk_tower_ctx *c, const char *hash, int64_t site_id, const char *name,
                   const char *labels, const char *csr, int64_t *host_id, char **cert,
                   sk_error **err)
{
        sk_store *s = c->api->store;
        int r = s->ops->join_token_use(s, hash, sk_tower_now(c->api), NULL);
        if (r == -EALREADY)
                return sk_error_set(err, EACCES, "join token already used");
        if (r < 0)
                return sk_error_set(err, -r, "join token could not be marked used");
        r = s->ops->host_add(s, site_id, name, labels, sk_tower_now(c->api), host_id, NULL);
        if (r == -EEXIST)
                return sk_error_set_path(err, EEXIST, "name",
                                         "the site already has a host named %s", name);
        if (r < 0)
                return sk_error_set(err, -r, "adding the host failed");
        _cleanup_free_ char *uri = NULL;
        if (asprintf(&uri, "skerry://site/%lld/host/%lld", (long long)site_id,
                     (long long)*host_id) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_error_ sk_error *pe = NULL;
        r = sk_ca_sign_client(c->api->ca, csr, name, uri, HOST_CERT_DAYS, cert, &pe);
        if (r < 0)
                return sk_error_set_path(err, EINVAL, "csr", "%s", sk_error_msg(pe, r));
        return 0;
}

int sk_tower_h_join(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = sk_tower_body(c, &body, err);
        if (r < 0)
                return r;
        const char *token = json_string_value(json_object_get(body, "token"));
        const char *csr = json_string_value(json_object_get(body, "csr"));
        const char *name = json_string_value(json_object_get(body, "name"));
        json_t *labels = json_object_get(body, "labels");
        if (!token || !*token)
                return sk_error_set_path(err, EINVAL, "token", "must be a string");
        char hash[65];
        sk_tower_hash_hex(token, hash);
        sk_store *s = c->api->store;
        sk_join_token jt;
        r = s->ops->join_token_get(s, hash, &jt, NULL);
        if (r == -ENOENT)
                return sk_error_set(err, EACCES, "unknown join token");
        if (r < 0)
                return sk_error_set(err, -r, "join token lookup failed");
        if (jt.used)
                return sk_error_set(err, EACCES, "join token already used");
        if (jt.expires <= sk_tower_now(c->api))
                return sk_error_set(err, EACCES, "join token expired");
        if (!name || !sk_spec_valid_name(name))
                return sk_error_set_path(err, EINVAL, "name",
                                         "must be a DNS label ([a-z0-9-], 1..63)");
        if (!csr || !*csr)
                return sk_error_set_path(err, EINVAL, "csr", "must be a PEM certificate request");
        /* Where the site's other hosts reach this one (its --listen), for later joiners. */
        const json_t *address = json_object_get(body, "address");
        if (address && (!json_is_string(address) || !strchr(json_string_value(address), ':')))
                return sk_error_set_path(err, EINVAL, "address", "must be \"ADDR:PORT\"");
        r = check_labels(labels, err);
        if (r < 0)
                return r;
        if (!c->api->ca)
                return sk_error_set(err, EIO, "the tower has no CA");
        _cleanup_owned_row_ owned_row site = {0};
        if (site_row(c->api, jt.site_id, &site, NULL) < 0)
                return sk_error_set(err, EACCES, "the join token's site no longer exists");
        _cleanup_free_ char *labels_text = labels ? json_dumps(labels, DUMP_FLAGS) : strdup("{}");
        /* Every host gets the site CA, not only the first: any of them may lead when a host
         * joins with the tower unreachable (docs/site-cluster.md). */
        _cleanup_free_ char *site_ca = NULL;
        _cleanup_wipe_ char *site_ca_key = NULL;
        r = sk_tower_site_ca(s, c->api->ca, jt.site_id, &site_ca, &site_ca_key, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *cert = NULL;
        int64_t host_id = 0;
        r = s->ops->begin(s, err);
        if (r < 0)
                return r;
        r = join_tx(c, hash, jt.site_id, name, labels_text ? labels_text : "{}", csr, &host_id,
                    &cert, err);
        _cleanup_json_ json_t *st = address ? json_pack("{s:O}", "address", address) : NULL;
        _cleanup_free_ char *status = st ? json_dumps(st, DUMP_FLAGS) : NULL;
        if (r >= 0 && status)
                r = s->ops->host_seen(s, host_id, sk_tower_now(c->api), status, err);
        _cleanup_json_ json_t *peers = json_array();
        peer_acc pa = {peers, host_id};
        if (r >= 0)
                r = s->ops->host_list(s, jt.site_id, add_peer, &pa, err);
        if (r >= 0)
                r = s->ops->commit(s, err);
        if (r < 0) {
                s->ops->rollback(s);
                return r;
        }
        sk_info("host %s joined site %s/%s (site-id %lld, host-id %lld)", name, site.tenant,
                site.name, (long long)jt.site_id, (long long)host_id);
        sk_tower_reply(c, 200,
                       json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:O, s:{s:s, s:s}}", "site",
                                 site.name, "tenant", site.tenant, "host", name, "site-id",
                                 (json_int_t)jt.site_id, "host-id", (json_int_t)host_id,
                                 "certificate", cert, "ca", sk_ca_cert_pem(c->api->ca), "peers",
                                 peers, "site-ca", "certificate", site_ca, "key", site_ca_key));
        return 0;
}

static int count_host(const sk_host_row *row, void *user)
{
        (*(int64_t *)user)++;
        return 0;
}

static int add_instance(const sk_instance_row *row, void *user)
{
        json_t *doc = json_loads(row->json, 0, NULL);
        if (doc)
                json_array_append_new(user, doc);
        return 0;
}

/* How many instances a site should run: replicas, or one per host. */
static int64_t desired_count(sk_tower_api *api, const sk_app *app, int64_t site_id)
{
        int64_t n = 0, hosts = -1;
        for (size_t i = 0; i < app->services.n; i++) {
                const sk_service *svc = &app->services.items[i];
                if (svc->mode == SK_SERVICE_MODE_ONE_PER_HOST) {
                        if (hosts < 0) {
                                hosts = 0;
                                api->store->ops->host_list(api->store, site_id, count_host, &hosts,
                                                           NULL);
                        }
                        n += hosts;
                } else {
                        n += svc->replicas == SK_UNSET ? 1 : svc->replicas;
                }
        }
        return n;
}

/* Whether a stored instance runs the version. */
static bool running_version(const json_t *doc, const char *version)
{
        _cleanup_instance_status_ sk_instance_status *st = NULL;
        return sk_instance_status_from_json(doc, &st, NULL) == 0 && st->state == SK_STATE_RUNNING &&
               st->version && strcmp(st->version, version) == 0;
}

int sk_tower_deployment_status(sk_tower_api *api, const char *tenant, const char *name,
                               json_t **status, sk_error **err)
{
        /* resolve the deployment exactly as site sync does */
        _cleanup_world_ world all = {0};
        int r = load_world(api, &all, err);
        if (r < 0)
                return r;
        const plan *p = NULL;
        for (size_t i = 0; i < all.n; i++)
                if (strcmp(all.plans[i].tenant, tenant) == 0 &&
                    strcmp(all.plans[i].dep->name, name) == 0)
                        p = &all.plans[i];
        site_list sites = {0};
        r = api->store->ops->resource_list(api->store, NULL, "site", add_site, &sites, err);
        _cleanup_json_ json_t *list = json_array();
        int64_t desired = 0, running = 0;
        _cleanup_free_ char *prefix = NULL;
        if (r >= 0 && asprintf(&prefix, "%s/%s/", tenant, name) < 0)
                r = sk_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; r >= 0 && p && i < sites.n; i++) {
                _cleanup_json_ json_t *labels =
                    sk_tower_site_labels(sites.rows[i].doc, sites.rows[i].tenant);
                if (!labels || !plan_selects(&all, p, sites.rows[i].tenant, labels))
                        continue;
                json_t *insts = json_array();
                r = api->store->ops->instances_list(api->store, sites.rows[i].id, prefix,
                                                    add_instance, insts, err);
                size_t k;
                json_t *it;
                json_array_foreach(insts, k, it) running += running_version(it, p->version);
                desired += desired_count(api, p->app, sites.rows[i].id);
                json_array_append_new(list, json_pack("{s:s, s:s, s:o}", "site", sites.rows[i].name,
                                                      "version", p->version, "instances", insts));
        }
        site_list_free(&sites);
        if (r < 0)
                return r;
        *status = json_pack("{s:O, s:I, s:I}", "sites", list, "desired", (json_int_t)desired,
                            "running", (json_int_t)running);
        return *status ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}
