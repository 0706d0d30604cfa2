/* `skerry dev`: a tower, a private Podman API service and one agent per host, all on this
 * machine, in the foreground until Ctrl-C (DESIGN.md section 2). Every child runs in its own
 * process group so that Ctrl-C reaches only us and we can stop things in order: agents first
 * (so nothing restarts containers), then their containers, the runtime and the tower. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "dev/dev-internal.h"
#include "dev/dev.h"

typedef struct child {
        char *what; /* "tower", "agent host-1 of dev-site" */
        char *log;
        pid_t pid;
} child;

typedef struct dev {
        sk_dev_opts o;
        char *exe;
        char *base_url;
        char *ca;
        char *token;
        char *socket;      /* runtime socket path */
        char *runtime_url; /* unix://socket */
        char **sites;      /* NULL-terminated */
        child tower;
        child *agents;
        size_t n_agents;
        sk_dev_podman podman;
} dev;

static void on_signal(int sig)
{
        sk_dev_interrupted = sig;
}

static void child_free(child *c)
{
        free(c->what);
        free(c->log);
        *c = (child){0};
}

static void dev_free(dev *d)
{
        for (size_t i = 0; i < d->n_agents; i++)
                child_free(&d->agents[i]);
        free(d->agents);
        child_free(&d->tower);
        for (char **s = d->sites; s && *s; s++)
                free(*s);
        free(d->sites);
        free(d->exe);
        free(d->base_url);
        free(d->ca);
        free(d->token);
        free(d->socket);
        free(d->runtime_url);
        sk_dev_opts_free(&d->o);
}

/* The last lines of a child's log, so that a failure explains itself. */
static void print_log_tail(const char *path, int lines)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return;
        char *ring[32] = {0};
        lines = lines > 32 ? 32 : lines;
        size_t n = 0;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                free(ring[n % (size_t)lines]);
                ring[n % (size_t)lines] = strdup(line);
                n++;
        }
        free(line);
        size_t first = n > (size_t)lines ? n - (size_t)lines : 0;
        for (size_t i = first; i < n; i++)
                fprintf(stderr, "  | %s", ring[i % (size_t)lines] ? ring[i % (size_t)lines] : "\n");
        for (int i = 0; i < lines; i++)
                free(ring[i]);
}

static int start_child(dev *d, child *c, const char *what, const char *log_name,
                       const char *const *argv, sk_error **err)
{
        if (asprintf(&c->what, "%s", what) < 0 ||
            asprintf(&c->log, "%s/logs/%s.log", d->o.data_dir, log_name) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_dev_spawn(argv, NULL, c->log, &c->pid, err);
        if (r < 0)
                sk_error_prefix(err, "starting the %s", what);
        return r < 0 ? r : 0;
}

static int start_tower(dev *d, sk_error **err)
{
        _cleanup_free_ char *data = NULL, *token_file = NULL;
        if (asprintf(&data, "%s/tower", d->o.data_dir) < 0 ||
            asprintf(&token_file, "%s/admin.token", data) < 0 ||
            asprintf(&d->ca, "%s/ca.pem", data) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_dev_mkdirs(data, err);
        if (r < 0)
                return r;
        const char *argv[] = {d->exe, "tower", "--data", data, "--listen", d->o.listen, NULL};
        r = start_child(d, &d->tower, "tower", "tower", argv, err);
        if (r < 0)
                return r;
        /* A wildcard listen address is reached on loopback. */
        const char *colon = strrchr(d->o.listen, ':');
        bool any = !strncmp(d->o.listen, "0.0.0.0:", 8) || !strncmp(d->o.listen, "[::]:", 5);
        if (asprintf(&d->base_url, "https://%s%s", any ? "127.0.0.1" : "",
                     any ? colon : d->o.listen) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = sk_dev_tower_wait(d->base_url, d->ca, token_file, 60000, d->tower.pid, &d->token, err);
        if (r == -ECHILD)
                d->tower.pid = 0; /* reaped by the wait */
        if (r < 0)
                sk_error_prefix(err, "tower (log: %s)", d->tower.log);
        return r < 0 ? r : 0;
}

static int start_runtime(dev *d, sk_error **err)
{
        int r;
        if (d->o.runtime_url) {
                r = sk_dev_runtime_socket(d->o.runtime_url, &d->socket, err);
                r = r ?: sk_dev_runtime_wait(d->socket, 10000, 0, err);
        } else {
                _cleanup_free_ char *dir = NULL, *log = NULL;
                if (asprintf(&dir, "%s/podman", d->o.data_dir) < 0 ||
                    asprintf(&log, "%s/logs/podman.log", d->o.data_dir) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                r = sk_dev_podman_start(dir, log, &d->podman, err);
                if (d->podman.socket && !(d->socket = strdup(d->podman.socket)))
                        r = r ?: sk_error_set(err, ENOMEM, "out of memory");
        }
        if (r < 0)
                return r;
        if (asprintf(&d->runtime_url, "unix://%s", d->socket) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int start_agent(dev *d, int site, int host, sk_error **err)
{
        const char *site_name = d->sites[site];
        _cleanup_free_ char *name = sk_dev_host_name(site, d->o.sites, host);
        _cleanup_free_ char *data = NULL, *listen = NULL, *what = NULL, *join = NULL;
        /* Fixed ports per host: a restarted agent keeps the address its peers know. */
        const char *colon = strrchr(d->o.listen, ':');
        int port = atoi(colon + 1) + 1 + site * 10 + host;
        if (port > 65535)
                return sk_error_set(err, ERANGE,
                                    "--listen: port too high to leave room for "
                                    "the agents' ports above it");
        if (!name || asprintf(&data, "%s/sites/%s/%s", d->o.data_dir, site_name, name) < 0 ||
            asprintf(&listen, "127.0.0.1:%d", port) < 0 ||
            asprintf(&what, "agent %s of site %s", name, site_name) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        /* --join is for the first start only: a joined agent keeps identity.json. */
        _cleanup_free_ char *identity = NULL;
        if (asprintf(&identity, "%s/identity.json", data) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (access(identity, F_OK) != 0) {
                int r = sk_dev_join_token(d->base_url, d->ca, d->token, site_name, &join, err);
                if (r < 0)
                        return r;
        }
        int r = sk_dev_mkdirs(data, err);
        if (r < 0)
                return r;
        const char *argv[] = {d->exe,      "agent", "--data",   data,        "--tower",
                              d->base_url, "--ca",  d->ca,      "--runtime", d->runtime_url,
                              "--name",    name,    "--listen", listen,      join ? "--join" : NULL,
                              join,        NULL};
        return start_child(d, &d->agents[d->n_agents++], what, name, argv, err);
}

static int start_sites(dev *d, sk_error **err)
{
        d->sites = calloc((size_t)d->o.sites + 1, sizeof(char *));
        d->agents = calloc((size_t)(d->o.sites * d->o.hosts), sizeof(child));
        if (!d->sites || !d->agents)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (int i = 0; i < d->o.sites; i++) {
                if (!(d->sites[i] = sk_dev_site_name(i, d->o.sites)))
                        return sk_error_set(err, ENOMEM, "out of memory");
                int r = sk_dev_put_site(d->base_url, d->ca, d->token, d->sites[i], err);
                if (r < 0)
                        return r;
        }
        for (int i = 0; i < d->o.sites; i++)
                for (int j = 0; j < d->o.hosts; j++) {
                        int r = start_agent(d, i, j, err);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* How to call ourselves in the printed commands: "skerry" when that is what the user
 * typed (it is on PATH), else the full path. */
static const char *cli_name(const dev *d)
{
        return strchr(program_invocation_name, '/') ? d->exe : "skerry";
}

static int print_banner(dev *d, sk_error **err)
{
        _cleanup_free_ char *example = NULL, *yaml = sk_dev_example_yaml();
        if (!yaml || asprintf(&example, "%s/example.yaml", d->o.data_dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_dev_write_file(example, yaml, strlen(yaml), 0644, err);
        if (r < 0)
                return r;
        printf("\nskerry dev is running; Ctrl-C stops it and removes the containers it made.\n\n");
        printf("  tower:        %s\n", d->base_url);
        printf("  CA:           %s\n", d->ca);
        printf("  admin token:  %s\n", d->token);
        printf("  runtime:      %s%s\n", d->runtime_url,
               d->o.runtime_url ? "" : " (private Podman)");
        for (int i = 0; i < d->o.sites; i++) {
                printf("  site:         %s (env=dev), hosts:", d->sites[i]);
                for (int j = 0; j < d->o.hosts; j++) {
                        _cleanup_free_ char *h = sk_dev_host_name(i, d->o.sites, j);
                        printf(" %s", h ? h : "?");
                }
                printf("\n");
        }
        printf("  logs:         %s/logs/\n\n", d->o.data_dir);
        printf("In another shell:\n\n");
        printf("  export SKERRY_ADDR=%s SKERRY_TOKEN=%s SKERRY_CA=%s\n", d->base_url, d->token,
               d->ca);
        printf("  %s apply -f %s && %s get deployment example -o yaml\n\n", cli_name(d), example,
               cli_name(d));
        if (d->o.hosts > 1)
                printf("The %d hosts of each site form one cluster: `%s get hosts --site %s` "
                       "shows them; stop one agent and its instances move to the others.\n\n",
                       d->o.hosts, cli_name(d), d->sites[0]);
        fflush(stdout);
        return 0;
}

/* Runs until a signal or a child's death; returns the exit code. */
static int supervise(dev *d)
{
        for (;;) {
                if (sk_dev_interrupted) {
                        fprintf(stderr, "\nskerry dev: %s, stopping\n",
                                strsignal(sk_dev_interrupted));
                        return 0;
                }
                child *all[1 + d->n_agents];
                all[0] = &d->tower;
                for (size_t i = 0; i < d->n_agents; i++)
                        all[1 + i] = &d->agents[i];
                child podman = {.what = "Podman service", .pid = d->podman.pid};
                int st;
                char how[64];
                for (size_t i = 0; i < 1 + d->n_agents + (podman.pid > 0); i++) {
                        child *c = i < 1 + d->n_agents ? all[i] : &podman;
                        if (!sk_dev_child_exited(c->pid, &st))
                                continue;
                        c->pid = 0;
                        if (c == &podman)
                                d->podman.pid = 0;
                        fprintf(stderr, "skerry dev: the %s %s unexpectedly; stopping everything\n",
                                c->what, sk_dev_describe_status(st, how, sizeof(how)));
                        if (c->log) {
                                fprintf(stderr, "  last lines of %s:\n", c->log);
                                print_log_tail(c->log, 10);
                        }
                        return 1;
                }
                usleep(200000);
        }
}

static void shutdown_all(dev *d)
{
        for (size_t i = 0; i < d->n_agents; i++)
                if (d->agents[i].pid > 0)
                        sk_dev_stop_pid(d->agents[i].pid, 10000);
        if (d->socket && d->sites && d->sites[0]) {
                _cleanup_error_ sk_error *err = NULL;
                int n = sk_dev_remove_containers(d->socket, (const char *const *)d->sites, &err);
                if (n < 0)
                        fprintf(stderr, "skerry dev: removing containers: %s\n",
                                sk_error_msg(err, n));
                else if (n > 0)
                        fprintf(stderr, "skerry dev: removed %d container%s\n", n,
                                n == 1 ? "" : "s");
        }
        sk_dev_podman_stop(&d->podman);
        if (d->tower.pid > 0)
                sk_dev_stop_pid(d->tower.pid, 10000);
}

int sk_dev_main(int argc, char **argv)
{
        sk_log_init("dev");
        _cleanup_error_ sk_error *err = NULL;
        dev d = {0};
        int r = sk_dev_parse_args(argc, argv, &d.o, &err);
        if (r < 0) {
                fprintf(stderr, "skerry dev: %s\n%s", sk_error_msg(err, r), sk_dev_usage());
                return 2;
        }
        if (d.o.help) {
                fputs(sk_dev_usage(), stdout);
                sk_dev_opts_free(&d.o);
                return 0;
        }
        struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: waits wake up */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        _cleanup_free_ char *logs = NULL;
        if (asprintf(&logs, "%s/logs", d.o.data_dir) < 0 ||
            !(d.exe = realpath("/proc/self/exe", NULL)))
                r = sk_error_set(&err, ENOMEM, "cannot find our own executable");
        r = r ?: sk_dev_mkdirs(logs, &err);
        _cleanup_close_ int lock = r < 0 ? -1 : sk_dev_lock(d.o.data_dir, &err);
        if (lock < 0)
                r = r ?: lock;
        if (r >= 0)
                fprintf(stderr, "skerry dev: starting in %s\n", d.o.data_dir);
        r = r ?: start_tower(&d, &err);
        r = r ?: start_runtime(&d, &err);
        r = r ?: start_sites(&d, &err);
        r = r ?: print_banner(&d, &err);
        int code;
        if (r < 0) {
                if (!sk_dev_interrupted)
                        fprintf(stderr, "skerry dev: %s\n", sk_error_msg(err, r));
                if (r == -ECHILD && d.tower.log && d.tower.pid == 0)
                        print_log_tail(d.tower.log, 10);
                code = sk_dev_interrupted ? 0 : 1;
        } else {
                code = supervise(&d);
        }
        shutdown_all(&d);
        if (d.tower.what)
                fprintf(stderr, "skerry dev: stopped\n");
        dev_free(&d);
        return code;
}
