/* Placements, unplaced instances and instance status (model/instance.h). */
#include "model/instance.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/resource.h"
#include "model/rules.h"
#include "model/spec.h"

#define F SK_FIELD

/* ---- ids ---- */

void sk_instance_id_clear(sk_instance_id *id)
{
        free(id->tenant);
        free(id->deployment);
        free(id->service);
        *id = (sk_instance_id){0};
}

static char *next_part(const char **s)
{
        const char *slash = strchr(*s, '/');
        size_t n = slash ? (size_t)(slash - *s) : strlen(*s);
        char *part = strndup(*s, n);
        *s += n + (slash ? 1 : 0);
        return part;
}

int sk_instance_id_parse(const char *id, sk_instance_id *out)
{
        sk_instance_id x = {.replica = SK_UNSET};
        const char *s = id ? id : "";
        x.tenant = next_part(&s);
        x.deployment = next_part(&s);
        x.service = next_part(&s);
        bool ok = sk_spec_valid_name(x.tenant) && sk_spec_valid_name(x.deployment) &&
                  sk_spec_valid_name(x.service);
        if (ok && *s) {
                char *end;
                long long r = strtoll(s, &end, 10);
                ok = *s >= '0' && *s <= '9' && !*end && r < 1000 && (s[0] != '0' || !s[1]);
                x.replica = r;
        } else if (ok) {
                ok = id[strlen(id) - 1] != '/';
        }
        if (!ok) {
                sk_instance_id_clear(&x);
                return -EINVAL;
        }
        *out = x;
        return 0;
}

char *sk_instance_id_format(const sk_instance_id *id)
{
        char *s = NULL;
        int n = id->replica == SK_UNSET
                    ? asprintf(&s, "%s/%s/%s", id->tenant, id->deployment, id->service)
                    : asprintf(&s, "%s/%s/%s/%" PRId64, id->tenant, id->deployment, id->service,
                               id->replica);
        return n < 0 ? NULL : s;
}

/* ---- tables ---- */

static const sk_int_rule replica_rule = {0, 999};
static const sk_int_rule count_rule = {0, INT64_MAX};
static const sk_int_rule exit_code_rule = {INT32_MIN, INT32_MAX};
static const char *const state_words[] = {"pending", "starting", "running",     "exited",
                                          "backoff", "failed",   "unplaceable", NULL};

const char *sk_instance_state_name(sk_instance_state s)
{
        return (unsigned)s < SK_ARRAY_SIZE(state_words) - 1 ? state_words[s] : "unknown";
}

static const sk_field placement_fields[] = {
    F("instance", sk_ft_text, sk_placement, instance, true, NULL, NULL),
    F("host", sk_ft_text, sk_placement, host, true, NULL, NULL),
    F("spec-hash", sk_ft_string, sk_placement, spec_hash, false, "\"\"", &sk_rule_any_string),
    F("from", sk_ft_text, sk_placement, from, false, NULL, NULL),
};
const sk_model sk_placement_table = SK_MODEL(placement_fields, sk_placement, NULL, false);

static const sk_field unplaced_fields[] = {
    F("instance", sk_ft_text, sk_unplaced, instance, true, NULL, NULL),
    F("tenant", sk_ft_string, sk_unplaced, tenant, true, NULL, &sk_rule_name),
    F("deployment", sk_ft_string, sk_unplaced, deployment, true, NULL, &sk_rule_name),
    F("service", sk_ft_string, sk_unplaced, service, true, NULL, &sk_rule_name),
    F("replica", sk_ft_int, sk_unplaced, replica, false, NULL, &replica_rule),
    F("host", sk_ft_text, sk_unplaced, host, false, NULL, NULL),
    F("reason", sk_ft_string, sk_unplaced, reason, true, NULL, &sk_rule_any_string),
};
const sk_model sk_unplaced_table = SK_MODEL(unplaced_fields, sk_unplaced, NULL, false);

static const sk_field container_status_fields[] = {
    F("name", sk_ft_string, sk_container_status, name, true, NULL, &sk_rule_name),
    F("id", sk_ft_string, sk_container_status, id, false, NULL, &sk_rule_any_string),
    F("state", sk_ft_enum, sk_container_status, state, true, NULL, state_words),
    F("exit-code", sk_ft_int, sk_container_status, exit_code, false, "0", &exit_code_rule),
};
static const sk_model container_status_table =
    SK_MODEL(container_status_fields, sk_container_status, NULL, false);

static const sk_list_rule containers_rule =
    SK_OBJECT_LIST(sk_container_status, container_status_table, 0, 64, "containers");

static const sk_field status_fields[] = {
    F("instance", sk_ft_text, sk_instance_status, instance, true, NULL, NULL),
    F("tenant", sk_ft_string, sk_instance_status, tenant, true, NULL, &sk_rule_name),
    F("deployment", sk_ft_string, sk_instance_status, deployment, true, NULL, &sk_rule_name),
    F("application", sk_ft_string, sk_instance_status, application, false, NULL, &sk_rule_name),
    F("version", sk_ft_string, sk_instance_status, version, false, NULL, &sk_rule_version),
    F("service", sk_ft_string, sk_instance_status, service, true, NULL, &sk_rule_name),
    F("replica", sk_ft_int, sk_instance_status, replica, false, NULL, &replica_rule),
    F("site", sk_ft_text, sk_instance_status, site, false, NULL, NULL),
    F("host", sk_ft_text, sk_instance_status, host, false, NULL, NULL),
    F("state", sk_ft_enum, sk_instance_status, state, true, NULL, state_words),
    F("reason", sk_ft_string, sk_instance_status, reason, false, NULL, &sk_rule_any_string),
    F("restarts", sk_ft_int, sk_instance_status, restarts, false, NULL, &count_rule),
    F("containers", sk_ft_list, sk_instance_status, containers, false, NULL, &containers_rule),
    F("updated", sk_ft_text, sk_instance_status, updated, false, NULL, NULL),
};
const sk_model sk_instance_status_table = SK_MODEL(status_fields, sk_instance_status, NULL, false);

SK_RESOURCE_FUNCTIONS(placement, sk_placement, sk_placement_table)
SK_RESOURCE_FUNCTIONS(unplaced, sk_unplaced, sk_unplaced_table)
SK_RESOURCE_FUNCTIONS(instance_status, sk_instance_status, sk_instance_status_table)
