/* The field-table machinery (model/field.h): tables, and the helpers field types share.
 * The types themselves are in field_scalar.c and field_compound.c. */
#include "model/field.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/resource.h"

#define AT(obj, f)       ((char *)(obj) + (f)->offset)
#define AT_CONST(obj, f) ((const char *)(obj) + (f)->offset)

int sk_field_bad(sk_error **err, const char *path, const char *msg)
{
        return sk_error_set_path(err, EINVAL, path, "%s", msg);
}

int sk_field_oom(sk_error **err)
{
        return sk_error_set(err, ENOMEM, "out of memory");
}

int sk_field_one_of(bool has_a, bool has_b, const char *path, const char *a, const char *b,
                    sk_error **err)
{
        if (has_a == has_b)
                return sk_error_set_path(err, EINVAL, path, "must have exactly one of %s and %s", a,
                                         b);
        return 0;
}

int sk_field_scalar_string(const json_t *v, const char *path, size_t max, char **out,
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
                return sk_field_bad(err, path,
                                    "must be a string (numbers and booleans are taken as text)");
        if (!s)
                return sk_field_oom(err);
        if (strlen(s) > max)
                return sk_error_set_path(err, EINVAL, path, "must be at most %zu bytes long", max);
        *out = take_ptr(&s);
        return 0;
}

const char *sk_kvs_get(const sk_kvs *m, const char *key)
{
        for (size_t i = 0; i < m->n; i++)
                if (!strcmp(m->items[i].key, key))
                        return m->items[i].value;
        return NULL;
}

/* A writer's answer: 1 with the value, or -ENOMEM when making it failed. */
int sk_field_put(json_t *v, json_t **out)
{
        *out = v;
        return v ? 1 : -ENOMEM;
}

int sk_field_each_member(const json_t *v, const char *path, sk_member_fn each, void *arg,
                         sk_error **err)
{
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                _cleanup_free_ char *p = sk_yaml_path_key(path, key);
                if (!p)
                        return sk_field_oom(err);
                int r = each(key, val, p, arg, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool sk_field_str_equal(const char *a, const char *b)
{
        return a == b || (a && b && !strcmp(a, b));
}

/* ---- tables ---- */

static int unknown_field(const sk_model *t, const char *path, const char *key, sk_error **err)
{
        _cleanup_free_ char *allowed = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&allowed, &len);
        if (!f)
                return sk_field_oom(err);
        for (size_t i = 0; i < t->n; i++)
                fprintf(f, "%s%s", i ? ", " : "", t->fields[i].name);
        fclose(f);
        _cleanup_free_ char *p = sk_yaml_path_key(path, key);
        return sk_error_set_path(err, EINVAL, p, "unknown field: the fields allowed here are %s",
                                 allowed ? allowed : "");
}

static int parse_field(const sk_field *f, const json_t *obj, const char *path, void *dst,
                       const sk_field_ctx *ctx, sk_error **err)
{
        _cleanup_free_ char *p = sk_yaml_path_key(path, f->name);
        if (!p)
                return sk_field_oom(err);
        const json_t *in = json_object_get(obj, f->name);
        if (in)
                return f->type->parse(in, p, f, dst, ctx, err);
        if (f->required)
                return sk_field_bad(err, p, "is required");
        if (f->def) {
                _cleanup_json_ json_t *d = json_loads(f->def, JSON_DECODE_ANY, NULL);
                if (!d)
                        return sk_field_oom(err);
                return f->type->parse(d, p, f, dst, ctx, err);
        }
        if (f->type->unset)
                f->type->unset(f, dst);
        return 0;
}

int sk_model_parse(const sk_model *t, const json_t *v, const char *path, const sk_field_ctx *ctx,
                   void *obj, sk_error **err)
{
        memset(obj, 0, t->size);
        if (!json_is_object(v))
                return sk_field_bad(err, path, "must be a mapping");
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
                bool known = false;
                for (size_t i = 0; i < t->n && !known; i++)
                        known = !strcmp(key, t->fields[i].name);
                if (!known)
                        return unknown_field(t, path, key, err);
        }
        sk_field_ctx mine = {obj, path};
        const sk_field_ctx *below = t->gives_ctx ? &mine : ctx;
        int r = 0;
        for (size_t i = 0; i < t->n && r == 0; i++)
                r = parse_field(&t->fields[i], v, path, AT(obj, &t->fields[i]), below, err);
        if (r == 0 && t->post)
                r = t->post(obj, path, err);
        if (r < 0)
                sk_model_free(t, obj);
        return r;
}

json_t *sk_model_write(const sk_model *t, const void *obj)
{
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return NULL;
        for (size_t i = 0; i < t->n; i++) {
                const sk_field *f = &t->fields[i];
                json_t *val = NULL;
                int r = f->type->write(f, AT_CONST(obj, f), &val);
                if (r < 0 || (r == 1 && json_object_set_new(o, f->name, val) < 0))
                        return NULL;
        }
        return take_ptr(&o);
}

void sk_model_free(const sk_model *t, void *obj)
{
        if (!obj)
                return;
        for (size_t i = 0; i < t->n; i++)
                if (t->fields[i].type->free)
                        t->fields[i].type->free(&t->fields[i], AT(obj, &t->fields[i]));
        memset(obj, 0, t->size);
}

bool sk_model_equal(const sk_model *t, const void *a, const void *b)
{
        for (size_t i = 0; i < t->n; i++) {
                const sk_field *f = &t->fields[i];
                if (!f->type->equal(f, AT_CONST(a, f), AT_CONST(b, f)))
                        return false;
        }
        return true;
}

/* ---- whole resources (model/resource.h) ---- */

int sk_model_new(const sk_model *t, const json_t *v, const char *path, const sk_field_ctx *ctx,
                 void **out, sk_error **err)
{
        *out = NULL;
        void *obj = calloc(1, t->size);
        if (!obj)
                return sk_field_oom(err);
        int r = sk_model_parse(t, v, path, ctx, obj, err);
        if (r < 0) {
                free(obj);
                return r;
        }
        *out = obj;
        return 0;
}

int sk_resource_from_json(const sk_model *t, const json_t *j, void **out, sk_error **err)
{
        return sk_model_new(t, j, "", NULL, out, err);
}

void sk_resource_free(const sk_model *t, void *obj)
{
        sk_model_free(t, obj);
        free(obj);
}
