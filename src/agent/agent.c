/* `skerry agent`: join once, then run the uplink and the supervisor until SIGTERM/SIGINT.
 * Stopping leaves every container running: an agent restart must not restart them. */
#include "agent/agent.h"

#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/devices.h"
#include "host/identity.h"
#include "host/runtime.h"
#include "host/supervisor.h"
#include "site/cluster.h"
#include "site/liveness.h"
#include "site/siteapi.h"
#include "site/sitejoin.h"
#include "site/uplink.h"

#define DEFAULT_RUNTIME "unix:///run/podman/podman.sock"

#define SK_AGENT_DEVICES_MS 3000 /* device discovery again */

typedef struct agent_args {
        const char *data, *tower, *ca, *join, *peer, *runtime, *name, *labels, *listen, *dev_dir;
        const char *join_file;
        char *join_owned; /* the token read from --join-file or SKERRY_JOIN_TOKEN */
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
              "                    (first start; ignored once joined; visible in ps: prefer\n"
              "                    --join-file or SKERRY_JOIN_TOKEN)\n"
              "  --join-file FILE  read the join token from FILE (env SKERRY_JOIN_TOKEN: the\n"
              "                    token itself)\n"
              "  --peer ADDR:PORT  join through this host of the site instead of the tower\n"
              "                    (its --listen), with a token from `skerry --site-local\n"
              "                    ADDR --agent-data DIR site token`; needs --listen\n"
              "  --runtime URL     Docker Engine API socket (default " DEFAULT_RUNTIME ")\n"
              "  --name HOST       this host's name on the site (default: the hostname)\n"
              "  --labels k=v,...  host labels\n"
              "  --listen ADDR:PORT  the site's other hosts reach this one here: raft and\n"
              "                    the site-local API share the port (mutual TLS)\n"
              "  --dev-dir DIR     where device nodes are looked for (default /dev)\n"
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

/* The join token without it showing in ps: from --join-file (first line, blanks around
 * it dropped) or SKERRY_JOIN_TOKEN, which is then removed so no child inherits it. */
static int join_token(agent_args *a)
{
        const char *env = getenv("SKERRY_JOIN_TOKEN");
        if (a->join_file && a->join)
                return usage_error("%s", "give the join token once: --join or --join-file");
        if (!a->join_file && !a->join && env && *env)
                a->join = a->join_owned = strdup(env);
        unsetenv("SKERRY_JOIN_TOKEN");
        if (!a->join_file)
                return 0;
        _cleanup_error_ sk_error *err = NULL;
        char *text = NULL;
        size_t len = 0;
        int r = sk_file_read(a->join_file, &text, &len, &err);
        if (r < 0)
                return usage_error("--join-file %s: %s", a->join_file, sk_error_msg(err, -r));
        char *t = text + strspn(text, " \t\r\n");
        t[strcspn(t, " \t\r\n")] = '\0';
        if (!*t) {
                free(text);
                return usage_error("--join-file %s: the file holds no token", a->join_file);
        }
        memmove(text, t, strlen(t) + 1);
        a->join = a->join_owned = text;
        return 0;
}

/* 0: parsed, 1: help printed, 2: usage error (printed). */
static int parse_args(int argc, char **argv, agent_args *a)
{
        enum {
                O_DATA = 256,
                O_TOWER,
                O_CA,
                O_JOIN,
                O_PEER,
                O_RUNTIME,
                O_NAME,
                O_LABELS,
                O_LISTEN,
                O_DEV,
                O_JOIN_FILE
        };
        static const struct option opts[] = {
            {"data", required_argument, NULL, O_DATA},
            {"tower", required_argument, NULL, O_TOWER},
            {"ca", required_argument, NULL, O_CA},
            {"join", required_argument, NULL, O_JOIN},
            {"join-file", required_argument, NULL, O_JOIN_FILE},
            {"peer", required_argument, NULL, O_PEER},
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
                case O_JOIN_FILE:
                        a->join_file = optarg;
                        break;
                case O_PEER:
                        a->peer = optarg;
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
        if (a->peer && !strchr(a->peer, ':'))
                return usage_error("--peer %s: must be ADDR:PORT", a->peer);
        if (a->peer && (a->tower || a->ca))
                return usage_error("%s", "--peer joins without the tower: no --tower or --ca");
        return join_token(a);
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
        if (a->peer && (!a->join || !a->listen))
                return usage_error("%s: not joined yet; joining through --peer needs --join and "
                                   "--listen",
                                   a->data);
        if (!a->peer && (!a->tower || !a->ca || !a->join))
                return usage_error("%s: not joined yet; the first start needs --tower, --ca "
                                   "and --join (or --join and --peer)",
                                   a->data);
        char hostname[HOST_NAME_MAX + 1] = "";
        if (!a->name && gethostname(hostname, sizeof(hostname)) < 0)
                return usage_error("%s", "cannot read the hostname: pass --name");
        sk_error_free(&err);
        if (a->peer) {
                sk_site_join_request sreq = {.peer = a->peer,
                                             .token = a->join,
                                             .name = a->name ? a->name : hostname,
                                             .labels = labels,
                                             .address = a->listen};
                r = sk_agent_join_site(a->data, &sreq, id, &err);
        } else {
                sk_join_request req = {.tower = a->tower,
                                       .ca_file = a->ca,
                                       .token = a->join,
                                       .name = a->name ? a->name : hostname,
                                       .labels = labels,
                                       .address = a->listen};
                r = sk_agent_join(a->data, &req, id, &err);
        }
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
        const char *data;
        char *address;
        sk_runtime *rt;
        sk_supervisor *sup;
        sk_cluster *cl;
        sk_uplink *up; /* while this host leads; the control thread's */
        sk_site_client *site;

        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC */
        bool stop, poke, beat_now;
        char *leader_seen; /* the leader the last cluster change named, under lock */
        json_t *discovery; /* this host's devices (devices.h), under lock */
        unsigned discovery_gen;
        pthread_t control, beat;
        bool control_started, beat_started;
} agent;

static void timespec_at(struct timespec *ts, int64_t ms)
{
        ts->tv_sec = ms / 1000;
        ts->tv_nsec = (ms % 1000) * 1000000;
}

/* Waits until ms, a poke (flag set) or stop: -1 stopping, 1 poked, 0 timed out. */
static int wait_until(agent *ag, int64_t ms, bool *flag)
{
        struct timespec ts;
        timespec_at(&ts, ms);
        pthread_mutex_lock(&ag->lock);
        while (!ag->stop && !*flag && pthread_cond_timedwait(&ag->cond, &ag->lock, &ts) == 0)
                ;
        int r = ag->stop ? -1 : *flag ? 1 : 0;
        *flag = false;
        pthread_mutex_unlock(&ag->lock);
        return r;
}

static void poke(agent *ag, bool *flag)
{
        pthread_mutex_lock(&ag->lock);
        *flag = true;
        pthread_cond_broadcast(&ag->cond);
        pthread_mutex_unlock(&ag->lock);
}

static void on_status(void *user)
{
        agent *ag = user;
        poke(ag, &ag->beat_now);
}

/* A new leader gets a heartbeat at once, not a beat later: its liveness count started at
 * its election. */
static void on_cluster_change(void *user)
{
        agent *ag = user;
        char *leader = sk_cluster_leader_address(ag->cl);
        pthread_mutex_lock(&ag->lock);
        ag->poke = true;
        if (leader && (!ag->leader_seen || strcmp(leader, ag->leader_seen) != 0)) {
                free(ag->leader_seen);
                ag->leader_seen = leader;
                leader = NULL;
                ag->beat_now = true;
        }
        pthread_cond_broadcast(&ag->cond);
        pthread_mutex_unlock(&ag->lock);
        free(leader);
}

/* ---- what this host reports in its heartbeat ---- */

static json_t *capacity(void)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES),
             page = sysconf(_SC_PAGESIZE);
        return json_pack("{s:I, s:I}", "cpu", (json_int_t)(cpus > 0 ? cpus : 1) * 1000, "memory",
                         (json_int_t)pages * (json_int_t)page);
}

static const char *arch(void)
{
        static struct utsname u;
        if (uname(&u) < 0)
                return "unknown";
        if (strcmp(u.machine, "x86_64") == 0)
                return "amd64";
        if (strcmp(u.machine, "aarch64") == 0)
                return "arm64";
        return u.machine;
}

static json_t *report(agent *ag)
{
        pthread_mutex_lock(&ag->lock);
        _cleanup_json_ json_t *disc = json_incref(ag->discovery);
        pthread_mutex_unlock(&ag->lock);
        json_t *labels = json_deep_copy(ag->id.labels ? ag->id.labels : json_object());
        json_object_set_new(labels, "system/name", json_string(ag->id.host));
        json_object_set_new(labels, "system/arch", json_string(arch()));
        _cleanup_json_ json_t *dl = sk_devices_host_labels(disc);
        json_object_update(labels, dl);
        json_t *r =
            json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o}", "host-id", (json_int_t)ag->id.host_id,
                      "host", ag->id.host, "address", ag->address, "labels", labels, "devices",
                      disc ? json_incref(disc) : json_object(), "capacity", capacity(), "instances",
                      sk_supervisor_status(ag->sup));
        /* A host the site signed: the tower adopts it only on its certificate's word. */
        if (r && sk_pki_is_site_local_id(ag->id.site_id, ag->id.host_id)) {
                _cleanup_free_ char *path = sk_identity_path(ag->data, "cert.pem");
                _cleanup_free_ char *pem = NULL;
                size_t len = 0;
                if (path && sk_file_read(path, &pem, &len, NULL) >= 0)
                        json_object_set_new(r, "certificate", json_string(pem));
        }
        return r;
}

/* Sends r to the leader: ourselves, the known leader, or peers in turn until one leads.
 * Each call waits at most timeout_ms: a dead leader must not hold back the heartbeat
 * that a new one counts. */
static int send_heartbeat(agent *ag, const json_t *r, long timeout_ms)
{
        if (sk_cluster_heartbeat(ag->cl, ag->id.host_id, r) == 0)
                return 0;
        _cleanup_free_ char *addr = sk_cluster_leader_address(ag->cl);
        if (!addr || strcmp(addr, ag->address) == 0) {
                free(addr);
                addr = sk_cluster_next_peer(ag->cl);
        }
        for (int hop = 0; addr && hop < 2; hop++) {
                long status = 0;
                _cleanup_json_ json_t *ans = NULL;
                _cleanup_error_ sk_error *err = NULL;
                int rc = sk_site_client_call(ag->site, addr, "POST", "/v1/site/heartbeat", r,
                                             timeout_ms, &status, &ans, &err);
                if (rc < 0) {
                        sk_debug("heartbeat to %s: %s", addr, sk_error_msg(err, rc));
                        return rc;
                }
                if (status == 200) {
                        /* the contact a new leader counts host-lost-after from if it dies */
                        sk_cluster_leader_contact(ag->cl, addr, sk_monotonic_ms());
                        return 0;
                }
                const char *leader = json_string_value(json_object_get(ans, "leader"));
                free(addr);
                addr = leader && strcmp(leader, ag->address) != 0 ? strdup(leader) : NULL;
        }
        return -EAGAIN;
}

/* Heartbeats on a fixed cadence paced by the site's host-lost-after (liveness.h): the
 * next one is due a period after the last one started, so a slow answer does not push
 * every later heartbeat back. */
static void *beat_thread(void *arg)
{
        agent *ag = arg;
        bool quiet = false;
        int64_t due = sk_monotonic_ms();
        while (wait_until(ag, due, &ag->beat_now) >= 0) {
                int64_t after = sk_cluster_lost_after_ms(ag->cl), start = sk_monotonic_ms();
                _cleanup_json_ json_t *r = report(ag);
                int rc =
                    r ? send_heartbeat(ag, r, (long)sk_liveness_beat_timeout_ms(after)) : -ENOMEM;
                if (rc < 0 && !quiet)
                        sk_info("no site leader reachable yet; retrying every %lld ms",
                                (long long)sk_liveness_beat_ms(after));
                else if (rc == 0 && quiet)
                        sk_info("heartbeats reach the site leader");
                quiet = rc < 0;
                due = start + sk_liveness_beat_ms(after);
        }
        return NULL;
}

/* ---- the control thread: devices, this host's placement, the uplink when leading ---- */

/* Discovers this host's devices under the site's rules; a change goes into the next
 * heartbeat at once and to this host's placements. */
static void refresh_devices(agent *ag, const json_t *rules)
{
        _cleanup_json_ json_t *found = NULL;
        _cleanup_error_ sk_error *err = NULL;
        const char *dev = ag->id.dev_dir ? ag->id.dev_dir : "/dev";
        if (sk_devices_discover(json_is_array(rules) ? rules : NULL, dev, &found, &err) < 0) {
                sk_debug("devices: %s", sk_error_msg(err, -EINVAL));
                return;
        }
        pthread_mutex_lock(&ag->lock);
        _cleanup_free_ char *summary = NULL;
        int changed = sk_devices_diff(ag->discovery, found, &summary);
        if (changed == 1) {
                json_decref(ag->discovery);
                ag->discovery = json_incref(found);
                ag->discovery_gen++;
                ag->beat_now = true;
        }
        pthread_mutex_unlock(&ag->lock);
        if (changed == 1)
                sk_info("devices: %s", summary ? summary : "changed");
}

static void on_desired(const json_t *doc, void *user)
{
        agent *ag = user;
        if (sk_cluster_submit_desired(ag->cl, doc) < 0)
                sk_warn("desired state generation %lld: this host no longer leads; the new "
                        "leader fetches it",
                        (long long)json_integer_value(json_object_get(doc, "generation")));
}

static int64_t site_ca_held(void *user)
{
        agent *ag = user;
        return sk_cluster_site_ca_held(ag->cl);
}

static void on_site_ca(const json_t *answer, void *user)
{
        agent *ag = user;
        if (sk_cluster_submit_site_ca(ag->cl, answer) < 0)
                sk_warn("site CA: this host no longer leads; the new leader fetches it");
}

static json_t *reports(void *user)
{
        agent *ag = user;
        return sk_cluster_reports(ag->cl);
}

/* A leader the tower does not accept (removed from the site) cannot fetch the document
 * that says so: it steps aside, so that a host the tower accepts runs the uplink. */
static void uplink_refused(void *user)
{
        agent *ag = user;
        sk_cluster_step_aside(ag->cl);
}

static void leadership(agent *ag)
{
        bool leader = sk_cluster_is_leader(ag->cl);
        if (leader && !ag->up) {
                _cleanup_error_ sk_error *err = NULL;
                sk_uplink_config uc = {
                    .data_dir = ag->data,
                    .tower = ag->id.tower,
                    .host = ag->id.host,
                    .generation = sk_cluster_generation(ag->cl),
                    .on_desired = on_desired,
                    .reports = reports,
                    .on_refused = uplink_refused,
                    .site_ca_held = site_ca_held,
                    .on_site_ca = on_site_ca,
                    .site_ca_announced = sk_cluster_site_ca_announced(ag->cl),
                    .user = ag,
                };
                int r = sk_uplink_new(&uc, &ag->up, &err);
                if (r >= 0)
                        r = sk_uplink_start(ag->up, &err);
                if (r < 0) {
                        sk_errorf("uplink: %s", sk_error_msg(err, r));
                        sk_uplink_free(take_ptr(&ag->up));
                } else {
                        sk_info("leading the site: the uplink to %s runs here", ag->id.tower);
                }
        } else if (!leader && ag->up) {
                sk_info("not leading the site: stopping the uplink");
                sk_uplink_free(take_ptr(&ag->up));
        }
}

/* What the control thread last acted on: nothing is looked at again unless it moved. */
typedef struct seen {
        uint64_t rules_seq, placed_seq;
        unsigned placed_disc;
        bool placed;
        json_t *rules;
        int64_t next_devices, leader_since;
} seen;

/* Device discovery every few seconds, and at once when the site's rules change. */
static void devices_step(agent *ag, seen *v, uint64_t seq, int64_t now)
{
        if (seq != v->rules_seq) {
                _cleanup_json_ json_t *rules = sk_cluster_device_rules(ag->cl);
                v->rules_seq = seq;
                if (!json_equal(rules, v->rules) && (rules || v->rules)) {
                        json_decref(v->rules);
                        v->rules = json_incref(rules);
                        v->next_devices = 0;
                }
        }
        if (now < v->next_devices)
                return;
        refresh_devices(ag, v->rules);
        v->next_devices = now + SK_AGENT_DEVICES_MS;
}

/* This host's placements to the supervisor when the state or the devices changed. A
 * restarted host replays its log once it hears a leader: until then (or while cut off)
 * it keeps what runs instead of acting on an old state. */
static void placement_step(agent *ag, seen *v, uint64_t seq, int64_t now)
{
        _cleanup_free_ char *leader = sk_cluster_leader_address(ag->cl);
        v->leader_since = leader ? (v->leader_since ? v->leader_since : now) : 0;
        if (!sk_cluster_is_leader(ag->cl) && !(v->leader_since && now - v->leader_since >= 500))
                return;
        pthread_mutex_lock(&ag->lock);
        _cleanup_json_ json_t *disc = json_incref(ag->discovery);
        unsigned disc_gen = ag->discovery_gen;
        pthread_mutex_unlock(&ag->lock);
        if (v->placed && v->placed_seq == seq && v->placed_disc == disc_gen)
                return;
        _cleanup_json_ json_t *placed = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_cluster_local_placed(ag->cl, disc, &placed, &err);
        if (r == 0)
                sk_supervisor_set_placed(ag->sup, placed);
        else if (r != -ENOENT)
                sk_warn("placement: %s", sk_error_msg(err, r));
        v->placed = r == 0 || r == -ENOENT;
        v->placed_seq = seq;
        v->placed_disc = disc_gen;
}

static void *control_thread(void *arg)
{
        agent *ag = arg;
        seen v = {.rules_seq = UINT64_MAX};
        bool woken = true;
        for (;;) {
                int64_t now = sk_monotonic_ms();
                uint64_t seq = sk_cluster_seq(ag->cl);
                devices_step(ag, &v, seq, now);
                placement_step(ag, &v, seq, now);
                leadership(ag);
                if (woken && ag->up)
                        sk_uplink_notify(ag->up);
                int w = wait_until(ag, sk_monotonic_ms() + 500, &ag->poke);
                if (w < 0)
                        break;
                woken = w == 1;
        }
        json_decref(v.rules);
        sk_uplink_free(take_ptr(&ag->up));
        return NULL;
}
static void agent_free(agent *ag)
{
        pthread_mutex_lock(&ag->lock);
        ag->stop = true;
        pthread_cond_broadcast(&ag->cond);
        pthread_mutex_unlock(&ag->lock);
        /* The control thread stops the uplink, which reads the cluster and supervisor. */
        if (ag->control_started)
                pthread_join(ag->control, NULL);
        if (ag->beat_started)
                pthread_join(ag->beat, NULL);
        sk_cluster_free(ag->cl);
        sk_supervisor_free(ag->sup);
        if (ag->rt)
                ag->rt->ops->free(ag->rt);
        sk_site_client_free(ag->site);
        json_decref(ag->discovery);
        free(ag->address);
        free(ag->leader_seen);
        sk_identity_clear(&ag->id);
        pthread_mutex_destroy(&ag->lock);
        pthread_cond_destroy(&ag->cond);
}

static json_t *load_peers(const char *data)
{
        _cleanup_free_ char *path = sk_identity_path(data, "peers.json");
        json_t *p = path ? json_load_file(path, 0, NULL) : NULL;
        if (json_is_array(p))
                return p;
        json_decref(p);
        return json_array();
}

static int fail(sk_error *err, int r)
{
        fprintf(stderr, "skerry agent: %s\n", sk_error_msg(err, r));
        return 1;
}

static int run(agent *ag, const char *data, sigset_t *sigs)
{
        _cleanup_error_ sk_error *err = NULL;
        ag->data = data;
        const char *url = ag->id.runtime ? ag->id.runtime : DEFAULT_RUNTIME;
        /* Without --listen the host is a site of its own: nobody dials it. */
        ag->address = strdup(ag->id.listen ? ag->id.listen : "127.0.0.1:0");
        sk_runtime *events_rt = NULL;
        int r = ag->address ? 0 : sk_error_set(&err, ENOMEM, "out of memory");
        if (r >= 0)
                r = sk_runtime_docker_new(url, &ag->rt, &err);
        if (r >= 0)
                r = sk_runtime_docker_new(url, &events_rt, &err);
        if (r < 0)
                return fail(err, r);
        sk_supervisor_config sc = {.runtime = ag->rt,
                                   .events_runtime = events_rt,
                                   .site = ag->id.site,
                                   .host = ag->id.host,
                                   .on_status = on_status,
                                   .user = ag};
        r = sk_supervisor_new(&sc, &ag->sup, &err);
        if (r < 0) {
                events_rt->ops->free(events_rt);
                return fail(err, r);
        }
        r = sk_site_client_new(data, &ag->site, &err);
        if (r < 0)
                return fail(err, r);
        _cleanup_json_ json_t *peers = load_peers(data);
        sk_cluster_config cc = {.data_dir = data,
                                .address = ag->address,
                                .site = ag->id.site,
                                .host = ag->id.host,
                                .host_id = ag->id.host_id,
                                .peers = peers,
                                .on_change = on_cluster_change,
                                .user = ag};
        r = sk_cluster_new(&cc, &ag->cl, &err);
        if (r >= 0)
                sk_site_client_pin(ag->site, sk_cluster_site_ca_retired, ag->cl);
        if (r >= 0)
                r = sk_cluster_start(ag->cl, &err);
        if (r >= 0)
                r = sk_supervisor_start(ag->sup, &err);
        if (r < 0)
                return fail(err, r);
        /* The first heartbeat at once, not a period later: until the leader hears of a new
         * host, the scheduler places nothing on it. Set before any thread reads it. */
        ag->beat_now = true;
        ag->control_started = pthread_create(&ag->control, NULL, control_thread, ag) == 0;
        ag->beat_started =
            ag->control_started && pthread_create(&ag->beat, NULL, beat_thread, ag) == 0;
        if (!ag->beat_started)
                return fail(NULL, -EAGAIN);
        sk_info("agent %s on site %s running (listen %s, tower %s, runtime %s)", ag->id.host,
                ag->id.site, ag->address, ag->id.tower, url);
        int sig = 0;
        sigwait(sigs, &sig);
        sk_info("%s: stopping; containers keep running", strsignal(sig));
        return 0;
}

int sk_agent_main(int argc, char **argv)
{
        agent_args a;
        int r = parse_args(argc, argv, &a);
        if (r != 0) {
                free(a.join_owned);
                return r == 1 ? 0 : r;
        }
        sk_log_init("agent");
        if (mkdir(a.data, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "skerry agent: --data %s: %s\n", a.data, strerror(errno));
                return 1;
        }
        /* raft_uv writes to peers' sockets: a closed one must not end the process. */
        signal(SIGPIPE, SIG_IGN);
        agent ag = {0};
        pthread_mutex_init(&ag.lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ag.cond, &ca);
        pthread_condattr_destroy(&ca);
        /* A signal during the join just ends the process: nothing is stored until the
         * identity file, last. */
        int code = establish_identity(&a, &ag.id);
        if (a.join_owned) {
                explicit_bzero(a.join_owned, strlen(a.join_owned));
                free(a.join_owned);
                a.join = a.join_owned = NULL;
        }
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
        return code;
}
