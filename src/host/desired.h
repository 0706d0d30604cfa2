/* From placed instances (sk_fsm_local_placed: this host's share of the site's placements)
 * to the exact containers this host should run: name,
 * labels (docs/api.md), image, cmd, env with ${VAR} expanded, limits, and a spec hash over
 * the canonical JSON of all of it, so a changed spec is seen as a different container.
 * Pure: no I/O, no clock. */
#ifndef SK_HOST_DESIRED_H
#define SK_HOST_DESIRED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef enum sk_restart_policy {
        SK_RESTART_ALWAYS,
        SK_RESTART_ON_FAILURE,
        SK_RESTART_NEVER
} sk_restart_policy;

typedef struct sk_desired_container {
        char *name;      /* runtime name sk-<host>-<tenant>-<deployment>-<service>-<replica>-<c> */
        char *instance;  /* borrowed from the instance: "tenant/deployment/service/replica" */
        char *container; /* the container's name in the service */
        int64_t replica;
        char *image;
        char **cmd; /* NULL-terminated, or NULL for the image's default */
        char **env; /* NULL-terminated "K=V" */
        json_t *labels;
        int64_t cpu_millicores;
        int64_t memory_bytes;
        char **devices;        /* NULL-terminated host device node paths, or NULL */
        char **device_targets; /* parallel: each node's path inside the container */
        char *spec_hash;       /* hex */
        sk_restart_policy restart;
} sk_desired_container;

typedef struct sk_desired_instance {
        char *id;          /* "tenant/deployment/service/replica" */
        json_t *meta;      /* instance, tenant, deployment, application, version, service,
                              replica: copied into the status report */
        char *fail_reason; /* non-NULL: the instance cannot run, and none of it is created */
        sk_desired_container *containers;
        size_t n_containers;
} sk_desired_instance;

typedef struct sk_desired_set {
        sk_desired_instance *items;
        size_t n;
} sk_desired_set;

/* placed: the array sk_fsm_local_placed made, each
 *   {"instance": "tenant/deployment/service/replica", "tenant", "deployment",
 *    "application", "version", "service", "replica", "spec": SERVICE}; an instance's
 * "devices" ({label: [{"path", "host-path"}]}, as device discovery reports nodes) gives the nodes
 * for the device labels its containers ask for. SERVICE is read by the domain model
 * (sk_service, model/app.h) and the containers are built from the struct. An instance whose
 * spec this host cannot honour (a spec the model refuses, from-secret variables, volumes, a
 * device label without nodes) gets fail_reason instead of an error, so the others still run;
 * errors are for malformed placed entries. */
int sk_desired_build(const json_t *placed, const char *site, const char *host, sk_desired_set *out,
                     sk_error **err);
void sk_desired_set_clear(sk_desired_set *s);

/* Expands ${NAME} in text from vars (object name -> string value). "$$" is a literal
 * '$'. -ENOENT with *missing set (caller frees) when a name is not in vars. */
int sk_desired_expand(const char *text, const json_t *vars, char **out, char **missing);

/* The hex crypto_generichash of the canonical (sorted, compact) JSON of v. */
char *sk_desired_hash(const json_t *v);

const char *sk_restart_policy_name(sk_restart_policy p);

#endif
