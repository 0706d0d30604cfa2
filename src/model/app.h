/* An application version (DESIGN.md section 4, docs/resources.md): its services and their
 * containers, as parsed and validated once (model/field.h).
 *
 * Ownership: an sk_app owns everything below it; sk_app_free releases it all. Optional
 * parts are NULL pointers (objects), SK_UNSET (integers and enums), NULL text (durations,
 * expressions), SK_SPELLING_NONE (quantities) or a NULL items pointer (lists and maps: a
 * list that is set but empty has items non-NULL and n 0). */
#ifndef SK_MODEL_APP_H
#define SK_MODEL_APP_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

typedef enum sk_app_restart {
        SK_APP_RESTART_ALWAYS,
        SK_APP_RESTART_ON_FAILURE,
        SK_APP_RESTART_NEVER
} sk_app_restart;

typedef enum sk_protocol { SK_PROTOCOL_TCP, SK_PROTOCOL_UDP } sk_protocol;
typedef enum sk_outbound { SK_OUTBOUND_DENY, SK_OUTBOUND_ALLOW } sk_outbound;
typedef enum sk_service_mode { SK_SERVICE_MODE_ONE_PER_HOST } sk_service_mode;

/* {vault, secret, key}: key is NULL in a volume's secret (every key, one file each). */
typedef struct sk_secret_ref {
        char *vault;
        char *secret;
        char *key;
} sk_secret_ref;

typedef struct sk_variable {
        char *name;
        sk_secret_ref *from_secret;
} sk_variable;

typedef struct sk_persistent {
        sk_quantity size;
} sk_persistent;

/* Exactly one of persistent and secret is set. */
typedef struct sk_volume {
        char *name;
        sk_persistent *persistent;
        sk_secret_ref *secret;
} sk_volume;

typedef struct sk_mount {
        char *volume; /* a volume of the service */
        char *path;
} sk_mount;

typedef struct sk_http_probe {
        char *path;
        int64_t port;
} sk_http_probe;

typedef struct sk_tcp_probe {
        int64_t port;
} sk_tcp_probe;

/* Exactly one of http and tcp is set. */
typedef struct sk_probe {
        sk_http_probe *http;
        sk_tcp_probe *tcp;
        sk_duration period;
        int64_t failure_threshold; /* 1..100 or SK_UNSET */
} sk_probe;

typedef struct sk_probes {
        sk_probe *liveness;
        sk_probe *readiness;
} sk_probes;

typedef struct sk_app_container {
        char *name;
        char *image;
        SK_LIST(char *) cmd;
        sk_kvs env; /* values may hold ${VAR} of the service's variables */
        SK_LIST(sk_mount) mounts;
        SK_LIST(char *) devices;
        sk_probes *probes;
        int restart; /* sk_app_restart, default always */
} sk_app_container;

typedef struct sk_service_placement {
        sk_expr_text match_host_labels;
        SK_LIST(char *) devices;
} sk_service_placement;

typedef struct sk_resources {
        sk_quantity cpu;
        sk_quantity memory;
} sk_resources;

typedef struct sk_ingress {
        int64_t port;
        int protocol; /* sk_protocol, default tcp */
} sk_ingress;

typedef struct sk_network {
        SK_LIST(sk_ingress) ingress;
        int outbound; /* sk_outbound, default deny */
} sk_network;

/* replicas (0..1000) or mode one-per-host: exactly one is set (replicas default 1). */
typedef struct sk_service {
        char *name;
        int64_t replicas; /* SK_UNSET for mode one-per-host */
        int mode;         /* sk_service_mode or SK_UNSET */
        sk_service_placement *placement;
        sk_resources *resources;
        sk_network *network; /* always set: default {outbound: deny} */
        SK_LIST(sk_variable) variables;
        SK_LIST(sk_volume) volumes;
        SK_LIST(sk_app_container) containers;
} sk_service;

typedef struct sk_app {
        char *name;
        char *version;
        SK_LIST(sk_service) services;
} sk_app;

/* The table of an application document, and of one embedded in another document (a
 * desired document's deployments), where `kind` may be left out. */
extern const sk_model sk_app_table;
extern const sk_model sk_app_embedded_table;
/* The table of one service (for the scheduler's spec hash over a service). */
extern const sk_model sk_service_table;

/* An application document (`kind: application`): sk_app_from_json, sk_app_to_json (the
 * normalised JSON, defaults filled in), sk_app_equal, sk_app_free (model/resource.h). */
SK_RESOURCE_DECLARE(app, sk_app)

json_t *sk_service_to_json(const sk_service *s);
const sk_service *sk_app_service(const sk_app *app, const char *name);

#define _cleanup_app_ __attribute__((cleanup(sk_app_freep)))

#endif
