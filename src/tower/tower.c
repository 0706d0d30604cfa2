/* `skerry tower`: opens the data folder and the store (SQLite in the data folder, or a
 * PostgreSQL database shared with other replicas), the CA and the admin token, issues the
 * server certificate and serves the API until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "model/spec.h"
#include "tower/api.h"
#include "tower/http.h"
#include "tower/listen.h"
#include "tower/replica.h"
#include "tower/store.h"
#include "tower/tower.h"

#define DEFAULT_LISTEN   "127.0.0.1:7443"
#define SERVER_CERT_DAYS 365

static void usage(FILE *f)
{
        fputs("usage: skerry tower --data DIR [--listen ADDR:PORT] [--store CONNINFO]\n"
              "  --data DIR          store, CA and keys (env SKERRY_DATA)\n"
              "  --listen ADDR:PORT  HTTPS address (env SKERRY_LISTEN, default " DEFAULT_LISTEN
              ")\n"
              "  --store CONNINFO    a PostgreSQL database shared by several tower replicas:\n"
              "                      postgresql://... or 'host=... dbname=...' (env\n"
              "                      SKERRY_STORE; default SQLite in DIR/tower.db)\n"
              "Limits (docs/security.md):\n"
              "  --conn-per-address N   connections not yet authenticated from one address\n"
              "                         (default 128)\n"
              "  --conn-reserve N       connections kept for authenticated users and sites\n"
              "                         (default a quarter of the descriptor limit)\n"
              "  --conn-per-identity N  connections of one authenticated host or user\n"
              "                         (default 64)\n"
              "  --header-timeout SECS  idle limit of a connection before it authenticates\n"
              "                         (default 10)\n"
              "  --events-max-age DUR   audit events older than this go (default 90d; 0: keep)\n"
              "  --events-max N         at most this many audit events (default 100000)\n"
              "  --http-threads N       request threads (default 4; docs/architecture.md)\n",
              f);
}

typedef struct tower_limits {
        unsigned conn_per_address, conn_reserve, conn_per_identity, header_timeout_s, threads;
        int64_t events_max_age_ms, events_max;
} tower_limits;

/* A positive whole number for a flag; false when it is not one. */
static bool parse_count(const char *s, unsigned long max, unsigned long *out)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v == 0 || v > max || *s == '-')
                return false;
        *out = v;
        return true;
}

static void store_closep(sk_store **s)
{
        if (*s)
                (*s)->ops->close(*s);
}

static void api_freep(sk_tower_api **a)
{
        sk_tower_api_free(*a);
}

/* The names the server certificate is good for: the listen address and this machine. */
static size_t server_names(const char *host, char hostname[256], const char *names[6])
{
        size_t n = 0;
        const char *fixed[] = {"localhost", "127.0.0.1", "::1"};
        if (*host && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
                names[n++] = host;
        if (gethostname(hostname, 255) == 0 && hostname[0]) {
                hostname[255] = '\0';
                names[n++] = hostname;
        }
        for (size_t i = 0; i < SK_ARRAY_SIZE(fixed); i++) {
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                        dup |= strcmp(names[j], fixed[i]) == 0;
                if (!dup)
                        names[n++] = fixed[i];
        }
        return n;
}

static int write_admin_token(const char *path, const char *token, sk_error **err)
{
        _cleanup_free_ char *line = NULL;
        if (asprintf(&line, "%s\n", token) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_file_write(path, line, strlen(line), 0600, err);
        if (r >= 0)
                sk_info("wrote the admin token to %s", path);
        return r;
}

static int ensure_admin_token(sk_tower_api *api, const char *dir, sk_error **err)
{
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/admin.token", dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        bool first = access(path, F_OK) != 0;
        _cleanup_free_ char *token = NULL;
        int r = sk_tower_bootstrap(api, first ? &token : NULL, err);
        if (r < 0 || !first)
                return r;
        return write_admin_token(path, token, err);
}

/* A replica on a shared store: the CA and the first start's bootstrap happen once, in one
 * transaction under the bootstrap lock, whichever replica gets there first; that one
 * writes the admin token to its data folder. */
static int replica_bootstrap(sk_store *store, const char *dir, sk_ca **ca, sk_tower_api **api,
                             sk_error **err)
{
        int r = store->ops->begin(store, err);
        if (r < 0)
                return r;
        r = store->ops->lock(store, SK_STORE_LOCK_BOOTSTRAP, err);
        if (r >= 0)
                r = sk_tower_replica_ca(store, dir, ca, err);
        if (r >= 0)
                r = sk_tower_api_new(store, *ca, api, err);
        bool first = false;
        if (r >= 0) {
                _cleanup_free_ char *when = NULL;
                r = store->ops->setting_get(store, "bootstrapped", &when, NULL);
                first = r == -ENOENT;
                if (first)
                        r = 0;
                else if (r < 0)
                        r = sk_error_set(err, -r, "reading the store's bootstrap marker failed");
        }
        if (first) {
                char stamp[32];
                snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
                r = store->ops->setting_add(store, "bootstrapped", stamp, err);
        }
        _cleanup_free_ char *token = NULL;
        if (r >= 0)
                r = sk_tower_bootstrap(*api, first ? &token : NULL, err);
        if (r >= 0)
                r = store->ops->commit(store, err);
        else
                store->ops->rollback(store);
        if (r < 0 || !first)
                return r;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/admin.token", dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        return write_admin_token(path, token, err);
}

/* Whether --store names a PostgreSQL database: a libpq URI or key=value conninfo. */
static bool is_pg_conninfo(const char *s)
{
        return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 ||
               strchr(s, '=') != NULL;
}

static void listener_stopp(sk_tower_listener **l)
{
        sk_tower_listener_stop(*l);
}

static void on_store_moved(void *ctx)
{
        sk_tower_http_refresh(ctx);
}

static void on_store_site(void *ctx, int64_t site_id)
{
        sk_tower_http_wake_site(ctx, site_id);
}

/* Creates dir and its missing parents; only the data folder itself gets mode 0700. */
static int mkdir_parents(const char *dir, sk_error **err)
{
        _cleanup_free_ char *p = strdup(dir);
        if (!p)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return sk_error_set(err, errno, "cannot create %s: %m", p);
                *s = '/';
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return sk_error_set(err, errno, "cannot create %s: %m", dir);
        return 0;
}

static int run(const char *dir, const char *listen, const char *conninfo, const tower_limits *lim,
               sk_error **err)
{
        /* a bad --listen is refused before anything is created */
        _cleanup_free_ char *host = NULL, *port = NULL;
        int r = sk_tower_split_listen(listen, &host, &port, err);
        if (r < 0)
                return r;
        r = mkdir_parents(dir, err);
        if (r < 0)
                return r;
        __attribute__((cleanup(store_closep))) sk_store *store = NULL;
        if (conninfo) {
                r = sk_store_pg_open(conninfo, &store, err);
        } else {
                _cleanup_free_ char *db = NULL;
                if (asprintf(&db, "%s/tower.db", dir) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                r = sk_store_sqlite_open(db, &store, err);
        }
        if (r < 0)
                return r;
        _cleanup_ca_ sk_ca *ca = NULL;
        __attribute__((cleanup(api_freep))) sk_tower_api *api = NULL;
        if (conninfo)
                r = replica_bootstrap(store, dir, &ca, &api, err);
        else
                r = sk_ca_open(dir, &ca, err);
        if (r < 0)
                return r;
        char hostname[256] = "";
        const char *names[6];
        size_t n = server_names(host, hostname, names);
        _cleanup_free_ char *cert = NULL, *key = NULL;
        r = sk_ca_issue_server(ca, names, n, SERVER_CERT_DAYS, &cert, &key, err);
        if (r < 0)
                return r;
        if (!conninfo) {
                r = sk_tower_api_new(store, ca, &api, err);
                if (r >= 0)
                        r = ensure_admin_token(api, dir, err);
                if (r < 0)
                        return r;
        }

        /* each connected site holds a descriptor: use all the hard limit allows */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }

        /* Signals go to sigwait below, not to the server's threads. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        sk_tower_http *http = NULL;
        uint16_t bound = 0;
        sk_tower_api_set_retention(api, lim->events_max_age_ms, lim->events_max);
        sk_tower_http_opts o = {.listen = listen,
                                .cert_pem = cert,
                                .key_pem = key,
                                .ca_pem = sk_ca_cert_pem(ca),
                                .conn_per_address = lim->conn_per_address,
                                .conn_reserve = lim->conn_reserve,
                                .conn_per_identity = lim->conn_per_identity,
                                .header_timeout_s = lim->header_timeout_s,
                                .threads = lim->threads};
        r = sk_tower_http_start(api, &o, &http, &bound, err);
        explicit_bzero(key, strlen(key));
        if (r < 0)
                return r;
        /* Other replicas' changes: recompute documents and wake the long-polls held here. */
        __attribute__((cleanup(listener_stopp))) sk_tower_listener *listener = NULL;
        if (conninfo) {
                sk_tower_listener_cbs cbs = {on_store_moved, on_store_site, http, 0};
                r = sk_tower_listener_start(conninfo, &cbs, &listener, err);
                if (r < 0) {
                        sk_tower_http_stop(http);
                        return r;
                }
                /* what changed between bootstrap and LISTEN */
                sk_tower_http_refresh(http);
        }
        bool v6 = strchr(host, ':') != NULL;
        sk_info("listening on https://%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
                (unsigned)bound);
        int sig = 0;
        sigwait(&set, &sig);
        sk_info("stopping (%s)", strsignal(sig));
        sk_tower_listener_stop(take_ptr(&listener));
        sk_tower_http_stop(http);
        return 0;
}

int sk_tower_main(int argc, char **argv)
{
        sk_log_init("tower");
        const char *dir = getenv("SKERRY_DATA");
        const char *listen = getenv("SKERRY_LISTEN");
        const char *store = getenv("SKERRY_STORE");
        static const struct option longopts[] = {
            {"data", required_argument, NULL, 'd'},
            {"listen", required_argument, NULL, 'l'},
            {"store", required_argument, NULL, 's'},
            {"conn-per-address", required_argument, NULL, 'A'},
            {"conn-reserve", required_argument, NULL, 'R'},
            {"conn-per-identity", required_argument, NULL, 'I'},
            {"header-timeout", required_argument, NULL, 'T'},
            {"events-max-age", required_argument, NULL, 'E'},
            {"events-max", required_argument, NULL, 'N'},
            {"http-threads", required_argument, NULL, 'P'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        tower_limits lim = {.events_max_age_ms = SK_TOWER_EVENTS_MAX_AGE_MS,
                            .events_max = SK_TOWER_EVENTS_MAX};
        unsigned long v;
        optind = 1;
        int ch;
        while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (ch) {
                case 'd':
                        dir = optarg;
                        break;
                case 'l':
                        listen = optarg;
                        break;
                case 's':
                        store = optarg;
                        break;
                case 'A':
                case 'R':
                case 'I':
                case 'T':
                case 'N':
                case 'P':
                        if (!parse_count(optarg,
                                         ch == 'T'   ? 3600
                                         : ch == 'P' ? SK_TOWER_HTTP_THREADS_MAX
                                                     : 10000000,
                                         &v)) {
                                fprintf(stderr,
                                        "skerry tower: --%s must be a whole number above 0, "
                                        "not '%s'\n",
                                        ch == 'A'   ? "conn-per-address"
                                        : ch == 'R' ? "conn-reserve"
                                        : ch == 'I' ? "conn-per-identity"
                                        : ch == 'T' ? "header-timeout"
                                        : ch == 'P' ? "http-threads"
                                                    : "events-max",
                                        optarg);
                                return 2;
                        }
                        if (ch == 'A')
                                lim.conn_per_address = (unsigned)v;
                        else if (ch == 'R')
                                lim.conn_reserve = (unsigned)v;
                        else if (ch == 'I')
                                lim.conn_per_identity = (unsigned)v;
                        else if (ch == 'T')
                                lim.header_timeout_s = (unsigned)v;
                        else if (ch == 'P')
                                lim.threads = (unsigned)v;
                        else
                                lim.events_max = (int64_t)v;
                        break;
                case 'E':
                        if (strcmp(optarg, "0") == 0) {
                                lim.events_max_age_ms = 0;
                        } else if (sk_duration_ms(optarg, &lim.events_max_age_ms) < 0 ||
                                   lim.events_max_age_ms <= 0) {
                                fprintf(stderr,
                                        "skerry tower: --events-max-age must be a duration like "
                                        "30d or 12h, or 0\n");
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "skerry tower: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (!dir || !*dir) {
                fprintf(stderr, "skerry tower: --data DIR is required\n");
                usage(stderr);
                return 2;
        }
        if (store && *store && !is_pg_conninfo(store)) {
                fprintf(stderr,
                        "skerry tower: --store must be a PostgreSQL URI (postgresql://...) or a "
                        "'key=value' conninfo\n");
                usage(stderr);
                return 2;
        }
        _cleanup_error_ sk_error *err = NULL;
        int r = run(dir, listen && *listen ? listen : DEFAULT_LISTEN,
                    store && *store ? store : NULL, &lim, &err);
        if (r < 0) {
                sk_errorf("%s", sk_error_msg(err, r));
                return 1;
        }
        return 0;
}
