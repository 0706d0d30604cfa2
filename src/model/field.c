/* The field-table machinery (model/field.h) and the field types every resource shares. */
#include "model/field.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/resource.h"
#include "model/spec.h"

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
static int put(json_t *v, json_t **out)
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

static bool str_equal(const char *a, const char *b)
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

/* ---- strings ---- */

static int string_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                        const sk_field_ctx *ctx, sk_error **err)
{
        const sk_string_rule *rule = f->arg;
        const char *s = json_string_value(v);
        if (!rule->ok(s))
                return sk_field_bad(err, path, rule->msg);
        *(char **)dst = strdup(s);
        return *(char **)dst ? 0 : sk_field_oom(err);
}

static int string_write(const sk_field *f, const void *src, json_t **out)
{
        const char *s = *(char *const *)src;
        if (!s)
                return 0;
        return put(json_string(s), out);
}

static void string_free(const sk_field *f, void *dst)
{
        free(*(char **)dst);
        *(char **)dst = NULL;
}

static bool string_equal(const sk_field *f, const void *a, const void *b)
{
        return str_equal(*(char *const *)a, *(char *const *)b);
}

const sk_field_type sk_ft_string = {string_parse, string_write, string_free, string_equal, NULL};

static int text_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        const char *s = json_string_value(v);
        bool ok = s && *s && strlen(s) <= 1024;
        for (const char *c = s; ok && *c; c++)
                ok = !iscntrl((unsigned char)*c);
        if (!ok)
                return sk_field_bad(err, path,
                                    "must be a string of 1 to 1024 characters without control "
                                    "characters");
        *(char **)dst = strdup(s);
        return *(char **)dst ? 0 : sk_field_oom(err);
}

const sk_field_type sk_ft_text = {text_parse, string_write, string_free, string_equal, NULL};

static int kind_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        const sk_kind_info *k = sk_kind_lookup(json_string_value(v));
        if (!k)
                return sk_field_bad(err, path, "must be a resource kind");
        if (strcmp(k->name, f->arg))
                return sk_error_set_path(err, EINVAL, path, "must be %s here",
                                         (const char *)f->arg);
        return 0;
}

static int kind_write(const sk_field *f, const void *src, json_t **out)
{
        return put(json_string(f->arg), out);
}

static bool always_equal(const sk_field *f, const void *a, const void *b)
{
        return true;
}

const sk_field_type sk_ft_kind = {kind_parse, kind_write, NULL, always_equal, NULL};

/* ---- numbers, words, booleans ---- */

static int int_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                     const sk_field_ctx *ctx, sk_error **err)
{
        const sk_int_rule *rule = f->arg;
        if (!json_is_integer(v) || json_integer_value(v) < rule->min ||
            json_integer_value(v) > rule->max)
                return sk_error_set_path(err, EINVAL, path,
                                         "must be an integer from %" PRId64 " to %" PRId64,
                                         rule->min, rule->max);
        *(int64_t *)dst = json_integer_value(v);
        return 0;
}

static int int_write(const sk_field *f, const void *src, json_t **out)
{
        int64_t i = *(const int64_t *)src;
        if (i == SK_UNSET && ((const sk_int_rule *)f->arg)->min >= 0)
                return 0;
        return put(json_integer(i), out);
}

static bool int_equal(const sk_field *f, const void *a, const void *b)
{
        return *(const int64_t *)a == *(const int64_t *)b;
}

static void int_unset(const sk_field *f, void *dst)
{
        *(int64_t *)dst = SK_UNSET;
}

const sk_field_type sk_ft_int = {int_parse, int_write, NULL, int_equal, int_unset};

static int enum_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        const char *const *words = f->arg;
        size_t n = 0;
        while (words[n])
                n++;
        for (size_t i = 0; json_is_string(v) && i < n; i++)
                if (!strcmp(json_string_value(v), words[i])) {
                        *(int *)dst = (int)i;
                        return 0;
                }
        char list[256] = "";
        for (size_t i = 0; i < n; i++) {
                strncat(list,
                        i == 0       ? ""
                        : i + 1 == n ? " or "
                                     : ", ",
                        sizeof(list) - strlen(list) - 1);
                strncat(list, words[i], sizeof(list) - strlen(list) - 1);
        }
        return sk_error_set_path(err, EINVAL, path, "must be %s", list);
}

static int enum_write(const sk_field *f, const void *src, json_t **out)
{
        int i = *(const int *)src;
        if (i < 0)
                return 0;
        return put(json_string(((const char *const *)f->arg)[i]), out);
}

static bool enum_equal(const sk_field *f, const void *a, const void *b)
{
        return *(const int *)a == *(const int *)b;
}

static void enum_unset(const sk_field *f, void *dst)
{
        *(int *)dst = SK_UNSET;
}

const sk_field_type sk_ft_enum = {enum_parse, enum_write, NULL, enum_equal, enum_unset};

static int bool_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        if (!json_is_boolean(v))
                return sk_field_bad(err, path, "must be true or false");
        *(bool *)dst = json_is_true(v);
        return 0;
}

static int bool_write(const sk_field *f, const void *src, json_t **out)
{
        *out = json_boolean(*(const bool *)src);
        return 1;
}

static bool bool_equal(const sk_field *f, const void *a, const void *b)
{
        return *(const bool *)a == *(const bool *)b;
}

const sk_field_type sk_ft_bool = {bool_parse, bool_write, NULL, bool_equal, NULL};

/* ---- expressions, durations, quantities ---- */

static int expr_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        sk_expr_text *e = dst;
        if (!json_is_string(v))
                return sk_field_bad(err, path,
                                    "must be a label expression (a string like "
                                    "\"chain = acme and region in (north, west)\")");
        _cleanup_error_ sk_error *perr = NULL;
        if (sk_expr_parse(json_string_value(v), &e->expr, &perr) < 0) {
                if (perr && perr->code == ENOMEM)
                        return sk_field_oom(err);
                int r = sk_error_set_path(err, EINVAL, path, "must be a label expression: %s",
                                          sk_error_msg(perr, -EINVAL));
                if (err && *err && perr && !(*err)->column)
                        (*err)->column = perr->column;
                return r;
        }
        e->text = strdup(json_string_value(v));
        return e->text ? 0 : sk_field_oom(err);
}

static int expr_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_expr_text *e = src;
        if (!e->text)
                return 0;
        return put(json_string(e->text), out);
}

static void expr_free(const sk_field *f, void *dst)
{
        sk_expr_text *e = dst;
        free(e->text);
        sk_expr_free(e->expr);
        *e = (sk_expr_text){0};
}

static bool expr_equal(const sk_field *f, const void *a, const void *b)
{
        return str_equal(((const sk_expr_text *)a)->text, ((const sk_expr_text *)b)->text);
}

const sk_field_type sk_ft_expr = {expr_parse, expr_write, expr_free, expr_equal, NULL};

static int duration_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                          const sk_field_ctx *ctx, sk_error **err)
{
        const sk_duration_rule *rule = f->arg;
        sk_duration *d = dst;
        int64_t ms;
        if (!json_is_string(v) || sk_duration_ms(json_string_value(v), &ms) < 0 ||
            (rule && (ms < rule->min_ms || ms > rule->max_ms)))
                return sk_field_bad(err, path,
                                    rule && rule->msg
                                        ? rule->msg
                                        : "must be a duration like \"250ms\", \"5s\", \"10m\" or "
                                          "\"1h30m\" (units ms, s, m, h, d)");
        d->ms = ms;
        d->text = strdup(json_string_value(v));
        return d->text ? 0 : sk_field_oom(err);
}

static int duration_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_duration *d = src;
        if (!d->text)
                return 0;
        return put(json_string(d->text), out);
}

static void duration_free(const sk_field *f, void *dst)
{
        sk_duration *d = dst;
        free(d->text);
        *d = (sk_duration){0};
}

static bool duration_equal(const sk_field *f, const void *a, const void *b)
{
        const sk_duration *x = a, *y = b;
        return x->ms == y->ms && str_equal(x->text, y->text);
}

const sk_field_type sk_ft_duration = {duration_parse, duration_write, duration_free, duration_equal,
                                      NULL};

static int quantity_keep(const json_t *v, int64_t value, sk_quantity *q, sk_error **err)
{
        q->value = value;
        if (json_is_integer(v)) {
                q->spelling = SK_SPELLING_INTEGER;
                q->integer = json_integer_value(v);
        } else if (json_is_real(v)) {
                q->spelling = SK_SPELLING_REAL;
                q->real = json_real_value(v);
        } else {
                q->spelling = SK_SPELLING_TEXT;
                if (!(q->text = strdup(json_string_value(v))))
                        return sk_field_oom(err);
        }
        return 0;
}

static int cpu_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                     const sk_field_ctx *ctx, sk_error **err)
{
        int64_t m;
        if (sk_quantity_cpu(v, &m) < 0)
                return sk_field_bad(err, path,
                                    "must be a CPU quantity like 0.5, \"500m\" or 2 (whole "
                                    "millicores, at most 1000000 cores)");
        return quantity_keep(v, m, dst, err);
}

static int memory_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                        const sk_field_ctx *ctx, sk_error **err)
{
        int64_t b;
        if (sk_quantity_memory(v, &b) < 0)
                return sk_field_bad(err, path,
                                    "must be a memory quantity like 256Mi, 1Gi, 1G or 1000 (bytes; "
                                    "suffixes k M G T P E, Ki Mi Gi Ti Pi Ei)");
        return quantity_keep(v, b, dst, err);
}

static int quantity_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_quantity *q = src;
        switch (q->spelling) {
        case SK_SPELLING_NONE:
                return 0;
        case SK_SPELLING_INTEGER:
                return put(json_integer(q->integer), out);
        case SK_SPELLING_REAL:
                return put(json_real(q->real), out);
        case SK_SPELLING_TEXT:
                return put(json_string(q->text), out);
        }
        return *out ? 1 : -ENOMEM;
}

static void quantity_free(const sk_field *f, void *dst)
{
        sk_quantity *q = dst;
        free(q->text);
        *q = (sk_quantity){0};
}

static bool quantity_equal(const sk_field *f, const void *a, const void *b)
{
        const sk_quantity *x = a, *y = b;
        if (x->spelling != y->spelling || x->value != y->value)
                return false;
        switch (x->spelling) {
        case SK_SPELLING_INTEGER:
                return x->integer == y->integer;
        case SK_SPELLING_REAL:
                return x->real == y->real;
        case SK_SPELLING_TEXT:
                return str_equal(x->text, y->text);
        default:
                return true;
        }
}

const sk_field_type sk_ft_cpu = {cpu_parse, quantity_write, quantity_free, quantity_equal, NULL};
const sk_field_type sk_ft_memory = {memory_parse, quantity_write, quantity_free, quantity_equal,
                                    NULL};

/* ---- string maps ---- */

static void kvs_free(const sk_field *f, void *dst)
{
        sk_kvs *m = dst;
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].key);
                free(m->items[i].value);
        }
        free(m->items);
        *m = (sk_kvs){0};
}

struct kvs_walk {
        const sk_kvs_rule *rule;
        sk_kvs *m;
        const sk_field_ctx *ctx;
};

static int kv_member(const char *key, const json_t *val, const char *path, void *arg,
                     sk_error **err)
{
        struct kvs_walk *w = arg;
        if (!w->rule->key->ok(key))
                return sk_field_bad(err, path, w->rule->key->msg);
        sk_kv *kv = &w->m->items[w->m->n++];
        int r = sk_field_scalar_string(val, path, w->rule->value_max, &kv->value, err);
        if (r == 0 && !(kv->key = strdup(key)))
                r = sk_field_oom(err);
        if (r == 0 && w->rule->value_check)
                r = w->rule->value_check(kv->value, path, w->ctx, err);
        return r;
}

static int kvs_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                     const sk_field_ctx *ctx, sk_error **err)
{
        struct kvs_walk w = {f->arg, dst, ctx};
        if (!json_is_object(v) || json_object_size(v) < w.rule->min ||
            json_object_size(v) > w.rule->max)
                return sk_field_bad(err, path, w.rule->map_msg);
        /* one slot even for an empty map: a set map is told from an absent one */
        if (!(w.m->items = calloc(json_object_size(v) + 1, sizeof(sk_kv))))
                return sk_field_oom(err);
        return sk_field_each_member(v, path, kv_member, &w, err);
}

static int kvs_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_kvs *m = src;
        if (!m->items)
                return 0;
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < m->n; i++)
                if (json_object_set_new(o, m->items[i].key, json_string(m->items[i].value)) < 0)
                        return -ENOMEM;
        *out = take_ptr(&o);
        return 1;
}

static bool kvs_equal(const sk_field *f, const void *a, const void *b)
{
        const sk_kvs *x = a, *y = b;
        if (x->n != y->n || !x->items != !y->items)
                return false;
        for (size_t i = 0; i < x->n; i++)
                if (!str_equal(x->items[i].key, y->items[i].key) ||
                    !str_equal(x->items[i].value, y->items[i].value))
                        return false;
        return true;
}

const sk_field_type sk_ft_kvs = {kvs_parse, kvs_write, kvs_free, kvs_equal, NULL};

/* ---- lists ---- */

/* The items of a list or keyed mapping: their type and size, and where in each item its
 * typed value is (0 in a list; beside the key in a keyed mapping's item). */
struct items {
        const sk_field_type *type;
        const void *arg;
        size_t size, value_offset;
};

static void *item_value(const struct items *it, const sk_list *l, size_t i)
{
        return (char *)l->items + i * it->size + it->value_offset;
}

static void items_free(const struct items *it, sk_list *l)
{
        sk_field item = {.type = it->type, .arg = it->arg};
        for (size_t i = 0; i < l->n && it->type->free; i++)
                it->type->free(&item, item_value(it, l, i));
        free(l->items);
        *l = (sk_list){0};
}

static bool items_equal(const struct items *it, const sk_list *x, const sk_list *y)
{
        if (x->n != y->n || !x->items != !y->items)
                return false;
        sk_field item = {.type = it->type, .arg = it->arg};
        for (size_t i = 0; i < x->n; i++)
                if (!it->type->equal(&item, item_value(it, x, i), item_value(it, y, i)))
                        return false;
        return true;
}

static struct items list_items(const sk_list_rule *rule)
{
        return (struct items){rule->item, rule->item_arg, rule->item_size, 0};
}

static void list_free(const sk_field *f, void *dst)
{
        struct items it = list_items(f->arg);
        items_free(&it, dst);
}

static int list_unique(const sk_list_rule *rule, const sk_list *l, const char *path, sk_error **err)
{
        for (size_t i = 0; i < l->n; i++) {
                const char *a = *(char *const *)((const char *)l->items + i * rule->item_size +
                                                 rule->unique_offset);
                for (size_t j = 0; j < i; j++) {
                        const char *b = *(char *const *)((const char *)l->items +
                                                         j * rule->item_size + rule->unique_offset);
                        if (!str_equal(a, b))
                                continue;
                        _cleanup_free_ char *item = sk_yaml_path_index(path, i);
                        _cleanup_free_ char *p = sk_yaml_path_key(item, rule->unique);
                        return sk_error_set_path(err, EINVAL, p,
                                                 "must be unique: \"%s\" is already used by "
                                                 "item %zu",
                                                 a ? a : "", j);
                }
        }
        return 0;
}

static int list_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                      const sk_field_ctx *ctx, sk_error **err)
{
        const sk_list_rule *rule = f->arg;
        sk_list *l = dst;
        if (!json_is_array(v) || json_array_size(v) < rule->min || json_array_size(v) > rule->max) {
                if (rule->min == 0)
                        return sk_error_set_path(err, EINVAL, path,
                                                 "must be a list of at most %zu %s", rule->max,
                                                 rule->what);
                return sk_error_set_path(err, EINVAL, path, "must be a list of %zu to %zu %s",
                                         rule->min, rule->max, rule->what);
        }
        /* one slot even for an empty list: a set list is told from an absent one */
        if (!(l->items = calloc(json_array_size(v) + 1, rule->item_size)))
                return sk_field_oom(err);
        sk_field item = {.type = rule->item, .arg = rule->item_arg};
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
                _cleanup_free_ char *p = sk_yaml_path_index(path, i);
                if (!p)
                        return sk_field_oom(err);
                int r = rule->item->parse(it, p, &item, (char *)l->items + i * rule->item_size, ctx,
                                          err);
                l->n++; /* what failed half-way is freed with the rest */
                if (r < 0)
                        return r;
        }
        int r = rule->unique ? list_unique(rule, l, path, err) : 0;
        if (r == 0 && rule->post)
                r = rule->post(l, path, err);
        return r;
}

static int list_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_list_rule *rule = f->arg;
        const sk_list *l = src;
        if (!l->items)
                return 0;
        _cleanup_json_ json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        sk_field item = {.type = rule->item, .arg = rule->item_arg};
        for (size_t i = 0; i < l->n; i++) {
                json_t *val = NULL;
                int r =
                    rule->item->write(&item, (const char *)l->items + i * rule->item_size, &val);
                if (r < 0 || (r == 1 && json_array_append_new(a, val) < 0))
                        return -ENOMEM;
        }
        *out = take_ptr(&a);
        return 1;
}

static bool list_equal(const sk_field *f, const void *a, const void *b)
{
        struct items it = list_items(f->arg);
        return items_equal(&it, a, b);
}

const sk_field_type sk_ft_list = {list_parse, list_write, list_free, list_equal, NULL};

/* ---- nested objects ---- */

static int inline_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                        const sk_field_ctx *ctx, sk_error **err)
{
        return sk_model_parse(f->arg, v, path, ctx, dst, err);
}

static int inline_write(const sk_field *f, const void *src, json_t **out)
{
        return put(sk_model_write(f->arg, src), out);
}

static void inline_free(const sk_field *f, void *dst)
{
        sk_model_free(f->arg, dst);
}

static bool inline_equal(const sk_field *f, const void *a, const void *b)
{
        return sk_model_equal(f->arg, a, b);
}

const sk_field_type sk_ft_inline = {inline_parse, inline_write, inline_free, inline_equal, NULL};

static int object_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                        const sk_field_ctx *ctx, sk_error **err)
{
        const sk_model *t = f->arg;
        void *obj = calloc(1, t->size);
        if (!obj)
                return sk_field_oom(err);
        int r = sk_model_parse(t, v, path, ctx, obj, err);
        if (r < 0) {
                free(obj);
                return r;
        }
        *(void **)dst = obj;
        return 0;
}

static int object_write(const sk_field *f, const void *src, json_t **out)
{
        const void *obj = *(void *const *)src;
        if (!obj)
                return 0;
        return put(sk_model_write(f->arg, obj), out);
}

static void object_free(const sk_field *f, void *dst)
{
        void **obj = dst;
        sk_model_free(f->arg, *obj);
        free(*obj);
        *obj = NULL;
}

static bool object_equal(const sk_field *f, const void *a, const void *b)
{
        const void *x = *(void *const *)a, *y = *(void *const *)b;
        if (!x || !y)
                return x == y;
        return sk_model_equal(f->arg, x, y);
}

const sk_field_type sk_ft_object = {object_parse, object_write, object_free, object_equal, NULL};

/* ---- keyed mappings ---- */

struct keyed_walk {
        const sk_keyed_rule *rule;
        sk_list *l;
        const sk_field_ctx *ctx;
};

static int keyed_member(const char *key, const json_t *val, const char *path, void *arg,
                        sk_error **err)
{
        struct keyed_walk *w = arg;
        const sk_keyed_rule *rule = w->rule;
        if (!rule->key->ok(key))
                return sk_field_bad(err, path, rule->key->msg);
        sk_field item = {.type = rule->item, .arg = rule->item_arg};
        char *at = (char *)w->l->items + w->l->n * rule->item_size;
        int r = rule->item->parse(val, path, &item, at + rule->value_offset, w->ctx, err);
        w->l->n++;
        if (r == 0 && !(*(char **)(at + rule->key_offset) = strdup(key)))
                r = sk_field_oom(err);
        return r;
}

static int keyed_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                       const sk_field_ctx *ctx, sk_error **err)
{
        struct keyed_walk w = {f->arg, dst, ctx};
        if (!json_is_object(v))
                return sk_field_bad(err, path, "must be a mapping");
        if (!(w.l->items = calloc(json_object_size(v) + 1, w.rule->item_size)))
                return sk_field_oom(err);
        return sk_field_each_member(v, path, keyed_member, &w, err);
}

static int keyed_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_keyed_rule *rule = f->arg;
        const sk_list *l = src;
        if (!l->items)
                return 0;
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return -ENOMEM;
        sk_field item = {.type = rule->item, .arg = rule->item_arg};
        for (size_t i = 0; i < l->n; i++) {
                const char *at = (const char *)l->items + i * rule->item_size;
                json_t *val = NULL;
                int r = rule->item->write(&item, at + rule->value_offset, &val);
                if (r < 0 || (r == 1 && json_object_set_new(
                                            o, *(char *const *)(at + rule->key_offset), val) < 0))
                        return -ENOMEM;
        }
        *out = take_ptr(&o);
        return 1;
}

static struct items keyed_items(const sk_keyed_rule *rule)
{
        return (struct items){rule->item, rule->item_arg, rule->item_size, rule->value_offset};
}

static char *item_key(const sk_keyed_rule *rule, const sk_list *l, size_t i)
{
        return *(char **)((char *)l->items + i * rule->item_size + rule->key_offset);
}

static void keyed_free(const sk_field *f, void *dst)
{
        struct items it = keyed_items(f->arg);
        for (size_t i = 0; i < ((sk_list *)dst)->n; i++)
                free(item_key(f->arg, dst, i));
        items_free(&it, dst);
}

static bool keyed_equal(const sk_field *f, const void *a, const void *b)
{
        struct items it = keyed_items(f->arg);
        if (!items_equal(&it, a, b))
                return false;
        for (size_t i = 0; i < ((const sk_list *)a)->n; i++)
                if (!str_equal(item_key(f->arg, a, i), item_key(f->arg, b, i)))
                        return false;
        return true;
}

const sk_field_type sk_ft_keyed = {keyed_parse, keyed_write, keyed_free, keyed_equal, NULL};

/* ---- objects of strings ---- */

static int string_member(const char *key, const json_t *val, const char *path, void *arg,
                         sk_error **err)
{
        return json_is_string(val) ? 0 : sk_field_bad(err, path, "must be a string");
}

static int string_object_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                               const sk_field_ctx *ctx, sk_error **err)
{
        if (!json_is_object(v))
                return sk_field_bad(err, path, "must be a mapping of strings");
        int r = sk_field_each_member(v, path, string_member, NULL, err);
        if (r == 0 && !(*(json_t **)dst = json_deep_copy(v)))
                r = sk_field_oom(err);
        return r;
}

int sk_field_json_write(const sk_field *f, const void *src, json_t **out)
{
        json_t *o = *(json_t *const *)src;
        if (!o)
                return 0;
        return put(json_deep_copy(o), out);
}

void sk_field_json_free(const sk_field *f, void *dst)
{
        json_decref(*(json_t **)dst);
        *(json_t **)dst = NULL;
}

bool sk_field_json_equal(const sk_field *f, const void *a, const void *b)
{
        const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
        return x == y || (x && y && json_equal((json_t *)x, (json_t *)y));
}

const sk_field_type sk_ft_string_object = {string_object_parse, sk_field_json_write,
                                           sk_field_json_free, sk_field_json_equal, NULL};

/* ---- whole resources (model/resource.h) ---- */

int sk_resource_from_json(const sk_model *t, const json_t *j, void **out, sk_error **err)
{
        *out = NULL;
        void *obj = calloc(1, t->size);
        if (!obj)
                return sk_field_oom(err);
        int r = sk_model_parse(t, j, "", NULL, obj, err);
        if (r < 0) {
                free(obj);
                return r;
        }
        *out = obj;
        return 0;
}

void sk_resource_free(const sk_model *t, void *obj)
{
        sk_model_free(t, obj);
        free(obj);
}
