/* Field types of one value (model/field.h): strings, numbers, words, booleans, label
 * expressions, durations and quantities. */
#include "model/field.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/spec.h"

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
        return sk_field_put(json_string(s), out);
}

static void string_free(const sk_field *f, void *dst)
{
        free(*(char **)dst);
        *(char **)dst = NULL;
}

static bool string_equal(const sk_field *f, const void *a, const void *b)
{
        return sk_field_str_equal(*(char *const *)a, *(char *const *)b);
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
        return sk_field_put(json_string(f->arg), out);
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
        return sk_field_put(json_integer(i), out);
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
        return sk_field_put(json_string(((const char *const *)f->arg)[i]), out);
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
        /* through the cache: the tower parses stored documents again on every refresh */
        if (sk_expr_parse_cached(json_string_value(v), &e->expr, &perr) < 0) {
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
        return sk_field_put(json_string(e->text), out);
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
        return sk_field_str_equal(((const sk_expr_text *)a)->text, ((const sk_expr_text *)b)->text);
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
        return sk_field_put(json_string(d->text), out);
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
        return x->ms == y->ms && sk_field_str_equal(x->text, y->text);
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
                return sk_field_put(json_integer(q->integer), out);
        case SK_SPELLING_REAL:
                return sk_field_put(json_real(q->real), out);
        case SK_SPELLING_TEXT:
                return sk_field_put(json_string(q->text), out);
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
                return sk_field_str_equal(x->text, y->text);
        default:
                return true;
        }
}

const sk_field_type sk_ft_cpu = {cpu_parse, quantity_write, quantity_free, quantity_equal, NULL};
const sk_field_type sk_ft_memory = {memory_parse, quantity_write, quantity_free, quantity_equal,
                                    NULL};
