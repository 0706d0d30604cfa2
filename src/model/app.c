/* Applications, services and containers (model/app.h): their field tables and the rules
 * only they have. Variables and volumes come before containers in the service's table:
 * the containers refer to them. */
#include "model/app.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

/* ---- strings only applications have ---- */

static bool image_ok(const char *s)
{
        bool ok = s && *s && strlen(s) <= 512;
        for (const char *c = s; ok && *c; c++)
                ok = !iscntrl((unsigned char)*c) && *c != ' ';
        return ok;
}

static bool abs_path_ok(const char *s)
{
        bool ok = s && s[0] == '/' && strlen(s) <= 4096 && !strstr(s, "/../") &&
                  (strlen(s) < 3 || strcmp(s + strlen(s) - 3, "/.."));
        for (const char *c = s; ok && *c; c++)
                ok = !iscntrl((unsigned char)*c);
        return ok;
}

static bool http_path_ok(const char *s)
{
        bool ok = s && s[0] == '/' && strlen(s) <= 2048;
        for (const char *c = s; ok && *c; c++)
                ok = isgraph((unsigned char)*c) || (unsigned char)*c >= 0x80;
        return ok;
}

static const sk_string_rule image_rule = {image_ok,
                                          "must be an image reference: a string of 1 to 512 "
                                          "characters without spaces"};
static const sk_string_rule abs_path_rule = {abs_path_ok, "must be an absolute path (starting "
                                                          "with '/', without '..')"};
static const sk_string_rule http_path_rule = {http_path_ok, "must be a URL path starting with "
                                                            "'/', without spaces"};

static const sk_int_rule port_rule = {1, 65535};
static const sk_int_rule replicas_rule = {0, 1000};
static const sk_int_rule threshold_rule = {1, 100};

static const char *const restart_words[] = {"always", "on-failure", "never", NULL};
static const char *const protocol_words[] = {"tcp", "udp", NULL};
static const char *const outbound_words[] = {"deny", "allow", NULL};
static const char *const mode_words[] = {"one-per-host", NULL};

/* ---- variables and volumes ---- */

static const sk_field secret_ref_key_fields[] = {
    F("vault", sk_ft_string, sk_secret_ref, vault, true, NULL, &sk_rule_name),
    F("secret", sk_ft_string, sk_secret_ref, secret, true, NULL, &sk_rule_name),
    F("key", sk_ft_string, sk_secret_ref, key, true, NULL, &sk_rule_secret_key),
};
static const sk_model secret_ref_key_table =
    SK_MODEL(secret_ref_key_fields, sk_secret_ref, NULL, false);

static const sk_field secret_ref_fields[] = {
    F("vault", sk_ft_string, sk_secret_ref, vault, true, NULL, &sk_rule_name),
    F("secret", sk_ft_string, sk_secret_ref, secret, true, NULL, &sk_rule_name),
};
static const sk_model secret_ref_table = SK_MODEL(secret_ref_fields, sk_secret_ref, NULL, false);

static const sk_field variable_fields[] = {
    F("name", sk_ft_string, sk_variable, name, true, NULL, &sk_rule_env_name),
    F("from-secret", sk_ft_object, sk_variable, from_secret, true, NULL, &secret_ref_key_table),
};
static const sk_model variable_table = SK_MODEL(variable_fields, sk_variable, NULL, false);

static const sk_field persistent_fields[] = {
    F("size", sk_ft_memory, sk_persistent, size, true, NULL, NULL),
};
static const sk_model persistent_table = SK_MODEL(persistent_fields, sk_persistent, NULL, false);

static int volume_post(void *obj, const char *path, sk_error **err)
{
        const sk_volume *v = obj;
        return sk_field_one_of(v->persistent, v->secret, path, "persistent", "secret", err);
}

static const sk_field volume_fields[] = {
    F("name", sk_ft_string, sk_volume, name, true, NULL, &sk_rule_name),
    F("persistent", sk_ft_object, sk_volume, persistent, false, NULL, &persistent_table),
    F("secret", sk_ft_object, sk_volume, secret, false, NULL, &secret_ref_table),
};
static const sk_model volume_table = SK_MODEL(volume_fields, sk_volume, volume_post, false);

/* ---- containers ---- */

/* A mount's volume: a name the service (the context) declares in its volumes. */
static int volume_ref_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                            const sk_field_ctx *ctx, sk_error **err)
{
        int r = sk_ft_string.parse(v, path, f, dst, ctx, err);
        if (r < 0)
                return r;
        const sk_service *svc = ctx->obj;
        for (size_t i = 0; i < svc->volumes.n; i++)
                if (!strcmp(svc->volumes.items[i].name, *(char **)dst))
                        return 0;
        return sk_error_set_path(err, EINVAL, path, "must name a volume declared in %s.volumes",
                                 ctx->path);
}

static int volume_ref_write(const sk_field *f, const void *src, json_t **out)
{
        return sk_ft_string.write(f, src, out);
}

static void volume_ref_free(const sk_field *f, void *dst)
{
        sk_ft_string.free(f, dst);
}

static bool volume_ref_equal(const sk_field *f, const void *a, const void *b)
{
        return sk_ft_string.equal(f, a, b);
}

static const sk_field_type volume_ref = {volume_ref_parse, volume_ref_write, volume_ref_free,
                                         volume_ref_equal, NULL};

static const sk_field mount_fields[] = {
    F("volume", volume_ref, sk_mount, volume, true, NULL, &sk_rule_name),
    F("path", sk_ft_string, sk_mount, path, true, NULL, &abs_path_rule),
};
static const sk_model mount_table = SK_MODEL(mount_fields, sk_mount, NULL, false);

static const sk_list_rule mounts_rule = {
    .item = &sk_ft_inline,
    .item_arg = &mount_table,
    .item_size = sizeof(sk_mount),
    .max = 64,
    .what = "mounts",
    .unique = "path",
    .unique_offset = offsetof(sk_mount, path),
};

static const sk_list_rule cmd_rule = {
    .item = &sk_ft_string,
    .item_arg = &sk_rule_any_string,
    .item_size = sizeof(char *),
    .min = 1,
    .max = 1024,
    .what = "strings",
};

/* Every ${NAME} must name a variable of the service; "$$" is a literal '$'. */
static int env_refs(const char *s, const char *path, const sk_field_ctx *ctx, sk_error **err)
{
        const sk_service *svc = ctx->obj;
        for (const char *c = s; *c; c++) {
                if (c[0] == '$' && c[1] == '$') {
                        c++;
                        continue;
                }
                if (c[0] != '$' || c[1] != '{')
                        continue;
                const char *end = strchr(c + 2, '}');
                if (!end)
                        return sk_field_bad(err, path, "must close every \"${\" with \"}\"");
                size_t n = (size_t)(end - c - 2);
                bool declared = false;
                for (size_t i = 0; i < svc->variables.n && !declared; i++) {
                        const char *name = svc->variables.items[i].name;
                        declared = strlen(name) == n && !strncmp(name, c + 2, n);
                }
                if (!declared)
                        return sk_error_set_path(err, EINVAL, path,
                                                 "must refer only to declared variables: \"%.*s\" "
                                                 "is not in %s.variables",
                                                 (int)n, c + 2, ctx->path);
                c = end;
        }
        return 0;
}

static const sk_kvs_rule env_rule = {
    .max = SIZE_MAX,
    .map_msg = "must be a mapping of variable names to values",
    .key = &sk_rule_env_name,
    .value_max = 65536,
    .value_check = env_refs,
};

static int probe_post(void *obj, const char *path, sk_error **err)
{
        const sk_probe *p = obj;
        return sk_field_one_of(p->http, p->tcp, path, "http", "tcp", err);
}

static const sk_field http_probe_fields[] = {
    F("path", sk_ft_string, sk_http_probe, path, true, NULL, &http_path_rule),
    F("port", sk_ft_int, sk_http_probe, port, true, NULL, &port_rule),
};
static const sk_model http_probe_table = SK_MODEL(http_probe_fields, sk_http_probe, NULL, false);

static const sk_field tcp_probe_fields[] = {
    F("port", sk_ft_int, sk_tcp_probe, port, true, NULL, &port_rule),
};
static const sk_model tcp_probe_table = SK_MODEL(tcp_probe_fields, sk_tcp_probe, NULL, false);

static const sk_field probe_fields[] = {
    F("http", sk_ft_object, sk_probe, http, false, NULL, &http_probe_table),
    F("tcp", sk_ft_object, sk_probe, tcp, false, NULL, &tcp_probe_table),
    F("period", sk_ft_duration, sk_probe, period, false, NULL, NULL),
    F("failure-threshold", sk_ft_int, sk_probe, failure_threshold, false, NULL, &threshold_rule),
};
static const sk_model probe_table = SK_MODEL(probe_fields, sk_probe, probe_post, false);

static const sk_field probes_fields[] = {
    F("liveness", sk_ft_object, sk_probes, liveness, false, NULL, &probe_table),
    F("readiness", sk_ft_object, sk_probes, readiness, false, NULL, &probe_table),
};
static const sk_model probes_table = SK_MODEL(probes_fields, sk_probes, NULL, false);

static const sk_field container_fields[] = {
    F("name", sk_ft_string, sk_app_container, name, true, NULL, &sk_rule_name),
    F("image", sk_ft_string, sk_app_container, image, true, NULL, &image_rule),
    F("cmd", sk_ft_list, sk_app_container, cmd, false, NULL, &cmd_rule),
    F("env", sk_ft_kvs, sk_app_container, env, false, NULL, &env_rule),
    F("mounts", sk_ft_list, sk_app_container, mounts, false, NULL, &mounts_rule),
    F("devices", sk_ft_list, sk_app_container, devices, false, NULL, &sk_rule_device_labels),
    F("probes", sk_ft_object, sk_app_container, probes, false, NULL, &probes_table),
    F("restart", sk_ft_enum, sk_app_container, restart, false, "\"always\"", restart_words),
};
static const sk_model container_table = SK_MODEL(container_fields, sk_app_container, NULL, false);

/* ---- services ---- */

static const sk_field placement_fields[] = {
    F("match-host-labels", sk_ft_expr, sk_service_placement, match_host_labels, false, NULL, NULL),
    F("devices", sk_ft_list, sk_service_placement, devices, false, NULL, &sk_rule_device_labels),
};
static const sk_model placement_table =
    SK_MODEL(placement_fields, sk_service_placement, NULL, false);

static const sk_field resources_fields[] = {
    F("cpu", sk_ft_cpu, sk_resources, cpu, false, NULL, NULL),
    F("memory", sk_ft_memory, sk_resources, memory, false, NULL, NULL),
};
static const sk_model resources_table = SK_MODEL(resources_fields, sk_resources, NULL, false);

static const sk_field ingress_fields[] = {
    F("port", sk_ft_int, sk_ingress, port, true, NULL, &port_rule),
    F("protocol", sk_ft_enum, sk_ingress, protocol, false, "\"tcp\"", protocol_words),
};
static const sk_model ingress_table = SK_MODEL(ingress_fields, sk_ingress, NULL, false);

static int ingress_once(const sk_list *l, const char *path, sk_error **err)
{
        const sk_ingress *in = l->items;
        for (size_t i = 0; i < l->n; i++)
                for (size_t j = 0; j < i; j++)
                        if (in[i].port == in[j].port && in[i].protocol == in[j].protocol) {
                                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                                return sk_field_bad(err, p,
                                                    "must be unique: this port and protocol "
                                                    "are listed twice");
                        }
        return 0;
}

static const sk_list_rule ingress_rule = {
    .item = &sk_ft_inline,
    .item_arg = &ingress_table,
    .item_size = sizeof(sk_ingress),
    .max = 64,
    .what = "ports",
    .post = ingress_once,
};

static const sk_field network_fields[] = {
    F("ingress", sk_ft_list, sk_network, ingress, false, NULL, &ingress_rule),
    F("outbound", sk_ft_enum, sk_network, outbound, false, "\"deny\"", outbound_words),
};
static const sk_model network_table = SK_MODEL(network_fields, sk_network, NULL, false);

static const sk_list_rule variables_rule =
    SK_NAMED_LIST(sk_variable, variable_table, 0, 256, "variables");
static const sk_list_rule volumes_rule = SK_NAMED_LIST(sk_volume, volume_table, 0, 64, "volumes");
static const sk_list_rule containers_rule =
    SK_NAMED_LIST(sk_app_container, container_table, 1, 64, "containers");

static int service_post(void *obj, const char *path, sk_error **err)
{
        sk_service *s = obj;
        if (s->replicas != SK_UNSET && s->mode != SK_UNSET) {
                _cleanup_free_ char *p = sk_yaml_path_key(path, "mode");
                return sk_field_bad(err, p, "must not be set together with replicas: choose one");
        }
        if (s->mode == SK_UNSET && s->replicas == SK_UNSET)
                s->replicas = 1;
        return 0;
}

static const sk_field service_fields[] = {
    F("name", sk_ft_string, sk_service, name, true, NULL, &sk_rule_name),
    F("replicas", sk_ft_int, sk_service, replicas, false, NULL, &replicas_rule),
    F("mode", sk_ft_enum, sk_service, mode, false, NULL, mode_words),
    F("placement", sk_ft_object, sk_service, placement, false, NULL, &placement_table),
    F("resources", sk_ft_object, sk_service, resources, false, NULL, &resources_table),
    F("network", sk_ft_object, sk_service, network, false, "{\"outbound\": \"deny\"}",
      &network_table),
    F("variables", sk_ft_list, sk_service, variables, false, NULL, &variables_rule),
    F("volumes", sk_ft_list, sk_service, volumes, false, NULL, &volumes_rule),
    F("containers", sk_ft_list, sk_service, containers, true, NULL, &containers_rule),
};
const sk_model sk_service_table = SK_MODEL(service_fields, sk_service, service_post, true);

static const sk_list_rule services_rule =
    SK_NAMED_LIST(sk_service, sk_service_table, 1, 64, "services");

#define APP_FIELDS                                                                                 \
        F("name", sk_ft_string, sk_app, name, true, NULL, &sk_rule_name),                          \
            F("version", sk_ft_string, sk_app, version, true, NULL, &sk_rule_version),             \
            F("services", sk_ft_list, sk_app, services, true, NULL, &services_rule)

static const sk_field app_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "application"},
    APP_FIELDS,
};
const sk_model sk_app_table = SK_MODEL(app_fields, sk_app, NULL, false);

/* Inside a desired document the kind may be left out (documents written by hand, the
 * site's own tests): it can only be an application there. */
static const sk_field app_embedded_fields[] = {
    {"kind", &sk_ft_kind, 0, false, "\"application\"", "application"},
    APP_FIELDS,
};
const sk_model sk_app_embedded_table = SK_MODEL(app_embedded_fields, sk_app, NULL, false);

/* ---- entry points ---- */

SK_RESOURCE_FUNCTIONS(app, sk_app, sk_app_table)

json_t *sk_service_to_json(const sk_service *s)
{
        return sk_model_write(&sk_service_table, s);
}

const sk_service *sk_app_service(const sk_app *app, const char *name)
{
        for (size_t i = 0; i < app->services.n; i++)
                if (!strcmp(app->services.items[i].name, name))
                        return &app->services.items[i];
        return NULL;
}
