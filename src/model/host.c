/* Hosts as the site knows them (model/host.h). */
#include "model/host.h"

#include <stdint.h>
#include <string.h>

#include "model/resource.h"
#include "model/rules.h"

#define F SK_FIELD

static const sk_int_rule count_rule = {0, INT64_MAX};
static const char *const device_type_words[] = {"char", "block", NULL};

static const sk_field node_fields[] = {
    F("path", sk_ft_text, sk_device_node, path, true, NULL, NULL),
    F("host-path", sk_ft_text, sk_device_node, host_path, true, NULL, NULL),
    F("type", sk_ft_enum, sk_device_node, type, false, "\"char\"", device_type_words),
    F("major", sk_ft_int, sk_device_node, major, false, "0", &count_rule),
    F("minor", sk_ft_int, sk_device_node, minor, false, "0", &count_rule),
};
static const sk_model node_table = SK_MODEL(node_fields, sk_device_node, NULL, false);

static const sk_list_rule nodes_rule =
    SK_OBJECT_LIST(sk_device_node, node_table, 0, 4096, "device nodes");

const sk_keyed_rule sk_host_devices_rule = {
    .key = &sk_rule_device_label,
    .item = &sk_ft_list,
    .item_arg = &nodes_rule,
    .item_size = sizeof(sk_device_class),
    .key_offset = offsetof(sk_device_class, label),
    .value_offset = offsetof(sk_device_class, nodes),
};

static const sk_field capacity_fields[] = {
    F("cpu", sk_ft_int, sk_capacity, cpu_millicores, true, NULL, &count_rule),
    F("memory", sk_ft_int, sk_capacity, memory_bytes, true, NULL, &count_rule),
};
static const sk_model capacity_table = SK_MODEL(capacity_fields, sk_capacity, NULL, false);

static const sk_field host_fields[] = {
    F("id", sk_ft_int, sk_host, id, false, NULL, &sk_rule_host_id),
    F("name", sk_ft_text, sk_host, name, true, NULL, NULL),
    F("address", sk_ft_text, sk_host, address, false, NULL, NULL),
    F("labels", sk_ft_string_object, sk_host, labels, false, NULL, NULL),
    F("devices", sk_ft_keyed, sk_host, devices, false, NULL, &sk_host_devices_rule),
    F("capacity", sk_ft_inline, sk_host, capacity, true, NULL, &capacity_table),
    F("alive", sk_ft_bool, sk_host, alive, false, "true", NULL),
};
const sk_model sk_host_table = SK_MODEL(host_fields, sk_host, NULL, false);

SK_RESOURCE_FUNCTIONS(host, sk_host, sk_host_table)

const sk_device_class *sk_host_device(const sk_host *h, const char *label)
{
        for (size_t i = 0; i < h->devices.n; i++)
                if (!strcmp(h->devices.items[i].label, label))
                        return &h->devices.items[i];
        return NULL;
}
