/* The desired document (model/desired.h). */
#include "model/desired.h"

#include <stdint.h>
#include <string.h>

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static const sk_int_rule generation_rule = {1, INT64_MAX};
static const sk_int_rule count_rule = {0, INT64_MAX};

static const sk_field deployment_fields[] = {
    F("tenant", sk_ft_string, sk_desired_deployment, tenant, true, NULL, &sk_rule_name),
    F("name", sk_ft_string, sk_desired_deployment, name, true, NULL, &sk_rule_name),
    F("application", sk_ft_string, sk_desired_deployment, application, true, NULL, &sk_rule_name),
    F("version", sk_ft_string, sk_desired_deployment, version, true, NULL, &sk_rule_version),
    F("spec", sk_ft_inline, sk_desired_deployment, spec, true, NULL, &sk_app_embedded_table),
};
static const sk_model deployment_table =
    SK_MODEL(deployment_fields, sk_desired_deployment, NULL, false);

static const sk_list_rule deployments_rule =
    SK_OBJECT_LIST(sk_desired_deployment, deployment_table, 0, SIZE_MAX, "deployments");

/* the quota's own fields; its tenant is the key it is listed under */
static const sk_field quota_fields[] = {
    F("cpu", sk_ft_int, sk_site_quota, cpu_millicores, false, NULL, &count_rule),
    F("memory", sk_ft_int, sk_site_quota, memory_bytes, false, NULL, &count_rule),
    F("instances", sk_ft_int, sk_site_quota, instances, false, NULL, &count_rule),
};
static const sk_model quota_table = SK_MODEL(quota_fields, sk_site_quota, NULL, false);

static const sk_keyed_rule quotas_rule = {
    .key = &sk_rule_name,
    .item = &sk_ft_inline,
    .item_arg = &quota_table,
    .item_size = sizeof(sk_site_quota),
    .key_offset = offsetof(sk_site_quota, tenant),
    .value_offset = 0,
};

static bool hex64_ok(const char *s)
{
        return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}
static const sk_string_rule fingerprint_rule = {hex64_ok, "must be a SHA-256 fingerprint (64 "
                                                          "lowercase hex digits)"};
static const sk_int_rule ca_generation_rule = {1, INT32_MAX};
static const sk_list_rule leaves_rule = {
    .item = &sk_ft_string,
    .item_arg = &fingerprint_rule,
    .item_size = sizeof(char *),
    .min = 0,
    .max = SIZE_MAX,
    .what = "fingerprints",
};
static const sk_field site_ca_fields[] = {
    F("generation", sk_ft_int, sk_site_ca_announce, generation, true, NULL, &ca_generation_rule),
    F("sha256", sk_ft_string, sk_site_ca_announce, sha256, true, NULL, &fingerprint_rule),
    F("leaves", sk_ft_list, sk_site_ca_announce, leaves, false, NULL, &leaves_rule),
};
static const sk_model site_ca_table = SK_MODEL(site_ca_fields, sk_site_ca_announce, NULL, false);

static const sk_field doc_fields[] = {
    F("generation", sk_ft_int, sk_desired_doc, generation, false, NULL, &generation_rule),
    F("site", sk_ft_inline, sk_desired_doc, site, true, NULL, &sk_site_desired_table),
    F("deployments", sk_ft_list, sk_desired_doc, deployments, true, NULL, &deployments_rule),
    F("quotas", sk_ft_keyed, sk_desired_doc, quotas, false, NULL, &quotas_rule),
    F("removed-hosts", sk_ft_list, sk_desired_doc, removed_hosts, false, NULL, &sk_rule_host_ids),
    F("site-ca", sk_ft_object, sk_desired_doc, site_ca, false, NULL, &site_ca_table),
};
const sk_model sk_desired_doc_table = SK_MODEL(doc_fields, sk_desired_doc, NULL, false);

SK_RESOURCE_FUNCTIONS(desired_doc, sk_desired_doc, sk_desired_doc_table)

const sk_desired_deployment *sk_desired_doc_deployment(const sk_desired_doc *d, const char *tenant,
                                                       const char *name)
{
        for (size_t i = 0; i < d->deployments.n; i++) {
                const sk_desired_deployment *dep = &d->deployments.items[i];
                if (!strcmp(dep->tenant, tenant) && !strcmp(dep->name, name))
                        return dep;
        }
        return NULL;
}

const sk_site_quota *sk_desired_doc_quota(const sk_desired_doc *d, const char *tenant)
{
        for (size_t i = 0; i < d->quotas.n; i++)
                if (!strcmp(d->quotas.items[i].tenant, tenant))
                        return &d->quotas.items[i];
        return NULL;
}

bool sk_desired_doc_removed(const sk_desired_doc *d, int64_t host_id)
{
        for (size_t i = 0; i < d->removed_hosts.n; i++)
                if (d->removed_hosts.items[i] == host_id)
                        return true;
        return false;
}
