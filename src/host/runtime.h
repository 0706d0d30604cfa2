/* The container runtime seam (DESIGN.md section 8). The supervisor only ever talks to a
 * runtime through this table, so its logic is testable with a fake and another runtime
 * can be added beside the Docker Engine API one (which Podman and Docker both serve). */
#ifndef SK_HOST_RUNTIME_H
#define SK_HOST_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define SK_RUNTIME_ABI 1

/* What to create. Strings are borrowed for the duration of the call. */
typedef struct sk_container_spec {
        const char *name;           /* runtime container name */
        const char *image;          /* "localhost/busybox:latest" */
        const char *const *cmd;     /* NULL-terminated, or NULL for the image's default */
        const char *const *env;     /* NULL-terminated "K=V", or NULL */
        json_t *labels;             /* object of string -> string */
        int64_t cpu_millicores;     /* 0: no limit */
        int64_t memory_bytes;       /* 0: no limit */
        const char *const *devices; /* NULL-terminated host device paths, or NULL */
        /* Parallel to devices: where each node appears inside the container (a node found
         * under --dev-dir still shows at /dev/...); NULL, or a NULL entry: the same path. */
        const char *const *device_targets;
} sk_container_spec;

typedef enum sk_container_state {
        SK_CONTAINER_CREATED,
        SK_CONTAINER_RUNNING,
        SK_CONTAINER_PAUSED,
        SK_CONTAINER_RESTARTING,
        SK_CONTAINER_EXITED,
        SK_CONTAINER_DEAD,
        SK_CONTAINER_UNKNOWN
} sk_container_state;

typedef struct sk_container_info {
        char *id;
        char *name;
        char *image;
        sk_container_state state;
        int exit_code;
        int64_t started_at; /* unix seconds, 0 when unknown */
        int64_t finished_at;
        json_t *labels; /* owned */
} sk_container_info;

typedef struct sk_container_list {
        sk_container_info *items;
        size_t n;
} sk_container_list;

typedef struct sk_runtime_event {
        const char *container_id;
        const char *action; /* "start", "die", "stop", "destroy", ... */
} sk_runtime_event;

/* Return non-zero to stop the event stream. */
typedef int (*sk_runtime_event_fn)(const sk_runtime_event *ev, void *user);

typedef struct sk_runtime sk_runtime;

typedef struct sk_runtime_ops {
        int abi; /* SK_RUNTIME_ABI */
        int (*create)(sk_runtime *rt, const sk_container_spec *spec, char **id, sk_error **err);
        int (*start)(sk_runtime *rt, const char *id, sk_error **err);
        int (*stop)(sk_runtime *rt, const char *id, int grace_seconds, sk_error **err);
        int (*remove)(sk_runtime *rt, const char *id, bool force, sk_error **err);
        /* Containers (running or not) whose labels include every pair in filter. */
        int (*list)(sk_runtime *rt, const json_t *label_filter, sk_container_list *out,
                    sk_error **err);
        int (*inspect)(sk_runtime *rt, const char *id, sk_container_info *out, sk_error **err);
        /* Demultiplexed stdout+stderr since `since` (unix seconds, 0: all), at most
         * `tail` lines (0: all). */
        int (*logs)(sk_runtime *rt, const char *id, int64_t since, int tail, char **text,
                    sk_error **err);
        /* Blocks, calling fn for every container event with the label filter, until fn
         * returns non-zero or the connection ends. fn is also called with ev NULL about
         * once a second, so a caller can end a quiet stream. */
        int (*events)(sk_runtime *rt, const json_t *label_filter, sk_runtime_event_fn fn,
                      void *user, sk_error **err);
        /* CPU (total ns) and memory (bytes) use. */
        int (*stats)(sk_runtime *rt, const char *id, int64_t *cpu_ns, int64_t *mem_bytes,
                     sk_error **err);
        /* Pulls image unless present; -ENOENT when it cannot be found. */
        int (*pull)(sk_runtime *rt, const char *image, sk_error **err);
        void (*free)(sk_runtime *rt);
} sk_runtime_ops;

struct sk_runtime {
        const sk_runtime_ops *ops;
};

/* The Docker Engine API driver. url: "unix:///run/podman/podman.sock". Each call may be
 * made from any thread; the driver keeps one connection per thread. */
int sk_runtime_docker_new(const char *url, sk_runtime **out, sk_error **err);

void sk_container_info_clear(sk_container_info *c);
void sk_container_list_clear(sk_container_list *l);
const char *sk_container_state_name(sk_container_state s);
/* Docker/Podman state words ("running", "exited", podman's "stopped", ...). */
sk_container_state sk_container_state_parse(const char *s);
/* RFC 3339 with optional fraction and offset to unix seconds; "0001-01-01T00:00:00Z" and
 * NULL give 0. Returns -EINVAL (and leaves *out alone) on text that is not a time. */
int sk_runtime_parse_time(const char *s, int64_t *out);
/* A Docker log body to plain text: the 8-byte frame headers (stream, size) of a non-TTY
 * container are removed; a TTY container's raw stream is returned as it is. */
int sk_runtime_demux_logs(const char *data, size_t len, char **text, sk_error **err);

#endif
