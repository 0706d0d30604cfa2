/* The four entry points every model resource has, written once. A header says
 * SK_RESOURCE_DECLARE(app, sk_app) and its module SK_RESOURCE_FUNCTIONS(app, sk_app,
 * sk_app_table), for:
 *   int sk_app_from_json(const json_t *j, sk_app **out, sk_error **err);
 *       allocates, parses and validates from the document's root; errors name the field
 *       by its JSON path ("services[0].replicas"); on error *out is NULL
 *   json_t *sk_app_to_json(const sk_app *x);   the normalised JSON; NULL when out of memory
 *   bool sk_app_equal(const sk_app *a, const sk_app *b);
 *   void sk_app_free(sk_app *x);               NULL is fine
 *   sk_app_freep(sk_app **x), for __attribute__((cleanup)). */
#ifndef SK_MODEL_RESOURCE_H
#define SK_MODEL_RESOURCE_H

#include <stdlib.h>

#include "model/field.h"

int sk_resource_from_json(const sk_model *t, const json_t *j, void **out, sk_error **err);
void sk_resource_free(const sk_model *t, void *obj);

#define SK_RESOURCE_DECLARE(name, T)                                                               \
        int sk_##name##_from_json(const json_t *j, T **out, sk_error **err);                       \
        json_t *sk_##name##_to_json(const T *x);                                                   \
        bool sk_##name##_equal(const T *a, const T *b);                                            \
        void sk_##name##_free(T *x);                                                               \
        static inline void sk_##name##_freep(T **x)                                                \
        {                                                                                          \
                sk_##name##_free(*x);                                                              \
        }

#define SK_RESOURCE_FUNCTIONS(name, T, table)                                                      \
        int sk_##name##_from_json(const json_t *j, T **out, sk_error **err)                        \
        {                                                                                          \
                return sk_resource_from_json(&(table), j, (void **)out, err);                      \
        }                                                                                          \
        json_t *sk_##name##_to_json(const T *x)                                                    \
        {                                                                                          \
                return sk_model_write(&(table), x);                                                \
        }                                                                                          \
        bool sk_##name##_equal(const T *a, const T *b)                                             \
        {                                                                                          \
                return sk_model_equal(&(table), a, b);                                             \
        }                                                                                          \
        void sk_##name##_free(T *x)                                                                \
        {                                                                                          \
                sk_resource_free(&(table), x);                                                     \
        }

#endif
