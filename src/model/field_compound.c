/* Field types that hold others (model/field.h): string maps, lists, nested objects,
 * keyed mappings and objects of strings. */
#include "model/field.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"

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
                if (!sk_field_str_equal(x->items[i].key, y->items[i].key) ||
                    !sk_field_str_equal(x->items[i].value, y->items[i].value))
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
                        if (!sk_field_str_equal(a, b))
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
        return sk_field_put(sk_model_write(f->arg, src), out);
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
        return sk_model_new(f->arg, v, path, ctx, dst, err);
}

static int object_write(const sk_field *f, const void *src, json_t **out)
{
        const void *obj = *(void *const *)src;
        if (!obj)
                return 0;
        return sk_field_put(sk_model_write(f->arg, obj), out);
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

static int nullable_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                          const sk_field_ctx *ctx, sk_error **err)
{
        return json_is_null(v) ? 0 : object_parse(v, path, f, dst, ctx, err);
}

static int nullable_write(const sk_field *f, const void *src, json_t **out)
{
        return *(void *const *)src ? object_write(f, src, out) : sk_field_put(json_null(), out);
}

const sk_field_type sk_ft_nullable_object = {nullable_parse, nullable_write, object_free,
                                             object_equal, NULL};

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
                if (!sk_field_str_equal(item_key(f->arg, a, i), item_key(f->arg, b, i)))
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
        return sk_field_put(json_deep_copy(o), out);
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
