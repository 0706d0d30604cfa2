#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "host/desired.h"
#include "model/spec.h"
#include "site/scheduler.h"
#include "testutil.h"

#define MI (1024LL * 1024)
#define GI (1024LL * MI)

/* ---- fixtures ---- */

/* What a test owns: the hosts, the current map, the tenants' quotas (they go into the
 * desired document) and what the hosts report running. */
typedef struct fixture {
        sk_host *hosts;
        size_t n_hosts;
        sk_placement *placements;
        size_t n_placements;
        sk_site_quota *quotas;
        size_t n_quotas;
        sk_placement *running;
        size_t n_running;
} fixture;

static void placements_free(sk_placement *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                sk_model_free(&sk_placement_table, &p[i]);
        free(p);
}

static void fixture_clear(fixture *s)
{
        for (size_t i = 0; i < s->n_hosts; i++)
                sk_model_free(&sk_host_table, &s->hosts[i]);
        for (size_t i = 0; i < s->n_quotas; i++)
                free(s->quotas[i].tenant);
        free(s->hosts);
        placements_free(s->placements, s->n_placements);
        free(s->quotas);
        placements_free(s->running, s->n_running);
        *s = (fixture){0};
}
#define _cleanup_fixture_ __attribute__((cleanup(fixture_clear)))

/* A deployments array with one deployment of tenant/name whose services are given as JSON;
 * a service with no containers gets one (the model wants at least one). */
static json_t *deployments(const char *tenant, const char *name, const char *services)
{
        json_error_t e;
        json_t *svcs = json_loads(services, 0, &e);
        if (!svcs)
                fail_msg("bad services JSON: %s: %s", e.text, services);
        sk_test_fill_containers(svcs);
        json_t *d =
            json_pack("[{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:o}}]", "tenant", tenant, "name",
                      name, "application", "app", "version", "1.0.0", "spec", "kind", "application",
                      "name", "app", "version", "1.0.0", "services", svcs);
        assert_non_null(d);
        return d;
}

/* Appends the deployments of `more` to `to` (consumes more). */
static void add_deployments(json_t *to, json_t *more)
{
        assert_int_equal(json_array_extend(to, more), 0);
        json_decref(more);
}

/* The desired document of deps and the fixture's quotas, as the model reads it. */
static int desired_doc(const json_t *deps, const fixture *s, sk_desired_doc **out, sk_error **err)
{
        _cleanup_json_ json_t *quotas = json_object();
        for (size_t i = 0; i < s->n_quotas; i++) {
                const sk_site_quota *q = &s->quotas[i];
                json_t *o = json_object();
                if (q->cpu_millicores != SK_UNSET)
                        json_object_set_new(o, "cpu", json_integer(q->cpu_millicores));
                if (q->memory_bytes != SK_UNSET)
                        json_object_set_new(o, "memory", json_integer(q->memory_bytes));
                if (q->instances != SK_UNSET)
                        json_object_set_new(o, "instances", json_integer(q->instances));
                json_object_set_new(quotas, q->tenant, o);
        }
        _cleanup_json_ json_t *doc =
            json_pack("{s:i, s:{s:s, s:s}, s:O, s:O}", "generation", 1, "site", "name", "s1",
                      "tenant", "prov", "deployments", deps, "quotas", quotas);
        assert_non_null(doc);
        return sk_desired_doc_from_json(doc, out, err);
}

static sk_sched_state view(const fixture *s)
{
        return (sk_sched_state){.hosts = s->hosts,
                                .n_hosts = s->n_hosts,
                                .placements = s->placements,
                                .n_placements = s->n_placements,
                                .running = s->running,
                                .n_running = s->n_running};
}

static void add_host(fixture *s, const char *name, const char *labels, int64_t cpu, int64_t mem,
                     bool alive)
{
        s->hosts = reallocarray(s->hosts, s->n_hosts + 1, sizeof(*s->hosts));
        assert_non_null(s->hosts);
        json_error_t e;
        json_t *l = json_loads(labels ? labels : "{}", 0, &e);
        assert_non_null(l);
        s->hosts[s->n_hosts++] = (sk_host){.id = SK_UNSET,
                                           .name = strdup(name),
                                           .labels = l,
                                           .capacity = {cpu, mem},
                                           .alive = alive};
}

static sk_host *host(fixture *s, const char *name)
{
        for (size_t i = 0; i < s->n_hosts; i++)
                if (!strcmp(s->hosts[i].name, name))
                        return &s->hosts[i];
        fail_msg("no host %s", name);
        return NULL;
}

static void add_quota(fixture *s, const char *tenant, int64_t cpu, int64_t mem, int64_t instances)
{
        s->quotas = reallocarray(s->quotas, s->n_quotas + 1, sizeof(*s->quotas));
        assert_non_null(s->quotas);
        s->quotas[s->n_quotas++] = (sk_site_quota){.tenant = strdup(tenant),
                                                   .cpu_millicores = cpu,
                                                   .memory_bytes = mem,
                                                   .instances = instances};
}

/* The result's placements become the state's current map (what raft would commit). */
static void commit(fixture *s, sk_sched_result *r)
{
        placements_free(s->placements, s->n_placements);
        s->placements = r->placements;
        s->n_placements = r->n_placements;
        r->placements = NULL;
        r->n_placements = 0;
}

static int run(const json_t *deps, const fixture *s, sk_sched_result *r, sk_error **err)
{
        _cleanup_desired_doc_ sk_desired_doc *doc = NULL;
        int ret = desired_doc(deps, s, &doc, err);
        if (ret < 0)
                return ret;
        sk_sched_state st = view(s);
        return sk_sched_run(doc, &st, r, err);
}

static void run_ok(const json_t *deps, const fixture *s, sk_sched_result *r)
{
        _cleanup_error_ sk_error *err = NULL;
        sk_sched_result_clear(r);
        if (run(deps, s, r, &err) < 0)
                fail_msg("scheduler failed: %s", sk_error_msg(err, -EINVAL));
}

static const char *host_of(const sk_sched_result *r, const char *instance)
{
        const char *found = NULL;
        for (size_t i = 0; i < r->n_placements; i++)
                if (!strcmp(r->placements[i].instance, instance)) {
                        if (found)
                                fail_msg("%s is placed twice", instance);
                        found = r->placements[i].host;
                }
        return found;
}

/* The host a moving instance still runs on, or NULL. */
static const char *from_of(const sk_sched_result *r, const char *instance)
{
        for (size_t i = 0; i < r->n_placements; i++)
                if (!strcmp(r->placements[i].instance, instance))
                        return r->placements[i].from;
        fail_msg("%s is not placed", instance);
        return NULL;
}

static size_t n_moving(const sk_sched_result *r)
{
        size_t n = 0;
        for (size_t i = 0; i < r->n_placements; i++)
                n += r->placements[i].from != NULL;
        return n;
}

/* What the hosts' heartbeats say runs: every placement of the state on its host (the new
 * host of a move has started its copy). */
static void all_running(fixture *s)
{
        placements_free(s->running, s->n_running);
        s->running = calloc(s->n_placements ? s->n_placements : 1, sizeof(*s->running));
        assert_non_null(s->running);
        for (size_t i = 0; i < s->n_placements; i++)
                s->running[i] = (sk_placement){.instance = strdup(s->placements[i].instance),
                                               .host = strdup(s->placements[i].host)};
        s->n_running = s->n_placements;
}

/* The result as a "sched" entry carries it (the model's JSON forms). */
static json_t *result_json(const sk_sched_result *r)
{
        json_t *pl = json_array(), *un = json_array();
        for (size_t i = 0; i < r->n_placements; i++)
                json_array_append_new(pl, sk_placement_to_json(&r->placements[i]));
        for (size_t i = 0; i < r->n_unplaced; i++)
                json_array_append_new(un, sk_unplaced_to_json(&r->unplaced[i]));
        json_t *j = json_pack("{s:o, s:o}", "placements", pl, "unplaced", un);
        assert_non_null(j);
        return j;
}

static size_t count_on(const sk_sched_result *r, const char *hostname)
{
        size_t n = 0;
        for (size_t i = 0; i < r->n_placements; i++)
                n += !strcmp(r->placements[i].host, hostname);
        return n;
}

static const sk_unplaced *unplaced(const sk_sched_result *r, const char *instance)
{
        for (size_t i = 0; i < r->n_unplaced; i++)
                if (!strcmp(r->unplaced[i].instance, instance))
                        return &r->unplaced[i];
        fail_msg("%s is not among the unplaced", instance);
        return NULL;
}

static void assert_reason(const sk_sched_result *r, const char *instance, const char *want)
{
        assert_string_equal(unplaced(r, instance)->reason, want);
}

/* ---- filters ---- */

static void test_filter_labels(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"role\": \"till\"}", 4000, 4 * GI, true);
        add_host(&s, "h2", "{\"role\": \"office\"}", 4000, 8 * GI, true);
        add_host(&s, "h3", NULL, 4000, 8 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 2, \"placement\": {\"match-host-labels\": "
            "\"role = till\"}, \"containers\": []},"
            " {\"name\": \"byname\", \"replicas\": 1, \"placement\": {\"match-host-labels\": "
            "\"system/name = h3\"}, \"containers\": []},"
            " {\"name\": \"nowhere\", \"replicas\": 1, \"placement\": {\"match-host-labels\": "
            "\"role = kiosk\"}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h1");
        /* system/name is there even when the host's labels do not say it */
        assert_string_equal(host_of(&r, "t/d/byname/0"), "h3");
        assert_null(host_of(&r, "t/d/nowhere/0"));
        assert_int_equal(r.n_unplaced, 1);
        assert_reason(&r, "t/d/nowhere/0",
                      "no host fits: h1, h2, h3 do not match \"role = kiosk\"");
        const sk_unplaced *u = unplaced(&r, "t/d/nowhere/0");
        assert_string_equal(u->tenant, "t");
        assert_string_equal(u->deployment, "d");
        assert_string_equal(u->service, "nowhere");
        assert_int_equal(u->replica, 0);
        assert_null(u->host);
}

static void test_filter_devices(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"device/camera\": \"2\"}", 4000, 4 * GI, true);
        add_host(&s, "h2", "{\"device/gpu\": \"1\"}", 4000, 8 * GI, true);
        add_host(&s, "h3", "{\"device/camera\": \"0\", \"device/gpu\": \"1\"}", 4000, 8 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"cam\", \"replicas\": 2, \"placement\": {\"devices\": [\"camera\"]}, "
            "\"containers\": []},"
            " {\"name\": \"both\", \"replicas\": 1, \"placement\": {\"devices\": [\"camera\", "
            "\"gpu\"]}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/cam/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/cam/1"), "h1");
        /* a device label whose count is 0 is no device */
        assert_reason(&r, "t/d/both/0",
                      "no host fits: h1 lacks device/gpu; h2, h3 lack device/camera");
}

static void test_filter_resources(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 1000, 1 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"a\", \"replicas\": 3, \"resources\": {\"cpu\": \"400m\", \"memory\": "
            "\"256Mi\"}, \"containers\": []},"
            " {\"name\": \"m\", \"replicas\": 1, \"resources\": {\"memory\": \"1Gi\"}, "
            "\"containers\": []},"
            " {\"name\": \"b\", \"replicas\": 1, \"resources\": {\"cpu\": 2, \"memory\": "
            "\"2Gi\"}, \"containers\": []}]");
        run_ok(d, &s, &r);
        /* requests add up: two of 400m fit in 1000m, the third does not */
        assert_string_equal(host_of(&r, "t/d/a/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/a/1"), "h1");
        assert_reason(&r, "t/d/a/2", "no host fits: h1 has 200m cpu free, needs 400m");
        assert_reason(&r, "t/d/m/0", "no host fits: h1 has 512Mi memory free, needs 1Gi");
        assert_reason(&r, "t/d/b/0",
                      "no host fits: h1 has 200m cpu and 512Mi memory free, needs 2000m and 2Gi");
        assert_int_equal(r.n_placements, 2);
        assert_int_equal(r.n_unplaced, 3);
        /* unplaced entries follow the desired document */
        assert_string_equal(r.unplaced[0].instance, "t/d/a/2");
        assert_string_equal(r.unplaced[1].instance, "t/d/m/0");
        assert_string_equal(r.unplaced[2].instance, "t/d/b/0");
}

/* The example of the brief: every filter in one reason, hosts grouped by it. */
static void test_unplaceable_reason(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h4", "{\"device/camera\": \"1\"}", 4000, 4 * GI, false);
        add_host(&s, "h2", NULL, 4000, 4 * GI, true);
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        add_host(&s, "h3", "{\"device/camera\": \"1\"}", 200, 4 * GI, true);
        add_host(&s, "h5", "{\"device/camera\": \"1\", \"zone\": \"cold\"}", 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d",
                        "[{\"name\": \"cam\", \"replicas\": 1, \"placement\": {\"devices\": "
                        "[\"camera\"], \"match-host-labels\": \"zone != cold\"}, \"resources\": "
                        "{\"cpu\": 0.5}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 0);
        assert_reason(&r, "t/d/cam/0",
                      "no host fits: h1, h2 lack device/camera; h3 has 200m cpu free, needs "
                      "500m; h4 is lost; h5 does not match \"zone != cold\"");

        /* no hosts at all */
        _cleanup_fixture_ fixture empty = {0};
        run_ok(d, &empty, &r);
        assert_reason(&r, "t/d/cam/0", "no host fits: the site has no hosts");
}

/* ---- preferences ---- */

static void test_spread_replicas(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 8000, 16 * GI, true); /* most memory: would win otherwise */
        add_host(&s, "h2", NULL, 8000, 4 * GI, true);
        add_host(&s, "h3", NULL, 8000, 2 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 6, \"resources\": {\"memory\": \"100Mi\"}, "
            "\"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 6);
        assert_int_equal(count_on(&r, "h1"), 2);
        assert_int_equal(count_on(&r, "h2"), 2);
        assert_int_equal(count_on(&r, "h3"), 2);
        /* among equals, the most free memory goes first */
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_string_equal(host_of(&r, "t/d/api/2"), "h3");
}

static void test_prefer_fewest_of_same_service(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 8000, 8 * GI, true);
        add_host(&s, "h2", NULL, 8000, 8 * GI, true);
        /* "other" is on h1; it is not of the same service, so "api" is spread by its own
         * count first and then by free memory (h2 has more, so it goes first). */
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"other\", \"replicas\": 1, \"placement\": {\"match-host-labels\": "
            "\"system/name = h1\"}, \"resources\": {\"memory\": \"1Gi\"}, \"containers\": []},"
            " {\"name\": \"api\", \"replicas\": 2, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/other/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/0"), "h2");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h1");
}

static void test_prefer_free_memory_then_name(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "hb", NULL, 1000, 2 * GI, true);
        add_host(&s, "hc", NULL, 9000, 1 * GI, true);
        add_host(&s, "ha", NULL, 1000, 2 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d", "[{\"name\": \"one\", \"replicas\": 1, \"containers\": []}]");
        run_ok(d, &s, &r);
        /* ha and hb tie on memory; the name decides, whatever the input order */
        assert_string_equal(host_of(&r, "t/d/one/0"), "ha");

        host(&s, "hb")->capacity.memory_bytes = 3 * GI;
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/one/0"), "hb");

        /* free memory counts, not capacity: "big" already holds 2.5Gi of 3Gi */
        _cleanup_json_ json_t *d2 = deployments(
            "t", "e",
            "[{\"name\": \"big\", \"replicas\": 1, \"placement\": {\"match-host-labels\": "
            "\"system/name = hb\"}, \"resources\": {\"memory\": \"2560Mi\"}, \"containers\": []},"
            " {\"name\": \"one\", \"replicas\": 1, \"containers\": []}]");
        run_ok(d2, &s, &r);
        assert_string_equal(host_of(&r, "t/e/big/0"), "hb");
        assert_string_equal(host_of(&r, "t/e/one/0"), "ha");
}

/* ---- one-per-host ---- */

static void test_one_per_host(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"role\": \"till\"}", 1000, 1 * GI, true);
        add_host(&s, "h2", "{\"role\": \"till\"}", 100, 1 * GI, true);
        add_host(&s, "h3", "{\"role\": \"office\"}", 1000, 1 * GI, true);
        add_host(&s, "h4", "{\"role\": \"till\"}", 1000, 1 * GI, false);
        add_host(&s, "h5", "{\"role\": \"till\"}", 1000, 1 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"agent\", \"mode\": \"one-per-host\", \"placement\": "
            "{\"match-host-labels\": \"role = till\"}, \"resources\": {\"cpu\": \"200m\"}, "
            "\"containers\": []},"
            " {\"name\": \"gpu\", \"mode\": \"one-per-host\", \"placement\": {\"devices\": "
            "[\"gpu\"]}, \"containers\": []}]");
        run_ok(d, &s, &r);
        /* h1 and h5 run one each; h3 does not match, h4 is lost, h2 lacks cpu */
        assert_int_equal(r.n_placements, 2);
        assert_string_equal(host_of(&r, "t/d/agent/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/agent/1"), "h5");
        const sk_unplaced *u = unplaced(&r, "t/d/agent");
        assert_string_equal(u->host, "h2");
        assert_int_equal(u->replica, -1);
        assert_string_equal(u->reason, "h2 has 100m cpu free, needs 200m");
        /* nowhere to run at all: one entry that says why */
        u = unplaced(&r, "t/d/gpu");
        assert_null(u->host);
        assert_string_equal(u->reason, "no host fits: h1, h2, h3, h5 lack device/gpu; h4 is lost");
        assert_int_equal(r.n_unplaced, 2);

        /* h4 comes back and h2 gets cpu: each gets one, the others keep theirs */
        commit(&s, &r);
        host(&s, "h4")->alive = true;
        host(&s, "h2")->capacity.cpu_millicores = 1000;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 4);
        assert_string_equal(host_of(&r, "t/d/agent/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/agent/1"), "h5");
        assert_string_equal(host_of(&r, "t/d/agent/2"), "h2");
        assert_string_equal(host_of(&r, "t/d/agent/3"), "h4");
        assert_int_equal(count_on(&r, "h4"), 1);

        /* a lost host's instance is not moved: every other host has one already */
        commit(&s, &r);
        host(&s, "h5")->alive = false;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 3);
        assert_null(host_of(&r, "t/d/agent/1"));
        assert_int_equal(count_on(&r, "h5"), 0);
        /* and when it returns it gets one again, with the lowest free number (1 again) */
        commit(&s, &r);
        host(&s, "h5")->alive = true;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 4);
        assert_string_equal(host_of(&r, "t/d/agent/1"), "h5");
}

/* ---- stickiness, lost hosts, changes ---- */

static void test_sticky(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d",
                        "[{\"name\": \"api\", \"replicas\": 1, \"resources\": {\"cpu\": \"100m\"}, "
                        "\"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(count_on(&r, "h1"), 1);
        commit(&s, &r);
        /* a bigger, emptier host joins: nothing moves to it (the spread is off by one only) */
        add_host(&s, "h2", NULL, 8000, 32 * GI, true);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_int_equal(n_moving(&r), 0);
        /* scaling up places only the new replicas, where there are fewest, then most memory */
        json_object_set_new(
            json_array_get(
                json_object_get(json_object_get(json_array_get(d, 0), "spec"), "services"), 0),
            "replicas", json_integer(3));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_string_equal(host_of(&r, "t/d/api/2"), "h2");
        assert_int_equal(n_moving(&r), 0);
        assert_int_equal(r.n_unplaced, 0);
}

static void test_sticky_over_capacity(void **unused)
{
        /* A host that shrank (or labels that changed) does not evict running instances
         * whose spec is unchanged: they stay, and new work sees no room there. */
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"role\": \"till\"}", 2000, 4 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 2, \"placement\": {\"match-host-labels\": "
            "\"role = till\"}, \"resources\": {\"cpu\": 1}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(count_on(&r, "h1"), 2);
        commit(&s, &r);
        host(&s, "h1")->capacity.cpu_millicores = 1000;
        json_object_set_new(host(&s, "h1")->labels, "role", json_string("office"));
        add_deployments(d, deployments("t", "e",
                                       "[{\"name\": \"w\", \"replicas\": 1, \"resources\": "
                                       "{\"cpu\": \"10m\"}, \"containers\": []}]"));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h1");
        assert_reason(&r, "t/e/w/0", "no host fits: h1 has 0m cpu free, needs 10m");
}

static void test_huge_requests(void **unused)
{
        /* kept instances whose requests add up beyond int64 saturate, they do not wrap */
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 1000, INT64_MAX, true);
        add_quota(&s, "t", SK_UNSET, INT64_MAX, SK_UNSET);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"big\", \"replicas\": 3, \"resources\": {\"memory\": \"7Ei\"}, "
            "\"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 1);
        s.placements = calloc(3, sizeof(*s.placements));
        for (int i = 0; i < 3; i++) {
                char id[32];
                snprintf(id, sizeof(id), "t/d/big/%d", i);
                s.placements[i] = (sk_placement){.instance = strdup(id),
                                                 .host = strdup("h1"),
                                                 .spec_hash = strdup(r.placements[0].spec_hash)};
        }
        s.n_placements = 3;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 3);
        /* malformed instance ids in the map are dropped, not misread */
        free(s.placements[2].instance);
        s.placements[2].instance = strdup("t/d/big/ 2");
        add_deployments(d, deployments("t", "e",
                                       "[{\"name\": \"w\", \"replicas\": 1, \"resources\": "
                                       "{\"memory\": 1}, \"containers\": []}]"));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/big/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/big/1"), "h1");
        assert_null(host_of(&r, "t/d/big/2"));
        /* the quota sum saturates at its limit, so the host's room is what says no */
        assert_reason(&r, "t/e/w/0", "no host fits: h1 has 0 memory free, needs 1");
}

static void test_lost_host(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        add_host(&s, "h2", NULL, 4000, 4 * GI, true);
        add_host(&s, "h3", NULL, 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d", "[{\"name\": \"api\", \"replicas\": 3, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_string_equal(host_of(&r, "t/d/api/2"), "h3");
        commit(&s, &r);

        host(&s, "h2")->alive = false;
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/2"), "h3");
        const char *moved = host_of(&r, "t/d/api/1");
        assert_non_null(moved);
        assert_string_not_equal(moved, "h2");
        assert_int_equal(count_on(&r, "h2"), 0);
        commit(&s, &r);

        /* h2 returns: the map is the truth, nothing runs twice; since the replicas are now
         * 2, 1, 0, one moves to h2 to spread them again, and the host it leaves runs it until
         * h2 does */
        assert_string_equal(moved, "h1");
        host(&s, "h2")->alive = true;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 3);
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_string_equal(from_of(&r, "t/d/api/1"), "h1");
        assert_int_equal(n_moving(&r), 1);
        commit(&s, &r);
        all_running(&s);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_string_equal(host_of(&r, "t/d/api/2"), "h3");
        assert_int_equal(n_moving(&r), 0);

        /* a current placement on a host the site no longer has is placed again */
        commit(&s, &r);
        free(s.placements[0].host);
        s.placements[0].host = strdup("gone");
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 3);
        assert_int_equal(count_on(&r, "gone"), 0);
        assert_non_null(host_of(&r, "t/d/api/0"));
}

static void test_spec_change(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"zone\": \"a\"}", 4000, 4 * GI, true);
        add_host(&s, "h2", "{\"zone\": \"b\"}", 4000, 8 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 1, \"placement\": {\"match-host-labels\": "
            "\"zone = a\"}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        char *hash1 = strdup(r.placements[0].spec_hash);
        commit(&s, &r);

        /* the spec changes but the host still fits: it stays (its volumes live there), even
         * though h2 has more free memory */
        json_t *svc = json_array_get(
            json_object_get(json_object_get(json_array_get(d, 0), "spec"), "services"), 0);
        json_object_set_new(json_object_get(svc, "placement"), "match-host-labels",
                            json_string("zone"));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h1");
        assert_string_not_equal(r.placements[0].spec_hash, hash1);
        free(hash1);
        commit(&s, &r);

        /* the spec changes so that the host no longer fits: it moves */
        json_object_set_new(json_object_get(svc, "placement"), "match-host-labels",
                            json_string("zone = b"));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/0"), "h2");
}

static void test_dropped(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d", "[{\"name\": \"api\", \"replicas\": 3, \"containers\": []}]");
        add_deployments(
            d, deployments("t", "old", "[{\"name\": \"x\", \"replicas\": 1, \"containers\": []}]"));
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 4);
        commit(&s, &r);

        /* scale down to 1 and remove the deployment "old" */
        assert_int_equal(json_array_remove(d, 1), 0);
        json_object_set_new(
            json_array_get(
                json_object_get(json_object_get(json_array_get(d, 0), "spec"), "services"), 0),
            "replicas", json_integer(1));
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 1);
        assert_string_equal(r.placements[0].instance, "t/d/api/0");
        assert_int_equal(r.n_unplaced, 0);

        /* duplicates in a current map (one instance twice): the first entry wins */
        commit(&s, &r);
        s.placements = reallocarray(s.placements, 2, sizeof(*s.placements));
        s.placements[1] = (sk_placement){.instance = strdup("t/d/api/0"),
                                         .host = strdup("h1"),
                                         .spec_hash = strdup(s.placements[0].spec_hash)};
        s.n_placements = 2;
        run_ok(d, &s, &r);
        assert_int_equal(r.n_placements, 1);
}

/* ---- quotas ---- */

static void test_quota(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 16000, 16 * GI, true);
        add_quota(&s, "acme", SK_UNSET, SK_UNSET, 2);
        add_quota(&s, "beta", 1500, 1 * GI, SK_UNSET);
        _cleanup_json_ json_t *d =
            deployments("acme", "d", "[{\"name\": \"api\", \"replicas\": 3, \"containers\": []}]");
        add_deployments(d, deployments("beta", "d",
                                       "[{\"name\": \"api\", \"replicas\": 3, \"resources\": "
                                       "{\"cpu\": \"500m\", \"memory\": \"400Mi\"}, "
                                       "\"containers\": []}]"));
        add_deployments(
            d,
            deployments("free", "d", "[{\"name\": \"api\", \"replicas\": 5, \"containers\": []}]"));
        run_ok(d, &s, &r);
        assert_non_null(host_of(&r, "acme/d/api/0"));
        assert_non_null(host_of(&r, "acme/d/api/1"));
        assert_reason(&r, "acme/d/api/2", "quota of tenant acme exceeded: instances 2 of 2 used");
        assert_non_null(host_of(&r, "beta/d/api/0"));
        assert_non_null(host_of(&r, "beta/d/api/1"));
        assert_reason(&r, "beta/d/api/2",
                      "quota of tenant beta exceeded: memory 800Mi of 1Gi used, needs 400Mi");
        /* a tenant without a quota has no limit */
        assert_non_null(host_of(&r, "free/d/api/4"));
        assert_int_equal(r.n_unplaced, 2);

        /* cpu, and all limits at once */
        s.quotas[1].memory_bytes = SK_UNSET;
        s.quotas[1].cpu_millicores = 1000;
        run_ok(d, &s, &r);
        assert_reason(&r, "beta/d/api/2",
                      "quota of tenant beta exceeded: cpu 1000m of 1000m used, needs 500m");
        s.quotas[1].memory_bytes = 800 * MI;
        s.quotas[1].instances = 2;
        run_ok(d, &s, &r);
        assert_reason(&r, "beta/d/api/2",
                      "quota of tenant beta exceeded: instances 2 of 2 used, cpu 1000m of 1000m "
                      "used, needs 500m, memory 800Mi of 800Mi used, needs 400Mi");

        /* instances already placed count against the quota and are not evicted */
        commit(&s, &r);
        s.quotas[0].instances = 1;
        run_ok(d, &s, &r);
        assert_non_null(host_of(&r, "acme/d/api/0"));
        assert_non_null(host_of(&r, "acme/d/api/1"));
        assert_reason(&r, "acme/d/api/2", "quota of tenant acme exceeded: instances 2 of 1 used");
}

/* ---- spread: replicas that were placed before their hosts reported in ---- */

static void test_spread_after_hosts_join(void **unused)
{
        /* Issue 7 point 8: two replicas placed while only h1 had reported; h2 and h3 report
         * in (h3 does not match): one replica moves to h2, make-before-break. */
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"tier\": \"web\"}", 4000, 4 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"web\", \"replicas\": 2, \"placement\": {\"match-host-labels\": "
            "\"tier = web\"}, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(count_on(&r, "h1"), 2);
        commit(&s, &r);
        all_running(&s);
        add_host(&s, "h2", "{\"tier\": \"web\"}", 4000, 4 * GI, true);
        add_host(&s, "h3", "{\"tier\": \"db\"}", 4000, 8 * GI, true);
        run_ok(d, &s, &r);
        /* the highest replica moves; h1 keeps running it until h2 reports it running */
        assert_string_equal(host_of(&r, "t/d/web/0"), "h1");
        assert_null(from_of(&r, "t/d/web/0"));
        assert_string_equal(host_of(&r, "t/d/web/1"), "h2");
        assert_string_equal(from_of(&r, "t/d/web/1"), "h1");
        commit(&s, &r);
        /* h2 has not started it yet: the move stays as it is */
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/web/1"), "h2");
        assert_string_equal(from_of(&r, "t/d/web/1"), "h1");
        /* a report of it on another host than the new one does not finish the move */
        s.running[1].host = (free(s.running[1].host), strdup("h3"));
        run_ok(d, &s, &r);
        assert_string_equal(from_of(&r, "t/d/web/1"), "h1");
        /* h2 runs it: the move is done, h1 stops its copy; then nothing changes any more */
        all_running(&s);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/web/1"), "h2");
        assert_null(from_of(&r, "t/d/web/1"));
        commit(&s, &r);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/web/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/web/1"), "h2");
        assert_int_equal(n_moving(&r), 0);
        assert_int_equal(count_on(&r, "h3"), 0);
}

static void test_spread_one_at_a_time(void **unused)
{
        /* Six replicas on h1, then h2 and h3: one move at a time per service until 2, 2, 2;
         * no replica moves twice (each move narrows the gap), none moves after. */
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d",
                        "[{\"name\": \"api\", \"replicas\": 6, \"containers\": []},"
                        " {\"name\": \"one\", \"replicas\": 1, \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(count_on(&r, "h1"), 7);
        commit(&s, &r);
        add_host(&s, "h2", NULL, 4000, 4 * GI, true);
        add_host(&s, "h3", NULL, 4000, 4 * GI, true);
        /* while a move is under way (h2 has not started api/5 yet), no other one starts */
        run_ok(d, &s, &r);
        assert_string_equal(from_of(&r, "t/d/api/5"), "h1");
        assert_string_equal(host_of(&r, "t/d/api/5"), "h2");
        commit(&s, &r);
        run_ok(d, &s, &r);
        assert_int_equal(n_moving(&r), 1);
        assert_int_equal(count_on(&r, "h3"), 0);
        char moved[6] = {0};
        int rounds = 0;
        for (;;) {
                all_running(&s);
                run_ok(d, &s, &r);
                if (n_moving(&r) == 0)
                        break;
                assert_int_equal(n_moving(&r), 1);
                for (size_t i = 0; i < r.n_placements; i++) {
                        if (!r.placements[i].from)
                                continue;
                        assert_string_equal(r.placements[i].from, "h1");
                        char last = r.placements[i].instance[strlen(r.placements[i].instance) - 1];
                        assert_int_equal(moved[last - '0'], 0);
                        moved[last - '0'] = 1;
                }
                commit(&s, &r);
                assert_true(++rounds <= 3);
        }
        assert_int_equal(rounds, 3); /* and api/5's before: four moves for 4, 0, 0 -> 2, 2, 2 */
        assert_int_equal(count_on(&r, "h1"), 3); /* 2 api and the single "one" */
        assert_int_equal(count_on(&r, "h2"), 2);
        assert_int_equal(count_on(&r, "h3"), 2);
        assert_string_equal(host_of(&r, "t/d/one/0"), "h1");
}

static void test_spread_only_for_spread(void **unused)
{
        /* No move for any other reason, and none that cannot help: persistent volumes stay
         * put; one-per-host is not spread; a host without room, a lost host or a host the
         * service does not match is no target; replicas on a host that no longer matches
         * are not counted against the others. */
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"zone\": \"a\"}", 4000, 4 * GI, true);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"db\", \"replicas\": 2, \"volumes\": [{\"name\": \"data\", "
            "\"persistent\": {\"size\": \"1Gi\"}}], \"containers\": []},"
            " {\"name\": \"big\", \"replicas\": 2, \"resources\": {\"cpu\": 1}, "
            "\"containers\": []},"
            " {\"name\": \"za\", \"replicas\": 2, \"placement\": {\"match-host-labels\": "
            "\"zone = a\"}, \"containers\": []},"
            " {\"name\": \"daemon\", \"mode\": \"one-per-host\", \"containers\": []}]");
        run_ok(d, &s, &r);
        assert_int_equal(count_on(&r, "h1"), 7);
        commit(&s, &r);
        all_running(&s);
        add_host(&s, "small", NULL, 500, 4 * GI, true);      /* no room for "big" */
        add_host(&s, "gone", NULL, 4000, 4 * GI, false);     /* lost */
        add_host(&s, "zb", "{\"zone\": \"b\"}", 0, 0, true); /* matches none but db */
        run_ok(d, &s, &r);
        assert_int_equal(n_moving(&r), 0);
        assert_string_equal(host_of(&r, "t/d/db/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/db/1"), "h1");
        assert_string_equal(host_of(&r, "t/d/big/1"), "h1");
        assert_string_equal(host_of(&r, "t/d/za/1"), "h1");
        /* h1 leaves zone a: its za replicas stay (never moved for that) and count for no
         * spread; a new zone-a host gets none of them */
        commit(&s, &r);
        json_object_set_new(host(&s, "h1")->labels, "zone", json_string("c"));
        add_host(&s, "za2", "{\"zone\": \"a\"}", 4000, 4 * GI, true);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/za/0"), "h1");
        assert_string_equal(host_of(&r, "t/d/za/1"), "h1");
        assert_null(from_of(&r, "t/d/za/1"));
        /* but "big", with room on za2 now, spreads there */
        assert_string_equal(host_of(&r, "t/d/big/1"), "za2");
        assert_string_equal(from_of(&r, "t/d/big/1"), "h1");
        assert_int_equal(n_moving(&r), 1);
}

static void test_move_interrupted(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 4000, 4 * GI, true);
        _cleanup_json_ json_t *d =
            deployments("t", "d", "[{\"name\": \"api\", \"replicas\": 2, \"containers\": []}]");
        run_ok(d, &s, &r);
        commit(&s, &r);
        add_host(&s, "h2", NULL, 4000, 4 * GI, true);
        run_ok(d, &s, &r);
        assert_string_equal(from_of(&r, "t/d/api/1"), "h1");
        commit(&s, &r);

        /* the new host is lost before it runs it: back to the old one, which still does */
        host(&s, "h2")->alive = false;
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/1"), "h1");
        assert_null(from_of(&r, "t/d/api/1"));
        assert_int_equal(r.n_placements, 2);
        /* so with another host to spread to, the next move starts from the old host too,
         * rather than placing the instance anew there with nothing running meanwhile */
        add_host(&s, "h3", NULL, 4000, 8 * GI, true);
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/1"), "h3");
        assert_string_equal(from_of(&r, "t/d/api/1"), "h1");
        s.n_hosts--;
        sk_model_free(&sk_host_table, &s.hosts[s.n_hosts]);

        /* the old host is lost during the move: nothing is left to keep there */
        host(&s, "h2")->alive = true;
        host(&s, "h1")->alive = false;
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_null(from_of(&r, "t/d/api/1"));

        /* the spec changes during the move: the new spec starts on the new host, no copy
         * of the old one is kept */
        host(&s, "h1")->alive = true;
        json_object_set_new(
            json_array_get(
                json_object_get(json_object_get(json_array_get(d, 0), "spec"), "services"), 0),
            "resources", json_pack("{s:s}", "memory", "1Mi"));
        run_ok(d, &s, &r);
        assert_string_equal(host_of(&r, "t/d/api/1"), "h2");
        assert_null(from_of(&r, "t/d/api/1"));
        assert_int_equal(n_moving(&r), 0);
}

/* ---- JSON forms, input errors, determinism ---- */

/* The result is the model's placements and unplaced instances: their JSON (what the
 * "sched" entry carries) is what it was before the typed model. */
static void test_result_json(void **unused)
{
        _cleanup_fixture_ fixture s = {0};
        _cleanup_sched_result_ sk_sched_result r = {0};
        add_host(&s, "h1", "{\"role\": \"till\", \"device/camera\": \"1\"}", 4000, 4 * GI, true);
        add_host(&s, "h2", NULL, 2000, 1 * GI, false);
        add_quota(&s, "t", 3000, SK_UNSET, 9);
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 2, \"containers\": []},"
            " {\"name\": \"x\", \"replicas\": 1, \"placement\": {\"devices\": [\"gpu\"]}, "
            "\"containers\": []}]");
        run_ok(d, &s, &r);
        _cleanup_json_ json_t *rj = result_json(&r);
        _cleanup_json_ json_t *want =
            json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:[{s:s, s:s, s:s, s:s, s:I, s:s}]}",
                      "placements", "instance", "t/d/api/0", "host", "h1", "spec-hash",
                      r.placements[0].spec_hash, "instance", "t/d/api/1", "host", "h1", "spec-hash",
                      r.placements[1].spec_hash, "unplaced", "instance", "t/d/x/0", "tenant", "t",
                      "deployment", "d", "service", "x", "replica", (json_int_t)0, "reason",
                      "no host fits: h1 lacks device/gpu; h2 is lost");
        assert_true(json_equal(rj, want));
        /* a move names its old host in "from" */
        commit(&s, &r);
        host(&s, "h2")->alive = true;
        host(&s, "h2")->capacity.memory_bytes = 8 * GI;
        run_ok(d, &s, &r);
        assert_string_equal(from_of(&r, "t/d/api/1"), "h1");
        _cleanup_json_ json_t *moving = sk_placement_to_json(&r.placements[1]);
        assert_string_equal(json_string_value(json_object_get(moving, "host")), "h2");
        assert_string_equal(json_string_value(json_object_get(moving, "from")), "h1");
}

/* The spec hash of a placement must not change for the same service when the site moves
 * to the typed model, or every instance restarts after an upgrade: pinned here as the JSON
 * scheduler computed it, over services with every part set, as the tower normalises and
 * sends them. */
static const char PINNED_APP[] =
    "{\"kind\": \"application\", \"name\": \"shop\", \"version\": \"2.1.0\", \"services\": [{"
    "\"name\": \"api\", \"replicas\": 3, \"placement\": {\"match-host-labels\": \"role in "
    "(till, office) and not zone = cold\", \"devices\": [\"camera\"]}, \"resources\": {\"cpu\": "
    "0.5, \"memory\": \"256Mi\"}, \"network\": {\"ingress\": [{\"port\": 8080}]}, "
    "\"variables\": [{\"name\": \"TOKEN\", \"from-secret\": {\"vault\": \"v\", \"secret\": "
    "\"s\", \"key\": \"k\"}}], \"volumes\": [{\"name\": \"data\", \"persistent\": {\"size\": "
    "\"1Gi\"}}], \"containers\": [{\"name\": \"web\", \"image\": \"localhost/shop:2\", "
    "\"cmd\": [\"/bin/shop\", \"--port\", \"8080\"], \"env\": {\"A\": \"1\", \"TOKEN\": "
    "\"${TOKEN}\"}, \"mounts\": [{\"volume\": \"data\", \"path\": \"/data\"}], "
    "\"devices\": [\"camera\"], \"probes\": {\"liveness\": {\"http\": {\"path\": \"/health\", "
    "\"port\": 8080}, \"period\": \"10s\"}}, \"restart\": \"on-failure\"}]},"
    " {\"name\": \"agent\", \"mode\": \"one-per-host\", \"containers\": [{\"name\": \"a\", "
    "\"image\": \"localhost/agent:1\"}]}]}";
static const char PINNED_API_HASH[] =
    "134410cccf86fe99a6bb6c5dbc5abae7e75cfb3ff25a4dd0bfb790993dafaffd";
static const char PINNED_AGENT_HASH[] =
    "9fdc28d39012bb5051976d916ad61a3388465354c789a585d4739427ac3e8bfa";

static void test_spec_hash_pinned(void **unused)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *app = json_loads(PINNED_APP, 0, NULL);
        assert_non_null(app);
        _cleanup_json_ json_t *norm = NULL;
        if (sk_spec_validate(app, &norm, &err) < 0)
                fail_msg("%s", sk_error_msg(err, -EINVAL));
        _cleanup_json_ json_t *deps =
            json_pack("[{s:s, s:s, s:s, s:s, s:O}]", "tenant", "t", "name", "d", "application",
                      "shop", "version", "2.1.0", "spec", norm);
        fixture none = {0};
        _cleanup_desired_doc_ sk_desired_doc *doc = NULL;
        if (desired_doc(deps, &none, &doc, &err) < 0)
                fail_msg("%s", sk_error_msg(err, -EINVAL));
        const sk_app *a = &doc->deployments.items[0].spec;
        _cleanup_free_ char *api = sk_sched_spec_hash(&a->services.items[0]);
        _cleanup_free_ char *agent = sk_sched_spec_hash(&a->services.items[1]);
        /* what the JSON scheduler hashed: the service as sent, without replicas */
        json_t *svc = json_array_get(json_object_get(norm, "services"), 0);
        json_object_del(svc, "replicas");
        _cleanup_free_ char *direct = sk_desired_hash(svc);
        print_message("api %s (JSON %s), agent %s\n", api, direct, agent);
        assert_string_equal(direct, PINNED_API_HASH);
        assert_string_equal(api, PINNED_API_HASH);
        assert_string_equal(agent, PINNED_AGENT_HASH);
}

/* Malformed services never reach the scheduler: the model refuses the desired document,
 * naming the field (and the column inside a label expression). */
static void expect_doc_error(const char *services, const char *path, int column)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_fixture_ fixture s = {0};
        sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 1000, GI, true);
        _cleanup_json_ json_t *d = deployments("t", "d", services);
        assert_int_equal(run(d, &s, &r, &err), -EINVAL);
        assert_int_equal(r.n_placements, 0);
        if (strcmp(err->path, path))
                fail_msg("error \"%s\" at %s, not %s", err->msg, err->path, path);
        assert_int_equal(err->column, column);
}

static void test_bad_desired(void **unused)
{
        expect_doc_error("[{\"name\": \"a\", \"placement\": {\"match-host-labels\": \"role = "
                         "(\"}, \"containers\": []}]",
                         "deployments[0].spec.services[0].placement.match-host-labels", 8);
        expect_doc_error("[{\"name\": \"a\", \"replicas\": -1, \"containers\": []}]",
                         "deployments[0].spec.services[0].replicas", 0);
        expect_doc_error("[{\"name\": \"a\", \"mode\": \"everywhere\", \"containers\": []}]",
                         "deployments[0].spec.services[0].mode", 0);
        expect_doc_error("[{\"name\": \"a\", \"resources\": {\"cpu\": \"fast\"}}]",
                         "deployments[0].spec.services[0].resources.cpu", 0);
        expect_doc_error("[{\"name\": \"a\", \"placement\": {\"devices\": \"camera\"}}]",
                         "deployments[0].spec.services[0].placement.devices", 0);
        expect_doc_error(
            "[{\"name\": \"a\", \"containers\": []}, {\"name\": \"a\", \"containers\": []}]",
            "deployments[0].spec.services[1].name", 0);

        _cleanup_error_ sk_error *err = NULL;
        _cleanup_fixture_ fixture s = {0};
        sk_sched_result r = {0};
        add_host(&s, "h1", NULL, 1000, GI, true);
        add_host(&s, "h1", NULL, 1000, GI, true);
        _cleanup_json_ json_t *d = deployments("t", "d", "[{\"name\": \"a\", \"containers\": []}]");
        assert_int_equal(run(d, &s, &r, &err), -EINVAL);
        assert_string_equal(err->msg, "hosts: \"h1\" is listed twice");
}

static void test_deterministic(void **unused)
{
        _cleanup_fixture_ fixture a = {0};
        _cleanup_fixture_ fixture b = {0};
        _cleanup_sched_result_ sk_sched_result ra = {0};
        _cleanup_sched_result_ sk_sched_result rb = {0};
        const char *names[] = {"h1", "h2", "h3", "h4"};
        for (size_t i = 0; i < 4; i++) {
                add_host(&a, names[i], NULL, 2000, 2 * GI, true);
                add_host(&b, names[3 - i], NULL, 2000, 2 * GI, true);
        }
        _cleanup_json_ json_t *d = deployments(
            "t", "d",
            "[{\"name\": \"api\", \"replicas\": 7, \"resources\": {\"cpu\": \"300m\", \"memory\": "
            "\"100Mi\"}, \"containers\": []},"
            " {\"name\": \"agent\", \"mode\": \"one-per-host\", \"containers\": []}]");
        run_ok(d, &a, &ra);
        run_ok(d, &b, &rb);
        _cleanup_json_ json_t *ja = result_json(&ra);
        _cleanup_json_ json_t *jb = result_json(&rb);
        assert_true(json_equal(ja, jb));
        /* sorted by instance, replicas in numeric order */
        for (size_t i = 0; i + 1 < ra.n_placements; i++)
                assert_true(strcmp(ra.placements[i].instance, ra.placements[i + 1].instance) < 0);
        assert_int_equal(ra.n_placements, 11);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_filter_labels),
            cmocka_unit_test(test_filter_devices),
            cmocka_unit_test(test_filter_resources),
            cmocka_unit_test(test_unplaceable_reason),
            cmocka_unit_test(test_spread_replicas),
            cmocka_unit_test(test_prefer_fewest_of_same_service),
            cmocka_unit_test(test_prefer_free_memory_then_name),
            cmocka_unit_test(test_one_per_host),
            cmocka_unit_test(test_sticky),
            cmocka_unit_test(test_sticky_over_capacity),
            cmocka_unit_test(test_huge_requests),
            cmocka_unit_test(test_lost_host),
            cmocka_unit_test(test_spec_change),
            cmocka_unit_test(test_dropped),
            cmocka_unit_test(test_quota),
            cmocka_unit_test(test_spread_after_hosts_join),
            cmocka_unit_test(test_spread_one_at_a_time),
            cmocka_unit_test(test_spread_only_for_spread),
            cmocka_unit_test(test_move_interrupted),
            cmocka_unit_test(test_result_json),
            cmocka_unit_test(test_spec_hash_pinned),
            cmocka_unit_test(test_bad_desired),
            cmocka_unit_test(test_deterministic),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
