/* The site scheduler (scheduler.h, docs/scheduler.md). A site has at most a few dozen hosts
 * and a few hundred instances, so plain arrays and linear scans keep this easy to check. */
#include "site/scheduler.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "host/desired.h"
#include "model/field.h"
#include "model/labelexpr.h"

#define KI ((int64_t)1024)
#define MI (KI * 1024)
#define GI (MI * 1024)

/* ---- small helpers ---- */

static int oom(sk_error **err)
{
        return sk_error_set(err, ENOMEM, "out of memory");
}

static int bad(sk_error **err, const char *path, const char *what)
{
        return sk_error_set_path(err, EINVAL, path, "%s: %s", path, what);
}

/* Makes room for one more element of size `size` in *arr. */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 8;
        void *p = reallocarray(*(void **)arr, ncap, size);
        if (!p)
                return -ENOMEM;
        memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
        *(void **)arr = p;
        *cap = ncap;
        return 0;
}

/* Sums of requests: kept instances may exceed any capacity, so do not wrap. */
static int64_t sat_add(int64_t a, int64_t b)
{
        int64_t r;
        return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static const char *str_field(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static char *fmt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_path(const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

/* Memory in the largest binary unit that divides it: "256Mi", "1Gi", "1000". */
static void fmt_mem(char *buf, size_t size, int64_t b)
{
        if (b < 0)
                b = 0;
        if (b != 0 && b % GI == 0)
                snprintf(buf, size, "%" PRId64 "Gi", b / GI);
        else if (b != 0 && b % MI == 0)
                snprintf(buf, size, "%" PRId64 "Mi", b / MI);
        else if (b != 0 && b % KI == 0)
                snprintf(buf, size, "%" PRId64 "Ki", b / KI);
        else
                snprintf(buf, size, "%" PRId64, b);
}

static void fmt_cpu(char *buf, size_t size, int64_t m)
{
        snprintf(buf, size, "%" PRId64 "m", m < 0 ? 0 : m);
}

/* Appends printf output to a growing string (NULL-safe: a failed append frees it). */
static char *append(char *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *append(char *s, const char *fmt, ...)
{
        if (!s)
                return NULL;
        char *more = NULL, *joined = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&more, fmt, ap);
        va_end(ap);
        if (n >= 0 && asprintf(&joined, "%s%s", s, more) < 0)
                joined = NULL;
        free(more);
        free(s);
        return joined;
}

/* ---- the spec hash and the result ---- */

char *sk_sched_spec_hash(const sk_service *service)
{
        /* the service's normalised JSON is what the tower stores and sends (spec.c), so
         * this is the hash of the same text as when the scheduler read that JSON */
        _cleanup_json_ json_t *shape = sk_service_to_json(service);
        if (!shape)
                return NULL;
        /* scaling is not a change of the instances that already run */
        json_object_del(shape, "replicas");
        return sk_desired_hash(shape);
}

void sk_sched_result_clear(sk_sched_result *r)
{
        for (size_t i = 0; i < r->n_placements; i++)
                sk_model_free(&sk_placement_table, &r->placements[i]);
        for (size_t i = 0; i < r->n_unplaced; i++)
                sk_model_free(&sk_unplaced_table, &r->unplaced[i]);
        free(r->placements);
        free(r->unplaced);
        *r = (sk_sched_result){0};
}

/* ---- the scheduler ---- */

/* One service of one deployment: what its instances need. */
struct svc {
        size_t order; /* position in the desired document: unplaced entries keep it */
        const char *tenant, *deployment, *name;
        char *key; /* "tenant/deployment/service" */
        char *hash;
        bool per_host;
        bool pinned; /* has a persistent volume: its data lives on its host, never spread */
        int64_t replicas;
        int64_t cpu, mem;
        const sk_expr *expr; /* NULL: any host (the model's, compiled once) */
        const char *expr_text;
        char *const *devices; /* device labels */
        size_t n_devices;
};

struct host {
        const sk_host *h;
        json_t *labels; /* the host's labels plus system/name */
        int64_t cpu_used, mem_used;
};

struct placed {
        struct svc *svc;
        int64_t replica;
        struct host *host;
        struct host *from; /* moving: the host that runs it until `host` does */
};

struct usage {
        const char *tenant;
        const sk_site_quota *quota;
        int64_t cpu, mem, n;
};

struct unplaced {
        struct svc *svc;
        int64_t replica;   /* -1: one-per-host */
        struct host *host; /* one-per-host: the host it should run on */
        char *reason;
};

struct run {
        const sk_desired_doc *desired; /* or NULL */
        const sk_sched_state *state;
        struct svc *svcs;
        size_t n_svcs, cap_svcs;
        struct host *hosts; /* sorted by name */
        size_t n_hosts;
        struct placed *placed;
        size_t n_placed, cap_placed;
        struct usage *usage;
        size_t n_usage, cap_usage;
        struct unplaced *unplaced;
        size_t n_unplaced, cap_unplaced;
        bool *kept; /* per current placement */
};

static void run_clear(struct run *r)
{
        for (size_t i = 0; i < r->n_svcs; i++) {
                free(r->svcs[i].key);
                free(r->svcs[i].hash);
        }
        for (size_t i = 0; i < r->n_hosts; i++)
                json_decref(r->hosts[i].labels);
        for (size_t i = 0; i < r->n_unplaced; i++)
                free(r->unplaced[i].reason);
        free(r->svcs);
        free(r->hosts);
        free(r->placed);
        free(r->usage);
        free(r->unplaced);
        free(r->kept);
}

static int64_t quantity(const sk_quantity *q)
{
        return q->spelling == SK_SPELLING_NONE ? 0 : q->value;
}

/* One service as the scheduler counts it; the model has checked its fields. */
static int add_service(struct run *run, const sk_desired_deployment *dep, const sk_service *svc,
                       size_t di, size_t si, sk_error **err)
{
        if (grow(&run->svcs, &run->cap_svcs, run->n_svcs, sizeof(*run->svcs)) < 0)
                return oom(err);
        struct svc *s = &run->svcs[run->n_svcs];
        *s = (struct svc){
            .order = run->n_svcs,
            .tenant = dep->tenant,
            .deployment = dep->name,
            .name = svc->name,
            .per_host = svc->mode != SK_UNSET,
            .replicas = svc->mode != SK_UNSET || svc->replicas == SK_UNSET ? 1 : svc->replicas};
        run->n_svcs++; /* counted now so run_clear frees what is set below */
        if (asprintf(&s->key, "%s/%s/%s", s->tenant, s->deployment, s->name) < 0) {
                s->key = NULL;
                return oom(err);
        }
        for (size_t i = 0; i + 1 < run->n_svcs; i++)
                if (!strcmp(run->svcs[i].key, s->key)) {
                        _cleanup_free_ char *p =
                            fmt_path("deployments[%zu].spec.services[%zu]", di, si);
                        return sk_error_set_path(err, EINVAL, p ? p : "deployments",
                                                 "%s: %s is listed twice", p ? p : "deployments",
                                                 s->key);
                }
        if (!(s->hash = sk_sched_spec_hash(svc)))
                return oom(err);
        for (size_t i = 0; i < svc->volumes.n; i++)
                s->pinned |= svc->volumes.items[i].persistent != NULL;
        if (svc->resources) {
                s->cpu = quantity(&svc->resources->cpu);
                s->mem = quantity(&svc->resources->memory);
        }
        if (svc->placement) {
                s->expr = svc->placement->match_host_labels.expr;
                s->expr_text = svc->placement->match_host_labels.text;
                s->devices = svc->placement->devices.items;
                s->n_devices = svc->placement->devices.n;
        }
        return 0;
}

static int add_services(struct run *run, sk_error **err)
{
        for (size_t di = 0; run->desired && di < run->desired->deployments.n; di++) {
                const sk_desired_deployment *dep = &run->desired->deployments.items[di];
                for (size_t si = 0; si < dep->spec.services.n; si++) {
                        int r = add_service(run, dep, &dep->spec.services.items[si], di, si, err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int cmp_host(const void *a, const void *b)
{
        return strcmp(((const struct host *)a)->h->name, ((const struct host *)b)->h->name);
}

static int prepare_hosts(struct run *run, sk_error **err)
{
        const sk_sched_state *st = run->state;
        if (st->n_hosts && !(run->hosts = calloc(st->n_hosts, sizeof(*run->hosts))))
                return oom(err);
        for (size_t i = 0; i < st->n_hosts; i++) {
                const sk_host *h = &st->hosts[i];
                if (!h->name || !*h->name) {
                        _cleanup_free_ char *p = fmt_path("hosts[%zu].name", i);
                        return bad(err, p ? p : "hosts", "must be a non-empty string");
                }
                struct host *x = &run->hosts[run->n_hosts++];
                x->h = h;
                x->labels = h->labels ? json_copy(h->labels) : json_object();
                if (!x->labels)
                        return oom(err);
                if (!json_object_get(x->labels, "system/name") &&
                    json_object_set_new(x->labels, "system/name", json_string(h->name)) < 0)
                        return oom(err);
        }
        if (run->n_hosts > 1)
                qsort(run->hosts, run->n_hosts, sizeof(*run->hosts), cmp_host);
        for (size_t i = 1; i < run->n_hosts; i++)
                if (!strcmp(run->hosts[i].h->name, run->hosts[i - 1].h->name))
                        return sk_error_set_path(err, EINVAL, "hosts",
                                                 "hosts: \"%s\" is listed twice",
                                                 run->hosts[i].h->name);
        return 0;
}

static struct host *find_host(struct run *run, const char *name)
{
        for (size_t i = 0; i < run->n_hosts; i++)
                if (!strcmp(run->hosts[i].h->name, name))
                        return &run->hosts[i];
        return NULL;
}

static struct usage *tenant_usage(struct run *run, const char *tenant)
{
        for (size_t i = 0; i < run->n_usage; i++)
                if (!strcmp(run->usage[i].tenant, tenant))
                        return &run->usage[i];
        if (grow(&run->usage, &run->cap_usage, run->n_usage, sizeof(*run->usage)) < 0)
                return NULL;
        struct usage *u = &run->usage[run->n_usage++];
        *u = (struct usage){.tenant = tenant};
        u->quota = run->desired ? sk_desired_doc_quota(run->desired, tenant) : NULL;
        return u;
}

/* "tenant/deployment/service/replica" -> the service and the replica number. */
static struct svc *parse_instance(struct run *run, const char *id, int64_t *replica)
{
        const char *slash = strrchr(id, '/');
        if (!slash || !slash[1])
                return NULL;
        char *end = NULL;
        errno = 0;
        long long n = strtoll(slash + 1, &end, 10);
        if (errno || *end || !isdigit((unsigned char)slash[1]) || (slash[1] == '0' && slash[2]))
                return NULL;
        size_t klen = (size_t)(slash - id);
        for (size_t i = 0; i < run->n_svcs; i++)
                if (strlen(run->svcs[i].key) == klen && !strncmp(run->svcs[i].key, id, klen)) {
                        *replica = n;
                        return &run->svcs[i];
                }
        return NULL;
}

static bool is_placed(struct run *run, const struct svc *s, int64_t replica)
{
        for (size_t i = 0; i < run->n_placed; i++)
                if (run->placed[i].svc == s && run->placed[i].replica == replica)
                        return true;
        return false;
}

static size_t count_on_host(struct run *run, const struct svc *s, const struct host *h)
{
        size_t n = 0;
        for (size_t i = 0; i < run->n_placed; i++)
                n += run->placed[i].svc == s && run->placed[i].host == h;
        return n;
}

static int place(struct run *run, struct svc *s, int64_t replica, struct host *h)
{
        struct usage *u = tenant_usage(run, s->tenant);
        if (!u || grow(&run->placed, &run->cap_placed, run->n_placed, sizeof(*run->placed)) < 0)
                return -ENOMEM;
        run->placed[run->n_placed++] = (struct placed){.svc = s, .replica = replica, .host = h};
        h->cpu_used = sat_add(h->cpu_used, s->cpu);
        h->mem_used = sat_add(h->mem_used, s->mem);
        u->cpu = sat_add(u->cpu, s->cpu);
        u->mem = sat_add(u->mem, s->mem);
        u->n++;
        return 0;
}

/* Why a host cannot take one more instance of s: NULL when it can. The phrase comes in a
 * singular and a plural form, so hosts with the same reason read as one group. */
enum verdict { FITS, LOST, LABELS, DEVICES, RESOURCES };

struct why {
        enum verdict v;
        char one[256];  /* "lacks device/camera" */
        char many[256]; /* "lack device/camera" */
};

static void judge(const struct svc *s, const struct host *h, bool check_resources, struct why *w)
{
        *w = (struct why){.v = FITS};
        if (!h->h->alive) {
                *w = (struct why){.v = LOST, .one = "is lost", .many = "are lost"};
                return;
        }
        if (s->expr && !sk_expr_match(s->expr, h->labels)) {
                w->v = LABELS;
                snprintf(w->one, sizeof(w->one), "does not match \"%s\"", s->expr_text);
                snprintf(w->many, sizeof(w->many), "do not match \"%s\"", s->expr_text);
                return;
        }
        char missing[200] = "";
        for (size_t i = 0; i < s->n_devices; i++) {
                char key[128];
                snprintf(key, sizeof(key), "device/%s", s->devices[i]);
                const char *v = str_field(h->labels, key);
                if (v && *v && strcmp(v, "0"))
                        continue;
                size_t len = strlen(missing);
                snprintf(missing + len, sizeof(missing) - len, "%s%s", len ? ", " : "", key);
        }
        if (*missing) {
                w->v = DEVICES;
                snprintf(w->one, sizeof(w->one), "lacks %s", missing);
                snprintf(w->many, sizeof(w->many), "lack %s", missing);
                return;
        }
        if (!check_resources)
                return;
        int64_t cpu_free = h->h->capacity.cpu_millicores - h->cpu_used;
        int64_t mem_free = h->h->capacity.memory_bytes - h->mem_used;
        bool cpu_short = s->cpu > cpu_free, mem_short = s->mem > mem_free;
        if (!cpu_short && !mem_short)
                return;
        char cf[32], cn[32], mf[32], mn[32];
        fmt_cpu(cf, sizeof(cf), cpu_free);
        fmt_cpu(cn, sizeof(cn), s->cpu);
        fmt_mem(mf, sizeof(mf), mem_free);
        fmt_mem(mn, sizeof(mn), s->mem);
        w->v = RESOURCES;
        if (cpu_short && mem_short) {
                snprintf(w->one, sizeof(w->one), "has %s cpu and %s memory free, needs %s and %s",
                         cf, mf, cn, mn);
                snprintf(w->many, sizeof(w->many), "have %s cpu and %s memory free, need %s and %s",
                         cf, mf, cn, mn);
        } else if (cpu_short) {
                snprintf(w->one, sizeof(w->one), "has %s cpu free, needs %s", cf, cn);
                snprintf(w->many, sizeof(w->many), "have %s cpu free, need %s", cf, cn);
        } else {
                snprintf(w->one, sizeof(w->one), "has %s memory free, needs %s", mf, mn);
                snprintf(w->many, sizeof(w->many), "have %s memory free, need %s", mf, mn);
        }
}

/* "quota of tenant X exceeded: ..." or NULL when one more instance of s fits the quota. */
static char *quota_reason(struct run *run, const struct svc *s, int *r)
{
        struct usage *u = tenant_usage(run, s->tenant);
        *r = u ? 0 : -ENOMEM;
        if (!u || !u->quota)
                return NULL;
        const sk_site_quota *q = u->quota;
        char *msg = NULL;
        if (asprintf(&msg, "quota of tenant %s exceeded:", s->tenant) < 0) {
                *r = -ENOMEM;
                return NULL;
        }
        const char *sep = " ";
        bool over = false;
        if (q->instances >= 0 && u->n + 1 > q->instances) {
                msg = append(msg, "%sinstances %" PRId64 " of %" PRId64 " used", sep, u->n,
                             q->instances);
                sep = ", ";
                over = true;
        }
        if (q->cpu_millicores >= 0 && sat_add(u->cpu, s->cpu) > q->cpu_millicores) {
                char used[32], lim[32], need[32];
                fmt_cpu(used, sizeof(used), u->cpu);
                fmt_cpu(lim, sizeof(lim), q->cpu_millicores);
                fmt_cpu(need, sizeof(need), s->cpu);
                msg = append(msg, "%scpu %s of %s used, needs %s", sep, used, lim, need);
                sep = ", ";
                over = true;
        }
        if (q->memory_bytes >= 0 && sat_add(u->mem, s->mem) > q->memory_bytes) {
                char used[32], lim[32], need[32];
                fmt_mem(used, sizeof(used), u->mem);
                fmt_mem(lim, sizeof(lim), q->memory_bytes);
                fmt_mem(need, sizeof(need), s->mem);
                msg = append(msg, "%smemory %s of %s used, needs %s", sep, used, lim, need);
                over = true;
        }
        if (!msg)
                *r = -ENOMEM;
        if (!over) {
                free(msg);
                return NULL;
        }
        return msg;
}

struct group {
        const char *one, *many;
        char *hosts;
        size_t n;
};

/* "no host fits: h1, h2 lack device/camera; h3 has 200m cpu free, needs 500m". */
static char *no_host_reason(struct run *run, const struct svc *s, const struct why *whys)
{
        if (run->n_hosts == 0)
                return strdup("no host fits: the site has no hosts");
        struct group *g = calloc(run->n_hosts, sizeof(*g));
        if (!g)
                return NULL;
        size_t ng = 0;
        bool ok = true;
        for (size_t i = 0; ok && i < run->n_hosts; i++) {
                size_t k = 0;
                while (k < ng && strcmp(g[k].many, whys[i].many))
                        k++;
                if (k == ng)
                        g[ng++] = (struct group){.one = whys[i].one, .many = whys[i].many};
                g[k].hosts = g[k].hosts ? append(g[k].hosts, ", %s", run->hosts[i].h->name)
                                        : strdup(run->hosts[i].h->name);
                g[k].n++;
                ok = g[k].hosts != NULL;
        }
        char *msg = ok ? strdup("no host fits: ") : NULL;
        for (size_t k = 0; k < ng; k++) {
                msg = append(msg, "%s%s %s", k ? "; " : "", g[k].hosts,
                             g[k].n > 1 ? g[k].many : g[k].one);
                free(g[k].hosts);
        }
        free(g);
        return msg;
}

static int add_unplaced(struct run *run, struct svc *s, int64_t replica, struct host *h,
                        char *reason)
{
        if (!reason ||
            grow(&run->unplaced, &run->cap_unplaced, run->n_unplaced, sizeof(*run->unplaced)) < 0) {
                free(reason);
                return -ENOMEM;
        }
        run->unplaced[run->n_unplaced++] =
            (struct unplaced){.svc = s, .replica = replica, .host = h, .reason = reason};
        return 0;
}

/* Is host h better than best for one more instance of s? */
static bool better(struct run *run, const struct svc *s, struct host *h, struct host *best)
{
        if (!best)
                return true;
        size_t nh = count_on_host(run, s, h), nb = count_on_host(run, s, best);
        if (nh != nb)
                return nh < nb;
        int64_t fh = h->h->capacity.memory_bytes - h->mem_used,
                fb = best->h->capacity.memory_bytes - best->mem_used;
        if (fh != fb)
                return fh > fb;
        return strcmp(h->h->name, best->h->name) < 0;
}

static int place_replica(struct run *run, struct svc *s, int64_t replica)
{
        int r;
        char *quota = quota_reason(run, s, &r);
        if (r < 0)
                return r;
        if (quota)
                return add_unplaced(run, s, replica, NULL, quota);
        struct why *whys = calloc(run->n_hosts ? run->n_hosts : 1, sizeof(*whys));
        if (!whys)
                return -ENOMEM;
        struct host *best = NULL;
        for (size_t i = 0; i < run->n_hosts; i++) {
                judge(s, &run->hosts[i], true, &whys[i]);
                if (whys[i].v == FITS && better(run, s, &run->hosts[i], best))
                        best = &run->hosts[i];
        }
        r = best ? place(run, s, replica, best)
                 : add_unplaced(run, s, replica, NULL, no_host_reason(run, s, whys));
        free(whys);
        return r;
}

/* The lowest replica number of s not in use, preferring the one it had on h before. */
static int64_t free_replica(struct run *run, const struct svc *s, const struct host *h)
{
        for (size_t i = 0; i < run->state->n_placements; i++) {
                const sk_placement *p = &run->state->placements[i];
                int64_t n;
                if (p->instance && p->host && !strcmp(p->host, h->h->name) &&
                    parse_instance(run, p->instance, &n) == s && !is_placed(run, s, n))
                        return n;
        }
        int64_t n = 0;
        while (is_placed(run, s, n))
                n++;
        return n;
}

static int place_per_host(struct run *run, struct svc *s)
{
        struct why *whys = calloc(run->n_hosts ? run->n_hosts : 1, sizeof(*whys));
        if (!whys)
                return -ENOMEM;
        size_t eligible = 0;
        int r = 0;
        for (size_t i = 0; r == 0 && i < run->n_hosts; i++) {
                struct host *h = &run->hosts[i];
                judge(s, h, false, &whys[i]);
                if (whys[i].v != FITS)
                        continue;
                eligible++;
                if (count_on_host(run, s, h) > 0)
                        continue;
                int64_t replica = free_replica(run, s, h);
                char *quota = quota_reason(run, s, &r);
                if (r < 0)
                        break;
                if (quota) {
                        r = add_unplaced(run, s, -1, h, quota);
                        continue;
                }
                judge(s, h, true, &whys[i]);
                if (whys[i].v == FITS) {
                        r = place(run, s, replica, h);
                        continue;
                }
                char *msg = NULL;
                if (asprintf(&msg, "%s %s", h->h->name, whys[i].one) < 0)
                        msg = NULL;
                r = add_unplaced(run, s, -1, h, msg);
        }
        if (r == 0 && eligible == 0)
                r = add_unplaced(run, s, -1, NULL, no_host_reason(run, s, whys));
        free(whys);
        return r;
}

/* Whether `host` reports instance `id` running. */
static bool runs_on(const struct run *run, const char *id, const char *host)
{
        for (size_t i = 0; i < run->state->n_running; i++) {
                const sk_placement *p = &run->state->running[i];
                if (p->instance && p->host && !strcmp(p->instance, id) && !strcmp(p->host, host))
                        return true;
        }
        return false;
}

/* Where a current placement stays, and whether it is still moving (*from): a move is done
 * once its new host runs it; a move whose new host was lost goes back to the old host,
 * which still runs it. NULL: it does not stay. */
static struct host *staying_host(struct run *run, const sk_placement *p, struct host **from)
{
        struct host *h = p->host ? find_host(run, p->host) : NULL;
        struct host *old = p->from ? find_host(run, p->from) : NULL;
        *from = NULL;
        if (old && (!old->h->alive || old == h))
                old = NULL;
        if (!h || !h->h->alive)
                return old;
        if (old && !runs_on(run, p->instance, h->h->name))
                *from = old;
        return h;
}

/* Counts what a moving instance still uses on its old host, which runs it meanwhile. */
static int place_moving(struct run *run, struct svc *s, int64_t replica, struct host *h,
                        struct host *from)
{
        if (place(run, s, replica, h) < 0)
                return -ENOMEM;
        if (from) {
                run->placed[run->n_placed - 1].from = from;
                from->cpu_used = sat_add(from->cpu_used, s->cpu);
                from->mem_used = sat_add(from->mem_used, s->mem);
        }
        return 0;
}

/* Phase 1: an instance whose host is alive and whose spec is unchanged stays. */
static int keep_current(struct run *run)
{
        const sk_sched_state *st = run->state;
        for (size_t i = 0; i < st->n_placements; i++) {
                const sk_placement *p = &st->placements[i];
                int64_t replica;
                struct svc *s = p->instance ? parse_instance(run, p->instance, &replica) : NULL;
                struct host *from, *h = s ? staying_host(run, p, &from) : NULL;
                if (!h || !p->spec_hash || strcmp(p->spec_hash, s->hash))
                        continue;
                if (s->per_host && p->host && strcmp(h->h->name, p->host))
                        continue; /* never moved: each host has its own */
                if (!s->per_host && replica >= s->replicas)
                        continue; /* scaled down */
                if (is_placed(run, s, replica) || (s->per_host && count_on_host(run, s, h)))
                        continue; /* a duplicate in the map: the first entry wins */
                if (place_moving(run, s, replica, h, s->per_host ? NULL : from) < 0)
                        return -ENOMEM;
                run->kept[i] = true;
        }
        return 0;
}

/* Phase 2: an instance whose spec changed stays on its host when that host still takes it
 * (its persistent volumes live there); its old requests are already released. */
static int keep_changed(struct run *run)
{
        const sk_sched_state *st = run->state;
        for (size_t i = 0; i < st->n_placements; i++) {
                const sk_placement *p = &st->placements[i];
                int64_t replica;
                struct svc *s = p->instance ? parse_instance(run, p->instance, &replica) : NULL;
                struct host *h = p->host ? find_host(run, p->host) : NULL;
                if (run->kept[i] || !s || s->per_host || !h || replica >= s->replicas ||
                    is_placed(run, s, replica))
                        continue;
                struct why w;
                int r;
                judge(s, h, true, &w);
                if (w.v != FITS)
                        continue;
                char *quota = quota_reason(run, s, &r);
                if (r < 0)
                        return r;
                if (quota) {
                        free(quota);
                        continue;
                }
                if (place(run, s, replica, h) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Phase 4, spread: when the eligible host with the most instances of s has more than one
 * more than the host with room that place_replica would pick, its highest replica moves
 * there, make-before-break. One move per service at a time; each narrows the gap, so a
 * replica never moves back. */
static void spread(struct run *run, struct svc *s)
{
        if (s->per_host || s->pinned)
                return;
        for (size_t i = 0; i < run->n_placed; i++)
                if (run->placed[i].svc == s && run->placed[i].from)
                        return;
        struct host *src = NULL, *dst = NULL;
        size_t most = 0;
        for (size_t i = 0; i < run->n_hosts; i++) {
                struct host *h = &run->hosts[i];
                struct why w;
                judge(s, h, false, &w);
                if (w.v != FITS)
                        continue;
                size_t n = count_on_host(run, s, h);
                if (n > most)
                        src = h, most = n;
                judge(s, h, true, &w);
                if (w.v == FITS && better(run, s, h, dst))
                        dst = h;
        }
        if (!src || !dst || most < count_on_host(run, s, dst) + 2)
                return;
        struct placed *mv = NULL;
        for (size_t i = 0; i < run->n_placed; i++) {
                struct placed *p = &run->placed[i];
                if (p->svc == s && p->host == src && (!mv || p->replica > mv->replica))
                        mv = p;
        }
        mv->host = dst;
        mv->from = src; /* src keeps its requests counted: it runs there until dst does */
        dst->cpu_used = sat_add(dst->cpu_used, s->cpu);
        dst->mem_used = sat_add(dst->mem_used, s->mem);
}

static int cmp_placed(const void *a, const void *b)
{
        const struct placed *x = a, *y = b;
        int c = strcmp(x->svc->key, y->svc->key);
        if (c)
                return c;
        return (x->replica > y->replica) - (x->replica < y->replica);
}

static int cmp_unplaced(const void *a, const void *b)
{
        const struct unplaced *x = a, *y = b;
        if (x->svc->order != y->svc->order)
                return x->svc->order < y->svc->order ? -1 : 1;
        if (x->replica != y->replica)
                return x->replica < y->replica ? -1 : 1;
        if (x->host && y->host)
                return strcmp(x->host->h->name, y->host->h->name);
        return (x->host != NULL) - (y->host != NULL);
}

static int make_result(struct run *run, sk_sched_result *out)
{
        if (run->n_placed > 1)
                qsort(run->placed, run->n_placed, sizeof(*run->placed), cmp_placed);
        if (run->n_unplaced > 1)
                qsort(run->unplaced, run->n_unplaced, sizeof(*run->unplaced), cmp_unplaced);
        _cleanup_sched_result_ sk_sched_result res = {0};
        if (run->n_placed && !(res.placements = calloc(run->n_placed, sizeof(*res.placements))))
                return -ENOMEM;
        for (size_t i = 0; i < run->n_placed; i++) {
                const struct placed *p = &run->placed[i];
                sk_placement *o = &res.placements[res.n_placements++];
                if (asprintf(&o->instance, "%s/%" PRId64, p->svc->key, p->replica) < 0) {
                        o->instance = NULL;
                        return -ENOMEM;
                }
                if (!(o->host = strdup(p->host->h->name)) ||
                    !(o->spec_hash = strdup(p->svc->hash)) ||
                    (p->from && !(o->from = strdup(p->from->h->name))))
                        return -ENOMEM;
        }
        if (run->n_unplaced && !(res.unplaced = calloc(run->n_unplaced, sizeof(*res.unplaced))))
                return -ENOMEM;
        for (size_t i = 0; i < run->n_unplaced; i++) {
                struct unplaced *u = &run->unplaced[i];
                sk_unplaced *o = &res.unplaced[res.n_unplaced++];
                o->replica = u->replica;
                o->reason = take_ptr(&u->reason);
                int n = u->replica >= 0
                            ? asprintf(&o->instance, "%s/%" PRId64, u->svc->key, u->replica)
                            : asprintf(&o->instance, "%s", u->svc->key);
                if (n < 0) {
                        o->instance = NULL;
                        return -ENOMEM;
                }
                if (!(o->tenant = strdup(u->svc->tenant)) ||
                    !(o->deployment = strdup(u->svc->deployment)) ||
                    !(o->service = strdup(u->svc->name)) ||
                    (u->host && !(o->host = strdup(u->host->h->name))))
                        return -ENOMEM;
        }
        *out = res;
        res = (sk_sched_result){0};
        return 0;
}

static int schedule(struct run *run, sk_sched_result *out, sk_error **err)
{
        int r = add_services(run, err);
        if (r == 0)
                r = prepare_hosts(run, err);
        if (r < 0)
                return r;
        if (run->state->n_placements &&
            !(run->kept = calloc(run->state->n_placements, sizeof(*run->kept))))
                return oom(err);
        if (keep_current(run) < 0 || keep_changed(run) < 0)
                return oom(err);
        /* one-per-host services first: they are meant for every host, like daemons */
        for (size_t i = 0; i < run->n_svcs; i++)
                if (run->svcs[i].per_host && place_per_host(run, &run->svcs[i]) < 0)
                        return oom(err);
        for (size_t i = 0; i < run->n_svcs; i++) {
                struct svc *s = &run->svcs[i];
                for (int64_t n = 0; !s->per_host && n < s->replicas; n++)
                        if (!is_placed(run, s, n) && place_replica(run, s, n) < 0)
                                return oom(err);
        }
        for (size_t i = 0; i < run->n_svcs; i++)
                spread(run, &run->svcs[i]);
        return make_result(run, out) < 0 ? oom(err) : 0;
}

int sk_sched_run(const sk_desired_doc *desired, const sk_sched_state *state, sk_sched_result *out,
                 sk_error **err)
{
        *out = (sk_sched_result){0};
        struct run run = {.desired = desired, .state = state};
        int r = schedule(&run, out, err);
        run_clear(&run);
        return r;
}
