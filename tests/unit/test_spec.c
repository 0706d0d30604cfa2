#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/spec.h"

#define APP_HEAD      "kind: application\nname: pos\nversion: \"2.1.0\"\n"
#define SVC_HEAD      APP_HEAD "services:\n  - name: api\n"
#define ONE_CONTAINER "    containers: [{name: api, image: busybox}]\n"

/* Validates the single document in text; returns the normalised value or NULL with err. */
static json_t *validate(const char *text, sk_error **err)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        if (sk_yaml_load(text, strlen(text), &docs, err) < 0)
                fail_msg("test input does not load: %s", (*err)->msg);
        assert_int_equal(docs.n, 1);
        json_t *out = NULL;
        int r = sk_spec_validate(docs.docs[0].value, &out, err);
        assert_true((r == 0) == (out != NULL));
        return out;
}

static json_t *valid(const char *text)
{
        _cleanup_error_ sk_error *err = NULL;
        json_t *out = validate(text, &err);
        if (!out)
                fail_msg("unexpected error at %s: %s", err->path, err->msg);
        return out;
}

static void invalid(const char *text, const char *path, const char *needle)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *out = validate(text, &err);
        if (out)
                fail_msg("accepted, want an error at %s:\n%s", path, text);
        assert_non_null(err);
        assert_int_equal(err->code, EINVAL);
        if (!err->path || strcmp(err->path, path))
                fail_msg("error at \"%s\" (%s), want \"%s\"", err->path ? err->path : "(none)",
                         err->msg, path);
        if (!strstr(err->msg, needle))
                fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
}

static const char *str_at(json_t *v, const char *a, const char *b)
{
        json_t *x = json_object_get(v, a);
        return json_string_value(b ? json_object_get(x, b) : x);
}

static void test_kinds(void **state)
{
        const struct {
                const char *word;
                sk_kind kind;
        } cases[] = {
            {"tenant", SK_KIND_TENANT},
            {"tenants", SK_KIND_TENANT},
            {"user", SK_KIND_USER},
            {"site", SK_KIND_SITE},
            {"hosts", SK_KIND_HOST},
            {"app", SK_KIND_APPLICATION},
            {"apps", SK_KIND_APPLICATION},
            {"applications", SK_KIND_APPLICATION},
            {"Application", SK_KIND_APPLICATION},
            {"deployment", SK_KIND_DEPLOYMENT},
            {"vaults", SK_KIND_VAULT},
            {"secret", SK_KIND_SECRET},
            {"instances", SK_KIND_INSTANCE},
            {"alert", SK_KIND_ALERT},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                const sk_kind_info *k = sk_kind_lookup(cases[i].word);
                assert_non_null(k);
                assert_int_equal(k->kind, cases[i].kind);
                assert_ptr_equal(sk_kind_get(k->kind), k);
        }
        assert_null(sk_kind_lookup("pod"));
        assert_null(sk_kind_lookup("ap"));
        assert_null(sk_kind_lookup(NULL));
        assert_null(sk_kind_get(SK_KIND_COUNT));
        int appliable = 0;
        for (int k = 0; k < SK_KIND_COUNT; k++)
                appliable += sk_kind_get((sk_kind)k)->appliable;
        assert_int_equal(appliable, 7);
        assert_false(sk_kind_lookup("host")->appliable);
        assert_string_equal(sk_kind_lookup("apps")->plural, "applications");
}

static void test_names(void **state)
{
        assert_true(sk_spec_valid_name("store-001"));
        assert_true(sk_spec_valid_name("a"));
        assert_false(sk_spec_valid_name(""));
        assert_false(sk_spec_valid_name("-a"));
        assert_false(sk_spec_valid_name("a-"));
        assert_false(sk_spec_valid_name("Store"));
        assert_false(sk_spec_valid_name("a_b"));
        char long_name[65];
        memset(long_name, 'a', 64);
        long_name[64] = '\0';
        assert_false(sk_spec_valid_name(long_name));
        long_name[63] = '\0';
        assert_true(sk_spec_valid_name(long_name));

        assert_true(sk_spec_valid_label_key("chain"));
        assert_true(sk_spec_valid_label_key("floor-size"));
        assert_true(sk_spec_valid_label_key("example.com/Tier_1"));
        assert_true(sk_spec_valid_label_key("system/name"));
        assert_false(sk_spec_valid_label_key("-x"));
        assert_false(sk_spec_valid_label_key("x/"));
        assert_false(sk_spec_valid_label_key("Ex.com/x"));
        assert_false(sk_spec_valid_label_key("a b"));
        assert_false(sk_spec_valid_label_key("a/b/c"));
}

static void test_quantities(void **state)
{
        const struct {
                const char *json;
                int64_t want; /* -1: invalid */
        } cpu[] = {{"0.5", 500},     {"2", 2000},    {"\"500m\"", 500}, {"\"0.25\"", 250},
                   {"\"3\"", 3000},  {"0", 0},       {"-1", -1},        {"\"m\"", -1},
                   {"\"1.5m\"", -1}, {"0.0001", -1}, {"true", -1},      {"\"2 \"", -1},
                   {"1000001", -1}},
          mem[] = {{"1000", 1000},
                   {"\"256Mi\"", 256LL << 20},
                   {"\"1Gi\"", 1LL << 30},
                   {"\"1G\"", 1000000000},
                   {"\"1.5Gi\"", 3LL << 29},
                   {"\"10k\"", 10000},
                   {"\"8Ei\"", -1},
                   {"\"1.5\"", -1},
                   {"\"1Gb\"", -1},
                   {"\"-1\"", -1},
                   {"-5", -1},
                   {"\"\"", -1},
                   {"\"Gi\"", -1}};
        for (size_t i = 0; i < SK_ARRAY_SIZE(cpu); i++) {
                _cleanup_json_ json_t *v = json_loads(cpu[i].json, JSON_DECODE_ANY, NULL);
                int64_t got = -1;
                int r = sk_quantity_cpu(v, &got);
                if (cpu[i].want < 0 ? r != -EINVAL : (r != 0 || got != cpu[i].want))
                        fail_msg("cpu %s: r=%d got %lld", cpu[i].json, r, (long long)got);
        }
        for (size_t i = 0; i < SK_ARRAY_SIZE(mem); i++) {
                _cleanup_json_ json_t *v = json_loads(mem[i].json, JSON_DECODE_ANY, NULL);
                int64_t got = -1;
                int r = sk_quantity_memory(v, &got);
                if (mem[i].want < 0 ? r != -EINVAL : (r != 0 || got != mem[i].want))
                        fail_msg("memory %s: r=%d got %lld", mem[i].json, r, (long long)got);
        }
}

static void test_durations(void **state)
{
        const struct {
                const char *text;
                int64_t want;
        } cases[] = {
            {"5s", 5000},    {"10m", 600000},   {"1h30m", 5400000}, {"250ms", 250},
            {"1.5s", 1500},  {"2d", 172800000}, {"0", 0},           {"1m30s500ms", 90500},
            {"", -1},        {"5", -1},         {"5x", -1},         {"-5s", -1},
            {"1.0005s", -1}, {"s", -1},         {"5s ", -1},        {"99999999999999h", -1}};
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                int64_t got = -1;
                int r = sk_duration_ms(cases[i].text, &got);
                if (cases[i].want < 0 ? r != -EINVAL : (r != 0 || got != cases[i].want))
                        fail_msg("duration \"%s\": r=%d got %lld", cases[i].text, r,
                                 (long long)got);
        }
}

static void test_version_compare(void **state)
{
        assert_true(sk_version_compare("2.1.0", "2.10.0") < 0);
        assert_true(sk_version_compare("2.10.0", "2.9.9") > 0);
        assert_int_equal(sk_version_compare("1.0", "1.0"), 0);
        assert_int_equal(sk_version_compare("1.01", "1.1"), 0);
        assert_true(sk_version_compare("1.0", "1.0.1") < 0);
        assert_true(sk_version_compare("1.0.0", "1.0") > 0);
        assert_true(sk_version_compare("1.0.rc1", "1.0.rc2") < 0);
        assert_true(sk_version_compare("1.b", "1.a") > 0);
        assert_true(sk_version_compare("99999999999999999999999", "100000000000000000000000") < 0);
}

static void test_application_defaults(void **state)
{
        _cleanup_json_ json_t *out =
            valid("kind: app\nname: pos\nversion: 1.0.0-rc.1+build\n"
                  "services:\n"
                  "  - name: api\n" ONE_CONTAINER "  - name: agent\n    mode: one-per-host\n"
                  "    network: {ingress: [{port: 80}]}\n" ONE_CONTAINER);
        assert_string_equal(str_at(out, "kind", NULL), "application");
        json_t *api = json_array_get(json_object_get(out, "services"), 0);
        json_t *agent = json_array_get(json_object_get(out, "services"), 1);
        assert_int_equal(json_integer_value(json_object_get(api, "replicas")), 1);
        assert_string_equal(str_at(api, "network", "outbound"), "deny");
        json_t *c = json_array_get(json_object_get(api, "containers"), 0);
        assert_string_equal(str_at(c, "restart", NULL), "always");
        assert_null(json_object_get(agent, "replicas"));
        assert_string_equal(str_at(agent, "mode", NULL), "one-per-host");
        assert_string_equal(str_at(agent, "network", "outbound"), "deny");
        json_t *port =
            json_array_get(json_object_get(json_object_get(agent, "network"), "ingress"), 0);
        assert_string_equal(str_at(port, "protocol", NULL), "tcp");
}

static void test_application_full(void **state)
{
        _cleanup_json_ json_t *out = valid(
            SVC_HEAD "    replicas: 0\n"
                     "    placement: {match-host-labels: role = till, devices: [camera]}\n"
                     "    resources: {cpu: 0.5, memory: 256Mi}\n"
                     "    network:\n"
                     "      ingress: [{port: 8080, protocol: tcp}, {port: 8080, protocol: udp}]\n"
                     "      outbound: allow\n"
                     "    variables:\n"
                     "      - name: DB_PASSWORD\n"
                     "        from-secret: {vault: pos, secret: db, key: password}\n"
                     "    volumes:\n"
                     "      - {name: data, persistent: {size: 1Gi}}\n"
                     "      - {name: creds, secret: {vault: pos, secret: db}}\n"
                     "    containers:\n"
                     "      - name: api\n"
                     "        image: registry.example.com/pos/api:2.1.0\n"
                     "        cmd: [\"/bin/api\", \"--port\", \"8080\"]\n"
                     "        env: {LOG_LEVEL: info, DB: \"x${DB_PASSWORD}y$${NOT}\", N: 3, B: "
                     "true}\n"
                     "        mounts: [{volume: data, path: /var/lib/pos}, {volume: creds, "
                     "path: /run/secrets/db}]\n"
                     "        devices: [camera]\n"
                     "        probes:\n"
                     "          liveness: {http: {path: /healthz, port: 8080}, period: 5s, "
                     "failure-threshold: 3}\n"
                     "          readiness: {tcp: {port: 8080}}\n"
                     "        restart: on-failure\n");
        json_t *svc = json_array_get(json_object_get(out, "services"), 0);
        assert_int_equal(json_integer_value(json_object_get(svc, "replicas")), 0);
        assert_string_equal(str_at(svc, "network", "outbound"), "allow");
        json_t *c = json_array_get(json_object_get(svc, "containers"), 0);
        assert_string_equal(str_at(c, "env", "N"), "3");
        assert_string_equal(str_at(c, "env", "B"), "true");
        assert_string_equal(str_at(c, "restart", NULL), "on-failure");
}

static void test_application_errors(void **state)
{
        invalid("name: pos\n", "kind", "is required");
        invalid("kind: pod\nname: x\n", "kind", "must be one of");
        invalid("kind: host\nname: x\n", "kind", "cannot be applied");
        invalid("kind: app\nversion: \"1\"\nservices: []\n", "name", "is required");
        invalid("kind: app\nname: Pos\n", "name", "must be a DNS label");
        invalid("kind: app\nname: pos\nservices: []\n", "version", "is required");
        invalid("kind: app\nname: pos\nversion: 1.0\nservices: []\n", "version",
                "must be a version string");
        invalid("kind: app\nname: pos\nversion: \"a b\"\n", "version", "must be a version");
        invalid(APP_HEAD, "services", "is required");
        invalid(APP_HEAD "services: []\n", "services", "must be a list of 1 to 64 services");
        invalid(APP_HEAD "colour: red\n", "colour", "unknown field");
        invalid(APP_HEAD "services: [{name: api}]\n", "services[0].containers", "is required");
        invalid(SVC_HEAD ONE_CONTAINER "    replicas: 1001\n", "services[0].replicas",
                "must be an integer from 0 to 1000");
        invalid(SVC_HEAD ONE_CONTAINER "    replicas: \"2\"\n", "services[0].replicas",
                "must be an integer");
        invalid(SVC_HEAD ONE_CONTAINER "    replicas: 2\n    mode: one-per-host\n",
                "services[0].mode", "must not be set together with replicas");
        invalid(SVC_HEAD ONE_CONTAINER "    mode: many\n", "services[0].mode",
                "must be one-per-host");
        invalid(SVC_HEAD ONE_CONTAINER "  - name: api\n" ONE_CONTAINER, "services[1].name",
                "must be unique");
        invalid(SVC_HEAD ONE_CONTAINER "    placement: {match-host-labels: \"role =\"}\n",
                "services[0].placement.match-host-labels", "must be a label expression");
        invalid(SVC_HEAD ONE_CONTAINER "    placement: {devices: [Camera]}\n",
                "services[0].placement.devices[0]", "must be a device label");
        invalid(SVC_HEAD ONE_CONTAINER "    placement: {devices: [cam, cam]}\n",
                "services[0].placement.devices[1]", "must be unique");
        invalid(SVC_HEAD ONE_CONTAINER "    resources: {cpu: lots}\n", "services[0].resources.cpu",
                "must be a CPU quantity");
        invalid(SVC_HEAD ONE_CONTAINER "    resources: {memory: 1GB}\n",
                "services[0].resources.memory", "must be a memory quantity");
        invalid(SVC_HEAD ONE_CONTAINER "    resources: {disk: 1Gi}\n", "services[0].resources.disk",
                "unknown field");
        invalid(SVC_HEAD ONE_CONTAINER "    network: {ingress: [{port: 0}]}\n",
                "services[0].network.ingress[0].port", "must be an integer from 1 to 65535");
        invalid(SVC_HEAD ONE_CONTAINER "    network: {ingress: [{port: 1, protocol: sctp}]}\n",
                "services[0].network.ingress[0].protocol", "must be tcp or udp");
        invalid(SVC_HEAD ONE_CONTAINER "    network: {ingress: [{port: 1}, {port: 1}]}\n",
                "services[0].network.ingress[1]", "must be unique");
        invalid(SVC_HEAD ONE_CONTAINER "    network: {outbound: open}\n",
                "services[0].network.outbound", "must be deny or allow");
        invalid(SVC_HEAD ONE_CONTAINER "    variables: [{name: 1X, from-secret: {vault: v, "
                                       "secret: s, key: k}}]\n",
                "services[0].variables[0].name", "must be a variable name");
        invalid(SVC_HEAD ONE_CONTAINER "    variables: [{name: X, from-secret: {vault: v, "
                                       "secret: s}}]\n",
                "services[0].variables[0].from-secret.key", "is required");
        invalid(SVC_HEAD ONE_CONTAINER "    variables: [{name: X, value: v}]\n",
                "services[0].variables[0].value", "unknown field");
        invalid(SVC_HEAD ONE_CONTAINER "    volumes: [{name: d}]\n", "services[0].volumes[0]",
                "must have exactly one of persistent and secret");
        invalid(SVC_HEAD ONE_CONTAINER "    volumes: [{name: d, persistent: {size: 1Gi}, secret: "
                                       "{vault: v, secret: s}}]\n",
                "services[0].volumes[0]", "exactly one");
        invalid(SVC_HEAD ONE_CONTAINER "    volumes: [{name: d, persistent: {size: big}}]\n",
                "services[0].volumes[0].persistent.size", "must be a memory quantity");
        invalid(SVC_HEAD ONE_CONTAINER "    volumes: [{name: d, persistent: {size: 1}}, {name: d, "
                                       "persistent: {size: 1}}]\n",
                "services[0].volumes[1].name", "must be unique");
        invalid(SVC_HEAD "    containers: []\n", "services[0].containers",
                "must be a list of 1 to 64 containers");
        invalid(SVC_HEAD "    containers: [{name: a, image: x}, {name: a, image: y}]\n",
                "services[0].containers[1].name", "must be unique");
        invalid(SVC_HEAD "    containers: [{name: a}]\n", "services[0].containers[0].image",
                "is required");
        invalid(SVC_HEAD "    containers: [{name: a, image: \"has space\"}]\n",
                "services[0].containers[0].image", "must be an image reference");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, cmd: /bin/sh}]\n",
                "services[0].containers[0].cmd", "must be a list");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, cmd: [a, 1]}]\n",
                "services[0].containers[0].cmd[1]", "must be a string");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, env: {A: \"${NOPE}\"}}]\n",
                "services[0].containers[0].env.A", "\"NOPE\" is not in services[0].variables");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, env: {A: \"${OPEN\"}}]\n",
                "services[0].containers[0].env.A", "must close every");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, env: {\"A.B\": x}}]\n",
                "services[0].containers[0].env[\"A.B\"]", "must be a variable name");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, env: {A: [1]}}]\n",
                "services[0].containers[0].env.A", "must be a string");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, mounts: [{volume: data, path: "
                         "/d}]}]\n",
                "services[0].containers[0].mounts[0].volume",
                "must name a volume declared in services[0].volumes");
        invalid(SVC_HEAD
                "    volumes: [{name: d, persistent: {size: 1Gi}}]\n"
                "    containers: [{name: a, image: x, mounts: [{volume: d, path: rel}]}]\n",
                "services[0].containers[0].mounts[0].path", "must be an absolute path");
        invalid(SVC_HEAD "    volumes: [{name: d, persistent: {size: 1Gi}}]\n"
                         "    containers: [{name: a, image: x, mounts: [{volume: d, path: /a}, "
                         "{volume: d, path: /a}]}]\n",
                "services[0].containers[0].mounts[1].path", "must be unique");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, probes: {liveness: {period: "
                         "5s}}}]\n",
                "services[0].containers[0].probes.liveness", "exactly one of http and tcp");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, probes: {readiness: {tcp: {port: "
                         "1}, period: 5}}}]\n",
                "services[0].containers[0].probes.readiness.period", "must be a duration");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, probes: {readiness: {http: {path: "
                         "x, port: 1}}}}]\n",
                "services[0].containers[0].probes.readiness.http.path",
                "must be a URL path starting with '/'");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, probes: {liveness: {tcp: {port: "
                         "1}, failure-threshold: 0}}}]\n",
                "services[0].containers[0].probes.liveness.failure-threshold",
                "must be an integer from 1 to 100");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, probes: {startup: {}}}]\n",
                "services[0].containers[0].probes.startup", "unknown field");
        invalid(SVC_HEAD "    containers: [{name: a, image: x, restart: sometimes}]\n",
                "services[0].containers[0].restart", "must be always, on-failure or never");
}

static void test_deployment(void **state)
{
        _cleanup_json_ json_t *out = valid("kind: deployment\nname: pos-stores\napplication: pos\n"
                                           "sites: chain = acme and region in (north, west)\n");
        assert_string_equal(str_at(out, "version", NULL), "*");
        _cleanup_json_ json_t *full =
            valid("kind: deployments\nname: d\napplication: pos\nversion: \"2.1.0\"\nsites: a\n"
                  "strategy:\n  canary: {sites: system/name = store-001, healthy-time: 10m}\n"
                  "  sites-in-parallel: 50\n  healthy-time: 60s\n  on-failure: rollback\n");
        assert_string_equal(str_at(full, "kind", NULL), "deployment");
        assert_string_equal(str_at(full, "version", NULL), "2.1.0");

        invalid("kind: deployment\nname: d\nsites: a\n", "application", "is required");
        invalid("kind: deployment\nname: d\napplication: a\n", "sites", "is required");
        invalid("kind: deployment\nname: d\napplication: a\nversion: \"2.*\"\nsites: a\n",
                "version", "must be \"*\" (the newest) or a version string");
        invalid("kind: deployment\nname: d\napplication: a\nsites: 42\n", "sites",
                "must be a label expression");
        invalid("kind: deployment\nname: d\napplication: a\nsites: a\n"
                "strategy: {canary: {healthy-time: 1m}}\n",
                "strategy.canary.sites", "is required");
        invalid("kind: deployment\nname: d\napplication: a\nsites: a\n"
                "strategy: {sites-in-parallel: 0}\n",
                "strategy.sites-in-parallel", "must be an integer from 1 to 100000");
        invalid("kind: deployment\nname: d\napplication: a\nsites: a\n"
                "strategy: {on-failure: panic}\n",
                "strategy.on-failure", "must be halt, continue or rollback");
        invalid("kind: deployment\nname: d\napplication: a\nsites: a\n"
                "strategy: {healthy-time: soon}\n",
                "strategy.healthy-time", "must be a duration");
}

static void test_expression_column(void **state)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *out =
            validate("kind: tenant\nname: t\nsites: chain = acme and (x\n", &err);
        assert_null(out);
        assert_string_equal(err->path, "sites");
        assert_int_equal(err->column, 18);
        assert_non_null(strstr(err->msg, "unclosed '('"));
}

static void test_site(void **state)
{
        _cleanup_json_ json_t *out = valid("kind: site\nname: store-001\n");
        assert_true(json_is_object(json_object_get(out, "labels")));
        assert_int_equal(json_object_size(json_object_get(out, "labels")), 0);
        assert_string_equal(str_at(out, "host-lost-after", NULL), "5s");

        _cleanup_json_ json_t *full =
            valid("kind: site\nname: s\n"
                  "labels: {chain: acme, floor-size: 3, open: true, ratio: 0.5, "
                  "example.com/tier: gold}\n"
                  "devices:\n  - {label: camera, match: /dev/video*}\n"
                  "  - {label: gpu, match: \"/dev/nvidia[0-9]*\"}\n"
                  "  - {label: scanner, udev: {ID_VENDOR_ID: 05e0}}\n"
                  "host-lost-after: 30s\n");
        assert_string_equal(str_at(full, "labels", "floor-size"), "3");
        assert_string_equal(str_at(full, "labels", "open"), "true");
        assert_string_equal(str_at(full, "labels", "ratio"), "0.5");

        invalid("kind: site\nname: s\nlabels: {system/name: x}\n", "labels[\"system/name\"]",
                "reserved");
        invalid("kind: site\nname: s\nlabels: {\"bad key\": x}\n", "labels[\"bad key\"]",
                "must be a label key");
        invalid("kind: site\nname: s\nlabels: {a: null}\n", "labels.a", "must be a string");
        invalid("kind: site\nname: s\nlabels: {a: {b: c}}\n", "labels.a", "must be a string");
        invalid("kind: site\nname: s\nlabels: [a]\n", "labels", "must be a mapping");
        invalid("kind: site\nname: s\ndevices: [{label: cam}]\n", "devices[0]",
                "exactly one of match and udev");
        invalid("kind: site\nname: s\ndevices: [{label: cam, match: /etc/passwd}]\n",
                "devices[0].match", "must be a glob pattern under /dev/");
        invalid("kind: site\nname: s\ndevices: [{label: Cam, match: /dev/x}]\n", "devices[0].label",
                "must be a device label");
        invalid("kind: site\nname: s\nhost-lost-after: 500ms\n", "host-lost-after",
                "must be a duration from \"1s\" to \"1h\"");
}

static void test_tenant_user_vault_secret(void **state)
{
        _cleanup_json_ json_t *t = valid("kind: tenant\nname: acme-apps\n");
        assert_string_equal(str_at(t, "type", NULL), "application");
        _cleanup_json_ json_t *t2 = valid("kind: tenant\nname: p\ntype: provider\nsites: chain = "
                                          "acme\nquota-per-site: {cpu: 4, memory: 8Gi, "
                                          "instances: 20}\n");
        assert_string_equal(str_at(t2, "type", NULL), "provider");
        invalid("kind: tenant\nname: t\ntype: customer\n", "type",
                "must be provider or application");
        invalid("kind: tenant\nname: t\nquota-per-site: {instances: -1}\n",
                "quota-per-site.instances", "must be an integer from 0 to 100000");
        invalid("kind: tenant\nname: t\nquota-per-site: {gpus: 1}\n", "quota-per-site.gpus",
                "unknown field");
        /* the provider a tenant was made in round-trips; it must be a tenant's name */
        _cleanup_json_ json_t *t3 = valid("kind: tenant\nname: kiosk-co\nparent: retail\n");
        assert_string_equal(str_at(t3, "parent", NULL), "retail");
        invalid("kind: tenant\nname: t\nparent: Not_A_Name\n", "parent", "");

        _cleanup_json_ json_t *u = valid("kind: user\nname: alice\ntenant: acme-apps\n");
        assert_string_equal(str_at(u, "role", NULL), "viewer");
        invalid("kind: user\nname: alice\nrole: root\n", "role",
                "must be admin, operator, developer or viewer");
        invalid("kind: user\nname: alice\npassword: x\n", "password", "unknown field");

        _cleanup_json_ json_t *v = valid("kind: vault\nname: pos\n");
        assert_string_equal(str_at(v, "name", NULL), "pos");
        invalid("kind: vault\nname: pos\ndata: {}\n", "data", "unknown field");

        _cleanup_json_ json_t *s =
            valid("kind: secret\nname: db\nvault: pos\ndata: {password: hunter2, pin: 1234}\n");
        assert_string_equal(str_at(s, "data", "pin"), "1234");
        invalid("kind: secret\nname: db\ndata: {a: b}\n", "vault", "is required");
        invalid("kind: secret\nname: db\nvault: pos\ndata: {}\n", "data", "must be a mapping of 1");
        invalid("kind: secret\nname: db\nvault: pos\ndata: {\"a b\": x}\n", "data[\"a b\"]",
                "must be a secret key");
}

static void test_validate_kind(void **state)
{
        _cleanup_json_ json_t *doc = json_pack("{s:s, s:s}", "kind", "site", "name", "s1");
        _cleanup_json_ json_t *out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_spec_validate_kind(SK_KIND_SITE, doc, &out, &err), 0);
        json_decref(out);
        out = NULL;
        assert_int_equal(sk_spec_validate_kind(SK_KIND_USER, doc, &out, &err), -EINVAL);
        assert_string_equal(err->path, "kind");
        sk_error_free(&err);
        assert_int_equal(sk_spec_validate_kind(SK_KIND_HOST, doc, &out, &err), -EINVAL);
        sk_error_free(&err);
        _cleanup_json_ json_t *arr = json_array();
        assert_int_equal(sk_spec_validate(arr, &out, &err), -EINVAL);
        assert_string_equal(err->path, "");
}

/* The error path leads back to the line and column of the field in the YAML text. */
static void test_error_position(void **state)
{
        const char *text = SVC_HEAD "    replicas: lots\n" ONE_CONTAINER;
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_yaml_load(text, strlen(text), &docs, &err), 0);
        _cleanup_json_ json_t *out = NULL;
        assert_int_equal(sk_spec_validate(docs.docs[0].value, &out, &err), -EINVAL);
        int line, col;
        assert_int_equal(sk_yaml_doc_position(&docs.docs[0], err->path, &line, &col), 0);
        assert_int_equal(line, 6);
        assert_int_equal(col, 15);
}

/* What the API adds to an answer is ignored on input, so `get -o yaml | apply` round-trips. */
static void test_read_only_fields_ignored(void **state)
{
        _cleanup_json_ json_t *plain = valid(SVC_HEAD ONE_CONTAINER);
        _cleanup_json_ json_t *echoed =
            valid(SVC_HEAD ONE_CONTAINER "tenant: default\ncreated: \"2026-11-27T00:00:00Z\"\n"
                                         "updated: \"2026-11-27T00:00:00Z\"\n"
                                         "versions: [\"2.1.0\"]\nstatus: {running: 2}\n");
        assert_true(json_equal(plain, echoed));
        /* A user's tenant is a real field, kept. */
        _cleanup_json_ json_t *user = valid("kind: user\nname: alice\ntenant: acme\n");
        assert_string_equal(str_at(user, "tenant", NULL), "acme");
        /* Anything else unknown is still refused. */
        invalid(SVC_HEAD ONE_CONTAINER "creator: bob\n", "creator", "unknown field");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_kinds),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_quantities),
            cmocka_unit_test(test_durations),
            cmocka_unit_test(test_version_compare),
            cmocka_unit_test(test_application_defaults),
            cmocka_unit_test(test_application_full),
            cmocka_unit_test(test_application_errors),
            cmocka_unit_test(test_deployment),
            cmocka_unit_test(test_expression_column),
            cmocka_unit_test(test_site),
            cmocka_unit_test(test_tenant_user_vault_secret),
            cmocka_unit_test(test_validate_kind),
            cmocka_unit_test(test_error_position),
            cmocka_unit_test(test_read_only_fields_ignored),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
