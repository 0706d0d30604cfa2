/* Tenants and users (model/tenant.h). */
#include "model/tenant.h"

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static const sk_int_rule instances_rule = {0, 100000};
static const char *const tenant_type_words[] = {"provider", "application", NULL};
static const char *const role_words[] = {"admin", "operator", "developer", "viewer", NULL};

static const sk_field quota_fields[] = {
    F("cpu", sk_ft_cpu, sk_tenant_quota, cpu, false, NULL, NULL),
    F("memory", sk_ft_memory, sk_tenant_quota, memory, false, NULL, NULL),
    F("instances", sk_ft_int, sk_tenant_quota, instances, false, NULL, &instances_rule),
};
static const sk_model quota_table = SK_MODEL(quota_fields, sk_tenant_quota, NULL, false);

static const sk_field tenant_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "tenant"},
    F("name", sk_ft_string, sk_tenant, name, true, NULL, &sk_rule_name),
    F("type", sk_ft_enum, sk_tenant, type, false, "\"application\"", tenant_type_words),
    F("parent", sk_ft_string, sk_tenant, parent, false, NULL, &sk_rule_name),
    F("sites", sk_ft_expr, sk_tenant, sites, false, NULL, NULL),
    F("quota-per-site", sk_ft_object, sk_tenant, quota_per_site, false, NULL, &quota_table),
};
const sk_model sk_tenant_table = SK_MODEL(tenant_fields, sk_tenant, NULL, false);

static const sk_field user_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "user"},
    F("name", sk_ft_string, sk_user, name, true, NULL, &sk_rule_name),
    F("tenant", sk_ft_string, sk_user, tenant, false, NULL, &sk_rule_name),
    F("role", sk_ft_enum, sk_user, role, false, "\"viewer\"", role_words),
};
const sk_model sk_user_table = SK_MODEL(user_fields, sk_user, NULL, false);

SK_RESOURCE_FUNCTIONS(tenant, sk_tenant, sk_tenant_table)
SK_RESOURCE_FUNCTIONS(user, sk_user, sk_user_table)
