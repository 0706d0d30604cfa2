/* The typed domain model (src/model): every kind parses into its struct, writes back to
 * the JSON it came from (normalised), and parses again to an equal struct; the typed
 * values are the ones the document says; errors name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/app.h"
#include "model/deployment.h"
#include "model/desired.h"
#include "model/host.h"
#include "model/instance.h"
#include "model/secret.h"
#include "model/site.h"
#include "model/site_state.h"
#include "model/spec.h"
#include "model/tenant.h"

/* The single document of a YAML (or JSON) text, owned by the caller. */
static json_t *load(const char *text)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        if (sk_yaml_load(text, strlen(text), &docs, &err) < 0)
                fail_msg("test input does not load: %s", err->msg);
        assert_int_equal(docs.n, 1);
        return json_deep_copy(docs.docs[0].value);
}

static const char FULL_APP[] =
    "kind: app\n"
    "name: pos\n"
    "version: \"2.1.0\"\n"
    "services:\n"
    "  - name: api\n"
    "    replicas: 2\n"
    "    placement: {match-host-labels: role = till, devices: [camera]}\n"
    "    resources: {cpu: 500m, memory: 256Mi}\n"
    "    network:\n"
    "      ingress: [{port: 8080}, {port: 8080, protocol: udp}]\n"
    "      outbound: allow\n"
    "    variables:\n"
    "      - {name: DB_PASSWORD, from-secret: {vault: pos, secret: db, key: password}}\n"
    "    volumes:\n"
    "      - {name: data, persistent: {size: 1Gi}}\n"
    "      - {name: creds, secret: {vault: pos, secret: db}}\n"
    "    containers:\n"
    "      - name: api\n"
    "        image: registry.example.com/pos/api:2.1.0\n"
    "        cmd: [/bin/api, --port, \"8080\"]\n"
    "        env: {LOG_LEVEL: info, N: 3, DB: \"${DB_PASSWORD}\"}\n"
    "        mounts: [{volume: data, path: /var/lib/pos}, {volume: creds, path: /run/s}]\n"
    "        devices: [camera]\n"
    "        probes:\n"
    "          liveness: {http: {path: /healthz, port: 8080}, period: 5s, "
    "failure-threshold: 3}\n"
    "          readiness: {tcp: {port: 8080}}\n"
    "        restart: on-failure\n"
    "  - name: agent\n"
    "    mode: one-per-host\n"
    "    resources: {cpu: 0.5, memory: 1000}\n"
    "    containers: [{name: agent, image: busybox}]\n"
    "  - name: batch\n"
    "    replicas: 0\n"
    "    resources: {cpu: 2}\n"
    "    network: {ingress: []}\n"
    "    containers: [{name: run, image: busybox, cmd: [x], env: {}}]\n";

static const char MIN_APP[] = "kind: application\nname: pos\nversion: \"1\"\nservices:\n"
                              "  - {name: api, containers: [{name: api, image: busybox}]}\n";

static const char FULL_DEPLOYMENT[] =
    "kind: deployment\nname: pos-stores\napplication: pos\nversion: \"2.1.0\"\n"
    "sites: chain = acme and region in (north, west)\n"
    "strategy:\n"
    "  canary: {sites: system/name = store-001, healthy-time: 10m}\n"
    "  sites-in-parallel: 50\n"
    "  healthy-time: 60s\n"
    "  on-failure: rollback\n";

static const char FULL_SITE[] = "kind: site\nname: store-001\n"
                                "labels: {chain: acme, floor-size: 3, open: true}\n"
                                "devices:\n"
                                "  - {label: camera, match: /dev/video*}\n"
                                "  - {label: gpu, udev: {ID_VENDOR_ID: \"10de\"}}\n"
                                "host-lost-after: 2s\n";

static const char FULL_TENANT[] = "kind: tenant\nname: acme-apps\nparent: retail\n"
                                  "sites: chain = acme\n"
                                  "quota-per-site: {cpu: 4, memory: 8Gi, instances: 20}\n";

/* Each sample through from_json, to_json, from_json: equal structs, equal JSON, and for an
 * appliable kind the JSON sk_spec_validate answers. */
#define ROUND_TRIP(name, T, text, appliable)                                                       \
        do {                                                                                       \
                _cleanup_json_ json_t *in = load(text);                                            \
                _cleanup_error_ sk_error *err = NULL;                                              \
                T *x = NULL, *y = NULL;                                                            \
                if (sk_##name##_from_json(in, &x, &err) < 0)                                       \
                        fail_msg("%s: %s at %s", #name, err->msg, err->path);                      \
                _cleanup_json_ json_t *j = sk_##name##_to_json(x);                                 \
                assert_non_null(j);                                                                \
                assert_int_equal(sk_##name##_from_json(j, &y, &err), 0);                           \
                assert_true(sk_##name##_equal(x, y));                                              \
                _cleanup_json_ json_t *j2 = sk_##name##_to_json(y);                                \
                assert_true(json_equal(j, j2));                                                    \
                if (appliable) {                                                                   \
                        _cleanup_json_ json_t *norm = NULL;                                        \
                        assert_int_equal(sk_spec_validate(in, &norm, &err), 0);                    \
                        assert_true(json_equal(j, norm));                                          \
                }                                                                                  \
                sk_##name##_free(x);                                                               \
                sk_##name##_free(y);                                                               \
        } while (0)

static void expect_error(int r, sk_error **errp, const char *path, const char *needle)
{
        const sk_error *err = *errp;
        assert_int_equal(r, -EINVAL);
        assert_non_null(err);
        if (!err->path || strcmp(err->path, path))
                fail_msg("error at \"%s\" (%s), want \"%s\"", err->path ? err->path : "(none)",
                         err->msg, path);
        if (!strstr(err->msg, needle))
                fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
}

static void test_round_trip_resources(void **state)
{
        ROUND_TRIP(app, sk_app, FULL_APP, true);
        ROUND_TRIP(app, sk_app, MIN_APP, true);
        ROUND_TRIP(deployment, sk_deployment, FULL_DEPLOYMENT, true);
        ROUND_TRIP(deployment, sk_deployment,
                   "kind: deployment\nname: d\napplication: a\n"
                   "sites: x\n",
                   true);
        ROUND_TRIP(site, sk_site, FULL_SITE, true);
        ROUND_TRIP(site, sk_site, "kind: site\nname: s\n", true);
        ROUND_TRIP(tenant, sk_tenant, FULL_TENANT, true);
        ROUND_TRIP(tenant, sk_tenant, "kind: tenant\nname: retail\ntype: provider\n", true);
        ROUND_TRIP(user, sk_user, "kind: user\nname: alice\ntenant: acme\nrole: admin\n", true);
        ROUND_TRIP(vault, sk_vault, "kind: vault\nname: pos\n", true);
        ROUND_TRIP(secret, sk_secret,
                   "kind: secret\nvault: pos\nname: db\n"
                   "data: {password: s3cr3t, pin: 1234}\n",
                   true);
}

static const char HOST[] =
    "{\"id\": 2, \"name\": \"h2\", \"address\": \"127.0.0.1:7002\", \"labels\": "
    "{\"system/name\": \"h2\", \"device/camera\": \"1\"}, \"devices\": {\"camera\": "
    "[{\"path\": \"/dev/video0\", \"host-path\": \"/tmp/d/video0\", \"type\": \"char\", "
    "\"major\": 81, \"minor\": 0}]}, \"capacity\": {\"cpu\": 4000, \"memory\": 8589934592}, "
    "\"alive\": false}";

static const char STATUS[] =
    "{\"instance\": \"default/pos-stores/api/0\", \"tenant\": \"default\", \"deployment\": "
    "\"pos-stores\", \"application\": \"pos\", \"version\": \"2.1.0\", \"service\": \"api\", "
    "\"replica\": 0, \"site\": \"store-001\", \"host\": \"h1\", \"state\": \"running\", "
    "\"reason\": \"\", \"restarts\": 0, \"containers\": [{\"name\": \"api\", \"id\": \"abc\", "
    "\"state\": \"running\", \"exit-code\": 0}], \"updated\": \"2026-12-03T19:00:00Z\"}";

static const char UNPLACEABLE[] =
    "{\"instance\": \"default/mon/agent\", \"tenant\": \"default\", \"deployment\": \"mon\", "
    "\"service\": \"agent\", \"host\": \"h1\", \"reason\": \"no host fits: h1 lacks "
    "device/camera\", \"application\": \"mon\", \"version\": \"1\", \"site\": \"s1\", "
    "\"state\": \"unplaceable\", \"restarts\": 0, \"containers\": []}";

static const char DESIRED[] =
    "{\"generation\": 12, \"site\": {\"name\": \"store-001\", \"tenant\": \"default\", "
    "\"labels\": {\"chain\": \"acme\"}, \"devices\": [{\"label\": \"camera\", \"match\": "
    "\"/dev/video*\"}], \"host-lost-after\": \"5s\"}, \"deployments\": [{\"tenant\": "
    "\"default\", \"name\": \"pos-stores\", \"application\": \"pos\", \"version\": \"2.1.0\", "
    "\"spec\": {\"kind\": \"application\", \"name\": \"pos\", \"version\": \"2.1.0\", "
    "\"services\": [{\"name\": \"api\", \"replicas\": 2, \"network\": {\"outbound\": "
    "\"deny\"}, \"containers\": [{\"name\": \"api\", \"image\": \"busybox\", \"restart\": "
    "\"always\"}]}]}}, {\"tenant\": \"acme-apps\", \"name\": \"mon\", \"application\": "
    "\"mon\", \"version\": \"1\", \"spec\": {\"name\": \"mon\", \"version\": \"1\", "
    "\"services\": [{\"name\": \"agent\", \"mode\": \"one-per-host\", \"containers\": "
    "[{\"name\": \"agent\", \"image\": \"busybox\"}]}]}}], \"quotas\": {\"acme-apps\": "
    "{\"cpu\": 4000, \"memory\": 8589934592}}, \"removed-hosts\": [7, 9]}";

static void test_round_trip_site_documents(void **state)
{
        ROUND_TRIP(host, sk_host, HOST, false);
        ROUND_TRIP(host, sk_host, "{\"name\": \"h1\", \"capacity\": {\"cpu\": 1, \"memory\": 2}}",
                   false);
        ROUND_TRIP(placement, sk_placement,
                   "{\"instance\": \"t/d/s/0\", \"host\": \"h1\", \"spec-hash\": \"ab12\"}", false);
        /* a moving placement names the host that still runs it */
        ROUND_TRIP(placement, sk_placement,
                   "{\"instance\": \"t/d/s/0\", \"host\": \"h1\", \"spec-hash\": \"ab12\", "
                   "\"from\": \"h2\"}",
                   false);
        ROUND_TRIP(unplaced, sk_unplaced,
                   "{\"instance\": \"t/d/s/1\", \"tenant\": \"t\", \"deployment\": \"d\", "
                   "\"service\": \"s\", \"replica\": 1, \"reason\": \"no host fits\"}",
                   false);
        ROUND_TRIP(instance_status, sk_instance_status, STATUS, false);
        ROUND_TRIP(instance_status, sk_instance_status, UNPLACEABLE, false);
        ROUND_TRIP(desired_doc, sk_desired_doc, DESIRED, false);
        ROUND_TRIP(desired_doc, sk_desired_doc,
                   "{\"site\": {\"name\": \"s\", \"tenant\": \"t\"}, \"deployments\": []}", false);
        /* the site CA a host removal re-keyed, as the tower announces it */
        ROUND_TRIP(
            desired_doc, sk_desired_doc,
            "{\"generation\": 3, \"site\": {\"name\": \"s\", \"tenant\": \"t\"}, "
            "\"deployments\": [], \"site-ca\": {\"generation\": 2, \"sha256\": "
            "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", "
            "\"leaves\": [\"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"]}}",
            false);
}

static const char STATE[] =
    "{\"desired\": null, \"hosts\": {\"2\": {\"id\": 2, \"name\": \"h2\", \"capacity\": "
    "{\"cpu\": 1000, \"memory\": 1024}}}, \"placements\": [{\"instance\": \"t/d/s/0\", "
    "\"host\": \"h2\", \"spec-hash\": \"\"}], \"unplaced\": [], \"removed\": [5], "
    "\"join-tokens\": {\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\": "
    "{\"expires\": 1700000000000}}, \"local-count\": 1, \"local-joins\": "
    "{\"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\": "
    "4611686018444165121}}";

static void test_site_state(void **state)
{
        ROUND_TRIP(site_state, sk_site_state, STATE, false);
        _cleanup_json_ json_t *in = load(STATE);
        _cleanup_site_state_ sk_site_state *s = NULL;
        assert_int_equal(sk_site_state_from_json(in, &s, NULL), 0);
        assert_null(s->desired);
        assert_non_null(sk_site_state_host(s, 2));
        assert_null(sk_site_state_host(s, 3));
        assert_int_equal(s->removed.items[0], 5);
        assert_int_equal(s->join_tokens.items[0].expires, 1700000000000LL);
        assert_int_equal(s->local_joins.items[0].host_id, 4611686018444165121LL);

        /* a snapshot from before removals and site-local joins */
        _cleanup_json_ json_t *old = load("{\"desired\": null, \"hosts\": {}, "
                                          "\"placements\": [], \"unplaced\": []}");
        _cleanup_site_state_ sk_site_state *o = NULL;
        assert_int_equal(sk_site_state_from_json(old, &o, NULL), 0);
        assert_int_equal(o->removed.n, 0);
        assert_int_equal(o->local_count, 0);
        _cleanup_json_ json_t *out = sk_site_state_to_json(o);
        assert_true(json_is_null(json_object_get(out, "desired")));
        assert_true(json_is_array(json_object_get(out, "removed")));

        /* a host is listed under its own id */
        json_t *hosts = json_object_get(in, "hosts");
        json_object_set(hosts, "3", json_object_get(hosts, "2"));
        json_object_del(hosts, "2");
        _cleanup_error_ sk_error *err = NULL;
        sk_site_state *bad = NULL;
        expect_error(sk_site_state_from_json(in, &bad, &err), &err, "hosts.3",
                     "must be listed under its own id");
}

static void test_site_commands(void **state)
{
        static const char *const ok[] = {
            "{\"op\": \"host\", \"host\": {\"id\": 1, \"name\": \"h1\", \"capacity\": "
            "{\"cpu\": 1, \"memory\": 1}}}",
            "{\"op\": \"host-remove\", \"id\": 3}",
            "{\"op\": \"sched\", \"placements\": [], \"unplaced\": [{\"instance\": "
            "\"t/d/s\", \"tenant\": \"t\", \"deployment\": \"d\", \"service\": \"s\", "
            "\"host\": \"h1\", \"reason\": \"no host fits\"}]}",
            "{\"op\": \"join-token\", \"hash\": "
            "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", "
            "\"expires\": 20, \"now\": 10}",
            "{\"op\": \"join-use\", \"hash\": "
            "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", \"now\": 10, "
            "\"site-id\": 7}",
            "{\"op\": \"site-ca\", \"generation\": 2, \"certificate\": \"-----BEGIN "
            "CERTIFICATE-----\\nMII\\n\", \"key\": \"-----BEGIN PRIVATE KEY-----\\nMII\\n\", "
            "\"sha256\": \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(ok); i++)
                ROUND_TRIP(site_command, sk_site_command, ok[i], false);

        _cleanup_json_ json_t *d = json_pack("{s:s, s:o}", "op", "desired", "doc", load(DESIRED));
        _cleanup_site_command_ sk_site_command *c = NULL;
        assert_int_equal(sk_site_command_from_json(d, &c, NULL), 0);
        assert_int_equal(c->op, SK_SITE_OP_DESIRED);
        assert_int_equal(c->doc->generation, 12);
        assert_int_equal(c->id, SK_UNSET);

        static const struct {
                const char *text, *path, *needle;
        } bad[] = {
            {"{\"op\": \"host-remove\"}", "id", "is required for op host-remove"},
            {"{\"op\": \"host-remove\", \"id\": 3, \"now\": 1}", "now",
             "does not belong to op host-remove"},
            {"{\"op\": \"sched\", \"placements\": []}", "unplaced", "is required"},
            {"{\"op\": \"host\", \"host\": {\"name\": \"h1\", \"capacity\": {\"cpu\": 1, "
             "\"memory\": 1}}}",
             "host.id", "is required"},
            {"{\"op\": \"join-use\", \"hash\": \"ab\", \"now\": 1, \"site-id\": 1}", "hash",
             "64 lowercase hex"},
            {"{\"op\": \"explode\"}", "op", "must be desired, host"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
                _cleanup_json_ json_t *in = load(bad[i].text);
                _cleanup_error_ sk_error *err = NULL;
                sk_site_command *x = NULL;
                expect_error(sk_site_command_from_json(in, &x, &err), &err, bad[i].path,
                             bad[i].needle);
        }
}

static void test_app_values(void **state)
{
        _cleanup_json_ json_t *in = load(FULL_APP);
        _cleanup_app_ sk_app *app = NULL;
        assert_int_equal(sk_app_from_json(in, &app, NULL), 0);
        assert_string_equal(app->name, "pos");
        assert_int_equal(app->services.n, 3);

        const sk_service *api = sk_app_service(app, "api");
        assert_non_null(api);
        assert_int_equal(api->replicas, 2);
        assert_int_equal(api->mode, SK_UNSET);
        assert_int_equal(api->resources->cpu.value, 500);
        assert_int_equal(api->resources->memory.value, 256 * 1024 * 1024);
        assert_int_equal(api->network->outbound, SK_OUTBOUND_ALLOW);
        assert_int_equal(api->network->ingress.n, 2);
        assert_int_equal(api->network->ingress.items[0].protocol, SK_PROTOCOL_TCP);
        assert_int_equal(api->network->ingress.items[1].protocol, SK_PROTOCOL_UDP);
        assert_string_equal(api->placement->devices.items[0], "camera");
        assert_string_equal(api->variables.items[0].from_secret->key, "password");
        assert_non_null(api->volumes.items[0].persistent);
        assert_int_equal(api->volumes.items[0].persistent->size.value, 1LL << 30);
        assert_null(api->volumes.items[1].persistent);
        assert_null(api->volumes.items[1].secret->key);

        const sk_app_container *c = &api->containers.items[0];
        assert_int_equal(c->cmd.n, 3);
        assert_string_equal(c->cmd.items[2], "8080");
        assert_string_equal(sk_kvs_get(&c->env, "N"), "3");
        assert_string_equal(sk_kvs_get(&c->env, "DB"), "${DB_PASSWORD}");
        assert_null(sk_kvs_get(&c->env, "nope"));
        assert_string_equal(c->mounts.items[1].volume, "creds");
        assert_int_equal(c->probes->liveness->http->port, 8080);
        assert_int_equal(c->probes->liveness->period.ms, 5000);
        assert_int_equal(c->probes->liveness->failure_threshold, 3);
        assert_int_equal(c->probes->readiness->tcp->port, 8080);
        assert_int_equal(c->probes->readiness->failure_threshold, SK_UNSET);
        assert_null(c->probes->readiness->period.text);
        assert_int_equal(c->restart, SK_APP_RESTART_ON_FAILURE);

        /* the placement expression is compiled with the document */
        _cleanup_json_ json_t *till = json_pack("{s:s}", "role", "till");
        _cleanup_json_ json_t *other = json_pack("{s:s}", "role", "kiosk");
        assert_true(sk_expr_match(api->placement->match_host_labels.expr, till));
        assert_false(sk_expr_match(api->placement->match_host_labels.expr, other));

        const sk_service *agent = sk_app_service(app, "agent");
        assert_int_equal(agent->mode, SK_SERVICE_MODE_ONE_PER_HOST);
        assert_int_equal(agent->replicas, SK_UNSET);
        assert_int_equal(agent->resources->cpu.value, 500);
        assert_int_equal(agent->resources->cpu.spelling, SK_SPELLING_REAL);
        assert_int_equal(agent->network->outbound, SK_OUTBOUND_DENY); /* the default */
        assert_null(agent->network->ingress.items);                   /* absent */
        assert_null(agent->placement);
        assert_int_equal(agent->containers.items[0].restart, SK_APP_RESTART_ALWAYS);
        assert_null(agent->containers.items[0].cmd.items);

        const sk_service *batch = sk_app_service(app, "batch");
        assert_int_equal(batch->replicas, 0);
        assert_int_equal(batch->resources->cpu.value, 2000);
        assert_int_equal(batch->resources->memory.spelling, SK_SPELLING_NONE);
        assert_non_null(batch->network->ingress.items); /* set, and empty */
        assert_int_equal(batch->network->ingress.n, 0);
        assert_non_null(batch->containers.items[0].env.items);
        assert_int_equal(batch->containers.items[0].env.n, 0);
        assert_null(sk_app_service(app, "nope"));
}

static void test_expressions_compiled(void **state)
{
        _cleanup_json_ json_t *in = load(FULL_DEPLOYMENT);
        _cleanup_deployment_ sk_deployment *d = NULL;
        assert_int_equal(sk_deployment_from_json(in, &d, NULL), 0);
        assert_string_equal(d->sites.text, "chain = acme and region in (north, west)");
        _cleanup_json_ json_t *north = json_pack("{s:s, s:s}", "chain", "acme", "region", "north");
        _cleanup_json_ json_t *south = json_pack("{s:s, s:s}", "chain", "acme", "region", "south");
        assert_true(sk_expr_match(d->sites.expr, north));
        assert_false(sk_expr_match(d->sites.expr, south));
        _cleanup_json_ json_t *store = json_pack("{s:s}", "system/name", "store-001");
        assert_true(sk_expr_match(d->strategy->canary->sites.expr, store));
        assert_int_equal(d->strategy->canary->healthy_time.ms, 600000);
        assert_int_equal(d->strategy->sites_in_parallel, 50);
        assert_int_equal(d->strategy->on_failure, SK_ON_FAILURE_ROLLBACK);

        _cleanup_json_ json_t *tin = load(FULL_TENANT);
        _cleanup_tenant_ sk_tenant *t = NULL;
        assert_int_equal(sk_tenant_from_json(tin, &t, NULL), 0);
        assert_int_equal(t->type, SK_TENANT_APPLICATION);
        assert_string_equal(t->parent, "retail");
        assert_true(sk_expr_match(t->sites.expr, north));
        assert_int_equal(t->quota_per_site->cpu.value, 4000);
        assert_int_equal(t->quota_per_site->memory.value, 8LL << 30);
        assert_int_equal(t->quota_per_site->instances, 20);

        _cleanup_json_ json_t *pin = load("kind: tenant\nname: retail\ntype: provider\n");
        _cleanup_tenant_ sk_tenant *p = NULL;
        assert_int_equal(sk_tenant_from_json(pin, &p, NULL), 0);
        assert_int_equal(p->type, SK_TENANT_PROVIDER);
        assert_null(p->sites.expr);
        assert_null(p->quota_per_site);
}

static void test_site_values(void **state)
{
        _cleanup_json_ json_t *in = load(FULL_SITE);
        _cleanup_site_ sk_site *s = NULL;
        assert_int_equal(sk_site_from_json(in, &s, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(s->labels, "floor-size")), "3");
        assert_string_equal(json_string_value(json_object_get(s->labels, "open")), "true");
        assert_int_equal(s->devices.n, 2);
        assert_string_equal(s->devices.items[0].match, "/dev/video*");
        assert_null(s->devices.items[0].udev.items);
        assert_null(s->devices.items[1].match);
        assert_string_equal(sk_kvs_get(&s->devices.items[1].udev, "ID_VENDOR_ID"), "10de");
        assert_int_equal(s->host_lost_after.ms, 2000);
        assert_null(s->tenant);

        _cleanup_json_ json_t *min = load("kind: site\nname: s\n");
        _cleanup_site_ sk_site *m = NULL;
        assert_int_equal(sk_site_from_json(min, &m, NULL), 0);
        assert_int_equal(m->host_lost_after.ms, 5000);
        assert_int_equal(json_object_size(m->labels), 0);
}

static void test_equal_sees_changes(void **state)
{
        _cleanup_json_ json_t *a = load(MIN_APP);
        _cleanup_json_ json_t *b = load(MIN_APP);
        json_object_set_new(json_array_get(json_object_get(b, "services"), 0), "replicas",
                            json_integer(3));
        _cleanup_app_ sk_app *x = NULL;
        _cleanup_app_ sk_app *y = NULL;
        assert_int_equal(sk_app_from_json(a, &x, NULL), 0);
        assert_int_equal(sk_app_from_json(b, &y, NULL), 0);
        assert_true(sk_app_equal(x, x));
        assert_false(sk_app_equal(x, y));

        /* the same cpu written two ways is kept as written, and so differs */
        _cleanup_json_ json_t *c = load("{\"cpu\": 0.5}");
        _cleanup_json_ json_t *d = load("{\"cpu\": \"500m\"}");
        json_t *svc_a = json_array_get(json_object_get(a, "services"), 0);
        json_object_set(svc_a, "resources", c);
        _cleanup_app_ sk_app *p = NULL;
        assert_int_equal(sk_app_from_json(a, &p, NULL), 0);
        json_object_set(svc_a, "resources", d);
        _cleanup_app_ sk_app *q = NULL;
        assert_int_equal(sk_app_from_json(a, &q, NULL), 0);
        assert_int_equal(p->services.items[0].resources->cpu.value,
                         q->services.items[0].resources->cpu.value);
        assert_false(sk_app_equal(p, q));

        /* an absent list differs from an empty one */
        _cleanup_json_ json_t *e = load("kind: site\nname: s\n");
        _cleanup_json_ json_t *f = load("kind: site\nname: s\ndevices: []\n");
        _cleanup_site_ sk_site *s1 = NULL;
        _cleanup_site_ sk_site *s2 = NULL;
        assert_int_equal(sk_site_from_json(e, &s1, NULL), 0);
        assert_int_equal(sk_site_from_json(f, &s2, NULL), 0);
        assert_false(sk_site_equal(s1, s2));
}

static void test_desired_doc(void **state)
{
        _cleanup_json_ json_t *in = load(DESIRED);
        _cleanup_desired_doc_ sk_desired_doc *d = NULL;
        assert_int_equal(sk_desired_doc_from_json(in, &d, NULL), 0);
        assert_int_equal(d->generation, 12);
        assert_string_equal(d->site.name, "store-001");
        assert_string_equal(d->site.tenant, "default");
        assert_int_equal(d->site.host_lost_after.ms, 5000);
        assert_int_equal(d->deployments.n, 2);

        const sk_desired_deployment *mon = sk_desired_doc_deployment(d, "acme-apps", "mon");
        assert_non_null(mon);
        assert_string_equal(mon->version, "1");
        assert_int_equal(mon->spec.services.items[0].mode, SK_SERVICE_MODE_ONE_PER_HOST);
        assert_null(sk_desired_doc_deployment(d, "default", "mon"));

        const sk_site_quota *q = sk_desired_doc_quota(d, "acme-apps");
        assert_non_null(q);
        assert_int_equal(q->cpu_millicores, 4000);
        assert_int_equal(q->memory_bytes, 8589934592LL);
        assert_int_equal(q->instances, SK_UNSET);
        assert_null(sk_desired_doc_quota(d, "default"));
        assert_true(sk_desired_doc_removed(d, 9));
        assert_false(sk_desired_doc_removed(d, 8));

        /* a spec without kind is an application; the written document names it */
        _cleanup_json_ json_t *out = sk_desired_doc_to_json(d);
        json_t *spec =
            json_object_get(json_array_get(json_object_get(out, "deployments"), 1), "spec");
        assert_string_equal(json_string_value(json_object_get(spec, "kind")), "application");
        _cleanup_json_ json_t *q_out = json_object_get(json_object_get(out, "quotas"), "acme-apps");
        json_incref(q_out);
        assert_null(json_object_get(q_out, "instances"));

        /* errors name the field inside the document */
        json_t *svc = json_array_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(in, "deployments"), 0), "spec"),
                "services"),
            0);
        json_object_set_new(svc, "replicas", json_integer(1001));
        _cleanup_error_ sk_error *err = NULL;
        sk_desired_doc *bad = NULL;
        expect_error(sk_desired_doc_from_json(in, &bad, &err), &err,
                     "deployments[0].spec.services[0].replicas", "from 0 to 1000");
        assert_null(bad);
        sk_error_free(&err);
        json_object_set_new(svc, "replicas", json_integer(1));

        json_object_set_new(
            json_object_get(json_array_get(json_object_get(in, "deployments"), 1), "spec"), "kind",
            json_string("site"));
        expect_error(sk_desired_doc_from_json(in, &bad, &err), &err, "deployments[1].spec.kind",
                     "must be application here");
        sk_error_free(&err);
        json_object_del(
            json_object_get(json_array_get(json_object_get(in, "deployments"), 1), "spec"), "kind");

        json_object_set_new(json_object_get(in, "quotas"), "Bad", json_object());
        expect_error(sk_desired_doc_from_json(in, &bad, &err), &err, "quotas.Bad", "DNS label");
        sk_error_free(&err);
        json_object_del(json_object_get(in, "quotas"), "Bad");

        json_array_append_new(json_object_get(in, "removed-hosts"), json_integer(0));
        expect_error(sk_desired_doc_from_json(in, &bad, &err), &err, "removed-hosts[2]",
                     "from 1 to");
        sk_error_free(&err);
        json_array_remove(json_object_get(in, "removed-hosts"), 2);

        json_object_set_new(in, "extra", json_true());
        expect_error(sk_desired_doc_from_json(in, &bad, &err), &err, "extra", "unknown field");
}

/* What the tower sends (applications as sk_spec_validate normalised them) is written back
 * exactly as it came: hashes over it (the spec hash of a placement, the tower's document
 * hash) do not change when the site moves to the structs. */
static void test_desired_doc_written_as_sent(void **state)
{
        _cleanup_json_ json_t *app = load(FULL_APP);
        _cleanup_json_ json_t *spec = NULL;
        assert_int_equal(sk_spec_validate(app, &spec, NULL), 0);
        _cleanup_json_ json_t *doc =
            json_pack("{s:I, s:{s:s, s:s, s:{}, s:s}, s:[{s:s, s:s, s:s, s:s, s:O}]}", "generation",
                      (json_int_t)3, "site", "name", "s1", "tenant", "default", "labels",
                      "host-lost-after", "5s", "deployments", "tenant", "default", "name", "d",
                      "application", "pos", "version", "2.1.0", "spec", spec);
        assert_non_null(doc);
        _cleanup_desired_doc_ sk_desired_doc *d = NULL;
        assert_int_equal(sk_desired_doc_from_json(doc, &d, NULL), 0);
        _cleanup_json_ json_t *out = sk_desired_doc_to_json(d);
        _cleanup_free_ char *a = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        _cleanup_free_ char *b = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(a, b);
}

static void test_host(void **state)
{
        _cleanup_json_ json_t *in = load(HOST);
        _cleanup_host_ sk_host *h = NULL;
        assert_int_equal(sk_host_from_json(in, &h, NULL), 0);
        assert_int_equal(h->id, 2);
        assert_string_equal(h->address, "127.0.0.1:7002");
        assert_false(h->alive);
        assert_int_equal(h->capacity.cpu_millicores, 4000);
        assert_int_equal(h->capacity.memory_bytes, 8589934592LL);
        assert_string_equal(json_string_value(json_object_get(h->labels, "device/camera")), "1");
        const sk_device_class *cam = sk_host_device(h, "camera");
        assert_non_null(cam);
        assert_int_equal(cam->nodes.n, 1);
        assert_string_equal(cam->nodes.items[0].host_path, "/tmp/d/video0");
        assert_int_equal(cam->nodes.items[0].type, SK_DEVICE_CHAR);
        assert_int_equal(cam->nodes.items[0].major, 81);
        assert_null(sk_host_device(h, "gpu"));

        _cleanup_json_ json_t *min = load("{\"name\": \"h1\", \"capacity\": {\"cpu\": 1, "
                                          "\"memory\": 2}}");
        _cleanup_host_ sk_host *m = NULL;
        assert_int_equal(sk_host_from_json(min, &m, NULL), 0);
        assert_true(m->alive); /* the default */
        assert_int_equal(m->id, SK_UNSET);
        assert_null(m->labels);

        _cleanup_error_ sk_error *err = NULL;
        sk_host *bad = NULL;
        json_object_set_new(json_object_get(min, "capacity"), "cpu", json_integer(-1));
        expect_error(sk_host_from_json(min, &bad, &err), &err, "capacity.cpu", "integer");
        sk_error_free(&err);
        json_object_set_new(json_object_get(min, "capacity"), "cpu", json_integer(1));
        json_object_set_new(min, "labels", json_pack("{s:i}", "a", 1));
        expect_error(sk_host_from_json(min, &bad, &err), &err, "labels.a", "must be a string");
}

static void test_instance_ids(void **state)
{
        sk_instance_id id;
        assert_int_equal(sk_instance_id_parse("acme/pos/api/12", &id), 0);
        assert_string_equal(id.tenant, "acme");
        assert_string_equal(id.deployment, "pos");
        assert_string_equal(id.service, "api");
        assert_int_equal(id.replica, 12);
        _cleanup_free_ char *s = sk_instance_id_format(&id);
        assert_string_equal(s, "acme/pos/api/12");
        sk_instance_id_clear(&id);

        assert_int_equal(sk_instance_id_parse("acme/pos/agent", &id), 0);
        assert_int_equal(id.replica, SK_UNSET);
        _cleanup_free_ char *s2 = sk_instance_id_format(&id);
        assert_string_equal(s2, "acme/pos/agent");
        sk_instance_id_clear(&id);

        static const char *const bad[] = {
            "",         "acme",      "acme/pos", "acme/pos/",  "acme/pos/api/", "acme/pos/api/x",
            "a/b/c/01", "a/b/c/1/2", "A/b/c/1",  "a/b/c/1000", "a/b/c/-1",      "a//c/1"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++)
                if (sk_instance_id_parse(bad[i], &id) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(sk_instance_id_parse(NULL, &id), -EINVAL);
}

static void test_instance_status(void **state)
{
        _cleanup_json_ json_t *in = load(STATUS);
        sk_instance_status *s = NULL;
        assert_int_equal(sk_instance_status_from_json(in, &s, NULL), 0);
        assert_int_equal(s->state, SK_STATE_RUNNING);
        assert_int_equal(s->replica, 0);
        assert_int_equal(s->containers.n, 1);
        assert_int_equal(s->containers.items[0].state, SK_STATE_RUNNING);
        assert_string_equal(sk_instance_state_name(s->state), "running");
        sk_instance_status_free(s);

        _cleanup_json_ json_t *un = load(UNPLACEABLE);
        assert_int_equal(sk_instance_status_from_json(un, &s, NULL), 0);
        assert_int_equal(s->state, SK_STATE_UNPLACEABLE);
        assert_int_equal(s->replica, SK_UNSET);
        assert_non_null(s->containers.items);
        assert_int_equal(s->containers.n, 0);
        sk_instance_status_free(s);

        _cleanup_error_ sk_error *err = NULL;
        json_object_set_new(in, "state", json_string("dancing"));
        expect_error(sk_instance_status_from_json(in, &s, &err), &err, "state",
                     "must be pending, starting, running");
}

/* A model's error path leads to the line and column of the YAML it came from. */
static void test_error_position(void **state)
{
        const char text[] = "kind: application\nname: pos\nversion: \"1\"\nservices:\n"
                            "  - name: api\n"
                            "    containers:\n"
                            "      - {name: api, image: busybox, mounts: [{volume: nope, "
                            "path: /x}]}\n";
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_yaml_load(text, strlen(text), &docs, &err), 0);
        sk_app *app = NULL;
        expect_error(sk_app_from_json(docs.docs[0].value, &app, &err), &err,
                     "services[0].containers[0].mounts[0].volume",
                     "must name a volume declared in services[0].volumes");
        int line, col;
        assert_int_equal(sk_yaml_doc_position(&docs.docs[0], err->path, &line, &col), 0);
        assert_int_equal(line, 7);
        assert_int_equal(col, 55); /* "nope" */
}

static void test_free_null(void **state)
{
        sk_app_free(NULL);
        sk_deployment_free(NULL);
        sk_site_free(NULL);
        sk_tenant_free(NULL);
        sk_user_free(NULL);
        sk_vault_free(NULL);
        sk_secret_free(NULL);
        sk_host_free(NULL);
        sk_placement_free(NULL);
        sk_unplaced_free(NULL);
        sk_instance_status_free(NULL);
        sk_desired_doc_free(NULL);
        sk_site_state_free(NULL);
        sk_site_command_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip_resources),
            cmocka_unit_test(test_round_trip_site_documents),
            cmocka_unit_test(test_app_values),
            cmocka_unit_test(test_expressions_compiled),
            cmocka_unit_test(test_site_values),
            cmocka_unit_test(test_equal_sees_changes),
            cmocka_unit_test(test_desired_doc),
            cmocka_unit_test(test_desired_doc_written_as_sent),
            cmocka_unit_test(test_host),
            cmocka_unit_test(test_instance_ids),
            cmocka_unit_test(test_instance_status),
            cmocka_unit_test(test_site_state),
            cmocka_unit_test(test_site_commands),
            cmocka_unit_test(test_error_position),
            cmocka_unit_test(test_free_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
