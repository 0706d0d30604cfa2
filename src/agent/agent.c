/* `skerry agent`: join once, then run the uplink and the supervisor until SIGTERM/SIGINT.
 * Stopping leaves every container running: an agent restart must not restart them. */
#include "agent/agent.h"

#include <curl/curl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/identity.h"
#include "agent/runtime.h"
#include "agent/supervisor.h"
#include "agent/uplink.h"
#include "common/cleanup.h"
#include "common/log.h"

#define DEFAULT_RUNTIME "unix:///run/podman/podman.sock"

typedef struct agent_args {
        const char *data, *tower, *ca, *join, *runtime, *name, *labels, *listen, *dev_dir;
} agent_args;

static void usage(FILE *f)
{
        fputs("usage: skerry agent --data DIR [options]\n"
              "\n"
              "Runs this host's containers as the tower (and later the site) says.\n"
              "The first start joins the site; later starts need only --data.\n"
              "\n"
              "  --data DIR        state folder: key, certificate, identity, desired state\n"
              "  --tower URL       the tower, e.g. https://tower.example:7443 (first start;\n"
              "                    later it overrides the stored one)\n"
              "  --ca FILE         the tower's CA certificate (first start)\n"
              "  --join TOKEN      one-time join token from `skerry site token SITE`\n"
              "                    (first start; ignored once joined)\n"
              "  --runtime URL     Docker Engine API socket (default " DEFAULT_RUNTIME ")\n"
              "  --name HOST       this host's name on the site (default: the hostname)\n"
              "  --labels k=v,...  host labels\n"
              "  --listen ADDR:PORT  peers and the site-local API; stored for the site\n"
              "                    clustering that comes next, not served yet\n"
              "  --dev-dir DIR     where device nodes are looked for (default /dev); stored\n"
              "                    for device discovery, not used yet\n"
              "  -h, --help        this text\n",
              f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("skerry agent: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'skerry agent --help'.\n", stderr);
        return 2;
}

/* 0: parsed, 1: help printed, 2: usage error (printed). */
static int parse_args(int argc, char **argv, agent_args *a)
{
        enum { O_DATA = 256, O_TOWER, O_CA, O_JOIN, O_RUNTIME, O_NAME, O_LABELS, O_LISTEN, O_DEV };
        static const struct option opts[] = {
            {"data", required_argument, NULL, O_DATA},
            {"tower", required_argument, NULL, O_TOWER},
            {"ca", required_argument, NULL, O_CA},
            {"join", required_argument, NULL, O_JOIN},
            {"runtime", required_argument, NULL, O_RUNTIME},
            {"name", required_argument, NULL, O_NAME},
            {"labels", required_argument, NULL, O_LABELS},
            {"listen", required_argument, NULL, O_LISTEN},
            {"dev-dir", required_argument, NULL, O_DEV},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        memset(a, 0, sizeof(*a));
        optind = 1;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
                switch (c) {
                case O_DATA:
                        a->data = optarg;
                        break;
                case O_TOWER:
                        a->tower = optarg;
                        break;
                case O_CA:
                        a->ca = optarg;
                        break;
                case O_JOIN:
                        a->join = optarg;
                        break;
                case O_RUNTIME:
                        a->runtime = optarg;
                        break;
                case O_NAME:
                        a->name = optarg;
                        break;
                case O_LABELS:
                        a->labels = optarg;
                        break;
                case O_LISTEN:
                        a->listen = optarg;
                        break;
                case O_DEV:
                        a->dev_dir = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 1;
                case ':':
                        return usage_error("option %s needs a value", argv[optind - 1]);
                default:
                        return usage_error("unknown option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument \"%s\"", argv[optind]);
        if (!a->data || !*a->data)
                return usage_error("%s", "--data DIR is required");
        if (a->tower && strncmp(a->tower, "https://", 8) != 0)
                return usage_error("--tower %s: must be an https:// URL", a->tower);
        if (a->runtime && strncmp(a->runtime, "unix:///", 8) != 0)
                return usage_error("--runtime %s: must be unix:///path/to/socket", a->runtime);
        if (a->listen && !strchr(a->listen, ':'))
                return usage_error("--listen %s: must be ADDR:PORT", a->listen);
        return 0;
}

static int set_str(char **field, const char *value)
{
        if (!value || (*field && strcmp(*field, value) == 0))
                return 0;
        free(*field);
        *field = strdup(value);
        return 1;
}

/* Joins on first start, or loads the identity and applies overrides. Returns an exit
 * code, or -1 to go on. */
static int establish_identity(const agent_args *a, sk_identity *id)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *labels = NULL;
        if (a->labels && sk_parse_labels(a->labels, &labels, &err) < 0)
                return usage_error("%s", sk_error_msg(err, -EINVAL));
        int r = sk_identity_load(a->data, id, &err);
        if (r == 0) {
                if (a->join)
                        sk_warn("already joined as %s on site %s: ignoring --join", id->host,
                                id->site);
                int changed = set_str(&id->tower, a->tower) + set_str(&id->runtime, a->runtime) +
                              set_str(&id->listen, a->listen) + set_str(&id->dev_dir, a->dev_dir);
                if (labels && !json_equal(labels, id->labels)) {
                        json_decref(id->labels);
                        id->labels = json_incref(labels);
                        changed++;
                }
                if (changed && sk_identity_save(a->data, id, &err) < 0) {
                        fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, -EIO));
                        return 1;
                }
                return -1;
        }
        if (r != -ENOENT) {
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
                return 1;
        }
        if (!a->tower || !a->ca || !a->join)
                return usage_error("%s: not joined yet; the first start needs --tower, --ca "
                                   "and --join",
                                   a->data);
        char hostname[HOST_NAME_MAX + 1] = "";
        if (!a->name && gethostname(hostname, sizeof(hostname)) < 0)
                return usage_error("%s", "cannot read the hostname: pass --name");
        sk_join_request req = {.tower = a->tower,
                               .ca_file = a->ca,
                               .token = a->join,
                               .name = a->name ? a->name : hostname,
                               .labels = labels};
        sk_error_free(&err);
        r = sk_agent_join(a->data, &req, id, &err);
        if (r < 0) {
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
                return 1;
        }
        set_str(&id->runtime, a->runtime);
        set_str(&id->listen, a->listen);
        set_str(&id->dev_dir, a->dev_dir ? a->dev_dir : "/dev");
        if (sk_identity_save(a->data, id, &err) < 0) {
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, -EIO));
                return 1;
        }
        sk_info("joined site %s (tenant %s) as host %s", id->site, id->tenant, id->host);
        return -1;
}

typedef struct agent {
        sk_identity id;
        sk_runtime *rt;
        sk_supervisor *sup;
        sk_uplink *up;
} agent;

static void on_status(void *user)
{
        agent *ag = user;
        if (ag->up)
                sk_uplink_notify(ag->up);
}

static void agent_free(agent *ag)
{
        /* The uplink first: it reads the supervisor's status. */
        sk_uplink_free(ag->up);
        sk_supervisor_free(ag->sup);
        if (ag->rt)
                ag->rt->ops->free(ag->rt);
        sk_identity_clear(&ag->id);
}

static int run(agent *ag, const char *data, sigset_t *sigs)
{
        _cleanup_error_ sk_error *err = NULL;
        const char *url = ag->id.runtime ? ag->id.runtime : DEFAULT_RUNTIME;
        sk_runtime *events_rt = NULL;
        int r = sk_runtime_docker_new(url, &ag->rt, &err);
        if (r >= 0)
                r = sk_runtime_docker_new(url, &events_rt, &err);
        if (r < 0) {
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
                return 1;
        }
        sk_supervisor_config sc = {.runtime = ag->rt,
                                   .events_runtime = events_rt,
                                   .site = ag->id.site,
                                   .host = ag->id.host,
                                   .host_labels = ag->id.labels,
                                   .on_status = on_status,
                                   .user = ag};
        r = sk_supervisor_new(&sc, &ag->sup, &err);
        if (r < 0) {
                events_rt->ops->free(events_rt);
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
                return 1;
        }
        /* What the last sync left runs even with the tower down. */
        _cleanup_json_ json_t *desired = NULL;
        int64_t generation = 0;
        r = sk_desired_load(data, &desired, &err);
        if (r == 0) {
                generation = json_integer_value(json_object_get(desired, "generation"));
                sk_supervisor_set_desired(ag->sup, desired);
                sk_info("running desired state generation %lld from %s/desired.json",
                        (long long)generation, data);
        } else if (r != -ENOENT) {
                sk_warn("%s; waiting for the tower", sk_error_msg(err, r));
        }
        sk_error_free(&err);
        sk_uplink_config uc = {.data_dir = data,
                               .tower = ag->id.tower,
                               .host = ag->id.host,
                               .sup = ag->sup,
                               .generation = generation};
        r = sk_uplink_new(&uc, &ag->up, &err);
        if (r >= 0)
                r = sk_supervisor_start(ag->sup, &err);
        if (r >= 0)
                r = sk_uplink_start(ag->up, &err);
        if (r < 0) {
                fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
                return 1;
        }
        sk_info("agent %s on site %s running (tower %s, runtime %s)", ag->id.host, ag->id.site,
                ag->id.tower, url);
        int sig = 0;
        sigwait(sigs, &sig);
        sk_info("%s: stopping; containers keep running", strsignal(sig));
        return 0;
}

int sk_agent_main(int argc, char **argv)
{
        agent_args a;
        int r = parse_args(argc, argv, &a);
        if (r != 0)
                return r == 1 ? 0 : r;
        sk_log_init("agent");
        if (mkdir(a.data, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "skerry agent: --data %s: %s\n", a.data, strerror(errno));
                return 1;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        agent ag = {0};
        /* A signal during the join just ends the process: nothing is stored until the
         * identity file, last. */
        int code = establish_identity(&a, &ag.id);
        if (code < 0) {
                /* Before any thread: every thread inherits the blocked signals, and only
                 * sigwait in run() receives them. */
                sigset_t sigs;
                sigemptyset(&sigs);
                sigaddset(&sigs, SIGTERM);
                sigaddset(&sigs, SIGINT);
                pthread_sigmask(SIG_BLOCK, &sigs, NULL);
                code = run(&ag, a.data, &sigs);
        }
        agent_free(&ag);
        curl_global_cleanup();
        return code;
}
