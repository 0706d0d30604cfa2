/* A host of a site as the site knows it (docs/site-cluster.md): what the leader's
 * inventory holds for each host from its reports, and what the scheduler places on.
 * JSON form (the raft state's HOST):
 *   {"id": 3, "name": "h1", "address": "10.0.0.5:7443", "labels": {... with the built-ins
 *    system/name, system/arch, device/<label>}, "devices": {label: [NODE, ...]},
 *    "capacity": {"cpu": millicores, "memory": bytes}, "alive": true}
 *   NODE: {"path": "/dev/video0", "host-path": "/dev/video0", "type": "char" | "block",
 *          "major": 81, "minor": 0}
 * id and address are absent where the site has not given them (the scheduler's input).
 * Ownership as in model/app.h. */
#ifndef SK_MODEL_HOST_H
#define SK_MODEL_HOST_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

typedef enum sk_device_type { SK_DEVICE_CHAR, SK_DEVICE_BLOCK } sk_device_type;

typedef struct sk_device_node {
        char *path;      /* inside the container */
        char *host_path; /* on the host */
        int type;        /* sk_device_type */
        int64_t major, minor;
} sk_device_node;

/* The nodes a host found for one device label. */
typedef struct sk_device_class {
        char *label;
        SK_LIST(sk_device_node) nodes;
} sk_device_class;

typedef struct sk_capacity {
        int64_t cpu_millicores;
        int64_t memory_bytes;
} sk_capacity;

typedef struct sk_host {
        int64_t id; /* positive, or SK_UNSET */
        char *name;
        char *address;  /* or NULL */
        json_t *labels; /* object of strings (sk_expr_match's form), or NULL */
        SK_LIST(sk_device_class) devices;
        sk_capacity capacity;
        bool alive; /* false: lost (no contact for host-lost-after); default true */
} sk_host;

extern const sk_model sk_host_table;
/* The device discovery's form alone ({label: [NODE, ...]}), as a field of other tables. */
extern const sk_keyed_rule sk_host_devices_rule;

SK_RESOURCE_DECLARE(host, sk_host)

/* The nodes of label, or NULL. */
const sk_device_class *sk_host_device(const sk_host *h, const char *label);

#define _cleanup_host_ __attribute__((cleanup(sk_host_freep)))

#endif
