/* Sites (model/site.h). */
#include "model/site.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static bool dev_glob_ok(const char *s)
{
        bool ok = s && !strncmp(s, "/dev/", 5) && s[5] && strlen(s) <= 256 && !strstr(s, "..");
        for (const char *c = s; ok && *c; c++)
                ok = isgraph((unsigned char)*c);
        return ok;
}

static const sk_string_rule dev_glob_rule = {
    dev_glob_ok, "must be a glob pattern under /dev/ (\"/dev/video*\"), "
                 "without spaces or '..'"};

static const sk_string_rule udev_name_rule = {sk_rule_env_name_ok,
                                              "must be a udev property name: A-Z, a-z, 0-9 and "
                                              "'_' (\"ID_VENDOR_ID\")"};

static const sk_kvs_rule udev_rule = {
    .min = 1,
    .max = 32,
    .map_msg = "must be a mapping of 1 to 32 udev properties to values",
    .key = &udev_name_rule,
    .value_max = 256,
};

static int device_rule_post(void *obj, const char *path, sk_error **err)
{
        const sk_device_rule *d = obj;
        return sk_field_one_of(d->match, d->udev.items, path, "match", "udev", err);
}

static const sk_field device_rule_fields[] = {
    F("label", sk_ft_string, sk_device_rule, label, true, NULL, &sk_rule_device_label),
    F("match", sk_ft_string, sk_device_rule, match, false, NULL, &dev_glob_rule),
    F("udev", sk_ft_kvs, sk_device_rule, udev, false, NULL, &udev_rule),
};
static const sk_model device_rule_table =
    SK_MODEL(device_rule_fields, sk_device_rule, device_rule_post, false);

static const sk_list_rule device_rules_rule =
    SK_OBJECT_LIST(sk_device_rule, device_rule_table, 0, 64, "device rules");

static const sk_duration_rule host_lost_rule = {1000, 3600 * 1000,
                                                "must be a duration from \"1s\" to \"1h\""};

#define SITE_FIELDS                                                                                \
        F("name", sk_ft_string, sk_site, name, true, NULL, &sk_rule_name),                         \
            F("labels", sk_ft_labels, sk_site, labels, false, "{}", NULL),                         \
            F("devices", sk_ft_list, sk_site, devices, false, NULL, &device_rules_rule),           \
            F("host-lost-after", sk_ft_duration, sk_site, host_lost_after, false, "\"5s\"",        \
              &host_lost_rule)

static const sk_field site_fields[] = {
    {"kind", &sk_ft_kind, 0, true, NULL, "site"},
    SITE_FIELDS,
};
const sk_model sk_site_table = SK_MODEL(site_fields, sk_site, NULL, false);

static const sk_field site_desired_fields[] = {
    SITE_FIELDS,
    F("tenant", sk_ft_string, sk_site, tenant, true, NULL, &sk_rule_name),
};
const sk_model sk_site_desired_table = SK_MODEL(site_desired_fields, sk_site, NULL, false);

SK_RESOURCE_FUNCTIONS(site, sk_site, sk_site_table)
