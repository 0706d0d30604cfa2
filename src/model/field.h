/* The field tables every model parser is built from (docs/architecture.md, "The domain
 * model").
 *
 * A resource struct is described once by a table of its JSON fields: name, type, where the
 * value lives in the struct (offsetof), whether it is required, and its default. One table
 * drives the four things each model module exports: parse-and-validate from JSON (unknown
 * fields refused, each field checked by its type, defaults filled, errors with the JSON
 * path), writing back to JSON, freeing, and comparing. So each rule (a name's bounds, a
 * replica bound, a quantity) is written once, as a field type or a table entry. */
#ifndef SK_MODEL_FIELD_H
#define SK_MODEL_FIELD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/labelexpr.h"

/* The "not set" value of an optional integer or enum field. */
#define SK_UNSET (-1)

/* A list field: `SK_LIST(sk_service) services;` gives services.items[i], services.n. */
#define SK_LIST(T)                                                                                 \
        struct {                                                                                   \
                T *items;                                                                          \
                size_t n;                                                                          \
        }

typedef SK_LIST(void) sk_list;

/* A label expression: the text as written (what is stored and shown) and its compiled form,
 * parsed once with the document. */
typedef struct sk_expr_text {
        char *text;
        sk_expr *expr;
} sk_expr_text;

/* A duration as written ("1h30m") and its value; text NULL when not set. */
typedef struct sk_duration {
        char *text;
        int64_t ms;
} sk_duration;

/* A cpu (millicores) or memory (bytes) quantity and how it was written (0.5, "500m", 2),
 * which is what is stored and shown back. */
typedef enum sk_spelling {
        SK_SPELLING_NONE, /* not set */
        SK_SPELLING_INTEGER,
        SK_SPELLING_REAL,
        SK_SPELLING_TEXT
} sk_spelling;

typedef struct sk_quantity {
        int64_t value;
        sk_spelling spelling;
        int64_t integer; /* SK_SPELLING_INTEGER */
        double real;     /* SK_SPELLING_REAL */
        char *text;      /* SK_SPELLING_TEXT */
} sk_quantity;

/* A string map in the order it was written (environment, udev properties, secret data). */
typedef struct sk_kv {
        char *key;
        char *value;
} sk_kv;
typedef SK_LIST(sk_kv) sk_kvs;

typedef struct sk_field sk_field;

/* Context a table hands down to the fields below it: the nearest object whose table asks
 * for it (a service, whose containers refer to its variables and volumes). */
typedef struct sk_field_ctx {
        const void *obj;
        const char *path;
} sk_field_ctx;

typedef struct sk_field_type {
        /* Reads v into dst (the field's place in the struct). On failure dst may hold
         * part of a value: free() releases it. */
        int (*parse)(const json_t *v, const char *path, const sk_field *f, void *dst,
                     const sk_field_ctx *ctx, sk_error **err);
        /* 1 and *out, 0 when the field is not set, -ENOMEM. */
        int (*write)(const sk_field *f, const void *src, json_t **out);
        void (*free)(const sk_field *f, void *dst);
        bool (*equal)(const sk_field *f, const void *a, const void *b);
        /* Marks an absent optional field without default (NULL: all-zero means unset). */
        void (*unset)(const sk_field *f, void *dst);
} sk_field_type;

struct sk_field {
        const char *name;
        const sk_field_type *type;
        size_t offset;
        bool required;
        const char *def; /* JSON text of the default, read by the same type, or NULL */
        const void *arg; /* the type's parameters (bounds, allowed words, sub-table) */
};

typedef struct sk_model {
        const sk_field *fields;
        size_t n;
        size_t size; /* of the struct */
        /* Rules across fields, after all of them are read (e.g. "exactly one of"). */
        int (*post)(void *obj, const char *path, sk_error **err);
        bool gives_ctx; /* the fields below see this object as their sk_field_ctx */
} sk_model;

/* One entry: SK_FIELD("name", sk_ft_string, sk_app, name, true, NULL, &sk_rule_name). */
#define SK_FIELD(name, type, st, member, req, def, arg)                                            \
        {                                                                                          \
                name, &type, offsetof(st, member), req, def, arg                                   \
        }

#define SK_MODEL(fields, type, post, gives_ctx)                                                    \
        {                                                                                          \
                fields, sizeof(fields) / sizeof((fields)[0]), sizeof(type), post, gives_ctx        \
        }

/* The whole object at v into obj (zeroed first). On error obj holds nothing. */
int sk_model_parse(const sk_model *t, const json_t *v, const char *path, const sk_field_ctx *ctx,
                   void *obj, sk_error **err);
json_t *sk_model_write(const sk_model *t, const void *obj);
void sk_model_free(const sk_model *t, void *obj);
bool sk_model_equal(const sk_model *t, const void *a, const void *b);

/* Parameters of the generic types. */
typedef struct sk_string_rule {
        bool (*ok)(const char *s); /* s is NULL for a value that is no string */
        const char *msg;
} sk_string_rule;

typedef struct sk_int_rule {
        int64_t min, max;
} sk_int_rule;

typedef struct sk_duration_rule {
        int64_t min_ms, max_ms;
        const char *msg; /* NULL: the general duration message */
} sk_duration_rule;

typedef struct sk_list_rule {
        const sk_field_type *item;
        const void *item_arg;
        size_t item_size;
        size_t min, max;
        const char *what; /* "services": "must be a list of 1 to 64 services" */
        /* items must differ in this string field (NULL: no rule) */
        const char *unique;
        size_t unique_offset;
        /* further rules over the whole list (NULL: none) */
        int (*post)(const sk_list *l, const char *path, sk_error **err);
} sk_list_rule;

/* A list of min..max structs of type T read by table; a named list's items must differ
 * in their `name`. */
#define SK_OBJECT_LIST(T, table, min_, max_, what_)                                                \
        {                                                                                          \
                .item = &sk_ft_inline, .item_arg = &(table), .item_size = sizeof(T), .min = min_,  \
                .max = max_, .what = what_                                                         \
        }
#define SK_NAMED_LIST(T, table, min_, max_, what_)                                                 \
        {                                                                                          \
                .item = &sk_ft_inline, .item_arg = &(table), .item_size = sizeof(T), .min = min_,  \
                .max = max_, .what = what_, .unique = "name", .unique_offset = offsetof(T, name)   \
        }

typedef struct sk_kvs_rule {
        size_t min, max;     /* entries */
        const char *map_msg; /* the message for a value that is no fitting mapping */
        const sk_string_rule *key;
        size_t value_max;
        /* an extra check of each value, or NULL */
        int (*value_check)(const char *value, const char *path, const sk_field_ctx *ctx,
                           sk_error **err);
} sk_kvs_rule;

/* A mapping whose keys name its items ({"acme": {...}}) read into a list: each item is
 * read by item (with item_arg) at value_offset, and gets its key at key_offset. */
typedef struct sk_keyed_rule {
        const sk_string_rule *key;
        const sk_field_type *item;
        const void *item_arg;
        size_t item_size;
        size_t key_offset;
        size_t value_offset;
} sk_keyed_rule;

/* String fields (char *): arg is an sk_string_rule. */
extern const sk_field_type sk_ft_string;
/* A `kind:` field: any spelling of the kind named in arg ("app"), written as that name;
 * nothing stored. */
extern const sk_field_type sk_ft_kind;
/* int64_t within an sk_int_rule; SK_UNSET when absent, and then not written (a field
 * whose range holds -1 needs a default or must be required). */
extern const sk_field_type sk_ft_int;
/* int: index into arg, a NULL-terminated list of words; SK_UNSET when absent. */
extern const sk_field_type sk_ft_enum;
extern const sk_field_type sk_ft_expr;     /* sk_expr_text */
extern const sk_field_type sk_ft_duration; /* sk_duration; arg an sk_duration_rule or NULL */
extern const sk_field_type sk_ft_cpu;      /* sk_quantity in millicores */
extern const sk_field_type sk_ft_memory;   /* sk_quantity in bytes */
extern const sk_field_type sk_ft_kvs;      /* sk_kvs; arg an sk_kvs_rule */
extern const sk_field_type sk_ft_list;     /* sk_list; arg an sk_list_rule */
/* A pointer to a struct of the table in arg; NULL when absent. */
extern const sk_field_type sk_ft_object;
/* Like sk_ft_object, and JSON null is NULL too; NULL is written as null. */
extern const sk_field_type sk_ft_nullable_object;
/* A struct of the table in arg, in place (list items). */
extern const sk_field_type sk_ft_inline;
/* A string of 1..max bytes without control characters; arg is NULL (max 1024). */
extern const sk_field_type sk_ft_text;
extern const sk_field_type sk_ft_bool; /* bool; absent is false unless a default says */
/* An sk_list read from a mapping by an sk_keyed_rule. */
extern const sk_field_type sk_ft_keyed;
/* json_t *: an object whose values are strings, keys unchecked (labels as hosts report
 * them, with the built-in system/ and device/ ones); NULL when absent. */
extern const sk_field_type sk_ft_string_object;

/* Errors in the model's words. */
int sk_field_bad(sk_error **err, const char *path, const char *msg);
int sk_field_oom(sk_error **err);
/* "must have exactly one of a and b" when exactly one of has_a, has_b is not true. */
int sk_field_one_of(bool has_a, bool has_b, const char *path, const char *a, const char *b,
                    sk_error **err);
/* A scalar as text (numbers and booleans as their JSON spelling), at most max bytes. */
int sk_field_scalar_string(const json_t *v, const char *path, size_t max, char **out,
                           sk_error **err);

/* For field types: a writer's answer (1 with v, or -ENOMEM when v is NULL), and string
 * equality where NULL equals only NULL. */
int sk_field_put(json_t *v, json_t **out);
bool sk_field_str_equal(const char *a, const char *b);
/* A struct of table t, allocated and read from v (model/resource.h reads from the root). */
int sk_model_new(const sk_model *t, const json_t *v, const char *path, const sk_field_ctx *ctx,
                 void **out, sk_error **err);

/* write, free and equal of a field that owns a json_t * (NULL when absent). */
int sk_field_json_write(const sk_field *f, const void *src, json_t **out);
void sk_field_json_free(const sk_field *f, void *dst);
bool sk_field_json_equal(const sk_field *f, const void *a, const void *b);

/* Calls each for every member of the mapping v in order, with the member's path; stops at
 * the first error. */
typedef int (*sk_member_fn)(const char *key, const json_t *val, const char *path, void *arg,
                            sk_error **err);
int sk_field_each_member(const json_t *v, const char *path, sk_member_fn each, void *arg,
                         sk_error **err);

/* The value the sk_kvs holds for key, or NULL. */
const char *sk_kvs_get(const sk_kvs *m, const char *key);

#endif
