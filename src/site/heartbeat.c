#include "site/heartbeat.h"

#include <string.h>

#include "common/cleanup.h"
#include "model/host.h"
#include "model/spec.h"

#define TEXT_MAX 255

static const char *text_field(const json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s && *s && strlen(s) <= TEXT_MAX ? s : NULL;
}

static int check_identity(const json_t *body, int64_t peer, sk_error **err)
{
        const json_t *id = json_object_get(body, "host-id");
        if (id && (!json_is_integer(id) || json_integer_value(id) != peer))
                return sk_error_set_path(err, EINVAL, "host-id",
                                         "must be the host id of the sender's certificate");
        const char *name = text_field(body, "host");
        if (!name || !sk_spec_valid_name(name))
                return sk_error_set_path(err, EINVAL, "host",
                                         "must be a DNS label ([a-z0-9-], 1..63)");
        const char *addr = text_field(body, "address");
        if (!addr || !strchr(addr, ':'))
                return sk_error_set_path(err, EINVAL, "address", "must be \"ADDR:PORT\"");
        return 0;
}

static int check_labels(const json_t *labels, sk_error **err)
{
        if (!json_is_object(labels) || json_object_size(labels) > SK_HEARTBEAT_LABELS_MAX)
                return sk_error_set_path(err, EINVAL, "labels",
                                         "must be an object of at most %d strings",
                                         SK_HEARTBEAT_LABELS_MAX);
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)labels, key, v)
        {
                if (!sk_spec_valid_label_key(key))
                        return sk_error_set_path(err, EINVAL, "labels", "%.64s: not a label key",
                                                 key);
                const char *s = json_string_value(v);
                if (!s || strlen(s) > TEXT_MAX)
                        return sk_error_set_path(err, EINVAL, "labels",
                                                 "%s: must be a string of at most %d bytes", key,
                                                 TEXT_MAX);
        }
        return 0;
}

static int check_capacity(const json_t *cap, sk_error **err)
{
        const json_t *cpu = json_object_get(cap, "cpu"), *mem = json_object_get(cap, "memory");
        if (!json_is_integer(cpu) || json_integer_value(cpu) < 0 || !json_is_integer(mem) ||
            json_integer_value(mem) < 0)
                return sk_error_set_path(err, EINVAL, "capacity",
                                         "must be {\"cpu\": MILLICORES, \"memory\": BYTES}");
        return 0;
}

static int check_lists(const json_t *devices, const json_t *instances, sk_error **err)
{
        if (devices && !json_is_object(devices))
                return sk_error_set_path(err, EINVAL, "devices", "must be an object");
        if (instances &&
            (!json_is_array(instances) || json_array_size(instances) > SK_HEARTBEAT_INSTANCES_MAX))
                return sk_error_set_path(err, EINVAL, "instances",
                                         "must be a list of at most %d instances",
                                         SK_HEARTBEAT_INSTANCES_MAX);
        size_t i;
        const json_t *inst;
        json_array_foreach(instances, i, inst)
        {
                if (!json_is_object(inst))
                        return sk_error_set_path(err, EINVAL, "instances",
                                                 "[%zu]: must be an object", i);
        }
        return 0;
}

static int check_certificate(const json_t *cert, sk_error **err)
{
        const char *s = json_string_value(cert);
        if (cert && (!s || strlen(s) > SK_HEARTBEAT_CERT_MAX ||
                     strncmp(s, "-----BEGIN CERTIFICATE-----", 27) != 0))
                return sk_error_set_path(err, EINVAL, "certificate",
                                         "must be PEM certificates of at most %d bytes",
                                         SK_HEARTBEAT_CERT_MAX);
        return 0;
}

int sk_heartbeat_parse(const json_t *body, int64_t peer, json_t **report, sk_error **err)
{
        *report = NULL;
        if (!json_is_object(body))
                return sk_error_set(err, EINVAL, "the body must be a report object");
        const json_t *labels = json_object_get(body, "labels");
        const json_t *devices = json_object_get(body, "devices");
        const json_t *instances = json_object_get(body, "instances");
        int r = check_identity(body, peer, err);
        if (r == 0)
                r = check_labels(labels, err);
        if (r == 0)
                r = check_capacity(json_object_get(body, "capacity"), err);
        if (r == 0)
                r = check_lists(devices, instances, err);
        const json_t *cert = json_object_get(body, "certificate");
        if (r == 0)
                r = check_certificate(cert, err);
        if (r < 0)
                return r;
        const json_t *cap = json_object_get(body, "capacity");
        json_t *out = json_pack(
            "{s:I, s:O, s:O, s:O, s:o, s:{s:O, s:O}, s:o}", "host-id", (json_int_t)peer, "host",
            json_object_get(body, "host"), "address", json_object_get(body, "address"), "labels",
            labels, "devices", devices ? json_incref((json_t *)devices) : json_object(), "capacity",
            "cpu", json_object_get(cap, "cpu"), "memory", json_object_get(cap, "memory"),
            "instances", instances ? json_incref((json_t *)instances) : json_array());
        if (!out || (cert && json_object_set(out, "certificate", (json_t *)cert) < 0)) {
                json_decref(out);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        /* what the leader will propose from it must be a host the replicated state takes:
         * the model's rules (device nodes, names) are checked here, once */
        _cleanup_json_ json_t *entry = sk_heartbeat_host_entry(out, peer, true);
        sk_host h;
        r = entry ? sk_model_parse(&sk_host_table, entry, "", NULL, &h, err)
                  : sk_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
                json_decref(out);
                return r;
        }
        sk_model_free(&sk_host_table, &h);
        *report = out;
        return 0;
}

json_t *sk_heartbeat_host_entry(const json_t *report, int64_t id, bool alive)
{
        return json_pack("{s:I, s:O, s:O, s:O, s:O, s:O, s:b}", "id", (json_int_t)id, "name",
                         json_object_get(report, "host"), "address",
                         json_object_get(report, "address"), "labels",
                         json_object_get(report, "labels"), "devices",
                         json_object_get(report, "devices"), "capacity",
                         json_object_get(report, "capacity"), "alive", alive);
}
