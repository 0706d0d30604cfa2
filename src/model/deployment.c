/* Deployments (model/deployment.h). */
#include "model/deployment.h"

#include <stdlib.h>
#include <string.h>

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static bool deploy_version_ok(const char *s)
{
        return (s && !strcmp(s, "*")) || sk_rule_charset(s, 64, "._+-");
}

static const sk_string_rule deploy_version_rule = {deploy_version_ok,
                                                   "must be \"*\" (the newest) or a version "
                                                   "string: 1 to 64 of A-Z, a-z, 0-9 and '._+-'"};
static const sk_int_rule parallel_rule = {1, 100000};
static const char *const on_failure_words[] = {"halt", "continue", "rollback", NULL};

static const sk_field canary_fields[] = {
    F("sites", sk_ft_expr, sk_canary, sites, true, NULL, NULL),
    F("healthy-time", sk_ft_duration, sk_canary, healthy_time, false, NULL, NULL),
};
static const sk_model canary_table = SK_MODEL(canary_fields, sk_canary, NULL, false);

static const sk_field strategy_fields[] = {
    F("canary", sk_ft_object, sk_strategy, canary, false, NULL, &canary_table),
    F("sites-in-parallel", sk_ft_int, sk_strategy, sites_in_parallel, false, NULL, &parallel_rule),
    F("healthy-time", sk_ft_duration, sk_strategy, healthy_time, false, NULL, NULL),
    F("on-failure", sk_ft_enum, sk_strategy, on_failure, false, NULL, on_failure_words),
};
static const sk_model strategy_table = SK_MODEL(strategy_fields, sk_strategy, NULL, false);

static const sk_field deployment_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "deployment"},
    F("name", sk_ft_string, sk_deployment, name, true, NULL, &sk_rule_name),
    F("application", sk_ft_string, sk_deployment, application, true, NULL, &sk_rule_name),
    F("version", sk_ft_string, sk_deployment, version, false, "\"*\"", &deploy_version_rule),
    F("sites", sk_ft_expr, sk_deployment, sites, true, NULL, NULL),
    F("strategy", sk_ft_object, sk_deployment, strategy, false, NULL, &strategy_table),
};
const sk_model sk_deployment_table = SK_MODEL(deployment_fields, sk_deployment, NULL, false);

SK_RESOURCE_FUNCTIONS(deployment, sk_deployment, sk_deployment_table)
