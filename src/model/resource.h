/* The four entry points every model resource has, written once: each module says
 * SK_RESOURCE_FUNCTIONS(app, sk_app, sk_app_table) to define sk_app_from_json (allocates,
 * parses and validates from the document's root), sk_app_to_json, sk_app_equal and
 * sk_app_free (NULL is fine) from its field table. */
#ifndef SK_MODEL_RESOURCE_H
#define SK_MODEL_RESOURCE_H

#include <stdlib.h>

#include "model/field.h"

int sk_resource_from_json(const sk_model *t, const json_t *j, void **out, sk_error **err);
void sk_resource_free(const sk_model *t, void *obj);

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
