/* Three real site cluster nodes in one process on loopback: raft over mutual TLS, the
 * site-local API on the same port, heartbeats through it. The first node bootstraps, the
 * others join through their heartbeats; the leader schedules; a lost follower's instance
 * moves and the follower comes back without duplicates; a dead leader is replaced and its
 * work moves exactly when host-lost-after says; a host of another site is refused; the log
 * is snapshotted.
 *
 * Raft runs on real time; the cluster's own decisions (liveness, hosts lost) read a fake
 * clock that only the test moves, and after each move the test waits until every node has
 * ticked on the new time. So the timing rules are checked to the step, however loaded the
 * machine is. */
#include <arpa/inet.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "testutil.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/pki.h"
#include "site/cluster.h"
#include "site/siteapi.h"

#define N       3
#define WAIT_MS 30000

#define STEP_MS 100 /* one fake step: a tick */

typedef struct node {
        char dir[128], addr[32], name[16];
        int64_t id;
        sk_cluster *cl;
        sk_site_client *client;
        bool up;
        sk_clock clock;
        unsigned long reads; /* of the fake clock, under clk.lock */
} node;

/* ---- the fake clock ---- */

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int64_t now; /* ms */
} clk = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1000000};

static int64_t fake_mono(void *user)
{
        node *n = user;
        pthread_mutex_lock(&clk.lock);
        n->reads++;
        int64_t v = clk.now;
        pthread_cond_broadcast(&clk.cond);
        pthread_mutex_unlock(&clk.lock);
        return v;
}

static int64_t fake_wall(void *user)
{
        pthread_mutex_lock(&clk.lock);
        int64_t v = clk.now;
        pthread_mutex_unlock(&clk.lock);
        return 1700000000000LL + v;
}

static bool real_time; /* nodes started from now on read the system's clock */

static int64_t now_ms(void)
{
        if (real_time)
                return sk_monotonic_ms();
        pthread_mutex_lock(&clk.lock);
        int64_t v = clk.now;
        pthread_mutex_unlock(&clk.lock);
        return v;
}

static struct {
        char dir[64];
        sk_ca *ca;
        node n[N];
        char outsider[128];
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int free_port(void)
{
        int port = sk_test_free_port();
        assert_true(port > 0);
        return port;
}

static void write_file(const char *dir, const char *name, const char *text)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_int_equal(sk_file_write(path, text, strlen(text), 0600, NULL), 0);
}

/* An agent data folder with a host certificate of site/host from ca. */
static void make_data(const char *dir, sk_ca *ca, int64_t site, int64_t host)
{
        assert_int_equal(mkdir(dir, 0700), 0);
        _cleanup_free_ char *key = NULL, *csr = NULL, *cert = NULL;
        char cn[32], uri[96];
        snprintf(cn, sizeof(cn), "h%lld", (long long)host);
        snprintf(uri, sizeof(uri), "skerry://site/%lld/host/%lld", (long long)site,
                 (long long)host);
        assert_int_equal(sk_pki_make_key_and_csr(cn, &key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(ca, csr, cn, uri, 30, &cert, NULL), 0);
        write_file(dir, "ca.pem", sk_ca_cert_pem(ca));
        write_file(dir, "cert.pem", cert);
        write_file(dir, "key.pem", key);
}

static void start_node(node *n)
{
        _cleanup_json_ json_t *peers = n->id == 1
                                           ? json_array()
                                           : json_pack("[{s:s, s:I, s:s}]", "host", "h1", "host-id",
                                                       1, "address", fx.n[0].addr);
        sk_cluster_config cfg = {.data_dir = n->dir,
                                 .address = n->addr,
                                 .site = "s7",
                                 .host = n->name,
                                 .host_id = n->id,
                                 .peers = peers,
                                 .clock = real_time ? NULL : &n->clock,
                                 .election_ms = 1500,
                                 .heartbeat_ms = 100,
                                 .snapshot_threshold = 8};
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_cluster_new(&cfg, &n->cl, &err);
        if (r >= 0)
                r = sk_cluster_start(n->cl, &err);
        if (r < 0)
                fail_msg("node %s: %s", n->name, sk_error_msg(err, r));
        n->up = true;
}

static void stop_node(node *n)
{
        sk_cluster_free(n->cl);
        n->cl = NULL;
        n->up = false;
}

static int setup(void **state)
{
        signal(SIGPIPE, SIG_IGN);
        strcpy(fx.dir, "/tmp/skerry-cluster-XXXXXX");
        if (!mkdtemp(fx.dir))
                return -1;
        char cadir[128];
        snprintf(cadir, sizeof(cadir), "%s/ca", fx.dir);
        if (mkdir(cadir, 0700) < 0 || sk_ca_open(cadir, &fx.ca, NULL) < 0)
                return -1;
        for (int i = 0; i < N; i++) {
                node *n = &fx.n[i];
                n->id = i + 1;
                n->clock = (sk_clock){fake_mono, fake_wall, n};
                snprintf(n->name, sizeof(n->name), "h%d", i + 1);
                snprintf(n->dir, sizeof(n->dir), "%s/%s", fx.dir, n->name);
                snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", free_port());
                make_data(n->dir, fx.ca, 7, n->id);
                if (sk_site_client_new(n->dir, &n->client, NULL) < 0)
                        return -1;
        }
        /* A host of another site of the same tower. */
        snprintf(fx.outsider, sizeof(fx.outsider), "%s/outsider", fx.dir);
        make_data(fx.outsider, fx.ca, 8, 9);
        return 0;
}

static int teardown(void **state)
{
        for (int i = 0; i < N; i++) {
                if (fx.n[i].cl)
                        stop_node(&fx.n[i]);
                sk_site_client_free(fx.n[i].client);
        }
        sk_ca_free(fx.ca);
        nftw(fx.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}

/* ---- driving the site ---- */

static json_t *report(const node *n)
{
        return json_pack("{s:I, s:s, s:s, s:{s:s, s:s}, s:{}, s:{s:I, s:I}, s:[]}", "host-id",
                         (json_int_t)n->id, "host", n->name, "address", n->addr, "labels",
                         "system/name", n->name, "role", "test", "devices", "capacity", "cpu",
                         (json_int_t)2000, "memory", (json_int_t)(1LL << 30), "instances");
}

/* What an agent does every second: to itself when it leads, else to the leader it knows
 * (or a peer) over the site-local API, following a "leader" hint once; an answer is its
 * last contact with the leader. */
static void heartbeat_within(node *n, sk_site_client *client, long timeout_ms)
{
        _cleanup_json_ json_t *r = report(n);
        if (sk_cluster_heartbeat(n->cl, n->id, r) == 0)
                return;
        char *addr = sk_cluster_leader_address(n->cl);
        if (!addr)
                addr = sk_cluster_next_peer(n->cl);
        for (int hop = 0; addr && hop < 2; hop++) {
                long status = 0;
                _cleanup_json_ json_t *ans = NULL;
                int rc = sk_site_client_call(client, addr, "POST", "/v1/site/heartbeat", r,
                                             timeout_ms, &status, &ans, NULL);
                if (rc == 0 && status == 200)
                        sk_cluster_leader_contact(n->cl, addr, now_ms());
                free(addr);
                addr = NULL;
                if (rc == 0 && status == 421 && json_string_value(json_object_get(ans, "leader")))
                        addr = strdup(json_string_value(json_object_get(ans, "leader")));
        }
        free(addr);
}

static void heartbeat(node *n)
{
        heartbeat_within(n, n->client, 2000);
}

static node *leader(void)
{
        for (int i = 0; i < N; i++)
                if (fx.n[i].up && sk_cluster_is_leader(fx.n[i].cl))
                        return &fx.n[i];
        return NULL;
}

/* Moves the fake clock on by ms, then waits (real time, bounded) until every live node has
 * read it twice: its tick has run on the new time at least once to the end. */
static void step(int64_t ms)
{
        pthread_mutex_lock(&clk.lock);
        clk.now += ms;
        unsigned long want[N];
        for (int i = 0; i < N; i++)
                want[i] = fx.n[i].reads + 2;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        for (int i = 0; i < N; i++) {
                while (fx.n[i].up && fx.n[i].reads < want[i]) {
                        if (pthread_cond_timedwait(&clk.cond, &clk.lock, &until) != 0) {
                                pthread_mutex_unlock(&clk.lock);
                                fail_msg("node %s did not tick for 10 s", fx.n[i].name);
                        }
                }
        }
        pthread_mutex_unlock(&clk.lock);
}

static void heartbeats(void)
{
        for (int i = 0; i < N; i++)
                if (fx.n[i].up)
                        heartbeat(&fx.n[i]);
}

/* Heartbeats from every live node every 200 fake ms until pred holds, for ms of fake
 * time. */
static bool run_until(bool (*pred)(void), int ms)
{
        for (int t = 0; t < ms; t += 2 * STEP_MS) {
                heartbeats();
                step(STEP_MS);
                step(STEP_MS);
                if (pred())
                        return true;
        }
        return false;
}

/* The same, on real time with the fake clock standing still: for what only raft decides
 * (an election), so the cluster's clock does not move meanwhile. */
static bool wait_real(bool (*pred)(void))
{
        for (int t = 0; t < WAIT_MS; t += 50) {
                heartbeats();
                if (pred())
                        return true;
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
        }
        return false;
}

static bool all_voters(void)
{
        node *l = leader();
        if (!l)
                return false;
        for (int i = 0; i < N; i++) {
                const char *role = sk_cluster_role_of(l->cl, fx.n[i].id);
                if (!role || strcmp(role, "standby") == 0)
                        return false;
        }
        _cleanup_json_ json_t *st = sk_cluster_state(l->cl);
        return json_object_size(json_object_get(st, "hosts")) == N;
}

/* Placements per host name in a node's state; -1 when it has none yet. */
static int count_on(const node *n, const char *host)
{
        _cleanup_json_ json_t *st = sk_cluster_state(n->cl);
        const json_t *pl = json_object_get(st, "placements");
        int c = 0;
        size_t i;
        json_t *p;
        json_array_foreach(pl, i, p) c +=
            strcmp(json_string_value(json_object_get(p, "host")), host) == 0;
        return json_array_size(pl) ? c : -1;
}

static bool total_is(const node *n, int want)
{
        _cleanup_json_ json_t *st = sk_cluster_state(n->cl);
        return (int)json_array_size(json_object_get(st, "placements")) == want;
}

static bool spread_everywhere(void)
{
        for (int i = 0; i < N; i++)
                for (int k = 0; k < N; k++)
                        if (count_on(&fx.n[i], fx.n[k].name) != 1)
                                return false;
        return true;
}

static int lost_node; /* index */

static bool moved_off_lost(void)
{
        node *l = leader();
        if (!l || !total_is(l, 3) || count_on(l, fx.n[lost_node].name) != 0)
                return false;
        _cleanup_json_ json_t *st = sk_cluster_state(l->cl);
        char key[8];
        snprintf(key, sizeof(key), "%lld", (long long)fx.n[lost_node].id);
        return json_is_false(
            json_object_get(json_object_get(json_object_get(st, "hosts"), key), "alive"));
}

static bool has_leader(void)
{
        return leader() != NULL;
}

/* The lost node's entry in the leader's state says lost. */
static bool old_leader_lost(void)
{
        node *l = leader();
        if (!l)
                return false;
        _cleanup_json_ json_t *st = sk_cluster_state(l->cl);
        char key[8];
        snprintf(key, sizeof(key), "%lld", (long long)fx.n[lost_node].id);
        return json_is_false(
            json_object_get(json_object_get(json_object_get(st, "hosts"), key), "alive"));
}

static bool back_alive(void)
{
        node *l = leader();
        if (!l)
                return false;
        _cleanup_json_ json_t *st = sk_cluster_state(l->cl);
        char key[8];
        snprintf(key, sizeof(key), "%lld", (long long)fx.n[lost_node].id);
        return json_is_true(
                   json_object_get(json_object_get(json_object_get(st, "hosts"), key), "alive")) &&
               total_is(&fx.n[lost_node], 3);
}

static bool never(void)
{
        return false;
}

/* Every host alive in the leader's state, and every node's placements the leader's. */
static bool all_alive(void)
{
        node *l = leader();
        if (!l)
                return false;
        _cleanup_json_ json_t *st = sk_cluster_state(l->cl);
        const char *k;
        json_t *h;
        json_object_foreach(json_object_get(st, "hosts"), k,
                            h) if (!json_is_true(json_object_get(h, "alive"))) return false;
        for (int i = 0; i < N; i++) {
                if (!fx.n[i].up)
                        return false;
                _cleanup_json_ json_t *mine = sk_cluster_state(fx.n[i].cl);
                if (!json_equal(json_object_get(mine, "placements"),
                                json_object_get(st, "placements")))
                        return false;
        }
        return json_object_size(json_object_get(st, "hosts")) == N;
}

static json_t *desired_lost_after(int generation, const char *lost_after)
{
        return json_pack(
            "{s:I, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:[{s:s, s:I, "
            "s:[{s:s, s:s}]}]}}]}",
            "generation", generation, "site", "name", "s7", "tenant", "default", "host-lost-after",
            lost_after, "deployments", "tenant", "default", "name", "web", "application", "web",
            "version", "1.0.0", "spec", "name", "web", "version", "1.0.0", "services", "name",
            "api", "replicas", 3, "containers", "name", "api", "image", "localhost/busybox:latest");
}

static json_t *desired(void)
{
        return desired_lost_after(1, "3s");
}

/* Every live node holds host-lost-after 2 s. */
static bool lost_after_2s(void)
{
        for (int i = 0; i < N; i++) {
                if (!fx.n[i].up)
                        continue;
                _cleanup_json_ json_t *st = sk_cluster_state(fx.n[i].cl);
                const char *v = json_string_value(json_object_get(
                    json_object_get(json_object_get(st, "desired"), "site"), "host-lost-after"));
                if (!v || strcmp(v, "2s") != 0)
                        return false;
        }
        return true;
}

static bool has_snapshot(const char *dir)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/raft", dir);
        DIR *d = opendir(path);
        bool found = false;
        struct dirent *e;
        while (d && (e = readdir(d)))
                found |= strncmp(e->d_name, "snapshot-", 9) == 0;
        if (d)
                closedir(d);
        return found;
}

static void test_three_nodes(void **state)
{
        for (int i = 0; i < N; i++)
                start_node(&fx.n[i]);
        assert_true(run_until(all_voters, WAIT_MS));
        assert_ptr_equal(leader(), &fx.n[0]); /* the bootstrapping node, alone at first */

        _cleanup_json_ json_t *doc = desired();
        assert_int_equal(sk_cluster_submit_desired(fx.n[1].cl, doc), -EAGAIN); /* a follower */
        assert_int_equal(sk_cluster_submit_desired(leader()->cl, doc), 0);
        assert_true(run_until(spread_everywhere, WAIT_MS));

        /* The site-local API on a follower answers from the leader. */
        long status = 0;
        _cleanup_json_ json_t *hosts = NULL;
        assert_int_equal(sk_site_client_call(fx.n[2].client, fx.n[2].addr, "GET", "/v1/hosts", NULL,
                                             5000, &status, &hosts, NULL),
                         0);
        assert_int_equal(status, 200);
        json_t *items = json_object_get(hosts, "items");
        assert_int_equal(json_array_size(items), N);
        int leaders = 0;
        size_t i;
        json_t *h;
        json_array_foreach(items, i, h)
        {
                leaders += strcmp(json_string_value(json_object_get(h, "role")), "leader") == 0;
                assert_string_equal(json_string_value(json_object_get(h, "state")), "alive");
                assert_non_null(json_object_get(h, "last-seen"));
        }
        assert_int_equal(leaders, 1);

        /* A host of another site is refused before any HTTP. */
        sk_site_client *out = NULL;
        assert_int_equal(sk_site_client_new(fx.outsider, &out, NULL), 0);
        _cleanup_json_ json_t *ans = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_true(sk_site_client_call(out, fx.n[0].addr, "GET", "/v1/hosts", NULL, 3000, &status,
                                        &ans, &err) < 0);
        sk_site_client_free(out);

        /* A follower dies: its instance moves to the others. */
        lost_node = 2;
        stop_node(&fx.n[2]);
        assert_true(run_until(moved_off_lost, WAIT_MS));
        /* It comes back: alive again, and since the replicas are 2, 1, 0 then, one moves
         * back to it (the spread; no duplicate in the map). */
        start_node(&fx.n[2]);
        assert_true(run_until(back_alive, WAIT_MS));
        assert_true(run_until(spread_everywhere, WAIT_MS));

        /* The leader dies at T0, right after its last answer to the others' heartbeats. A
         * new one is elected (1 s of the cluster's time goes by meanwhile, then it stands
         * still until raft has elected) and takes over at `led`. The old leader's work
         * moves host-lost-after (3 s) after the last contact with it, but no sooner than
         * 2 s after the new leader took over (a live old leader's time to report): not a
         * full period after the election. */
        node *old = leader();
        lost_node = (int)(old - fx.n);
        heartbeats();
        int64_t t0 = now_ms();
        stop_node(old);
        /* The new leader took over at a time in [led_lo, led_hi]: seen after a step, not
         * seen before it. */
        int64_t led_lo = 0, led_hi = 0;
        for (int k = 0; k < 10 && !led_hi; k++) {
                int64_t before = now_ms();
                heartbeats();
                step(STEP_MS);
                if (leader())
                        led_lo = before, led_hi = now_ms();
        }
        assert_true(wait_real(has_leader));
        if (!led_hi)
                led_lo = led_hi = now_ms();
        int64_t due = t0 + 3000 > led_hi + 2000 ? t0 + 3000 : led_hi + 2000;
        /* Not before the grace: a tick before it, the others' heartbeats coming in. */
        while (now_ms() + STEP_MS < led_lo + 2000) {
                heartbeats();
                step(STEP_MS);
        }
        assert_false(old_leader_lost());
        /* By the time it is due, a tick later at most, without the clock moving on. */
        while (now_ms() < due + STEP_MS) {
                heartbeats();
                step(STEP_MS);
        }
        assert_true(wait_real(moved_off_lost));
        assert_ptr_not_equal(leader(), old);
        for (int k = 0; k < N; k++)
                if (fx.n[k].up)
                        assert_true(has_snapshot(fx.n[k].dir));

        /* The whole site again; then one host is cut off from the other two (they die):
         * it must not declare them lost, so nothing moves when they come back. */
        start_node(old);
        assert_true(run_until(all_alive, WAIT_MS));
        node *alone = leader();
        _cleanup_json_ json_t *st = sk_cluster_state(alone->cl);
        _cleanup_json_ json_t *before = json_incref(json_object_get(st, "placements"));
        for (int k = 0; k < N; k++)
                if (&fx.n[k] != alone)
                        stop_node(&fx.n[k]);
        assert_false(run_until(never, 9000)); /* three times host-lost-after */
        for (int k = 0; k < N; k++)
                if (!fx.n[k].up)
                        start_node(&fx.n[k]);
        assert_true(run_until(all_alive, WAIT_MS));
        assert_false(run_until(never, 2000));
        node *l = leader();
        assert_non_null(l);
        /* Idle now (heartbeats of the same content, no entries): the leader's ticks build
         * no inventory entries and run no scheduler. */
        sk_cluster_work before_idle, after_idle;
        sk_cluster_work_done(l->cl, &before_idle);
        assert_false(run_until(never, 2000));
        sk_cluster_work_done(l->cl, &after_idle);
        assert_true(after_idle.ticks >= before_idle.ticks + 20);
        assert_int_equal(after_idle.inventory_passes, before_idle.inventory_passes);
        assert_int_equal(after_idle.schedules, before_idle.schedules);
        _cleanup_json_ json_t *after = sk_cluster_state(l->cl);
        if (!json_equal(before, json_object_get(after, "placements"))) {
                _cleanup_free_ char *b = json_dumps(before, JSON_COMPACT);
                _cleanup_free_ char *a = json_dumps(after, JSON_COMPACT);
                fail_msg("placements moved:\nbefore %s\nafter %s", b, a);
        }
}

/* ---- a slow site-local request and heartbeats ---- */

/* Threads of the test below: each live node's heartbeats (as its agent sends them: its own
 * thread, every 200 ms), and clients that keep site-local requests going. */
static struct {
        pthread_mutex_t lock;
        bool stop;
        int slow; /* requests that took 3 s or more */
} bg = {PTHREAD_MUTEX_INITIALIZER, false, 0};

static bool bg_stopping(void)
{
        pthread_mutex_lock(&bg.lock);
        bool s = bg.stop;
        pthread_mutex_unlock(&bg.lock);
        return s;
}

static void *beat_thread(void *arg)
{
        node *n = arg;
        sk_site_client *c = NULL;
        assert_int_equal(sk_site_client_new(n->dir, &c, NULL), 0);
        while (!bg_stopping()) {
                heartbeat_within(n, c, 1000);
                struct timespec ts = {0, 200 * 1000000L};
                nanosleep(&ts, NULL);
        }
        sk_site_client_free(c);
        return NULL;
}

/* GET /v1/hosts at a follower, again and again: it forwards each to the leader it knows. */
static void *client_thread(void *arg)
{
        node *n = arg;
        sk_site_client *c = NULL;
        assert_int_equal(sk_site_client_new(n->dir, &c, NULL), 0);
        while (!bg_stopping()) {
                long status = 0;
                _cleanup_json_ json_t *ans = NULL;
                int64_t t0 = sk_monotonic_ms();
                sk_site_client_call(c, n->addr, "GET", "/v1/hosts", NULL, 10000, &status, &ans,
                                    NULL);
                pthread_mutex_lock(&bg.lock);
                bg.slow += sk_monotonic_ms() - t0 >= 3000;
                pthread_mutex_unlock(&bg.lock);
        }
        sk_site_client_free(c);
        return NULL;
}

/* A listener that takes connections and never answers: a leader hung (a stalled disk, a
 * stopped process) at the address the site knows it by. */
static int black_hole(const char *addr)
{
        int port = atoi(strchr(addr, ':') + 1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(listen(fd, 128), 0);
        return fd;
}

/* Some host other than the hung one is lost in some live node's state. */
static bool false_loss(void)
{
        for (int i = 0; i < N; i++) {
                if (!fx.n[i].up)
                        continue;
                _cleanup_json_ json_t *st = sk_cluster_state(fx.n[i].cl);
                const char *k;
                json_t *h;
                json_object_foreach(json_object_get(st, "hosts"), k, h)
                {
                        if (strtoll(k, NULL, 10) != fx.n[lost_node].id &&
                            json_is_false(json_object_get(h, "alive")))
                                return true;
                }
        }
        return false;
}

/* The leader hangs while the followers are busy forwarding requests to it: every forward
 * waits out its timeout. Whichever follower leads next keeps taking the other's
 * heartbeats on time: the slow requests run on the site-local API's workers, never where
 * heartbeats are answered. On the system's clock: load is the adversary here. */
static void test_slow_requests_do_not_delay_heartbeats(void **state)
{
        for (int i = 0; i < N; i++)
                if (fx.n[i].up)
                        stop_node(&fx.n[i]);
        real_time = true;
        for (int i = 0; i < N; i++)
                start_node(&fx.n[i]);
        assert_true(wait_real(all_alive));
        /* A short host-lost-after: a heartbeat held up for 2 s is a host lost. */
        _cleanup_json_ json_t *doc = desired_lost_after(2, "2s");
        assert_int_equal(sk_cluster_submit_desired(leader()->cl, doc), 0);
        assert_true(wait_real(lost_after_2s));

        node *old = leader();
        lost_node = (int)(old - fx.n);
        pthread_t beats[N], clients[2 * N];
        int n_clients = 0;
        stop_node(old);
        int hole = black_hole(old->addr);
        for (int i = 0; i < N; i++) {
                if (!fx.n[i].up)
                        continue;
                assert_int_equal(pthread_create(&beats[i], NULL, beat_thread, &fx.n[i]), 0);
                for (int k = 0; k < 2; k++)
                        assert_int_equal(
                            pthread_create(&clients[n_clients++], NULL, client_thread, &fx.n[i]),
                            0);
        }
        /* Six times host-lost-after: the hung leader is lost, nobody else. */
        bool lost_wrongly = false;
        for (int64_t end = sk_monotonic_ms() + 12000; sk_monotonic_ms() < end && !lost_wrongly;) {
                lost_wrongly = false_loss();
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
        }
        bool old_lost = old_leader_lost();
        pthread_mutex_lock(&bg.lock);
        bg.stop = true;
        int slow = bg.slow;
        pthread_mutex_unlock(&bg.lock);
        for (int i = 0; i < n_clients; i++)
                pthread_join(clients[i], NULL);
        for (int i = 0; i < N; i++)
                if (fx.n[i].up)
                        pthread_join(beats[i], NULL);
        close(hole);
        assert_false(lost_wrongly);
        assert_true(old_lost);
        assert_true(slow > 0); /* the requests were slow indeed */

        start_node(old);
        assert_true(wait_real(all_alive));
}

int main(void)
{
        /* In this order: the second starts from the site the first leaves. */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_three_nodes),
            cmocka_unit_test(test_slow_requests_do_not_delay_heartbeats),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
