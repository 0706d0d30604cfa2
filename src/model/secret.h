/* Vaults and the secrets in them (DESIGN.md section 4). Ownership as in model/app.h. */
#ifndef SK_MODEL_SECRET_H
#define SK_MODEL_SECRET_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

typedef struct sk_vault {
        char *name;
} sk_vault;

typedef struct sk_secret {
        char *name;
        char *vault;
        sk_kvs data; /* 1..64 keys */
} sk_secret;

extern const sk_model sk_vault_table;
SK_RESOURCE_DECLARE(vault, sk_vault)

extern const sk_model sk_secret_table;
SK_RESOURCE_DECLARE(secret, sk_secret)

#define _cleanup_vault_  __attribute__((cleanup(sk_vault_freep)))
#define _cleanup_secret_ __attribute__((cleanup(sk_secret_freep)))
#endif
