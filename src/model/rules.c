/* Names, keys and labels (model/rules.h, model/spec.h). */
#include "model/rules.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/spec.h"

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

bool sk_rule_env_name_ok(const char *s)
{
        if (!s || !*s || isdigit((unsigned char)*s) || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '_')
                        return false;
        return true;
}

bool sk_rule_charset(const char *s, size_t max, const char *extra)
{
        size_t n = s ? strlen(s) : 0;
        if (n < 1 || n > max)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
                        return false;
        return true;
}

static bool any_string(const char *s)
{
        return s != NULL;
}

static bool version_ok(const char *s)
{
        return sk_rule_charset(s, 64, "._+-");
}

static bool secret_key_ok(const char *s)
{
        return sk_rule_charset(s, 253, "._-");
}

const sk_string_rule sk_rule_name = {sk_spec_valid_name,
                                     "must be a DNS label: 1 to 63 of a-z, 0-9 and '-', not "
                                     "starting or ending with '-'"};
const sk_string_rule sk_rule_version = {version_ok,
                                        "must be a version string: 1 to 64 of A-Z, a-z, 0-9 and "
                                        "'._+-' (quote it: \"2.1.0\")"};
const sk_string_rule sk_rule_device_label = {sk_spec_valid_name,
                                             "must be a device label: 1 to 63 of a-z, 0-9 and "
                                             "'-', not starting or ending with '-'"};
const sk_string_rule sk_rule_secret_key = {secret_key_ok,
                                           "must be a secret key: 1 to 253 of A-Z, a-z, 0-9 "
                                           "and '._-'"};
const sk_string_rule sk_rule_env_name = {sk_rule_env_name_ok,
                                         "must be a variable name: A-Z, a-z, 0-9 and '_', not "
                                         "starting with a digit"};

const sk_string_rule sk_rule_any_string = {any_string, "must be a string"};

static int device_labels_once(const sk_list *l, const char *path, sk_error **err)
{
        char *const *labels = l->items;
        for (size_t i = 0; i < l->n; i++)
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(labels[i], labels[j])) {
                                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                                return sk_field_bad(err, p,
                                                    "must be unique: this device label is "
                                                    "listed twice");
                        }
        return 0;
}

const sk_list_rule sk_rule_device_labels = {
    .item = &sk_ft_string,
    .item_arg = &sk_rule_device_label,
    .item_size = sizeof(char *),
    .max = 64,
    .what = "device labels",
    .post = device_labels_once,
};

const sk_int_rule sk_rule_host_id = {1, INT64_MAX};

const sk_list_rule sk_rule_host_ids = {.item = &sk_ft_int,
                                       .item_arg = &sk_rule_host_id,
                                       .item_size = sizeof(int64_t),
                                       .max = SIZE_MAX,
                                       .what = "host ids"};

/* ---- labels ---- */

static int label_member(const char *key, const json_t *val, const char *path, void *arg,
                        sk_error **err)
{
        json_t *o = arg;
        if (!sk_spec_valid_label_key(key))
                return sk_field_bad(err, path,
                                    "must be a label key: a name of 1 to 63 of A-Z, a-z, 0-9 and "
                                    "'._-' (alphanumeric at both ends), optionally after a DNS "
                                    "prefix and '/' (\"example.com/tier\")");
        if (!strncmp(key, "system/", 7))
                return sk_field_bad(err, path,
                                    "must not use the prefix system/: it is reserved for "
                                    "built-in labels");
        _cleanup_free_ char *s = NULL;
        int r = sk_field_scalar_string(val, path, 256, &s, err);
        if (r < 0)
                return r;
        for (const char *c = s; *c; c++)
                if (iscntrl((unsigned char)*c))
                        return sk_field_bad(err, path, "must not hold control characters");
        return json_object_set_new(o, key, json_string(s)) < 0 ? sk_field_oom(err) : 0;
}

static int labels_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                        const sk_field_ctx *ctx, sk_error **err)
{
        if (!json_is_object(v) || json_object_size(v) > 64)
                return sk_field_bad(err, path, "must be a mapping of at most 64 labels");
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return sk_field_oom(err);
        int r = sk_field_each_member(v, path, label_member, o, err);
        if (r == 0)
                *(json_t **)dst = take_ptr(&o);
        return r;
}

const sk_field_type sk_ft_labels = {labels_parse, sk_field_json_write, sk_field_json_free,
                                    sk_field_json_equal, NULL};
