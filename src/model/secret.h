/* Vaults and the secrets in them (DESIGN.md section 4). Ownership as in model/app.h. */
#ifndef SK_MODEL_SECRET_H
#define SK_MODEL_SECRET_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"

typedef struct sk_vault {
        char *name;
} sk_vault;

typedef struct sk_secret {
        char *name;
        char *vault;
        sk_kvs data; /* 1..64 keys */
} sk_secret;

extern const sk_model sk_vault_table;
int sk_vault_from_json(const json_t *j, sk_vault **out, sk_error **err);
json_t *sk_vault_to_json(const sk_vault *v);
bool sk_vault_equal(const sk_vault *a, const sk_vault *b);
void sk_vault_free(sk_vault *v);

extern const sk_model sk_secret_table;
int sk_secret_from_json(const json_t *j, sk_secret **out, sk_error **err);
json_t *sk_secret_to_json(const sk_secret *s);
bool sk_secret_equal(const sk_secret *a, const sk_secret *b);
void sk_secret_free(sk_secret *s);

#endif
