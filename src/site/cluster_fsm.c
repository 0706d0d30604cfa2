#include "site/cluster_fsm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/desired.h"
#include "model/host.h"
#include "model/instance.h"
#include "model/site_state.h"
#include "model/spec.h"
#include "site/scheduler.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15))

static json_t *empty_state(void)
{
        return json_pack("{s:n, s:{}, s:[], s:[], s:[]}", "desired", "hosts", "placements",
                         "unplaced", "removed");
}

int sk_fsm_init(sk_fsm *f)
{
        f->desired = NULL;
        f->state = empty_state();
        return f->state ? 0 : -ENOMEM;
}

void sk_fsm_clear(sk_fsm *f)
{
        json_decref(f->state);
        f->state = NULL;
        sk_desired_doc_free(f->desired);
        f->desired = NULL;
}

char *sk_fsm_encode(const json_t *cmd, size_t *len)
{
        _cleanup_free_ char *text = json_dumps(cmd, DUMP_FLAGS);
        if (!text)
                return NULL;
        size_t n = strlen(text), padded = (n + 1 + 7) / 8 * 8;
        char *buf = calloc(1, padded);
        if (!buf)
                return NULL;
        memcpy(buf, text, n);
        *len = padded;
        return buf;
}

/* The JSON before the padding. */
static json_t *decode(const void *buf, size_t len, sk_error **err)
{
        json_error_t je;
        json_t *j = json_loadb(buf, strnlen(buf, len), 0, &je);
        if (!json_is_object(j)) {
                json_decref(j);
                sk_error_set_pos(err, EINVAL, je.line, je.column, "cluster entry: %s",
                                 j ? "not an object" : je.text);
                return NULL;
        }
        return j;
}

/* h: the entry's host as JSON, which the state keeps; the model has read it (id set). */
static int apply_host(sk_fsm *f, int64_t id, const json_t *h)
{
        /* a report that raced the removal does not bring the host back */
        if (sk_fsm_is_removed(f, id))
                return 0;
        char key[24];
        snprintf(key, sizeof(key), "%" PRId64, id);
        json_t *hosts = json_object_get(f->state, "hosts");
        if (json_equal(json_object_get(hosts, key), h))
                return 0;
        if (json_object_set_new(hosts, key, json_deep_copy(h)) < 0)
                return -ENOMEM;
        return SK_FSM_HOSTS;
}

/* The model has read the entry's placements and unplaced instances; the state keeps their
 * JSON. */
static int apply_sched(sk_fsm *f, const json_t *cmd)
{
        const json_t *pl = json_object_get(cmd, "placements"),
                     *un = json_object_get(cmd, "unplaced");
        if (json_equal(json_object_get(f->state, "placements"), pl) &&
            json_equal(json_object_get(f->state, "unplaced"), un))
                return 0;
        if (json_object_set_new(f->state, "placements", json_deep_copy(pl)) < 0 ||
            json_object_set_new(f->state, "unplaced", json_deep_copy(un)) < 0)
                return -ENOMEM;
        return SK_FSM_PLACEMENTS;
}

bool sk_fsm_is_removed(const sk_fsm *f, int64_t host_id)
{
        size_t i;
        const json_t *id;
        json_array_foreach(json_object_get(f->state, "removed"), i, id)
        {
                if (json_integer_value(id) == host_id)
                        return true;
        }
        return false;
}

/* The tower's removed-hosts: each id joins the deny list (kept sorted, never shrinks) and
 * leaves the inventory. Every host applies this alike, so every host refuses them. */
static int apply_removed(sk_fsm *f, const sk_desired_doc *doc)
{
        json_t *removed = json_object_get(f->state, "removed");
        int changed = 0;
        for (size_t i = 0; i < doc->removed_hosts.n; i++) {
                int64_t h = doc->removed_hosts.items[i];
                if (sk_fsm_is_removed(f, h))
                        continue;
                size_t at = 0;
                while (at < json_array_size(removed) &&
                       json_integer_value(json_array_get(removed, at)) < h)
                        at++;
                if (json_array_insert_new(removed, at, json_integer(h)) < 0)
                        return -ENOMEM;
                char key[24];
                snprintf(key, sizeof(key), "%" PRId64, h);
                json_object_del(json_object_get(f->state, "hosts"), key);
                changed = SK_FSM_HOSTS;
        }
        return changed;
}

/* The document of a snapshot, read by the model (the errors name the field under `path`);
 * it must carry its generation. */
static int read_desired(const json_t *doc, const char *path, sk_desired_doc **out, sk_error **err)
{
        *out = NULL;
        sk_desired_doc *d = NULL;
        int r = sk_model_new(&sk_desired_doc_table, doc, path, NULL, (void **)&d, err);
        if (r < 0)
                return r;
        if (d->generation == SK_UNSET) {
                sk_desired_doc_free(d);
                return sk_error_set_path(err, EINVAL, path,
                                         "must be a desired document with a generation");
        }
        *out = d;
        return 0;
}

/* doc: the entry's document as JSON (what the state keeps), *d the model's reading of it
 * (taken when it changes the state). */
static int apply_desired(sk_fsm *f, const json_t *doc, sk_desired_doc **d)
{
        if (json_equal(json_object_get(f->state, "desired"), doc))
                return 0;
        int r = apply_removed(f, *d);
        if (r < 0 || json_object_set_new(f->state, "desired", json_deep_copy(doc)) < 0)
                return -ENOMEM;
        sk_desired_doc_free(f->desired);
        f->desired = take_ptr(d);
        return SK_FSM_DESIRED | r;
}

/* ---- site-local joins ---- */

/* The object under key in the state, created when missing (states from before it). */
static json_t *state_object(sk_fsm *f, const char *key)
{
        json_t *o = json_object_get(f->state, key);
        if (!json_is_object(o)) {
                o = json_object();
                if (json_object_set_new(f->state, key, o) < 0)
                        return NULL;
        }
        return o;
}

/* Tokens whose time ran out at `now` (the entry's own clock, so every host drops alike). */
static void prune_tokens(json_t *tokens, int64_t now)
{
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(tokens, tmp, k, v)
        {
                if (json_integer_value(json_object_get(v, "expires")) <= now)
                        json_object_del(tokens, k);
        }
}

int64_t sk_fsm_local_host_id(int64_t site_id, int64_t n)
{
        if (site_id <= 0 || site_id >= SK_FSM_LOCAL_SITE_MAX || n <= 0 || n >= (1LL << 24))
                return 0;
        return SK_FSM_LOCAL_ID_BASE + site_id * (1LL << 24) + n;
}

static int apply_join_token(sk_fsm *f, const sk_site_command *c)
{
        json_t *tokens = state_object(f, "join-tokens");
        if (!tokens)
                return -ENOMEM;
        prune_tokens(tokens, c->now);
        if (json_object_set_new(tokens, c->hash,
                                json_pack("{s:I}", "expires", (json_int_t)c->expires)) < 0)
                return -ENOMEM;
        return SK_FSM_JOINS;
}

/* Uses a token: it goes, the site's count of local joins grows, and the new host's id is
 * recorded under the token's hash for the leader that proposed it to read. An unknown or
 * expired token changes nothing (the leader sees no result and refuses). */
static int apply_join_use(sk_fsm *f, const sk_site_command *c, sk_error **err)
{
        json_t *tokens = state_object(f, "join-tokens");
        json_t *joins = state_object(f, "local-joins");
        if (!tokens || !joins)
                return -ENOMEM;
        prune_tokens(tokens, c->now);
        if (!json_object_get(tokens, c->hash))
                return 0;
        int64_t n = json_integer_value(json_object_get(f->state, "local-count")) + 1;
        int64_t id = sk_fsm_local_host_id(c->site_id, n);
        if (id == 0)
                return sk_error_set_path(err, EINVAL, "hash", "the site's local host ids ran out");
        json_object_del(tokens, c->hash);
        if (json_object_set_new(f->state, "local-count", json_integer(n)) < 0 ||
            json_object_set_new(joins, c->hash, json_integer(id)) < 0)
                return -ENOMEM;
        return SK_FSM_JOINS;
}

bool sk_fsm_join_token_valid(const sk_fsm *f, const char *hash, int64_t now)
{
        const json_t *t =
            json_object_get(json_object_get(f->state, "join-tokens"), hash ? hash : "");
        return t && json_integer_value(json_object_get(t, "expires")) > now;
}

int64_t sk_fsm_join_result(const sk_fsm *f, const char *hash)
{
        return json_integer_value(
            json_object_get(json_object_get(f->state, "local-joins"), hash ? hash : ""));
}

static bool is_hex64(const char *s)
{
        if (!s || strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

/* A newer site CA generation (docs/security.md): replaces the one held; an older or equal
 * one changes nothing, so entries replayed or raced leave the newest. */
static int apply_site_ca(sk_fsm *f, const sk_site_command *c)
{
        if (c->generation <= sk_fsm_site_ca_generation(f))
                return 0;
        json_t *ca = json_pack("{s:I, s:s, s:s, s:s}", "generation", (json_int_t)c->generation,
                               "certificate", c->certificate, "key", c->key, "sha256", c->sha256);
        if (!ca || json_object_set_new(f->state, "site-ca", ca) < 0)
                return -ENOMEM;
        return SK_FSM_SITE_CA;
}

int64_t sk_fsm_site_ca_generation(const sk_fsm *f)
{
        return json_integer_value(
            json_object_get(json_object_get(f->state, "site-ca"), "generation"));
}

const json_t *sk_fsm_site_ca(const sk_fsm *f)
{
        return json_object_get(f->state, "site-ca");
}

const char *sk_fsm_site_ca_pin(const sk_fsm *f)
{
        const sk_site_ca_announce *ann = f->desired ? f->desired->site_ca : NULL;
        if (ann)
                return ann->sha256;
        const char *sha;
        sha = json_string_value(json_object_get(json_object_get(f->state, "site-ca"), "sha256"));
        return is_hex64(sha) ? sha : NULL;
}

bool sk_fsm_site_ca_allows_leaf(const sk_fsm *f, const char *leaf_fp)
{
        const sk_site_ca_announce *ann = f->desired ? f->desired->site_ca : NULL;
        for (size_t i = 0; ann && leaf_fp && i < ann->leaves.n; i++)
                if (strcmp(ann->leaves.items[i], leaf_fp) == 0)
                        return true;
        return false;
}

int64_t sk_fsm_site_ca_announced(const sk_fsm *f)
{
        const sk_site_ca_announce *ann = f->desired ? f->desired->site_ca : NULL;
        return ann ? ann->generation : 0;
}

int sk_fsm_apply(sk_fsm *f, const void *buf, size_t len, sk_error **err)
{
        _cleanup_json_ json_t *cmd = decode(buf, len, err);
        if (!cmd)
                return -EINVAL;
        /* the model checks every field of every op: a malformed entry changes nothing */
        _cleanup_site_command_ sk_site_command *c = NULL;
        int r = sk_site_command_from_json(cmd, &c, err);
        if (r < 0)
                return r;
        switch (c->op) {
        case SK_SITE_OP_DESIRED:
                return apply_desired(f, json_object_get(cmd, "doc"), &c->doc);
        case SK_SITE_OP_HOST:
                return apply_host(f, c->host->id, json_object_get(cmd, "host"));
        case SK_SITE_OP_HOST_REMOVE: {
                char key[24];
                snprintf(key, sizeof(key), "%" PRId64, c->id);
                return json_object_del(json_object_get(f->state, "hosts"), key) == 0 ? SK_FSM_HOSTS
                                                                                     : 0;
        }
        case SK_SITE_OP_SCHED:
                return apply_sched(f, cmd);
        case SK_SITE_OP_JOIN_TOKEN:
                return apply_join_token(f, c);
        case SK_SITE_OP_JOIN_USE:
                return apply_join_use(f, c, err);
        case SK_SITE_OP_SITE_CA:
                return apply_site_ca(f, c);
        }
        return sk_error_set_path(err, EINVAL, "op", "unknown operation");
}

char *sk_fsm_snapshot(const sk_fsm *f, size_t *len)
{
        return sk_fsm_encode(f->state, len);
}

int sk_fsm_restore(sk_fsm *f, const void *buf, size_t len, sk_error **err)
{
        _cleanup_json_ json_t *st = decode(buf, len, err);
        if (!st)
                return -EINVAL;
        if (!json_is_object(json_object_get(st, "hosts")) ||
            !json_is_array(json_object_get(st, "placements")) ||
            !json_is_array(json_object_get(st, "unplaced")))
                return sk_error_set(err, EINVAL,
                                    "cluster snapshot: needs hosts, placements and "
                                    "unplaced");
        if (!json_object_get(st, "desired"))
                json_object_set_new(st, "desired", json_null());
        const json_t *removed = json_object_get(st, "removed");
        if (removed && !json_is_array(removed))
                return sk_error_set_path(err, EINVAL, "removed",
                                         "cluster snapshot: must be a list");
        if (!removed) /* a snapshot from before removals existed */
                json_object_set_new(st, "removed", json_array());
        static const char *const objects[] = {"join-tokens", "local-joins", "site-ca"};
        for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
                const json_t *o = json_object_get(st, objects[i]);
                if (o && !json_is_object(o))
                        return sk_error_set_path(err, EINVAL, objects[i],
                                                 "cluster snapshot: must be an object");
        }
        const json_t *count = json_object_get(st, "local-count");
        if (count && !json_is_integer(count))
                return sk_error_set_path(err, EINVAL, "local-count",
                                         "cluster snapshot: must be an integer");
        sk_desired_doc *d = NULL;
        const json_t *doc = json_object_get(st, "desired");
        int r = json_is_null(doc) ? 0 : read_desired(doc, "desired", &d, err);
        if (r < 0)
                return r;
        json_decref(f->state);
        f->state = take_ptr(&st);
        sk_desired_doc_free(f->desired);
        f->desired = d;
        return 0;
}

const sk_desired_doc *sk_fsm_desired(const sk_fsm *f)
{
        return f->desired;
}

const json_t *sk_fsm_hosts(const sk_fsm *f)
{
        return json_object_get(f->state, "hosts");
}

const json_t *sk_fsm_host(const sk_fsm *f, int64_t id)
{
        char key[24];
        snprintf(key, sizeof(key), "%" PRId64, id);
        return json_object_get(sk_fsm_hosts(f), key);
}

int64_t sk_fsm_generation(const sk_fsm *f)
{
        return f->desired ? f->desired->generation : 0;
}

int64_t sk_fsm_lost_after_ms(const sk_fsm *f)
{
        const sk_duration *d = f->desired ? &f->desired->site.host_lost_after : NULL;
        return d && d->text && d->ms > 0 ? d->ms : SK_FSM_LOST_AFTER_DEFAULT_MS;
}

/* The scheduler's typed input, read from the JSON state (and freed) here. */
struct sched_input {
        SK_LIST(sk_host) hosts;
        SK_LIST(sk_placement) placements;
        SK_LIST(sk_placement) running;
};

static void sched_input_clear(struct sched_input *in)
{
        for (size_t i = 0; i < in->hosts.n; i++)
                sk_model_free(&sk_host_table, &in->hosts.items[i]);
        for (size_t i = 0; i < in->placements.n; i++)
                sk_model_free(&sk_placement_table, &in->placements.items[i]);
        for (size_t i = 0; i < in->running.n; i++)
                sk_model_free(&sk_placement_table, &in->running.items[i]);
        free(in->hosts.items);
        free(in->placements.items);
        free(in->running.items);
}

/* n items of size bytes, zeroed (one at least, so that 0 items is no failure). */
static void *items(size_t n, size_t size)
{
        return calloc(n ? n : 1, size);
}

/* The instances the hosts' latest heartbeats report running, as the scheduler reads them:
 * instance and host. */
static int running_of(const json_t *reports, struct sched_input *in)
{
        size_t n = 0;
        const char *k;
        const json_t *rep;
        json_object_foreach((json_t *)reports, k, rep) n +=
            json_array_size(json_object_get(json_object_get(rep, "report"), "instances"));
        if (!(in->running.items = items(n, sizeof(sk_placement))))
                return -ENOMEM;
        json_object_foreach((json_t *)reports, k, rep)
        {
                const json_t *r = json_object_get(rep, "report");
                const char *host = json_string_value(json_object_get(r, "host"));
                size_t i;
                const json_t *inst;
                json_array_foreach(json_object_get(r, "instances"), i, inst)
                {
                        const char *id = json_string_value(json_object_get(inst, "instance"));
                        const char *state = json_string_value(json_object_get(inst, "state"));
                        if (!host || !id || !state || strcmp(state, "running"))
                                continue;
                        sk_placement *p = &in->running.items[in->running.n++];
                        if (!(p->instance = strdup(id)) || !(p->host = strdup(host)))
                                return -ENOMEM;
                }
        }
        return 0;
}

static int sched_input_read(const sk_fsm *f, const json_t *reports, struct sched_input *in,
                            sk_error **err)
{
        int r;
        const json_t *hosts = json_object_get(f->state, "hosts");
        const json_t *pl = json_object_get(f->state, "placements");
        if (!(in->hosts.items = items(json_object_size(hosts), sizeof(sk_host))) ||
            !(in->placements.items = items(json_array_size(pl), sizeof(sk_placement))))
                return sk_error_set(err, ENOMEM, "out of memory");
        const char *k;
        const json_t *h;
        json_object_foreach((json_t *)hosts, k, h)
        {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "hosts.%s", k) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                r = sk_model_parse(&sk_host_table, h, path, NULL, &in->hosts.items[in->hosts.n],
                                   err);
                if (r < 0)
                        return r;
                in->hosts.n++;
        }
        size_t i;
        const json_t *p;
        json_array_foreach(pl, i, p)
        {
                char path[48];
                snprintf(path, sizeof(path), "placements[%zu]", i);
                r = sk_model_parse(&sk_placement_table, p, path, NULL,
                                   &in->placements.items[in->placements.n], err);
                if (r < 0)
                        return r;
                in->placements.n++;
        }
        return running_of(reports, in) < 0 ? sk_error_set(err, ENOMEM, "out of memory") : 0;
}

static json_t *result_json(const sk_sched_result *res)
{
        _cleanup_json_ json_t *pl = json_array(), *un = json_array();
        for (size_t i = 0; pl && i < res->n_placements; i++)
                if (json_array_append_new(pl, sk_placement_to_json(&res->placements[i])) < 0)
                        return NULL;
        for (size_t i = 0; un && i < res->n_unplaced; i++)
                if (json_array_append_new(un, sk_unplaced_to_json(&res->unplaced[i])) < 0)
                        return NULL;
        return pl && un ? json_pack("{s:O, s:O}", "placements", pl, "unplaced", un) : NULL;
}

int sk_fsm_schedule(const sk_fsm *f, const json_t *reports, json_t **cmd, sk_error **err)
{
        *cmd = NULL;
        if (!sk_fsm_desired(f))
                return 0;
        struct sched_input in = {0};
        int r = sched_input_read(f, reports, &in, err);
        _cleanup_sched_result_ sk_sched_result res = {0};
        if (r == 0) {
                sk_sched_state st = {.hosts = in.hosts.items,
                                     .n_hosts = in.hosts.n,
                                     .placements = in.placements.items,
                                     .n_placements = in.placements.n,
                                     .running = in.running.items,
                                     .n_running = in.running.n};
                r = sk_sched_run(f->desired, &st, &res, err);
        }
        sched_input_clear(&in);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *out = result_json(&res);
        if (!out)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (json_equal(json_object_get(out, "placements"),
                       json_object_get(f->state, "placements")) &&
            json_equal(json_object_get(out, "unplaced"), json_object_get(f->state, "unplaced")))
                return 0;
        json_object_set_new(out, "op", json_string("sched"));
        *cmd = take_ptr(&out);
        return 0;
}

/* The deployment and service an instance id "t/d/s/r" names. */
static int find_service(const sk_desired_doc *desired, const char *id,
                        const sk_desired_deployment **dep_out, const sk_service **svc_out,
                        int64_t *replica)
{
        sk_instance_id x;
        if (!desired || sk_instance_id_parse(id, &x) < 0)
                return -EINVAL;
        const sk_desired_deployment *dep =
            sk_desired_doc_deployment(desired, x.tenant, x.deployment);
        const sk_service *svc = dep ? sk_app_service(&dep->spec, x.service) : NULL;
        *replica = x.replica;
        sk_instance_id_clear(&x);
        if (!svc || *replica == SK_UNSET)
                return -ENOENT;
        *dep_out = dep;
        *svc_out = svc;
        return 0;
}

/* {label: [host paths]} for the device labels the service's containers ask for. */
static json_t *device_paths(const sk_service *svc, const json_t *discovery)
{
        json_t *out = json_object();
        for (size_t i = 0; out && i < svc->containers.n; i++) {
                const sk_app_container *c = &svc->containers.items[i];
                for (size_t k = 0; k < c->devices.n; k++) {
                        const char *l = c->devices.items[k];
                        if (json_object_get(out, l))
                                continue;
                        json_t *paths = json_array();
                        size_t m;
                        json_t *node;
                        json_array_foreach(json_object_get(discovery, l), m, node)
                            json_array_append(paths, node);
                        json_object_set_new(out, l, paths);
                }
        }
        return out;
}

int sk_fsm_local_placed(const sk_fsm *f, const char *name, const json_t *discovery, json_t **placed,
                        sk_error **err)
{
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return sk_error_set(err, ENOMEM, "out of memory");
        size_t i;
        const json_t *p;
        json_array_foreach(json_object_get(f->state, "placements"), i, p)
        {
                const char *host = json_string_value(json_object_get(p, "host"));
                const char *from = json_string_value(json_object_get(p, "from"));
                const char *id = json_string_value(json_object_get(p, "instance"));
                const sk_desired_deployment *dep = NULL;
                const sk_service *svc = NULL;
                int64_t replica = 0;
                /* a moving instance runs on its old host too until the new one runs it */
                bool here = (host && !strcmp(host, name)) || (from && !strcmp(from, name));
                if (!here || !id || find_service(f->desired, id, &dep, &svc, &replica) < 0)
                        continue;
                /* the service's JSON as the tower sent it (the model writes it back alike) */
                json_t *inst = json_pack(
                    "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "instance", id, "tenant",
                    dep->tenant, "deployment", dep->name, "application", dep->application,
                    "version", dep->version, "service", svc->name, "replica", (json_int_t)replica,
                    "spec", sk_service_to_json(svc), "devices", device_paths(svc, discovery));
                if (!inst || json_array_append_new(out, inst) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
        }
        *placed = take_ptr(&out);
        return 0;
}

json_t *sk_fsm_unplaced_status(const sk_fsm *f, const char *site, const char *host)
{
        json_t *out = json_array();
        size_t i;
        const json_t *u;
        json_array_foreach(json_object_get(f->state, "unplaced"), i, u)
        {
                json_t *st = json_deep_copy(u);
                if (!st)
                        continue;
                const char *tenant = json_string_value(json_object_get(u, "tenant"));
                const char *name = json_string_value(json_object_get(u, "deployment"));
                const sk_desired_deployment *dep =
                    f->desired && tenant && name
                        ? sk_desired_doc_deployment(f->desired, tenant, name)
                        : NULL;
                if (dep) {
                        json_object_set_new(st, "application", json_string(dep->application));
                        json_object_set_new(st, "version", json_string(dep->version));
                }
                /* The host the scheduler named (one-per-host) says where it should run. */
                if (!json_object_get(st, "host"))
                        json_object_set_new(st, "host", json_string(host));
                json_object_set_new(st, "site", json_string(site));
                json_object_set_new(st, "state", json_string("unplaceable"));
                json_object_set_new(st, "restarts", json_integer(0));
                json_object_set_new(st, "containers", json_array());
                json_array_append_new(out, st);
        }
        return out;
}
