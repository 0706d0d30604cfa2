/* Resource kinds and validators (DESIGN.md section 4, docs/resources.md).
 *
 * Each object is checked against a table of its fields: unknown fields are refused, each
 * known one goes through its check function, which writes the normalised value; missing
 * fields get their default or a "is required" error. Paths are built with
 * sk_yaml_path_key/_index so that the CLI can find them in its YAML position map. */
#include "model/spec.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/labelexpr.h"

/* ---- kinds ---- */

static const sk_kind_info kinds[SK_KIND_COUNT] = {
    {SK_KIND_TENANT, "tenant", "tenants", NULL, true},
    {SK_KIND_USER, "user", "users", NULL, true},
    {SK_KIND_SITE, "site", "sites", NULL, true},
    {SK_KIND_HOST, "host", "hosts", NULL, false},
    {SK_KIND_APPLICATION, "application", "applications", "app", true},
    {SK_KIND_DEPLOYMENT, "deployment", "deployments", NULL, true},
    {SK_KIND_VAULT, "vault", "vaults", NULL, true},
    {SK_KIND_SECRET, "secret", "secrets", NULL, true},
    {SK_KIND_INSTANCE, "instance", "instances", NULL, false},
    {SK_KIND_ALERT, "alert", "alerts", NULL, false},
};

const sk_kind_info *sk_kind_lookup(const char *word)
{
        if (!word)
                return NULL;
        for (size_t i = 0; i < SK_KIND_COUNT; i++) {
                const sk_kind_info *k = &kinds[i];
                if (!strcasecmp(word, k->name) || !strcasecmp(word, k->plural))
                        return k;
                if (k->alias) {
                        if (!strcasecmp(word, k->alias))
                                return k;
                        size_t n = strlen(k->alias);
                        if (!strncasecmp(word, k->alias, n) && !strcasecmp(word + n, "s"))
                                return k;
                }
        }
        return NULL;
}

const sk_kind_info *sk_kind_get(sk_kind kind)
{
        if ((unsigned)kind >= SK_KIND_COUNT)
                return NULL;
        return &kinds[kind];
}

/* ---- names ---- */

bool sk_spec_valid_name(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        if (n < 1 || n > 63 || name[0] == '-' || name[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
                    name[i] != '-')
                        return false;
        return true;
}

static bool dns_name(const char *s, size_t n)
{
        if (n < 1 || n > 253)
                return false;
        while (n > 0) {
                size_t part = 0;
                while (part < n && s[part] != '.')
                        part++;
                char label[64];
                if (part == 0 || part > 63)
                        return false;
                memcpy(label, s, part);
                label[part] = '\0';
                if (!sk_spec_valid_name(label))
                        return false;
                s += part;
                n -= part;
                if (n > 0) {
                        s++;
                        n--;
                        if (n == 0)
                                return false; /* trailing dot */
                }
        }
        return true;
}

bool sk_spec_valid_label_key(const char *key)
{
        if (!key)
                return false;
        const char *slash = strchr(key, '/');
        const char *name = key;
        if (slash) {
                if (!dns_name(key, (size_t)(slash - key)))
                        return false;
                name = slash + 1;
        }
        size_t n = strlen(name);
        if (n < 1 || n > 63 || !isalnum((unsigned char)name[0]) ||
            !isalnum((unsigned char)name[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
                        return false;
        return true;
}

static bool env_name(const char *s)
{
        if (!*s || isdigit((unsigned char)*s) || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '_')
                        return false;
        return true;
}

static bool charset_name(const char *s, size_t max, const char *extra)
{
        size_t n = strlen(s);
        if (n < 1 || n > max)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
                        return false;
        return true;
}

/* ---- the field-table machinery ---- */

typedef int (*check_fn)(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err);

struct field {
        const char *name;
        check_fn check;
        bool required;
        const char *def; /* JSON text of the default, or NULL */
};

static int bad(sk_error **err, const char *path, const char *msg)
{
        return sk_error_set_path(err, EINVAL, path, "%s", msg);
}

static int oom(sk_error **err)
{
        return sk_error_set(err, ENOMEM, "out of memory");
}

static int check_fields(const json_t *obj, const char *path, const struct field *fields, size_t n,
                        void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_object(obj))
                return bad(err, path, "must be a mapping");
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)obj, key, v)
        {
                bool known = false;
                for (size_t i = 0; i < n && !known; i++)
                        known = !strcmp(key, fields[i].name);
                if (known)
                        continue;
                _cleanup_free_ char *allowed = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&allowed, &len);
                if (!f)
                        return oom(err);
                for (size_t i = 0; i < n; i++)
                        fprintf(f, "%s%s", i ? ", " : "", fields[i].name);
                fclose(f);
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                return sk_error_set_path(err, EINVAL, p,
                                         "unknown field: the fields allowed here are %s",
                                         allowed ? allowed : "");
        }
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return oom(err);
        for (size_t i = 0; i < n; i++) {
                const struct field *fd = &fields[i];
                _cleanup_free_ char *p = sk_yaml_path_key(path, fd->name);
                if (!p)
                        return oom(err);
                const json_t *in = json_object_get(obj, fd->name);
                json_t *val = NULL;
                if (in) {
                        int r = fd->check(in, p, ctx, &val, err);
                        if (r < 0) {
                                json_decref(val); /* a check may fail after its output */
                                return r;
                        }
                } else if (fd->required) {
                        return bad(err, p, "is required");
                } else if (fd->def) {
                        val = json_loads(fd->def, JSON_DECODE_ANY, NULL);
                        if (!val)
                                return oom(err);
                } else {
                        continue;
                }
                if (json_object_set_new(o, fd->name, val) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

#define CHECK_FIELDS(obj, path, table, ctx, out, err)                                              \
        check_fields(obj, path, table, SK_ARRAY_SIZE(table), ctx, out, err)

/* A list whose items all pass item(); each item's path is path[i]. Like every check, it
 * may leave *out set when it fails: the caller releases it. */
static int check_list(const json_t *v, const char *path, check_fn item, void *ctx, size_t min,
                      size_t max, const char *what, json_t **out, sk_error **err)
{
        if (!json_is_array(v) || json_array_size(v) < min || json_array_size(v) > max) {
                if (min == 0)
                        return sk_error_set_path(err, EINVAL, path,
                                                 "must be a list of at most %zu %s", max, what);
                return sk_error_set_path(err, EINVAL, path, "must be a list of %zu to %zu %s", min,
                                         max, what);
        }
        _cleanup_json_ json_t *o = json_array();
        if (!o)
                return oom(err);
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                if (!p)
                        return oom(err);
                json_t *val = NULL;
                int r = item(it, p, ctx, &val, err);
                if (r < 0) {
                        json_decref(val);
                        return r;
                }
                if (json_array_append_new(o, val) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

/* Refuses two items of list (normalised) with the same value of field. */
static int check_unique(const json_t *list, const char *path, const char *field, sk_error **err)
{
        for (size_t i = 0; i < json_array_size(list); i++) {
                const json_t *a = json_object_get(json_array_get(list, i), field);
                for (size_t j = 0; j < i; j++) {
                        if (!json_equal(a, json_object_get(json_array_get(list, j), field)))
                                continue;
                        _cleanup_free_ char *item = sk_yaml_path_index(path, i);
                        _cleanup_free_ char *p = sk_yaml_path_key(item, field);
                        return sk_error_set_path(err, EINVAL, p,
                                                 "must be unique: \"%s\" is already used by "
                                                 "item %zu",
                                                 json_is_string(a) ? json_string_value(a) : "", j);
                }
        }
        return 0;
}

static int one_of(const json_t *obj, const char *path, const char *a, const char *b, sk_error **err)
{
        bool has_a = json_object_get(obj, a) != NULL, has_b = json_object_get(obj, b) != NULL;
        if (has_a == has_b)
                return sk_error_set_path(err, EINVAL, path, "must have exactly one of %s and %s", a,
                                         b);
        return 0;
}

/* ---- scalar checks ---- */

static int copy(const json_t *v, json_t **out, sk_error **err)
{
        *out = json_deep_copy(v);
        return *out ? 0 : oom(err);
}

static int chk_name(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_string(v) || !sk_spec_valid_name(json_string_value(v)))
                return bad(err, path,
                           "must be a DNS label: 1 to 63 of a-z, 0-9 and '-', not starting or "
                           "ending with '-'");
        return copy(v, out, err);
}

static int chk_version(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_string(v) || !charset_name(json_string_value(v), 64, "._+-"))
                return bad(err, path,
                           "must be a version string: 1 to 64 of A-Z, a-z, 0-9 and '._+-' (quote "
                           "it: \"2.1.0\")");
        return copy(v, out, err);
}

static int chk_deploy_version(const json_t *v, const char *path, void *ctx, json_t **out,
                              sk_error **err)
{
        if (json_is_string(v) && !strcmp(json_string_value(v), "*"))
                return copy(v, out, err);
        if (!json_is_string(v) || !charset_name(json_string_value(v), 64, "._+-"))
                return bad(err, path,
                           "must be \"*\" (the newest) or a version string: 1 to 64 of A-Z, a-z, "
                           "0-9 and '._+-'");
        return copy(v, out, err);
}

static int chk_text(const json_t *v, const char *path, size_t max, const char *what, json_t **out,
                    sk_error **err)
{
        const char *s = json_string_value(v);
        bool ok = s && *s && strlen(s) <= max;
        for (const char *c = s; ok && *c; c++)
                ok = !iscntrl((unsigned char)*c) && *c != ' ';
        if (!ok)
                return sk_error_set_path(err, EINVAL, path,
                                         "must be %s: a string of 1 to %zu characters without "
                                         "spaces",
                                         what, max);
        return copy(v, out, err);
}

static int chk_image(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_text(v, path, 512, "an image reference", out, err);
}

static int chk_abs_path(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        const char *s = json_string_value(v);
        bool ok = s && s[0] == '/' && strlen(s) <= 4096 && !strstr(s, "/../") &&
                  (strlen(s) < 3 || strcmp(s + strlen(s) - 3, "/.."));
        for (const char *c = s; ok && *c; c++)
                ok = !iscntrl((unsigned char)*c);
        if (!ok)
                return bad(err, path, "must be an absolute path (starting with '/', without '..')");
        return copy(v, out, err);
}

static int chk_duration(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int64_t ms;
        if (!json_is_string(v) || sk_duration_ms(json_string_value(v), &ms) < 0)
                return bad(err, path,
                           "must be a duration like \"250ms\", \"5s\", \"10m\" or \"1h30m\" "
                           "(units ms, s, m, h, d)");
        return copy(v, out, err);
}

static int chk_host_lost(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int64_t ms;
        if (!json_is_string(v) || sk_duration_ms(json_string_value(v), &ms) < 0 || ms < 1000 ||
            ms > 3600 * 1000)
                return bad(err, path, "must be a duration from \"1s\" to \"1h\"");
        return copy(v, out, err);
}

static int chk_cpu(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int64_t m;
        if (sk_quantity_cpu(v, &m) < 0)
                return bad(err, path,
                           "must be a CPU quantity like 0.5, \"500m\" or 2 (whole millicores, at "
                           "most 1000000 cores)");
        return copy(v, out, err);
}

static int chk_memory(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int64_t b;
        if (sk_quantity_memory(v, &b) < 0)
                return bad(err, path,
                           "must be a memory quantity like 256Mi, 1Gi, 1G or 1000 (bytes; "
                           "suffixes k M G T P E, Ki Mi Gi Ti Pi Ei)");
        return copy(v, out, err);
}

static int chk_int(const json_t *v, const char *path, json_int_t min, json_int_t max, json_t **out,
                   sk_error **err)
{
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return sk_error_set_path(err, EINVAL, path,
                                         "must be an integer from %" JSON_INTEGER_FORMAT
                                         " to %" JSON_INTEGER_FORMAT,
                                         min, max);
        return copy(v, out, err);
}

static int chk_replicas(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_int(v, path, 0, 1000, out, err);
}

static int chk_port(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_int(v, path, 1, 65535, out, err);
}

static int chk_threshold(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_int(v, path, 1, 100, out, err);
}

static int chk_parallel(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_int(v, path, 1, 100000, out, err);
}

static int chk_instances(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return chk_int(v, path, 0, 100000, out, err);
}

static int chk_enum(const json_t *v, const char *path, const char *const *allowed, size_t n,
                    json_t **out, sk_error **err)
{
        for (size_t i = 0; json_is_string(v) && i < n; i++)
                if (!strcmp(json_string_value(v), allowed[i]))
                        return copy(v, out, err);
        char list[256] = "";
        for (size_t i = 0; i < n; i++) {
                strncat(list,
                        i == 0       ? ""
                        : i + 1 == n ? " or "
                                     : ", ",
                        sizeof(list) - strlen(list) - 1);
                strncat(list, allowed[i], sizeof(list) - strlen(list) - 1);
        }
        return sk_error_set_path(err, EINVAL, path, "must be %s", list);
}

#define ENUM_CHECK(fn, ...)                                                                        \
        static int fn(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)  \
        {                                                                                          \
                static const char *const allowed[] = {__VA_ARGS__};                                \
                return chk_enum(v, path, allowed, SK_ARRAY_SIZE(allowed), out, err);               \
        }

ENUM_CHECK(chk_mode, "one-per-host")
ENUM_CHECK(chk_protocol, "tcp", "udp")
ENUM_CHECK(chk_outbound, "deny", "allow")
ENUM_CHECK(chk_restart, "always", "on-failure", "never")
ENUM_CHECK(chk_on_failure, "halt", "continue", "rollback")
ENUM_CHECK(chk_tenant_type, "provider", "application")
ENUM_CHECK(chk_role, "admin", "operator", "developer", "viewer")

static int chk_expr(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_string(v))
                return bad(err, path,
                           "must be a label expression (a string like "
                           "\"chain = acme and region in (north, west)\")");
        _cleanup_expr_ sk_expr *e = NULL;
        _cleanup_error_ sk_error *perr = NULL;
        if (sk_expr_parse(json_string_value(v), &e, &perr) < 0) {
                if (perr && perr->code == ENOMEM)
                        return oom(err);
                int r = sk_error_set_path(err, EINVAL, path, "must be a label expression: %s",
                                          sk_error_msg(perr, -EINVAL));
                if (err && *err && perr && !(*err)->column)
                        (*err)->column = perr->column;
                return r;
        }
        return copy(v, out, err);
}

/* Label values and environment values: scalars in their string form. */
static int scalar_string(const json_t *v, const char *path, size_t max, json_t **out,
                         sk_error **err)
{
        _cleanup_free_ char *s = NULL;
        if (json_is_string(v))
                s = strdup(json_string_value(v));
        else if (json_is_boolean(v))
                s = strdup(json_is_true(v) ? "true" : "false");
        else if (json_is_number(v))
                s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        else
                return bad(err, path, "must be a string (numbers and booleans are taken as text)");
        if (!s)
                return oom(err);
        if (strlen(s) > max)
                return sk_error_set_path(err, EINVAL, path, "must be at most %zu bytes long", max);
        *out = json_string(s);
        return *out ? 0 : oom(err);
}

/* ---- shared pieces ---- */

static int chk_kind(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        const sk_kind_info *k = sk_kind_lookup(json_string_value(v));
        if (!k)
                return bad(err, path, "must be a resource kind");
        *out = json_string(k->name);
        return *out ? 0 : oom(err);
}

static int chk_device_label(const json_t *v, const char *path, void *ctx, json_t **out,
                            sk_error **err)
{
        if (!json_is_string(v) || !sk_spec_valid_name(json_string_value(v)))
                return bad(err, path,
                           "must be a device label: 1 to 63 of a-z, 0-9 and '-', not starting or "
                           "ending with '-'");
        return copy(v, out, err);
}

static int chk_device_labels(const json_t *v, const char *path, void *ctx, json_t **out,
                             sk_error **err)
{
        int r = check_list(v, path, chk_device_label, ctx, 0, 64, "device labels", out, err);
        for (size_t i = 0; r == 0 && i < json_array_size(*out); i++)
                for (size_t j = 0; j < i; j++)
                        if (json_equal(json_array_get(*out, i), json_array_get(*out, j))) {
                                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                                json_decref(*out);
                                *out = NULL;
                                return bad(err, p,
                                           "must be unique: this device label is listed "
                                           "twice");
                        }
        return r;
}

static int chk_secret_key(const json_t *v, const char *path, void *ctx, json_t **out,
                          sk_error **err)
{
        if (!json_is_string(v) || !charset_name(json_string_value(v), 253, "._-"))
                return bad(err, path, "must be a secret key: 1 to 253 of A-Z, a-z, 0-9 and '._-'");
        return copy(v, out, err);
}

/* ---- application ---- */

struct svc_ctx {
        json_t *vars;    /* declared variable names (object used as a set) */
        json_t *volumes; /* declared volume names */
        const char *path;
};

static const struct field secret_ref_key_fields[] = {
    {"vault", chk_name, true, NULL},
    {"secret", chk_name, true, NULL},
    {"key", chk_secret_key, true, NULL},
};
static const struct field secret_ref_fields[] = {
    {"vault", chk_name, true, NULL},
    {"secret", chk_name, true, NULL},
};

static int chk_from_secret(const json_t *v, const char *path, void *ctx, json_t **out,
                           sk_error **err)
{
        return CHECK_FIELDS(v, path, secret_ref_key_fields, ctx, out, err);
}

static int chk_secret_ref(const json_t *v, const char *path, void *ctx, json_t **out,
                          sk_error **err)
{
        return CHECK_FIELDS(v, path, secret_ref_fields, ctx, out, err);
}

static int chk_env_name(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_string(v) || !env_name(json_string_value(v)))
                return bad(err, path,
                           "must be a variable name: A-Z, a-z, 0-9 and '_', not starting with a "
                           "digit");
        return copy(v, out, err);
}

static const struct field variable_fields[] = {
    {"name", chk_env_name, true, NULL},
    {"from-secret", chk_from_secret, true, NULL},
};

static int chk_variable(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        struct svc_ctx *svc = ctx;
        int r = CHECK_FIELDS(v, path, variable_fields, ctx, out, err);
        if (r == 0 && json_object_set(svc->vars, json_string_value(json_object_get(*out, "name")),
                                      json_true()) < 0)
                return oom(err);
        return r;
}

static int chk_variables(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = check_list(v, path, chk_variable, ctx, 0, 256, "variables", out, err);
        if (r == 0)
                r = check_unique(*out, path, "name", err);
        return r;
}

static const struct field persistent_fields[] = {
    {"size", chk_memory, true, NULL},
};

static int chk_persistent(const json_t *v, const char *path, void *ctx, json_t **out,
                          sk_error **err)
{
        return CHECK_FIELDS(v, path, persistent_fields, ctx, out, err);
}

static const struct field volume_fields[] = {
    {"name", chk_name, true, NULL},
    {"persistent", chk_persistent, false, NULL},
    {"secret", chk_secret_ref, false, NULL},
};

static int chk_volume(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        struct svc_ctx *svc = ctx;
        int r = CHECK_FIELDS(v, path, volume_fields, ctx, out, err);
        if (r == 0)
                r = one_of(*out, path, "persistent", "secret", err);
        if (r == 0 &&
            json_object_set(svc->volumes, json_string_value(json_object_get(*out, "name")),
                            json_true()) < 0)
                r = oom(err);
        return r;
}

static int chk_volumes(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = check_list(v, path, chk_volume, ctx, 0, 64, "volumes", out, err);
        if (r == 0)
                r = check_unique(*out, path, "name", err);
        return r;
}

static int chk_declared_volume(const json_t *v, const char *path, void *ctx, json_t **out,
                               sk_error **err)
{
        struct svc_ctx *svc = ctx;
        int r = chk_name(v, path, ctx, out, err);
        if (r == 0 && !json_object_get(svc->volumes, json_string_value(v))) {
                json_decref(*out);
                *out = NULL;
                return sk_error_set_path(err, EINVAL, path,
                                         "must name a volume declared in %s.volumes", svc->path);
        }
        return r;
}

static const struct field mount_fields[] = {
    {"volume", chk_declared_volume, true, NULL},
    {"path", chk_abs_path, true, NULL},
};

static int chk_mount(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, mount_fields, ctx, out, err);
}

static int chk_mounts(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = check_list(v, path, chk_mount, ctx, 0, 64, "mounts", out, err);
        if (r == 0)
                r = check_unique(*out, path, "path", err);
        return r;
}

static int chk_cmd_arg(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_string(v))
                return bad(err, path, "must be a string");
        return copy(v, out, err);
}

static int chk_cmd(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return check_list(v, path, chk_cmd_arg, ctx, 1, 1024, "strings", out, err);
}

/* Every ${NAME} must name a declared variable; "$$" is a literal '$'. */
static int check_refs(const char *s, const char *path, const struct svc_ctx *svc, sk_error **err)
{
        for (const char *c = s; *c; c++) {
                if (c[0] == '$' && c[1] == '$') {
                        c++;
                        continue;
                }
                if (c[0] != '$' || c[1] != '{')
                        continue;
                const char *end = strchr(c + 2, '}');
                if (!end)
                        return bad(err, path, "must close every \"${\" with \"}\"");
                _cleanup_free_ char *name = strndup(c + 2, (size_t)(end - c - 2));
                if (!name)
                        return oom(err);
                if (!json_object_get(svc->vars, name))
                        return sk_error_set_path(err, EINVAL, path,
                                                 "must refer only to declared variables: \"%s\" "
                                                 "is not in %s.variables",
                                                 name, svc->path);
                c = end;
        }
        return 0;
}

static int chk_env(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_object(v))
                return bad(err, path, "must be a mapping of variable names to values");
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return oom(err);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                if (!p)
                        return oom(err);
                if (!env_name(key))
                        return bad(err, p,
                                   "must be a variable name: A-Z, a-z, 0-9 and '_', not "
                                   "starting with a digit");
                json_t *s = NULL;
                int r = scalar_string(val, p, 65536, &s, err);
                if (r == 0)
                        r = check_refs(json_string_value(s), p, ctx, err);
                if (r < 0) {
                        json_decref(s);
                        return r;
                }
                if (json_object_set_new(o, key, s) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

static int chk_http_path(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        const char *s = json_string_value(v);
        bool ok = s && s[0] == '/' && strlen(s) <= 2048;
        for (const char *c = s; ok && *c; c++)
                ok = isgraph((unsigned char)*c) || (unsigned char)*c >= 0x80;
        if (!ok)
                return bad(err, path, "must be a URL path starting with '/', without spaces");
        return copy(v, out, err);
}

static const struct field http_probe_fields[] = {
    {"path", chk_http_path, true, NULL},
    {"port", chk_port, true, NULL},
};
static const struct field tcp_probe_fields[] = {
    {"port", chk_port, true, NULL},
};

static int chk_http_probe(const json_t *v, const char *path, void *ctx, json_t **out,
                          sk_error **err)
{
        return CHECK_FIELDS(v, path, http_probe_fields, ctx, out, err);
}

static int chk_tcp_probe(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, tcp_probe_fields, ctx, out, err);
}

static const struct field probe_fields[] = {
    {"http", chk_http_probe, false, NULL},
    {"tcp", chk_tcp_probe, false, NULL},
    {"period", chk_duration, false, NULL},
    {"failure-threshold", chk_threshold, false, NULL},
};

static int chk_probe(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = CHECK_FIELDS(v, path, probe_fields, ctx, out, err);
        if (r == 0)
                r = one_of(*out, path, "http", "tcp", err);
        return r;
}

static const struct field probes_fields[] = {
    {"liveness", chk_probe, false, NULL},
    {"readiness", chk_probe, false, NULL},
};

static int chk_probes(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, probes_fields, ctx, out, err);
}

static const struct field container_fields[] = {
    {"name", chk_name, true, NULL},      {"image", chk_image, true, NULL},
    {"cmd", chk_cmd, false, NULL},       {"env", chk_env, false, NULL},
    {"mounts", chk_mounts, false, NULL}, {"devices", chk_device_labels, false, NULL},
    {"probes", chk_probes, false, NULL}, {"restart", chk_restart, false, "\"always\""},
};

static int chk_container(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, container_fields, ctx, out, err);
}

static int chk_containers(const json_t *v, const char *path, void *ctx, json_t **out,
                          sk_error **err)
{
        int r = check_list(v, path, chk_container, ctx, 1, 64, "containers", out, err);
        if (r == 0)
                r = check_unique(*out, path, "name", err);
        return r;
}

static const struct field placement_fields[] = {
    {"match-host-labels", chk_expr, false, NULL},
    {"devices", chk_device_labels, false, NULL},
};

static int chk_placement(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, placement_fields, ctx, out, err);
}

static const struct field resources_fields[] = {
    {"cpu", chk_cpu, false, NULL},
    {"memory", chk_memory, false, NULL},
};

static int chk_resources(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, resources_fields, ctx, out, err);
}

static const struct field ingress_fields[] = {
    {"port", chk_port, true, NULL},
    {"protocol", chk_protocol, false, "\"tcp\""},
};

static int chk_ingress_item(const json_t *v, const char *path, void *ctx, json_t **out,
                            sk_error **err)
{
        return CHECK_FIELDS(v, path, ingress_fields, ctx, out, err);
}

static int chk_ingress(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = check_list(v, path, chk_ingress_item, ctx, 0, 64, "ports", out, err);
        for (size_t i = 0; r == 0 && i < json_array_size(*out); i++)
                for (size_t j = 0; j < i; j++)
                        if (json_equal(json_array_get(*out, i), json_array_get(*out, j))) {
                                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                                json_decref(*out);
                                *out = NULL;
                                return bad(err, p,
                                           "must be unique: this port and protocol "
                                           "are listed twice");
                        }
        return r;
}

static const struct field network_fields[] = {
    {"ingress", chk_ingress, false, NULL},
    {"outbound", chk_outbound, false, "\"deny\""},
};

static int chk_network(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, network_fields, ctx, out, err);
}

/* variables and volumes come before containers: the containers refer to them */
static const struct field service_fields[] = {
    {"name", chk_name, true, NULL},
    {"replicas", chk_replicas, false, NULL},
    {"mode", chk_mode, false, NULL},
    {"placement", chk_placement, false, NULL},
    {"resources", chk_resources, false, NULL},
    {"network", chk_network, false, "{\"outbound\": \"deny\"}"},
    {"variables", chk_variables, false, NULL},
    {"volumes", chk_volumes, false, NULL},
    {"containers", chk_containers, true, NULL},
};

static int chk_service(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        _cleanup_json_ json_t *vars = json_object();
        _cleanup_json_ json_t *volumes = json_object();
        if (!vars || !volumes)
                return oom(err);
        struct svc_ctx svc = {.vars = vars, .volumes = volumes, .path = path};
        _cleanup_json_ json_t *o = NULL;
        int r = CHECK_FIELDS(v, path, service_fields, &svc, &o, err);
        if (r < 0)
                return r;
        if (json_object_get(o, "replicas") && json_object_get(o, "mode")) {
                _cleanup_free_ char *p = sk_yaml_path_key(path, "mode");
                return bad(err, p, "must not be set together with replicas: choose one");
        }
        if (!json_object_get(o, "mode") && !json_object_get(o, "replicas") &&
            json_object_set_new(o, "replicas", json_integer(1)) < 0)
                return oom(err);
        *out = take_ptr(&o);
        return 0;
}

static int chk_services(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        int r = check_list(v, path, chk_service, ctx, 1, 64, "services", out, err);
        if (r == 0)
                r = check_unique(*out, path, "name", err);
        return r;
}

static const struct field application_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
    {"version", chk_version, true, NULL},
    {"services", chk_services, true, NULL},
};

/* ---- deployment ---- */

static const struct field canary_fields[] = {
    {"sites", chk_expr, true, NULL},
    {"healthy-time", chk_duration, false, NULL},
};

static int chk_canary(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, canary_fields, ctx, out, err);
}

static const struct field strategy_fields[] = {
    {"canary", chk_canary, false, NULL},
    {"sites-in-parallel", chk_parallel, false, NULL},
    {"healthy-time", chk_duration, false, NULL},
    {"on-failure", chk_on_failure, false, NULL},
};

static int chk_strategy(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, strategy_fields, ctx, out, err);
}

static const struct field deployment_fields[] = {
    {"kind", chk_kind, true, NULL},        {"name", chk_name, true, NULL},
    {"application", chk_name, true, NULL}, {"version", chk_deploy_version, false, "\"*\""},
    {"sites", chk_expr, true, NULL},       {"strategy", chk_strategy, false, NULL},
};

/* ---- site ---- */

static int chk_labels(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_object(v) || json_object_size(v) > 64)
                return bad(err, path, "must be a mapping of at most 64 labels");
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return oom(err);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                if (!p)
                        return oom(err);
                if (!sk_spec_valid_label_key(key))
                        return bad(err, p,
                                   "must be a label key: a name of 1 to 63 of A-Z, a-z, 0-9 and "
                                   "'._-' (alphanumeric at both ends), optionally after a DNS "
                                   "prefix and '/' (\"example.com/tier\")");
                if (!strncmp(key, "system/", 7))
                        return bad(err, p,
                                   "must not use the prefix system/: it is reserved for "
                                   "built-in labels");
                json_t *s = NULL;
                int r = scalar_string(val, p, 256, &s, err);
                if (r < 0)
                        return r;
                bool ok = true;
                for (const char *c = json_string_value(s); *c && ok; c++)
                        ok = !iscntrl((unsigned char)*c);
                if (!ok) {
                        json_decref(s);
                        return bad(err, p, "must not hold control characters");
                }
                if (json_object_set_new(o, key, s) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

static int chk_dev_glob(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        const char *s = json_string_value(v);
        bool ok = s && !strncmp(s, "/dev/", 5) && s[5] && strlen(s) <= 256 && !strstr(s, "..");
        for (const char *c = s; ok && *c; c++)
                ok = isgraph((unsigned char)*c);
        if (!ok)
                return bad(err, path,
                           "must be a glob pattern under /dev/ (\"/dev/video*\"), "
                           "without spaces or '..'");
        return copy(v, out, err);
}

static int chk_udev(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > 32)
                return bad(err, path, "must be a mapping of 1 to 32 udev properties to values");
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return oom(err);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                if (!p)
                        return oom(err);
                if (!env_name(key))
                        return bad(err, p,
                                   "must be a udev property name: A-Z, a-z, 0-9 and "
                                   "'_' (\"ID_VENDOR_ID\")");
                json_t *s = NULL;
                int r = scalar_string(val, p, 256, &s, err);
                if (r < 0)
                        return r;
                if (json_object_set_new(o, key, s) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

static const struct field device_rule_fields[] = {
    {"label", chk_device_label, true, NULL},
    {"match", chk_dev_glob, false, NULL},
    {"udev", chk_udev, false, NULL},
};

static int chk_device_rule(const json_t *v, const char *path, void *ctx, json_t **out,
                           sk_error **err)
{
        int r = CHECK_FIELDS(v, path, device_rule_fields, ctx, out, err);
        if (r == 0)
                r = one_of(*out, path, "match", "udev", err);
        return r;
}

static int chk_device_rules(const json_t *v, const char *path, void *ctx, json_t **out,
                            sk_error **err)
{
        return check_list(v, path, chk_device_rule, ctx, 0, 64, "device rules", out, err);
}

static const struct field site_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
    {"labels", chk_labels, false, "{}"},
    {"devices", chk_device_rules, false, NULL},
    {"host-lost-after", chk_host_lost, false, "\"5s\""},
};

/* ---- tenant, user, vault, secret ---- */

static const struct field quota_fields[] = {
    {"cpu", chk_cpu, false, NULL},
    {"memory", chk_memory, false, NULL},
    {"instances", chk_instances, false, NULL},
};

static int chk_quota(const json_t *v, const char *path, void *ctx, json_t **out, sk_error **err)
{
        return CHECK_FIELDS(v, path, quota_fields, ctx, out, err);
}

static const struct field tenant_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
    {"type", chk_tenant_type, false, "\"application\""},
    {"parent", chk_name, false, NULL}, /* the provider it was made in; the tower sets it */
    {"sites", chk_expr, false, NULL},
    {"quota-per-site", chk_quota, false, NULL},
};

static const struct field user_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
    {"tenant", chk_name, false, NULL},
    {"role", chk_role, false, "\"viewer\""},
};

static const struct field vault_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
};

static int chk_secret_data(const json_t *v, const char *path, void *ctx, json_t **out,
                           sk_error **err)
{
        if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > 64)
                return bad(err, path, "must be a mapping of 1 to 64 keys to values");
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return oom(err);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                _cleanup_json_ json_t *k = json_string(key);
                json_t *s = NULL, *kk = NULL;
                if (!p || !k)
                        return oom(err);
                int r = chk_secret_key(k, p, ctx, &kk, err);
                json_decref(kk);
                if (r == 0)
                        r = scalar_string(val, p, 65536, &s, err);
                if (r < 0)
                        return r;
                if (json_object_set_new(o, key, s) < 0)
                        return oom(err);
        }
        *out = take_ptr(&o);
        return 0;
}

static const struct field secret_fields[] = {
    {"kind", chk_kind, true, NULL},
    {"name", chk_name, true, NULL},
    {"vault", chk_name, true, NULL},
    {"data", chk_secret_data, true, NULL},
};

/* ---- entry points ---- */

static const struct {
        const struct field *fields;
        size_t n;
} validators[SK_KIND_COUNT] = {
    [SK_KIND_TENANT] = {tenant_fields, SK_ARRAY_SIZE(tenant_fields)},
    [SK_KIND_USER] = {user_fields, SK_ARRAY_SIZE(user_fields)},
    [SK_KIND_SITE] = {site_fields, SK_ARRAY_SIZE(site_fields)},
    [SK_KIND_APPLICATION] = {application_fields, SK_ARRAY_SIZE(application_fields)},
    [SK_KIND_DEPLOYMENT] = {deployment_fields, SK_ARRAY_SIZE(deployment_fields)},
    [SK_KIND_VAULT] = {vault_fields, SK_ARRAY_SIZE(vault_fields)},
    [SK_KIND_SECRET] = {secret_fields, SK_ARRAY_SIZE(secret_fields)},
};

static const char appliable_list[] =
    "tenant, user, site, application (app), deployment, vault or secret";

static const sk_kind_info *doc_kind(const json_t *doc, sk_error **err)
{
        if (!json_is_object(doc)) {
                bad(err, "", "must be a mapping with kind and name");
                return NULL;
        }
        const json_t *k = json_object_get(doc, "kind");
        if (!k) {
                bad(err, "kind", "is required");
                return NULL;
        }
        const sk_kind_info *info = sk_kind_lookup(json_string_value(k));
        if (!info || !info->appliable) {
                sk_error_set_path(err, EINVAL, "kind", "must be one of %s%s", appliable_list,
                                  info ? " (this kind cannot be applied)" : "");
                return NULL;
        }
        return info;
}

int sk_spec_validate_kind(sk_kind kind, const json_t *doc, json_t **normalized, sk_error **err)
{
        *normalized = NULL;
        const sk_kind_info *want = sk_kind_get(kind);
        if (!want || !want->appliable)
                return sk_error_set(err, EINVAL, "a %s cannot be applied",
                                    want ? want->name : "resource of this kind");
        const sk_kind_info *info = doc_kind(doc, err);
        if (!info)
                return -EINVAL;
        if (info->kind != kind)
                return sk_error_set_path(err, EINVAL, "kind", "must be %s here", want->name);
        /* What the tower adds to a resource it answers with is ignored on the way in, so
         * `skerry get ... -o yaml | skerry apply -f -` round-trips. */
        _cleanup_json_ json_t *input = json_copy((json_t *)doc);
        if (!input)
                return oom(err);
        static const char *const read_only[] = {"created", "updated", "versions", "status"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(read_only); i++)
                json_object_del(input, read_only[i]);
        if (kind != SK_KIND_USER)
                json_object_del(input, "tenant");
        return check_fields(input, "", validators[kind].fields, validators[kind].n, NULL,
                            normalized, err);
}

int sk_spec_validate(const json_t *doc, json_t **normalized, sk_error **err)
{
        *normalized = NULL;
        const sk_kind_info *info = doc_kind(doc, err);
        if (!info)
                return -EINVAL;
        return sk_spec_validate_kind(info->kind, doc, normalized, err);
}
