/* The pieces of `skerry dev`, exported for its unit tests. Not a public interface. */
#ifndef SK_DEV_INTERNAL_H
#define SK_DEV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct sk_dev_opts {
        int hosts;         /* agents per site, >= 1 */
        int sites;         /* 1: "dev-site"; N > 1: dev-site-1..N */
        char *data_dir;    /* absolute */
        char *listen;      /* tower ADDR:PORT */
        char *runtime_url; /* unix:///SOCK given by the user, or NULL: start our own Podman */
        bool help;
} sk_dev_opts;

/* dev_args.c */
/* Parses argv (argv[0] is "dev"). Unknown flags and bad values are -EINVAL with a message
 * naming the flag. */
int sk_dev_parse_args(int argc, char **argv, sk_dev_opts *o, sk_error **err);
void sk_dev_opts_free(sk_dev_opts *o);
const char *sk_dev_usage(void);
/* The default data folder: $XDG_STATE_HOME/skerry/dev, else ~/.local/state/skerry/dev,
 * else ./skerry-dev. Caller frees. */
char *sk_dev_default_data_dir(void);
/* "unix:///run/x.sock" -> "/run/x.sock" (caller frees). */
int sk_dev_runtime_socket(const char *url, char **path, sk_error **err);
/* Name of site i (0-based) of n: "dev-site" alone, else "dev-site-<i+1>". Caller frees. */
char *sk_dev_site_name(int i, int n);
/* Name of host j (0-based) on site i of n sites: "host-<j+1>", prefixed with the site's
 * name when several sites share one runtime (container names include the host name). */
char *sk_dev_host_name(int i, int n, int j);

/* dev_proc.c: children in their own process group, output to a log file, killed when
 * `skerry dev` dies. */
int sk_dev_spawn(const char *const *argv, const char *const *extra_env, const char *log_path,
                 pid_t *pid, sk_error **err);
/* Runs argv (searched on PATH) to completion, output discarded; returns its wait status or
 * -1 when it could not run. */
int sk_dev_run(const char *const *argv);
/* SIGTERM, then SIGKILL after grace_ms; reaps. Returns the wait status, or -1. */
int sk_dev_stop_pid(pid_t pid, int grace_ms);
/* True (and *status set) when the child pid has exited; reaps it. */
bool sk_dev_child_exited(pid_t pid, int *status);
/* "exited with status 1" / "was killed by signal 9". */
const char *sk_dev_describe_status(int status, char *buf, size_t len);
/* Kills (SIGKILL) every process other than ours whose command line mentions needle, e.g.
 * conmon processes left by a Podman store under our folder. Returns how many. */
int sk_dev_kill_mentioning(const char *needle);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int sk_dev_free_port(sk_error **err);
int sk_dev_mkdirs(const char *path, sk_error **err);
/* Takes an exclusive lock on DIR/dev.lock for as long as the returned fd stays open, so
 * that two `skerry dev` never share one folder. -EBUSY when another holds it. */
int sk_dev_lock(const char *dir, sk_error **err);
/* True when name is an executable file in one of $PATH's folders. */
bool sk_dev_on_path(const char *name);
int sk_dev_write_file(const char *path, const char *data, size_t len, int mode, sk_error **err);

/* dev_podman.c */
/* Writes a ustar archive of a minimal busybox root file system (bin/busybox plus applet
 * links) built from the static busybox at busybox_path. */
int sk_dev_busybox_tar(const char *busybox_path, const char *tar_path, sk_error **err);
/* Text of a containers.conf for the private service whose state is under dir: runc when
 * crun cannot run (cgroup v1 or hybrid, or crun missing), bounded ulimits, cgroupfs, file
 * events. Caller frees. */
char *sk_dev_containers_conf(const char *dir, bool use_runc);
/* True when crun is installed and the unified cgroup v2 hierarchy is mounted. */
bool sk_dev_crun_usable(void);

typedef struct sk_dev_podman {
        char *dir;     /* DIR/podman */
        char *socket;  /* DIR/podman/podman.sock */
        char *runroot; /* DIR/podman/runroot, or a short folder under /tmp (see start) */
        bool runroot_is_temp;
        pid_t pid;
} sk_dev_podman;

/* Starts `podman system service` on a private store under dir (created), imports
 * localhost/busybox:latest, and waits until the API answers. */
int sk_dev_podman_start(const char *dir, const char *log_path, sk_dev_podman *p, sk_error **err);
void sk_dev_podman_stop(sk_dev_podman *p);
/* Force-removes the containers whose label skerry.site is one of sites (NULL-terminated),
 * or every container when sites is NULL. Returns how many were removed. */
int sk_dev_remove_containers(const char *socket, const char *const *sites, sk_error **err);
/* Waits up to timeout_ms for GET /_ping on the socket to answer 200; gives up early when
 * the process watch (0: none) exits. */
int sk_dev_runtime_wait(const char *socket, int timeout_ms, pid_t watch, sk_error **err);

/* dev_api.c: the few tower calls dev makes (docs/api.md). */
/* Waits for the admin token file and for GET /v1/whoami to answer 200 with it; gives up
 * early when the process watch (0: none) exits. */
int sk_dev_tower_wait(const char *base_url, const char *ca_file, const char *token_file,
                      int timeout_ms, pid_t watch, char **token, sk_error **err);
int sk_dev_put_site(const char *base_url, const char *ca_file, const char *token, const char *site,
                    sk_error **err);
int sk_dev_join_token(const char *base_url, const char *ca_file, const char *token,
                      const char *site, char **join, sk_error **err);

/* dev_example.c */
/* The example application and deployment, selecting every dev site. Caller frees. */
char *sk_dev_example_yaml(void);

/* Set by the signal handler; the waits above give up early when it is set. */
extern volatile int sk_dev_interrupted;

#endif
