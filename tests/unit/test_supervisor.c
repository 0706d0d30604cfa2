/* The supervisor's decisions (reconcile.h) and one reconcile pass (supervisor.h) against a
 * fake runtime that keeps containers in memory. The fake serves only this test; the real
 * Docker Engine API driver is tested against Podman by its own tests. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "host/desired.h"
#include "host/reconcile.h"
#include "host/runtime.h"
#include "host/supervisor.h"
#include "site/cluster_fsm.h"
#include "testutil.h"

/* ---- the fake runtime ---- */

typedef struct fake_ctr {
        char *id, *name, *image;
        char **env;
        json_t *labels;
        int64_t cpu, mem;
        sk_container_state state;
        int exit_code;
        bool present;
} fake_ctr;

typedef struct fake_rt {
        sk_runtime base;
        fake_ctr c[64];
        size_t n;
        int next_id;
        const char *missing_image; /* pull fails for this one */
        int creates, starts, stops, removes, pulls;
} fake_rt;

static fake_ctr *fake_find(fake_rt *f, const char *id)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->c[i].present && strcmp(f->c[i].id, id) == 0)
                        return &f->c[i];
        return NULL;
}

static fake_ctr *fake_by_name(fake_rt *f, const char *name)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->c[i].present && strcmp(f->c[i].name, name) == 0)
                        return &f->c[i];
        return NULL;
}

static int fake_create_unlocked(sk_runtime *rt, const sk_container_spec *spec, char **id,
                                sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        if (fake_by_name(f, spec->name))
                return sk_error_set(err, EEXIST, "name %s is in use", spec->name);
        assert_true(f->n < SK_ARRAY_SIZE(f->c));
        fake_ctr *c = &f->c[f->n++];
        memset(c, 0, sizeof(*c));
        if (asprintf(&c->id, "id%04d", ++f->next_id) < 0)
                return -ENOMEM;
        c->name = strdup(spec->name);
        c->image = strdup(spec->image);
        size_t ne = 0;
        while (spec->env && spec->env[ne])
                ne++;
        c->env = calloc(ne + 1, sizeof(char *));
        for (size_t i = 0; i < ne; i++)
                c->env[i] = strdup(spec->env[i]);
        c->labels = json_deep_copy(spec->labels);
        c->cpu = spec->cpu_millicores;
        c->mem = spec->memory_bytes;
        c->state = SK_CONTAINER_CREATED;
        c->present = true;
        f->creates++;
        *id = strdup(c->id);
        return 0;
}

static int fake_start_unlocked(sk_runtime *rt, const char *id, sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        fake_ctr *c = fake_find(f, id);
        if (!c)
                return sk_error_set(err, ENOENT, "no container %s", id);
        c->state = SK_CONTAINER_RUNNING;
        c->exit_code = 0;
        f->starts++;
        return 0;
}

static int fake_stop_unlocked(sk_runtime *rt, const char *id, int grace, sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        fake_ctr *c = fake_find(f, id);
        if (!c)
                return sk_error_set(err, ENOENT, "no container %s", id);
        assert_int_equal(grace, 10);
        c->state = SK_CONTAINER_EXITED;
        c->exit_code = 137;
        f->stops++;
        return 0;
}

static void fake_ctr_free(fake_ctr *c)
{
        free(c->id);
        free(c->name);
        free(c->image);
        for (char **p = c->env; p && *p; p++)
                free(*p);
        free(c->env);
        json_decref(c->labels);
        memset(c, 0, sizeof(*c));
}

static int fake_remove_unlocked(sk_runtime *rt, const char *id, bool force, sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        fake_ctr *c = fake_find(f, id);
        if (!c)
                return sk_error_set(err, ENOENT, "no container %s", id);
        fake_ctr_free(c);
        f->removes++;
        return 0;
}

static bool labels_match(const json_t *labels, const json_t *filter)
{
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)filter, k, v)
        {
                const char *have = json_string_value(json_object_get(labels, k));
                if (!have || strcmp(have, json_string_value(v)) != 0)
                        return false;
        }
        return true;
}

static void info_fill(const fake_ctr *c, sk_container_info *o, bool full)
{
        o->id = strdup(c->id);
        o->name = strdup(c->name);
        o->image = strdup(c->image);
        o->state = c->state;
        /* Like Docker's list call, exit codes come only with inspect. */
        o->exit_code = full ? c->exit_code : -1;
        o->labels = json_deep_copy(c->labels);
}

static int fake_list_unlocked(sk_runtime *rt, const json_t *filter, sk_container_list *out,
                              sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        out->items = calloc(f->n + 1, sizeof(*out->items));
        out->n = 0;
        for (size_t i = 0; i < f->n; i++)
                if (f->c[i].present && labels_match(f->c[i].labels, filter))
                        info_fill(&f->c[i], &out->items[out->n++], false);
        return 0;
}

static int fake_inspect_unlocked(sk_runtime *rt, const char *id, sk_container_info *out,
                                 sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        fake_ctr *c = fake_find(f, id);
        if (!c)
                return sk_error_set(err, ENOENT, "no container %s", id);
        info_fill(c, out, true);
        return 0;
}

static int fake_pull_unlocked(sk_runtime *rt, const char *image, sk_error **err)
{
        fake_rt *f = (fake_rt *)rt;
        f->pulls++;
        if (f->missing_image && strcmp(image, f->missing_image) == 0)
                return sk_error_set(err, ENOENT, "image %s not found", image);
        return 0;
}

/* The supervisor removes containers from several threads at once. */
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static int fake_create(sk_runtime *rt, const sk_container_spec *spec, char **id, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_create_unlocked(rt, spec, id, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_start(sk_runtime *rt, const char *id, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_start_unlocked(rt, id, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_stop(sk_runtime *rt, const char *id, int grace, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_stop_unlocked(rt, id, grace, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_remove(sk_runtime *rt, const char *id, bool force, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_remove_unlocked(rt, id, force, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_list(sk_runtime *rt, const json_t *filter, sk_container_list *out, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_list_unlocked(rt, filter, out, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_inspect(sk_runtime *rt, const char *id, sk_container_info *out, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_inspect_unlocked(rt, id, out, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}
static int fake_pull(sk_runtime *rt, const char *image, sk_error **err)
{
        pthread_mutex_lock(&fake_lock);
        int r = fake_pull_unlocked(rt, image, err);
        pthread_mutex_unlock(&fake_lock);
        return r;
}

static void fake_free(sk_runtime *rt)
{
        fake_rt *f = (fake_rt *)rt;
        for (size_t i = 0; i < f->n; i++)
                if (f->c[i].present)
                        fake_ctr_free(&f->c[i]);
}

static const sk_runtime_ops fake_ops = {
    .abi = SK_RUNTIME_ABI,
    .create = fake_create,
    .start = fake_start,
    .stop = fake_stop,
    .remove = fake_remove,
    .list = fake_list,
    .inspect = fake_inspect,
    .pull = fake_pull,
    .free = fake_free,
};

static size_t fake_count(fake_rt *f)
{
        size_t n = 0;
        for (size_t i = 0; i < f->n; i++)
                n += f->c[i].present;
        return n;
}

/* ---- desired documents ---- */

/* A document with one deployment of these services (none when the list is empty); a service
 * whose containers are [] gets one, as the model wants. */
static json_t *doc_with(const char *services_json)
{
        json_error_t je;
        json_t *services = json_loads(services_json, 0, &je);
        assert_non_null(services);
        sk_test_fill_containers(services);
        if (json_array_size(services) == 0) {
                json_decref(services);
                return json_pack("{s:I, s:{s:s, s:s}, s:[]}", "generation", (json_int_t)1, "site",
                                 "name", "store-001", "tenant", "default", "deployments");
        }
        json_t *doc = json_pack("{s:I, s:{s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:o}}]}",
                                "generation", (json_int_t)1, "site", "name", "store-001", "tenant",
                                "default", "deployments", "tenant", "default", "name", "pos-stores",
                                "application", "pos", "version", "2.1.0", "spec", "name", "pos",
                                "version", "2.1.0", "services", services);
        assert_non_null(doc);
        return doc;
}

static const char *const TWO_REPLICAS =
    "[{\"name\": \"api\", \"replicas\": 2, \"resources\": {\"cpu\": 0.5, \"memory\": "
    "\"256Mi\"}, "
    "\"containers\": [{\"name\": \"api\", \"image\": \"localhost/busybox:latest\", "
    "\"cmd\": [\"sleep\", \"1000\"], \"env\": {\"LOG_LEVEL\": \"info\", \"X\": "
    "\"a$$b\"}, \"restart\": \"always\"}]}]";

static int fsm_apply(sk_fsm *f, json_t *cmd, sk_error **err)
{
        size_t len = 0;
        _cleanup_free_ char *buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        assert_non_null(buf);
        return sk_fsm_apply(f, buf, len, err);
}

/* What the site gives host h1 for a document, the way the agent gets it: the document and
 * h1 (alone on the site) in the replicated state, the leader's schedule applied, h1's share
 * of the placements. */
static int site_places(const json_t *doc, json_t **placed, sk_error **err)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        json_t *h1 =
            json_pack("{s:i, s:s, s:s, s:{s:s}, s:{}, s:{s:i, s:I}, s:b}", "id", 1, "name", "h1",
                      "address", "127.0.0.1:7443", "labels", "system/name", "h1", "devices",
                      "capacity", "cpu", 4000, "memory", (json_int_t)(8LL << 30), "alive", true);
        assert_int_equal(fsm_apply(&f, json_pack("{s:s, s:o}", "op", "host", "host", h1), NULL),
                         SK_FSM_HOSTS);
        int r = fsm_apply(&f, json_pack("{s:s, s:O}", "op", "desired", "doc", doc), err);
        json_t *sched = NULL;
        if (r >= 0)
                r = sk_fsm_schedule(&f, NULL, &sched, err);
        if (r >= 0 && sched)
                assert_int_equal(fsm_apply(&f, sched, NULL), SK_FSM_PLACEMENTS);
        if (r >= 0)
                r = sk_fsm_local_placed(&f, "h1", NULL, placed, err);
        sk_fsm_clear(&f);
        return r;
}

static json_t *placed_of(const json_t *doc)
{
        json_t *placed = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = site_places(doc, &placed, &err);
        if (r < 0)
                fail_msg("placing: %s", sk_error_msg(err, r));
        return placed;
}

static void build_set(const json_t *doc, sk_desired_set *set)
{
        _cleanup_json_ json_t *placed = placed_of(doc);
        assert_int_equal(sk_desired_build(placed, "store-001", "h1", set, NULL), 0);
}

/* The supervisor gets h1's share of what the site placed for doc. */
static void set_doc(sk_supervisor *s, const json_t *doc)
{
        _cleanup_json_ json_t *placed = placed_of(doc);
        sk_supervisor_set_placed(s, placed);
}

/* ---- pure pieces ---- */

static void test_site_places_replicas_and_one_per_host(void **state)
{
        _cleanup_json_ json_t *doc =
            doc_with("[{\"name\": \"api\", \"replicas\": 3, \"containers\": []},"
                     " {\"name\": \"agent\", \"mode\": \"one-per-host\", \"containers\": []},"
                     " {\"name\": \"off\", \"replicas\": 0, \"containers\": []}]");
        _cleanup_json_ json_t *placed = placed_of(doc);
        assert_int_equal(json_array_size(placed), 4);
        const char *want[] = {"default/pos-stores/agent/0", "default/pos-stores/api/0",
                              "default/pos-stores/api/1", "default/pos-stores/api/2"};
        for (size_t i = 0; i < 4; i++) {
                json_t *p = json_array_get(placed, i);
                assert_string_equal(json_string_value(json_object_get(p, "instance")), want[i]);
                assert_string_equal(json_string_value(json_object_get(p, "version")), "2.1.0");
                assert_string_equal(json_string_value(json_object_get(p, "application")), "pos");
        }

        _cleanup_json_ json_t *bad = doc_with("[{\"name\": \"api\", \"replicas\": -1}]");
        _cleanup_json_ json_t *out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(site_places(bad, &out, &err), -EINVAL);
        assert_non_null(err);
        assert_string_equal(err->path, "doc.deployments[0].spec.services[0].replicas");
}

static void test_desired_container_shape(void **state)
{
        _cleanup_json_ json_t *doc = doc_with(TWO_REPLICAS);
        sk_desired_set set;
        build_set(doc, &set);
        assert_int_equal(set.n, 2);
        const sk_desired_container *c = &set.items[1].containers[0];
        assert_null(set.items[1].fail_reason);
        assert_string_equal(c->name, "sk-h1-default-pos-stores-api-1-api");
        assert_string_equal(c->env[0], "LOG_LEVEL=info");
        assert_string_equal(c->env[1], "X=a$b");
        assert_null(c->env[2]);
        assert_string_equal(c->cmd[0], "sleep");
        assert_int_equal(c->cpu_millicores, 500);
        assert_int_equal(c->memory_bytes, 256 * 1024 * 1024);
        const char *keys[] = {"skerry.site",       "skerry.host",        "skerry.tenant",
                              "skerry.deployment", "skerry.application", "skerry.version",
                              "skerry.service",    "skerry.replica",     "skerry.instance",
                              "skerry.container",  "skerry.spec-hash"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(keys); i++)
                assert_non_null(json_string_value(json_object_get(c->labels, keys[i])));
        assert_string_equal(json_string_value(json_object_get(c->labels, "skerry.replica")), "1");
        assert_string_equal(json_string_value(json_object_get(c->labels, "skerry.instance")),
                            "default/pos-stores/api/1");
        assert_int_equal(strlen(c->spec_hash), 64);
        /* pinned: the hash labels running containers, so a new agent computing another one
         * for the same service would restart every container after an upgrade */
        print_message("container spec hash %s\n", c->spec_hash);
        assert_string_equal(c->spec_hash,
                            "0648f913fb9087a7c658755c5135d1d82745aba028f7ede4f2d7488898de22b6");
        /* The same spec hashes the same; any change shaping the container does not. */
        sk_desired_set again;
        build_set(doc, &again);
        assert_string_equal(again.items[1].containers[0].spec_hash, c->spec_hash);
        sk_desired_set_clear(&again);
        json_t *svc = json_array_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(doc, "deployments"), 0), "spec"),
                "services"),
            0);
        json_object_set_new(json_array_get(json_object_get(svc, "containers"), 0), "image",
                            json_string("localhost/busybox:2"));
        build_set(doc, &again);
        assert_string_not_equal(again.items[1].containers[0].spec_hash, c->spec_hash);
        sk_desired_set_clear(&again);
        sk_desired_set_clear(&set);
}

static void test_desired_unsupported_fail_with_reason(void **state)
{
        _cleanup_json_ json_t *doc =
            doc_with("[{\"name\": \"a\", \"variables\": [{\"name\": \"P\", \"from-secret\": "
                     "{\"vault\": \"v\", \"secret\": \"s\", \"key\": \"k\"}}], \"containers\": "
                     "[{\"name\": \"c\", \"image\": \"i\", \"env\": {\"P\": \"${P}\"}}]},"
                     " {\"name\": \"ok\", \"containers\": [{\"name\": \"c\", \"image\": \"i\"}]}]");
        sk_desired_set set;
        build_set(doc, &set);
        assert_int_equal(set.n, 2);
        assert_string_equal(set.items[0].fail_reason, "secrets are not supported yet");
        assert_null(set.items[1].fail_reason);
        sk_desired_set_clear(&set);

        /* an unknown variable never reaches a host: the site refuses the document (the
         * model's rule, checked once), naming the field */
        _cleanup_json_ json_t *bad =
            doc_with("[{\"name\": \"b\", \"containers\": [{\"name\": \"c\", \"image\": \"i\","
                     " \"env\": {\"Q\": \"${NOPE}\"}}]}]");
        _cleanup_json_ json_t *out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(site_places(bad, &out, &err), -EINVAL);
        assert_string_equal(err->path, "doc.deployments[0].spec.services[0].containers[0].env.Q");
}

/* A device node found under --dev-dir is passed from there to its /dev path inside. */
static void test_desired_devices(void **state)
{
        _cleanup_json_ json_t *placed =
            json_pack("[{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:{s:s, s:[{s:s, s:s, s:[s]}]}, "
                      "s:{s:[{s:s, s:s}, {s:s, s:s}]}}]",
                      "instance", "default/d/cam/0", "tenant", "default", "deployment", "d",
                      "application", "a", "version", "1", "service", "cam", "replica",
                      (json_int_t)0, "spec", "name", "cam", "containers", "name", "c", "image", "i",
                      "devices", "camera", "devices", "camera", "path", "/dev/video0", "host-path",
                      "/srv/devs/video0", "path", "/dev/video1", "host-path", "/srv/devs/video1");
        assert_non_null(placed);
        sk_desired_set set;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_desired_build(placed, "s", "h1", &set, &err), 0);
        assert_int_equal(set.n, 1);
        assert_null(set.items[0].fail_reason);
        const sk_desired_container *c = &set.items[0].containers[0];
        assert_string_equal(c->devices[0], "/srv/devs/video0");
        assert_string_equal(c->device_targets[0], "/dev/video0");
        assert_string_equal(c->devices[1], "/srv/devs/video1");
        assert_string_equal(c->device_targets[1], "/dev/video1");
        assert_null(c->devices[2]);
        sk_desired_set_clear(&set);

        /* Asking for a label this host has no node of fails the instance, with the reason. */
        json_object_set_new(json_array_get(placed, 0), "devices", json_object());
        assert_int_equal(sk_desired_build(placed, "s", "h1", &set, &err), 0);
        assert_non_null(strstr(set.items[0].fail_reason, "this host has no camera device"));
        sk_desired_set_clear(&set);
}

static sk_container_info seen_from(const sk_desired_container *w, const char *id,
                                   sk_container_state st, int exit_code)
{
        sk_container_info c = {0};
        c.id = strdup(id);
        c.name = strdup(w->name);
        c.image = strdup(w->image);
        c.state = st;
        c.exit_code = exit_code;
        c.labels = json_deep_copy(w->labels);
        return c;
}

static void test_plan_create_adopt_remove(void **state)
{
        _cleanup_json_ json_t *doc = doc_with(TWO_REPLICAS);
        sk_desired_set set;
        build_set(doc, &set);
        sk_tracker tr = {0};
        sk_container_list seen = {calloc(4, sizeof(sk_container_info)), 0};
        /* replica 0 runs with the current spec: adopted. */
        seen.items[seen.n++] = seen_from(&set.items[0].containers[0], "a", SK_CONTAINER_RUNNING, 0);
        /* replica 1 runs with an outdated spec: removed and created anew. */
        seen.items[seen.n] = seen_from(&set.items[1].containers[0], "b", SK_CONTAINER_RUNNING, 0);
        json_object_set_new(seen.items[seen.n++].labels, "skerry.spec-hash", json_string("old"));
        /* an instance nobody wants any more: removed. */
        seen.items[seen.n] = seen_from(&set.items[0].containers[0], "c", SK_CONTAINER_RUNNING, 0);
        json_object_set_new(seen.items[seen.n++].labels, "skerry.instance",
                            json_string("default/gone/api/0"));

        sk_plan plan;
        assert_int_equal(sk_reconcile_plan(&set, &seen, "store-001", "h1", &tr, 1000, &plan, NULL),
                         0);
        assert_int_equal(plan.n, 3);
        assert_int_equal(plan.actions[0].kind, SK_ACTION_REMOVE);
        assert_string_equal(plan.actions[0].id, "b");
        assert_int_equal(plan.actions[1].kind, SK_ACTION_REMOVE);
        assert_string_equal(plan.actions[1].id, "c");
        assert_int_equal(plan.actions[2].kind, SK_ACTION_CREATE);
        assert_ptr_equal(plan.actions[2].want, &set.items[1].containers[0]);
        json_t *s0 = json_array_get(plan.status, 0), *s1 = json_array_get(plan.status, 1);
        assert_string_equal(json_string_value(json_object_get(s0, "state")), "running");
        assert_string_equal(json_string_value(json_object_get(s1, "state")), "pending");
        assert_string_equal(json_string_value(json_object_get(s0, "host")), "h1");
        assert_string_equal(json_string_value(json_object_get(s0, "site")), "store-001");
        json_t *c0 = json_array_get(json_object_get(s0, "containers"), 0);
        assert_string_equal(json_string_value(json_object_get(c0, "id")), "a");
        assert_string_equal(json_string_value(json_object_get(c0, "name")), "api");
        sk_plan_clear(&plan);
        sk_container_list_clear(&seen);
        sk_tracker_clear(&tr);
        sk_desired_set_clear(&set);
}

/* Plans with one observed container of the given state for a service whose restart
 * policy is policy. Returns the instance state and leaves the plan's actions count. */
static const char *plan_one(const char *policy, sk_container_state st, int exit_code,
                            sk_tracker *tr, int64_t now, size_t *n_actions, sk_action_kind *first)
{
        char services[256];
        snprintf(services, sizeof(services),
                 "[{\"name\": \"api\", \"containers\": [{\"name\": \"api\", \"image\": \"i\","
                 " \"restart\": \"%s\"}]}]",
                 policy);
        _cleanup_json_ json_t *doc = doc_with(services);
        sk_desired_set set;
        build_set(doc, &set);
        sk_container_list seen = {calloc(1, sizeof(sk_container_info)), 1};
        seen.items[0] = seen_from(&set.items[0].containers[0], "x", st, exit_code);
        sk_plan plan;
        assert_int_equal(sk_reconcile_plan(&set, &seen, "store-001", "h1", tr, now, &plan, NULL),
                         0);
        static char state_buf[16];
        snprintf(state_buf, sizeof(state_buf), "%s",
                 json_string_value(json_object_get(json_array_get(plan.status, 0), "state")));
        *n_actions = plan.n;
        if (plan.n)
                *first = plan.actions[0].kind;
        sk_plan_clear(&plan);
        sk_container_list_clear(&seen);
        sk_desired_set_clear(&set);
        return state_buf;
}

static void test_plan_restart_policies(void **state)
{
        size_t n;
        sk_action_kind k;
        sk_tracker tr = {0};
        assert_string_equal(plan_one("never", SK_CONTAINER_EXITED, 1, &tr, 1000, &n, &k), "exited");
        assert_int_equal(n, 0);
        sk_tracker_clear(&tr);
        assert_string_equal(plan_one("on-failure", SK_CONTAINER_EXITED, 0, &tr, 1000, &n, &k),
                            "exited");
        assert_int_equal(n, 0);
        sk_tracker_clear(&tr);
        assert_string_equal(plan_one("on-failure", SK_CONTAINER_EXITED, 2, &tr, 1000, &n, &k),
                            "backoff");
        assert_int_equal(n, 0);
        sk_tracker_clear(&tr);
        assert_string_equal(plan_one("always", SK_CONTAINER_EXITED, 0, &tr, 1000, &n, &k),
                            "backoff");
        sk_tracker_clear(&tr);
        /* created but never started (an agent stopped in between): start it */
        assert_string_equal(plan_one("never", SK_CONTAINER_CREATED, 0, &tr, 1000, &n, &k),
                            "starting");
        assert_int_equal(n, 1);
        assert_int_equal(k, SK_ACTION_START);
        sk_tracker_clear(&tr);
}

static void test_plan_backoff_doubles_caps_and_resets(void **state)
{
        const char *name = "sk-h1-default-pos-stores-api-0-api";
        sk_tracker tr = {0};
        size_t n;
        sk_action_kind k;
        int64_t now = 10000;
        int64_t expected[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
        for (size_t i = 0; i < SK_ARRAY_SIZE(expected); i++) {
                /* It crashed: wait the delay, not a millisecond less. */
                assert_string_equal(plan_one("always", SK_CONTAINER_EXITED, 1, &tr, now, &n, &k),
                                    "backoff");
                assert_int_equal(n, 0);
                sk_track *t = sk_tracker_get(&tr, name);
                assert_int_equal(t->delay_ms, expected[i]);
                assert_int_equal(t->backoff_until_ms, now + expected[i]);
                assert_string_equal(
                    plan_one("always", SK_CONTAINER_EXITED, 1, &tr, now + expected[i] - 1, &n, &k),
                    "backoff");
                assert_int_equal(n, 0);
                now += expected[i];
                assert_string_equal(plan_one("always", SK_CONTAINER_EXITED, 1, &tr, now, &n, &k),
                                    "starting");
                /* a restart is a fresh container: remove the exited one, create anew */
                assert_int_equal(n, 2);
                assert_int_equal(k, SK_ACTION_REMOVE);
                sk_tracker_note_started(&tr, name, true);
                /* it runs briefly, then crashes again */
                assert_string_equal(plan_one("always", SK_CONTAINER_RUNNING, 0, &tr, now, &n, &k),
                                    "running");
                now += 500;
        }
        assert_int_equal(sk_tracker_get(&tr, name)->restarts, SK_ARRAY_SIZE(expected));
        /* After a run of 60 s the delay starts over at 1 s. */
        now += 60000;
        assert_string_equal(plan_one("always", SK_CONTAINER_EXITED, 1, &tr, now, &n, &k),
                            "backoff");
        assert_int_equal(sk_tracker_get(&tr, name)->delay_ms, 1000);
        sk_tracker_clear(&tr);
}

static void test_plan_creates_breadth_first(void **state)
{
        _cleanup_json_ json_t *doc = doc_with(
            "[{\"name\": \"web\", \"replicas\": 2, \"containers\": [{\"name\": \"h\","
            " \"image\": \"i\"}]},"
            " {\"name\": \"worker\", \"containers\": [{\"name\": \"w\", \"image\": \"i\"}]}]");
        sk_desired_set set;
        build_set(doc, &set);
        sk_tracker tr = {0};
        sk_container_list seen = {NULL, 0};
        sk_plan plan;
        assert_int_equal(sk_reconcile_plan(&set, &seen, "store-001", "h1", &tr, 0, &plan, NULL), 0);
        assert_int_equal(plan.n, 3);
        assert_string_equal(plan.actions[0].want->instance, "default/pos-stores/web/0");
        assert_string_equal(plan.actions[1].want->instance, "default/pos-stores/worker/0");
        assert_string_equal(plan.actions[2].want->instance, "default/pos-stores/web/1");
        sk_plan_clear(&plan);
        sk_tracker_clear(&tr);
        sk_desired_set_clear(&set);
}

/* ---- the supervisor against the fake runtime ---- */

static int status_calls;
static void count_status(void *user)
{
        status_calls++;
}

static sk_supervisor *new_sup(fake_rt *f)
{
        memset(f, 0, sizeof(*f));
        f->base.ops = &fake_ops;
        sk_supervisor_config cfg = {
            .runtime = &f->base, .site = "store-001", .host = "h1", .on_status = count_status};
        sk_supervisor *s = NULL;
        assert_int_equal(sk_supervisor_new(&cfg, &s, NULL), 0);
        return s;
}

static const char *inst_state(sk_supervisor *s, size_t i)
{
        _cleanup_json_ json_t *st = sk_supervisor_status(s);
        static char buf[16];
        snprintf(buf, sizeof(buf), "%s",
                 json_string_value(json_object_get(json_array_get(st, i), "state")));
        return buf;
}

static void pass(sk_supervisor *s, int64_t now)
{
        int64_t next;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_supervisor_pass(s, now, &next, &err);
        if (r < 0)
                fail_msg("pass: %s", sk_error_msg(err, r));
}

static void test_supervisor_no_desired_touches_nothing(void **state)
{
        fake_rt f;
        sk_supervisor *s = new_sup(&f);
        sk_container_spec spec = {.name = "sk-h1-x", .image = "i"};
        _cleanup_json_ json_t *labels = json_pack("{s:s}", "skerry.host", "h1");
        spec.labels = labels;
        _cleanup_free_ char *id = NULL;
        assert_int_equal(fake_create(&f.base, &spec, &id, NULL), 0);
        pass(s, 1000);
        assert_int_equal(fake_count(&f), 1);
        assert_int_equal(f.removes, 0);
        /* With a desired document that lacks it, it goes. */
        _cleanup_json_ json_t *doc = doc_with("[]");
        set_doc(s, doc);
        pass(s, 2000);
        assert_int_equal(fake_count(&f), 0);
        assert_int_equal(f.stops, 1);
        sk_supervisor_free(s);
        fake_free(&f.base);
}

static void test_supervisor_creates_adopts_and_replaces(void **state)
{
        fake_rt f;
        sk_supervisor *s = new_sup(&f);
        _cleanup_json_ json_t *doc = doc_with(TWO_REPLICAS);
        set_doc(s, doc);
        status_calls = 0;
        pass(s, 1000);
        assert_int_equal(fake_count(&f), 2);
        assert_int_equal(f.pulls, 2);
        fake_ctr *c = fake_by_name(&f, "sk-h1-default-pos-stores-api-0-api");
        assert_non_null(c);
        assert_int_equal(c->state, SK_CONTAINER_RUNNING);
        assert_string_equal(c->env[0], "LOG_LEVEL=info");
        assert_int_equal(c->mem, 256 * 1024 * 1024);
        assert_string_equal(inst_state(s, 0), "running");
        assert_string_equal(inst_state(s, 1), "running");
        assert_int_equal(status_calls, 1);
        _cleanup_json_ json_t *st = sk_supervisor_status(s);
        json_t *i0 = json_array_get(st, 0);
        assert_string_equal(json_string_value(json_object_get(i0, "application")), "pos");
        assert_non_null(json_string_value(json_object_get(i0, "updated")));
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(i0, "containers"), 0), "id")),
                            c->id);

        /* Steady state: nothing is touched, and no status change is announced. */
        pass(s, 4000);
        assert_int_equal(f.creates, 2);
        assert_int_equal(f.stops, 0);
        assert_int_equal(status_calls, 1);

        /* A supervisor started afresh (an agent restart) adopts without restarting. */
        sk_supervisor_config cfg = {.runtime = &f.base, .site = "store-001", .host = "h1"};
        sk_supervisor *s2 = NULL;
        assert_int_equal(sk_supervisor_new(&cfg, &s2, NULL), 0);
        set_doc(s2, doc);
        pass(s2, 5000);
        assert_int_equal(f.creates, 2);
        assert_int_equal(f.starts, 2);
        assert_string_equal(inst_state(s2, 1), "running");
        sk_supervisor_free(s2);

        /* A new spec replaces the containers. */
        _cleanup_json_ json_t *doc2 = doc_with(TWO_REPLICAS);
        json_t *ctr = json_array_get(
            json_object_get(
                json_array_get(
                    json_object_get(json_object_get(json_array_get(json_object_get(doc2, "deplo"
                                                                                         "yments"),
                                                                   0),
                                                    "spec"),
                                    "services"),
                    0),
                "containers"),
            0);
        json_object_set_new(ctr, "image", json_string("localhost/busybox:2"));
        set_doc(s, doc2);
        pass(s, 6000);
        assert_int_equal(f.removes, 2);
        assert_int_equal(f.creates, 4);
        assert_string_equal(fake_by_name(&f, "sk-h1-default-pos-stores-api-1-api")->image,
                            "localhost/busybox:2");
        assert_int_equal(status_calls, 2);
        sk_supervisor_free(s);
        fake_free(&f.base);
}

static void test_supervisor_crash_restarts_with_backoff(void **state)
{
        fake_rt f;
        sk_supervisor *s = new_sup(&f);
        _cleanup_json_ json_t *doc =
            doc_with("[{\"name\": \"api\", \"containers\": [{\"name\": \"api\", \"image\": \"i\","
                     " \"restart\": \"on-failure\"}]}]");
        set_doc(s, doc);
        pass(s, 1000);
        fake_ctr *c = fake_by_name(&f, "sk-h1-default-pos-stores-api-0-api");
        c->state = SK_CONTAINER_EXITED;
        c->exit_code = 3;
        pass(s, 2000);
        assert_string_equal(inst_state(s, 0), "backoff");
        _cleanup_json_ json_t *st = sk_supervisor_status(s);
        json_t *cj = json_array_get(json_object_get(json_array_get(st, 0), "containers"), 0);
        assert_int_equal(json_integer_value(json_object_get(cj, "exit-code")), 3);
        assert_int_equal(f.starts, 1);
        pass(s, 3000);
        assert_int_equal(f.starts, 2);
        assert_int_equal(f.removes, 1);
        c = fake_by_name(&f, "sk-h1-default-pos-stores-api-0-api");
        assert_string_equal(c->id, "id0002");
        assert_int_equal(c->state, SK_CONTAINER_RUNNING);
        assert_string_equal(inst_state(s, 0), "running");
        _cleanup_json_ json_t *st2 = sk_supervisor_status(s);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(st2, 0), "restarts")),
                         1);
        /* exit code 0 with on-failure: left exited */
        c->state = SK_CONTAINER_EXITED;
        c->exit_code = 0;
        pass(s, 4000);
        pass(s, 9000);
        assert_string_equal(inst_state(s, 0), "exited");
        assert_int_equal(f.starts, 2);
        sk_supervisor_free(s);
        fake_free(&f.base);
}

static void test_supervisor_pull_failure_and_secrets(void **state)
{
        fake_rt f;
        sk_supervisor *s = new_sup(&f);
        f.missing_image = "localhost/nope:1";
        _cleanup_json_ json_t *doc =
            doc_with("[{\"name\": \"api\", \"containers\": [{\"name\": \"api\", \"image\":"
                     " \"localhost/nope:1\"}]},"
                     " {\"name\": \"db\", \"variables\": [{\"name\": \"P\", \"from-secret\": "
                     "{\"vault\": \"v\","
                     " \"secret\": \"s\", \"key\": \"k\"}}],"
                     " \"containers\": [{\"name\": \"db\", \"image\": \"i\"}]}]");
        set_doc(s, doc);
        pass(s, 1000);
        assert_int_equal(fake_count(&f), 0);
        _cleanup_json_ json_t *st = sk_supervisor_status(s);
        json_t *api = json_array_get(st, 0), *db = json_array_get(st, 1);
        assert_string_equal(json_string_value(json_object_get(api, "state")), "failed");
        assert_non_null(strstr(json_string_value(json_object_get(api, "reason")),
                               "image localhost/nope:1 not found"));
        assert_string_equal(json_string_value(json_object_get(db, "state")), "failed");
        assert_string_equal(json_string_value(json_object_get(db, "reason")),
                            "secrets are not supported yet");
        /* retried after the backoff, not before */
        pass(s, 1500);
        assert_int_equal(f.pulls, 1);
        f.missing_image = NULL;
        pass(s, 2000);
        assert_int_equal(f.pulls, 2);
        assert_string_equal(inst_state(s, 0), "running");
        sk_supervisor_free(s);
        fake_free(&f.base);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_site_places_replicas_and_one_per_host),
            cmocka_unit_test(test_desired_container_shape),
            cmocka_unit_test(test_desired_unsupported_fail_with_reason),
            cmocka_unit_test(test_desired_devices),
            cmocka_unit_test(test_plan_create_adopt_remove),
            cmocka_unit_test(test_plan_restart_policies),
            cmocka_unit_test(test_plan_backoff_doubles_caps_and_resets),
            cmocka_unit_test(test_plan_creates_breadth_first),
            cmocka_unit_test(test_supervisor_no_desired_touches_nothing),
            cmocka_unit_test(test_supervisor_creates_adopts_and_replaces),
            cmocka_unit_test(test_supervisor_crash_restarts_with_backoff),
            cmocka_unit_test(test_supervisor_pull_failure_and_secrets),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
