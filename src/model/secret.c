/* Vaults and secrets (model/secret.h). */
#include "model/secret.h"

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static const sk_kvs_rule data_rule = {
    .min = 1,
    .max = 64,
    .map_msg = "must be a mapping of 1 to 64 keys to values",
    .key = &sk_rule_secret_key,
    .value_max = 65536,
};

static const sk_field vault_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "vault"},
    F("name", sk_ft_string, sk_vault, name, true, NULL, &sk_rule_name),
};
const sk_model sk_vault_table = SK_MODEL(vault_fields, sk_vault, NULL, false);

static const sk_field secret_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "secret"},
    F("name", sk_ft_string, sk_secret, name, true, NULL, &sk_rule_name),
    F("vault", sk_ft_string, sk_secret, vault, true, NULL, &sk_rule_name),
    F("data", sk_ft_kvs, sk_secret, data, true, NULL, &data_rule),
};
const sk_model sk_secret_table = SK_MODEL(secret_fields, sk_secret, NULL, false);

SK_RESOURCE_FUNCTIONS(vault, sk_vault, sk_vault_table)
SK_RESOURCE_FUNCTIONS(secret, sk_secret, sk_secret_table)
