#include "site/cluster.h"

#include <gnutls/x509.h>
#include <inttypes.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"
#include "host/supervisor.h"
#include "model/spec.h"
#include "site/cluster_fsm.h"
#include "site/liveness.h"
#include "site/raft_tls.h"
#include "site/siteapi.h"
#include "site/uplink.h"

#define TICK_MS          100
#define SEGMENT_SIZE     (1u << 20)
#define SNAPSHOT_TRAIL   32
#define PROXY_TIMEOUT_MS 5000
/* How long a site API request waits for its raft entry to apply. */
#define JOIN_WAIT_MS        4000
#define SITE_HOST_CERT_DAYS 365
/* A heartbeat answer older than this when raft last heard the leader is not the last
 * contact (two agent heartbeats): raft's own contact counts instead. */
#define CONTACT_SLACK_MS 2000
/* A new leader leaves an old leader that may still be alive this long (at most
 * host-lost-after) to report: its heartbeats could not reach the new leader before. */
#define LEADER_GRACE_MS 2000

struct sk_cluster {
        char *dir, *raft_dir, *address, *site, *host;
        int64_t host_id;
        json_t *peers;
        void (*on_change)(void *user);
        void *user;
        int election_ms, heartbeat_ms;
        unsigned snapshot_threshold;
        char *ca_pem, *cert_pem, *key_pem;

        /* The loop thread's own. */
        uv_loop_t loop;
        uv_timer_t tick;
        uv_async_t wake;
        struct raft_uv_transport transport;
        struct raft_io io;
        struct raft_fsm fsm;
        struct raft raft;
        bool transport_init, io_init, raft_init, closing;
        pthread_t thread;
        bool thread_started;
        bool barrier_inflight, change_inflight, sched_inflight, confirm_inflight, transfer_inflight;
        struct raft_transfer transfer;
        int64_t last_transfer_ms;
        struct raft_barrier barrier, confirm;
        json_t *candidates; /* host ids out of time, waiting for confirm */
        int64_t confirm_started;
        struct raft_change change;
        sk_liveness live;
        json_t *submitted; /* host id -> host entry proposed, not yet applied */
        raft_id last_leader;
        int64_t last_leader_ms; /* raft's last message from it, monotonic ms */
        sk_siteapi *api;
        int start_error;

        /* Shared, under lock. */
        pthread_mutex_t lock;
        pthread_cond_t started_cond;
        bool loop_ready;
        sk_fsm f;
        bool leader_ready, changed, stop, step_aside;
        raft_id leader_id;
        char *leader_addr;
        json_t *members;    /* host id -> "voter" | "standby" | "spare", with "address" */
        json_t *reports;    /* host id -> {"report": ..., "at": ms, "wall": unix ms} */
        json_t *queue;      /* commands for the leader to propose */
        json_t *joining;    /* token hashes of site-local joins in progress */
        raft_id contact_id; /* the leader that last answered this host's heartbeat */
        int64_t contact_ms; /* when, monotonic ms */
        size_t peer_cursor;
};

static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *rfc3339(int64_t ms)
{
        char buf[32];
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}

static void id_key(int64_t id, char key[24])
{
        snprintf(key, 24, "%" PRId64, id);
}

static void on_tick(uv_timer_t *t);

/* Runs the tick at the next loop iteration: an applied entry reaches the supervisor, and a
 * lost host's placements the scheduler, without waiting up to TICK_MS each. */
static void kick(sk_cluster *cl)
{
        if (!cl->closing)
                uv_timer_start(&cl->tick, on_tick, 0, TICK_MS);
}

/* ---- the FSM, as raft sees it ---- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
        sk_cluster *cl = fsm->data;
        _cleanup_error_ sk_error *err = NULL;
        pthread_mutex_lock(&cl->lock);
        int r = sk_fsm_apply(&cl->f, buf->base, buf->len, &err);
        if (r > 0)
                cl->changed = true;
        pthread_mutex_unlock(&cl->lock);
        if (r > 0)
                kick(cl);
        if (r < 0)
                sk_warn("cluster: skipping an entry: %s", sk_error_msg(err, r));
        *result = NULL;
        return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
        sk_cluster *cl = fsm->data;
        size_t len = 0;
        pthread_mutex_lock(&cl->lock);
        _cleanup_free_ char *snap = sk_fsm_snapshot(&cl->f, &len);
        pthread_mutex_unlock(&cl->lock);
        if (!snap)
                return RAFT_NOMEM;
        *bufs = raft_malloc(sizeof(**bufs));
        void *base = raft_malloc(len);
        if (!*bufs || !base) {
                raft_free(*bufs);
                raft_free(base);
                return RAFT_NOMEM;
        }
        memcpy(base, snap, len);
        (*bufs)[0] = (struct raft_buffer){.base = base, .len = len};
        *n_bufs = 1;
        return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
        sk_cluster *cl = fsm->data;
        _cleanup_error_ sk_error *err = NULL;
        pthread_mutex_lock(&cl->lock);
        int r = sk_fsm_restore(&cl->f, buf->base, buf->len, &err);
        if (r == 0)
                cl->changed = true;
        pthread_mutex_unlock(&cl->lock);
        raft_free(buf->base);
        if (r < 0) {
                sk_errorf("cluster: snapshot: %s", sk_error_msg(err, r));
                return RAFT_MALFORMED;
        }
        return 0;
}

/* ---- proposals (leader, loop thread) ---- */

typedef struct apply_req {
        struct raft_apply req;
        sk_cluster *cl;
        bool sched;
        char key[24]; /* a host entry's id, or "" */
} apply_req;

static void on_applied(struct raft_apply *req, int status, void *result)
{
        apply_req *a = req->data;
        if (a->sched)
                a->cl->sched_inflight = false;
        if (a->key[0])
                json_object_del(a->cl->submitted, a->key);
        if (status != 0)
                sk_debug("cluster: proposal failed: %s", raft_strerror(status));
        free(a);
}

static int propose(sk_cluster *cl, const json_t *cmd, bool sched, const char *key)
{
        size_t len = 0;
        _cleanup_free_ char *enc = sk_fsm_encode(cmd, &len);
        apply_req *a = calloc(1, sizeof(*a));
        struct raft_buffer buf = {.base = enc ? raft_malloc(len) : NULL, .len = len};
        if (!enc || !a || !buf.base) {
                free(a);
                raft_free(buf.base);
                return -ENOMEM;
        }
        memcpy(buf.base, enc, len);
        a->cl = cl;
        a->sched = sched;
        if (key)
                snprintf(a->key, sizeof(a->key), "%s", key);
        a->req.data = a;
        int r = raft_apply(&cl->raft, &a->req, &buf, 1, on_applied);
        if (r != 0) {
                raft_free(buf.base);
                free(a);
                return -EAGAIN;
        }
        if (sched)
                cl->sched_inflight = true;
        return 0;
}

/* ---- membership ---- */

static void on_changed(struct raft_change *req, int status)
{
        sk_cluster *cl = req->data;
        cl->change_inflight = false;
        if (status != 0)
                sk_debug("cluster: configuration change failed: %s", raft_strerror(status));
}

static bool host_alive(sk_cluster *cl, raft_id id)
{
        return (int64_t)id == cl->host_id || sk_liveness_state(&cl->live, (int64_t)id) == 1;
}

static void assign(sk_cluster *cl, raft_id id, int role, const char *why)
{
        cl->change.data = cl;
        int r = raft_assign(&cl->raft, &cl->change, id, role, on_changed);
        if (r == 0) {
                cl->change_inflight = true;
                sk_info("cluster: host %llu becomes %s (%s)", (unsigned long long)id,
                        role == RAFT_VOTER ? "a voter" : "a standby", why);
        }
}

/* 1, 3 or 5 voters among the members; a dead voter gives its place to a live standby. */
static void manage_voters(sk_cluster *cl)
{
        if (cl->change_inflight)
                return;
        const struct raft_configuration *c = &cl->raft.configuration;
        unsigned target = c->n >= 5 ? 5 : c->n >= 3 ? 3 : 1, voters = 0, alive_voters = 0;
        raft_id spare = 0, standby = 0, dead_voter = 0, other_voter = 0;
        for (unsigned i = 0; i < c->n; i++) {
                const struct raft_server *s = &c->servers[i];
                bool alive = host_alive(cl, s->id);
                if (s->role == RAFT_VOTER) {
                        voters++;
                        alive_voters += alive;
                        if (!alive && (int64_t)s->id != cl->host_id)
                                dead_voter = s->id;
                        else if ((int64_t)s->id != cl->host_id)
                                other_voter = s->id;
                } else if (alive && s->role == RAFT_SPARE && !spare) {
                        spare = s->id;
                } else if (alive && s->role == RAFT_STANDBY && !standby) {
                        standby = s->id;
                }
        }
        /* Standbys first: a joining host shows up in the inventory only once it has its
         * role, and the roles it sees then are final. */
        if (alive_voters < target && standby)
                assign(cl, standby, RAFT_VOTER, "the site needs voters");
        else if (spare)
                assign(cl, spare, alive_voters < target ? RAFT_VOTER : RAFT_STANDBY, "joined");
        else if (voters > target && (dead_voter || other_voter))
                assign(cl, dead_voter ? dead_voter : other_voter, RAFT_STANDBY,
                       dead_voter ? "lost" : "too many voters");
}

static void on_transferred(struct raft_transfer *req)
{
        sk_cluster *cl = req->data;
        cl->transfer_inflight = false;
}

static bool hand_over(sk_cluster *cl, const char *why)
{
        const struct raft_configuration *c = &cl->raft.configuration;
        unsigned voters = 0;
        for (unsigned i = 0; i < c->n; i++)
                voters += c->servers[i].role == RAFT_VOTER;
        if (cl->transfer_inflight || voters < 2)
                return false; /* nobody to hand over to */
        cl->transfer.data = cl;
        if (raft_transfer(&cl->raft, &cl->transfer, 0, on_transferred) != 0)
                return false;
        cl->transfer_inflight = true;
        cl->last_transfer_ms = sk_monotonic_ms();
        sk_warn("cluster: handing over leadership: %s", why);
        return true;
}

/* Hosts the tower removed (the FSM's deny list) leave the raft configuration, one change
 * at a time. A removed leader hands leadership over first: the next leader removes it. */
static void remove_members(sk_cluster *cl)
{
        if (cl->change_inflight || cl->transfer_inflight)
                return;
        const struct raft_configuration *c = &cl->raft.configuration;
        raft_id gone = 0;
        pthread_mutex_lock(&cl->lock);
        for (unsigned i = 0; i < c->n; i++) {
                if (!gone && sk_fsm_is_removed(&cl->f, (int64_t)c->servers[i].id))
                        gone = c->servers[i].id;
        }
        pthread_mutex_unlock(&cl->lock);
        if (!gone)
                return;
        if ((int64_t)gone == cl->host_id) {
                hand_over(cl, "this host was removed from the site");
                return;
        }
        cl->change.data = cl;
        int r = raft_remove(&cl->raft, &cl->change, gone, on_changed);
        if (r == 0) {
                cl->change_inflight = true;
                sk_info("cluster: removing host %llu from the raft configuration (removed from "
                        "the site)",
                        (unsigned long long)gone);
        } else {
                sk_debug("cluster: removing host %llu: %s", (unsigned long long)gone,
                         raft_strerror(r));
        }
}

/* The raft role of a member, -1 for none. */
static int member_role(sk_cluster *cl, raft_id id)
{
        const struct raft_configuration *c = &cl->raft.configuration;
        for (unsigned i = 0; i < c->n; i++)
                if (c->servers[i].id == id)
                        return c->servers[i].role;
        return -1;
}

static void add_member(sk_cluster *cl, raft_id id, const char *address)
{
        if (cl->change_inflight || !address)
                return;
        cl->change.data = cl;
        int r = raft_add(&cl->raft, &cl->change, id, address, on_changed);
        if (r == 0) {
                cl->change_inflight = true;
                sk_info("cluster: adding host %llu at %s", (unsigned long long)id, address);
        } else {
                sk_debug("cluster: adding host %llu: %s", (unsigned long long)id, raft_strerror(r));
        }
}

/* ---- the leader's work, every tick ---- */

/* The inventory entry a report asks for. */
static json_t *host_entry(sk_cluster *cl, int64_t id, const json_t *report)
{
        /* Heard from again: alive. Otherwise as the state says: only a confirmed loss
         * (on_confirmed) writes a host lost, never a report that happens to change while
         * the host is a candidate. */
        const json_t *now = sk_fsm_host(&cl->f, id);
        bool alive = sk_liveness_state(&cl->live, id) == 1 || !now ||
                     !json_is_false(json_object_get(now, "alive"));
        json_t *h = json_pack("{s:I, s:O?, s:O?, s:O?, s:O?, s:O?, s:b}", "id", (json_int_t)id,
                              "name", json_object_get(report, "host"), "address",
                              json_object_get(report, "address"), "labels",
                              json_object_get(report, "labels"), "devices",
                              json_object_get(report, "devices"), "capacity",
                              json_object_get(report, "capacity"), "alive", alive);
        if (h && !json_object_get(h, "devices"))
                json_object_set_new(h, "devices", json_object());
        return h;
}

static void take_reports(sk_cluster *cl, json_t *cmds, json_t *adds)
{
        const char *key;
        json_t *rec;
        json_object_foreach(cl->reports, key, rec)
        {
                int64_t id = strtoll(key, NULL, 10);
                if (sk_fsm_is_removed(&cl->f, id))
                        continue; /* heard before the removal: never added back */
                const json_t *report = json_object_get(rec, "report");
                int64_t at = json_integer_value(json_object_get(rec, "at"));
                if (sk_liveness_seen(&cl->live, id, at) == 1)
                        sk_info("cluster: host %s is back",
                                json_string_value(json_object_get(report, "host")));
                /* A host enters the inventory once it is a member with a role (not a
                 * spare still catching up). */
                int role = member_role(cl, (raft_id)id);
                if (role < 0)
                        json_array_append_new(adds, json_pack("{s:I, s:O}", "id", (json_int_t)id,
                                                              "address",
                                                              json_object_get(report, "address")));
                if (role < 0 || role == RAFT_SPARE)
                        continue;
                _cleanup_json_ json_t *want = host_entry(cl, id, report);
                if (!want || json_equal(sk_fsm_host(&cl->f, id), want) ||
                    json_equal(json_object_get(cl->submitted, key), want))
                        continue;
                json_array_append_new(cmds, json_pack("{s:s, s:O}", "op", "host", "host", want));
        }
}

/* Hosts whose time ran out become candidates; they are declared lost only once a barrier
 * committed after that, which proves this leader still has its quorum. A leader cut off
 * from the others must not put "everyone else is lost" into its log: those entries would
 * commit when the site is whole again and move work off hosts that never stopped. */
static void mark_lost(sk_cluster *cl, int64_t now)
{
        cl->live.lost_after_ms = sk_fsm_lost_after_ms(&cl->f);
        int64_t lost[cl->live.n + 1];
        size_t n = sk_liveness_check(&cl->live, now, lost);
        for (size_t i = 0; i < n; i++)
                if (sk_fsm_host(&cl->f, lost[i]))
                        json_array_append_new(cl->candidates, json_integer(lost[i]));
}

/* Candidates not confirmed: they get a fresh period and are checked again. */
static void retry_candidates(sk_cluster *cl, int64_t now)
{
        size_t i;
        json_t *id;
        json_array_foreach(cl->candidates, i, id)
        {
                int64_t h = json_integer_value(id);
                if (sk_liveness_state(&cl->live, h) == 0) {
                        sk_liveness_forget(&cl->live, h);
                        sk_liveness_track(&cl->live, h, true, now);
                }
        }
        json_array_clear(cl->candidates);
}

static void on_confirmed(struct raft_barrier *req, int status)
{
        sk_cluster *cl = req->data;
        cl->confirm_inflight = false;
        int64_t now = sk_monotonic_ms();
        if (cl->closing)
                return;
        if (status != 0 || !cl->leader_ready ||
            now - cl->confirm_started > cl->live.lost_after_ms) {
                retry_candidates(cl, now);
                return;
        }
        _cleanup_json_ json_t *cmds = json_array();
        pthread_mutex_lock(&cl->lock);
        size_t i;
        json_t *id;
        json_array_foreach(cl->candidates, i, id)
        {
                int64_t h = json_integer_value(id);
                const json_t *host = sk_fsm_host(&cl->f, h);
                /* heard from meanwhile, or already lost */
                if (!host || sk_liveness_state(&cl->live, h) != 0 ||
                    json_is_false(json_object_get(host, "alive")))
                        continue;
                sk_warn("cluster: host %s is lost (nothing heard for %lld ms)",
                        json_string_value(json_object_get(host, "name")),
                        (long long)cl->live.lost_after_ms);
                json_t *copy = json_deep_copy(host);
                json_object_set_new(copy, "alive", json_false());
                json_array_append_new(cmds, json_pack("{s:s, s:o}", "op", "host", "host", copy));
        }
        json_array_clear(cl->candidates);
        pthread_mutex_unlock(&cl->lock);
        json_array_foreach(cmds, i, id)
        {
                char key[24];
                const json_t *h = json_object_get(id, "host");
                id_key(json_integer_value(json_object_get(h, "id")), key);
                json_object_set(cl->submitted, key, (json_t *)h);
                if (propose(cl, id, false, key) < 0)
                        json_object_del(cl->submitted, key);
        }
}

static void confirm_lost(sk_cluster *cl, int64_t now)
{
        if (cl->confirm_inflight || json_array_size(cl->candidates) == 0)
                return;
        cl->confirm.data = cl;
        if (raft_barrier(&cl->raft, &cl->confirm, on_confirmed) == 0) {
                cl->confirm_inflight = true;
                cl->confirm_started = now;
        } else {
                retry_candidates(cl, now);
        }
}

static void leader_work(sk_cluster *cl, int64_t now)
{
        sk_liveness_seen(&cl->live, cl->host_id, now);
        _cleanup_json_ json_t *cmds = json_array(), *adds = json_array();
        json_t *sched = NULL;
        pthread_mutex_lock(&cl->lock);
        json_array_extend(cmds, cl->queue);
        json_array_clear(cl->queue);
        take_reports(cl, cmds, adds);
        mark_lost(cl, now);
        if (!cl->sched_inflight && json_array_size(cmds) == 0) {
                _cleanup_error_ sk_error *err = NULL;
                if (sk_fsm_schedule(&cl->f, &sched, &err) < 0)
                        sk_warn("cluster: scheduler: %s", sk_error_msg(err, -EINVAL));
        }
        pthread_mutex_unlock(&cl->lock);
        size_t i;
        json_t *cmd;
        json_array_foreach(cmds, i, cmd)
        {
                const json_t *h = json_object_get(cmd, "host");
                char key[24] = "";
                if (h) {
                        id_key(json_integer_value(json_object_get(h, "id")), key);
                        json_object_set(cl->submitted, key, (json_t *)h);
                }
                if (propose(cl, cmd, false, h ? key : NULL) < 0 && h)
                        json_object_del(cl->submitted, key);
        }
        if (sched) {
                propose(cl, sched, true, NULL);
                json_decref(sched);
        }
        json_array_foreach(adds, i, cmd)
        {
                add_member(cl, (raft_id)json_integer_value(json_object_get(cmd, "id")),
                           json_string_value(json_object_get(cmd, "address")));
        }
        confirm_lost(cl, now);
        pthread_mutex_lock(&cl->lock);
        bool aside = cl->step_aside;
        cl->step_aside = false;
        pthread_mutex_unlock(&cl->lock);
        if (aside &&
            (!cl->last_transfer_ms || now - cl->last_transfer_ms >= SK_CLUSTER_STEP_ASIDE_MS))
                hand_over(cl, "the tower refuses this host's certificate");
        remove_members(cl);
        manage_voters(cl);
        /* A host's time runs out between ticks: look then, not up to TICK_MS later. */
        int64_t due = sk_liveness_next_due(&cl->live);
        if (due > now && due - now < TICK_MS)
                uv_timer_start(&cl->tick, on_tick, (uint64_t)(due - now) + 1, TICK_MS);
}

/* desired.json from before the cluster (or a tower sync the raft log never got) seeds an
 * empty state. */
static void seed_desired(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        bool have = sk_fsm_desired(&cl->f) != NULL;
        pthread_mutex_unlock(&cl->lock);
        _cleanup_json_ json_t *doc = NULL;
        if (have || sk_desired_load(cl->dir, &doc, NULL) < 0)
                return;
        _cleanup_json_ json_t *cmd = json_pack("{s:s, s:O}", "op", "desired", "doc", doc);
        if (cmd && propose(cl, cmd, false, NULL) == 0)
                sk_info("cluster: seeding the site state from %s/desired.json", cl->dir);
}

/* The old leader's last contact, as for any host: its last answer to this host's
 * heartbeat, unless raft heard it lead well after that (heartbeats failing), then raft's
 * last message; but no earlier than leaves it LEADER_GRACE_MS from now. Under the lock. */
static int64_t old_leader_contact(sk_cluster *cl, int64_t now)
{
        int64_t last = cl->last_leader_ms ? cl->last_leader_ms : now;
        if (cl->contact_id == cl->last_leader && cl->contact_ms > 0 &&
            last - cl->contact_ms <= CONTACT_SLACK_MS && cl->contact_ms < last)
                last = cl->contact_ms;
        int64_t after = sk_fsm_lost_after_ms(&cl->f);
        int64_t least = now - after + (after < LEADER_GRACE_MS ? after : LEADER_GRACE_MS);
        return last > least ? last : least;
}

static void on_barrier(struct raft_barrier *req, int status)
{
        sk_cluster *cl = req->data;
        cl->barrier_inflight = false;
        if (status != 0 || cl->closing || raft_state(&cl->raft) != RAFT_LEADER)
                return;
        int64_t now = sk_monotonic_ms();
        sk_liveness_clear(&cl->live);
        json_array_clear(cl->candidates);
        pthread_mutex_lock(&cl->lock);
        sk_liveness_init(&cl->live, sk_fsm_lost_after_ms(&cl->f));
        const char *key;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&cl->f), key, h)
        {
                int64_t id = strtoll(key, NULL, 10);
                int64_t last = (raft_id)id == cl->last_leader ? old_leader_contact(cl, now) : now;
                sk_liveness_track(&cl->live, id, json_is_true(json_object_get(h, "alive")), last);
        }
        cl->leader_ready = true;
        cl->changed = true;
        pthread_mutex_unlock(&cl->lock);
        sk_info("cluster: this host (%s) leads site %s", cl->host, cl->site);
        seed_desired(cl);
        kick(cl);
}

static void publish_members(sk_cluster *cl, raft_id lid, const char *laddr)
{
        _cleanup_json_ json_t *m = json_object();
        const struct raft_configuration *c = &cl->raft.configuration;
        for (unsigned i = 0; i < c->n; i++) {
                char key[24];
                id_key((int64_t)c->servers[i].id, key);
                const char *role = c->servers[i].role == RAFT_VOTER     ? "voter"
                                   : c->servers[i].role == RAFT_STANDBY ? "standby"
                                                                        : "spare";
                json_object_set_new(
                    m, key,
                    json_pack("{s:s, s:s}", "role", role, "address", c->servers[i].address));
        }
        pthread_mutex_lock(&cl->lock);
        if (cl->leader_id != lid)
                cl->changed = true;
        cl->leader_id = lid;
        if (!cl->leader_addr || !laddr || strcmp(cl->leader_addr, laddr) != 0) {
                free(cl->leader_addr);
                cl->leader_addr = laddr ? strdup(laddr) : NULL;
        }
        if (!json_equal(m, cl->members)) {
                json_decref(cl->members);
                cl->members = json_incref(m);
                cl->changed = true;
        }
        pthread_mutex_unlock(&cl->lock);
}

static void on_tick(uv_timer_t *t)
{
        sk_cluster *cl = t->data;
        if (cl->closing)
                return;
        int64_t now = sk_monotonic_ms();
        raft_id lid = 0;
        const char *laddr = NULL;
        raft_leader(&cl->raft, &lid, &laddr);
        bool leader = raft_state(&cl->raft) == RAFT_LEADER;
        /* Until its barrier commits this host is no leader to others: the site API would
         * send their requests on to itself (a tick after every applied entry falls into
         * that window often). */
        if (leader && !cl->leader_ready) {
                lid = 0;
                laddr = NULL;
        }
        publish_members(cl, lid, laddr);
        if (!leader) {
                /* When raft last heard the leader, not when it last named it: it names
                 * a dead leader until its election timer runs out. */
                if (lid && (int64_t)lid != cl->host_id) {
                        raft_time io_now = cl->io.time(&cl->io);
                        raft_time heard = cl->raft.election_timer_start;
                        cl->last_leader = lid;
                        cl->last_leader_ms = now - (int64_t)(io_now > heard ? io_now - heard : 0);
                }
                pthread_mutex_lock(&cl->lock);
                if (cl->leader_ready) {
                        sk_info("cluster: this host no longer leads");
                        cl->leader_ready = false;
                        cl->changed = true;
                        json_object_clear(cl->reports);
                        json_array_clear(cl->queue);
                }
                pthread_mutex_unlock(&cl->lock);
        } else if (!cl->leader_ready && !cl->barrier_inflight) {
                cl->barrier.data = cl;
                if (raft_barrier(&cl->raft, &cl->barrier, on_barrier) == 0)
                        cl->barrier_inflight = true;
        }
        if (leader && cl->leader_ready)
                leader_work(cl, now);
        pthread_mutex_lock(&cl->lock);
        bool changed = cl->changed;
        cl->changed = false;
        pthread_mutex_unlock(&cl->lock);
        if (changed && cl->on_change)
                cl->on_change(cl->user);
}

/* ---- the loop thread ---- */

static void on_handle_closed(uv_handle_t *h)
{
}

static void on_raft_closed(struct raft *r)
{
        sk_cluster *cl = r->data;
        raft_uv_close(&cl->io);
        sk_raft_tls_close(&cl->transport);
        uv_close((uv_handle_t *)&cl->tick, on_handle_closed);
        uv_close((uv_handle_t *)&cl->wake, on_handle_closed);
}

static void on_wake(uv_async_t *a)
{
        sk_cluster *cl = a->data;
        pthread_mutex_lock(&cl->lock);
        bool stop = cl->stop;
        pthread_mutex_unlock(&cl->lock);
        if (stop && !cl->closing) {
                cl->closing = true;
                uv_timer_stop(&cl->tick);
                raft_close(&cl->raft, on_raft_closed);
        }
}

static bool is_denied(int64_t host_id, void *user)
{
        sk_cluster *cl = user;
        pthread_mutex_lock(&cl->lock);
        bool r = sk_fsm_is_removed(&cl->f, host_id);
        pthread_mutex_unlock(&cl->lock);
        return r;
}

static void on_http(int fd, int64_t host_id, void *user)
{
        sk_cluster *cl = user;
        if (cl->api)
                sk_siteapi_add(cl->api, fd, host_id);
        else
                close(fd);
}

/* The tower named peers at join: this host joins them instead of starting a cluster. */
static int bootstrap(sk_cluster *cl)
{
        if (json_array_size(cl->peers) > 0)
                return 0;
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        int r = raft_configuration_add(&conf, (raft_id)cl->host_id, cl->address, RAFT_VOTER);
        if (r == 0)
                r = raft_bootstrap(&cl->raft, &conf);
        raft_configuration_close(&conf);
        if (r == 0)
                sk_info("cluster: bootstrapped site %s with this host as its first voter",
                        cl->site);
        return r == RAFT_CANTBOOTSTRAP ? 0 : r;
}

static int loop_setup(sk_cluster *cl, sk_error **err)
{
        int r = uv_loop_init(&cl->loop);
        if (r < 0)
                return sk_error_set(err, -r, "event loop: %s", uv_strerror(r));
        uv_timer_init(&cl->loop, &cl->tick);
        cl->tick.data = cl;
        uv_async_init(&cl->loop, &cl->wake, on_wake);
        cl->wake.data = cl;
        sk_raft_tls_config tc = {.ca_pem = cl->ca_pem,
                                 .cert_pem = cl->cert_pem,
                                 .key_pem = cl->key_pem,
                                 .on_http = on_http,
                                 .is_denied = is_denied,
                                 .http_user = cl};
        r = sk_raft_tls_init(&cl->transport, &cl->loop, &tc, err);
        if (r < 0)
                return r;
        cl->transport_init = true;
        r = raft_uv_init(&cl->io, &cl->loop, cl->raft_dir, &cl->transport);
        if (r != 0)
                return sk_error_set(err, EIO, "raft storage %s: %s", cl->raft_dir,
                                    raft_strerror(r));
        cl->io_init = true;
        raft_uv_set_segment_size(&cl->io, SEGMENT_SIZE);
        raft_uv_set_connect_retry_delay(&cl->io, 200);
        cl->fsm.version = 1;
        cl->fsm.data = cl;
        cl->fsm.apply = fsm_apply;
        cl->fsm.snapshot = fsm_snapshot;
        cl->fsm.restore = fsm_restore;
        r = raft_init(&cl->raft, &cl->io, &cl->fsm, (raft_id)cl->host_id, cl->address);
        if (r != 0)
                return sk_error_set(err, EIO, "raft: %s", raft_strerror(r));
        cl->raft_init = true;
        cl->raft.data = cl;
        raft_set_election_timeout(&cl->raft, (unsigned)cl->election_ms);
        raft_set_heartbeat_timeout(&cl->raft, (unsigned)cl->heartbeat_ms);
        raft_set_snapshot_threshold(&cl->raft, cl->snapshot_threshold);
        raft_set_snapshot_trailing(&cl->raft, SNAPSHOT_TRAIL);
        /* A host that was cut off must not depose a working leader when it comes back. */
        raft_set_pre_vote(&cl->raft, true);
        r = bootstrap(cl);
        if (r != 0)
                return sk_error_set(err, EIO, "raft bootstrap: %s", raft_strerror(r));
        r = raft_start(&cl->raft);
        if (r != 0)
                return sk_error_set(err, EIO, "raft start (%s): %s", cl->raft_dir,
                                    raft_errmsg(&cl->raft));
        uv_timer_start(&cl->tick, on_tick, TICK_MS, TICK_MS);
        return 0;
}

static void *loop_thread(void *arg)
{
        sk_cluster *cl = arg;
        _cleanup_error_ sk_error *err = NULL;
        int r = loop_setup(cl, &err);
        pthread_mutex_lock(&cl->lock);
        cl->start_error = r;
        cl->loop_ready = true;
        pthread_cond_broadcast(&cl->started_cond);
        pthread_mutex_unlock(&cl->lock);
        if (r < 0) {
                sk_errorf("cluster: %s", sk_error_msg(err, r));
                /* Close what was set up; the loop then runs out. */
                if (cl->raft_init) {
                        cl->closing = true;
                        raft_close(&cl->raft, on_raft_closed);
                } else {
                        if (cl->io_init)
                                raft_uv_close(&cl->io);
                        if (cl->transport_init)
                                sk_raft_tls_close(&cl->transport);
                        uv_close((uv_handle_t *)&cl->tick, on_handle_closed);
                        uv_close((uv_handle_t *)&cl->wake, on_handle_closed);
                }
        }
        uv_run(&cl->loop, UV_RUN_DEFAULT);
        uv_loop_close(&cl->loop);
        return NULL;
}

static char *read_text(const char *dir, const char *name, sk_error **err)
{
        _cleanup_free_ char *path = sk_identity_path(dir, name);
        char *text = NULL;
        size_t len;
        if (!path) {
                sk_error_set(err, ENOMEM, "out of memory");
                return NULL;
        }
        return sk_file_read(path, &text, &len, err) < 0 ? NULL : text;
}

int sk_cluster_new(const sk_cluster_config *cfg, sk_cluster **out, sk_error **err)
{
        sk_cluster *cl = calloc(1, sizeof(*cl));
        if (!cl)
                return sk_error_set(err, ENOMEM, "out of memory");
        pthread_mutex_init(&cl->lock, NULL);
        pthread_cond_init(&cl->started_cond, NULL);
        cl->dir = strdup(cfg->data_dir);
        cl->raft_dir = sk_identity_path(cfg->data_dir, "raft");
        cl->address = strdup(cfg->address);
        cl->site = strdup(cfg->site);
        cl->host = strdup(cfg->host);
        cl->host_id = cfg->host_id;
        cl->peers = cfg->peers ? json_deep_copy(cfg->peers) : json_array();
        cl->on_change = cfg->on_change;
        cl->user = cfg->user;
        cl->election_ms = cfg->election_ms > 0 ? cfg->election_ms : 1000;
        cl->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 100;
        cl->snapshot_threshold = cfg->snapshot_threshold ? cfg->snapshot_threshold : 64;
        cl->submitted = json_object();
        cl->candidates = json_array();
        cl->members = json_object();
        cl->reports = json_object();
        cl->queue = json_array();
        cl->joining = json_object();
        sk_liveness_init(&cl->live, SK_FSM_LOST_AFTER_DEFAULT_MS);
        int r = sk_fsm_init(&cl->f);
        if (r < 0 || !cl->dir || !cl->raft_dir || !cl->address || !cl->site || !cl->host ||
            !cl->peers || !cl->submitted || !cl->candidates || !cl->members || !cl->reports ||
            !cl->queue || !cl->joining)
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0 && !(cl->ca_pem = read_text(cfg->data_dir, "ca.pem", err)))
                r = -EIO;
        if (r >= 0 && !(cl->cert_pem = read_text(cfg->data_dir, "cert.pem", err)))
                r = -EIO;
        if (r >= 0 && !(cl->key_pem = read_text(cfg->data_dir, "key.pem", err)))
                r = -EIO;
        if (r >= 0 && mkdir(cl->raft_dir, 0700) < 0 && errno != EEXIST)
                r = sk_error_set(err, errno, "%s: %s", cl->raft_dir, strerror(errno));
        if (r < 0) {
                sk_cluster_free(cl);
                return r;
        }
        *out = cl;
        return 0;
}

static int api_handle(void *user, const char *method, const char *path, const char *query,
                      int64_t peer, const json_t *body, json_t **answer);

int sk_cluster_start(sk_cluster *cl, sk_error **err)
{
        int r = sk_siteapi_new(api_handle, cl, &cl->api, err);
        if (r < 0)
                return r;
        if (pthread_create(&cl->thread, NULL, loop_thread, cl) != 0)
                return sk_error_set(err, EAGAIN, "cannot start the cluster thread");
        cl->thread_started = true;
        pthread_mutex_lock(&cl->lock);
        while (!cl->loop_ready)
                pthread_cond_wait(&cl->started_cond, &cl->lock);
        r = cl->start_error;
        pthread_mutex_unlock(&cl->lock);
        if (r < 0)
                return sk_error_set(err, -r, "the site cluster did not start (see the log)");
        return 0;
}

void sk_cluster_stop(sk_cluster *cl)
{
        if (!cl->thread_started)
                return;
        pthread_mutex_lock(&cl->lock);
        cl->stop = true;
        bool running = cl->start_error == 0;
        pthread_mutex_unlock(&cl->lock);
        if (running)
                uv_async_send(&cl->wake);
        pthread_join(cl->thread, NULL);
        cl->thread_started = false;
}

void sk_cluster_free(sk_cluster *cl)
{
        if (!cl)
                return;
        sk_cluster_stop(cl);
        sk_siteapi_free(cl->api);
        sk_fsm_clear(&cl->f);
        sk_liveness_clear(&cl->live);
        json_decref(cl->peers);
        json_decref(cl->submitted);
        json_decref(cl->candidates);
        json_decref(cl->members);
        json_decref(cl->reports);
        json_decref(cl->queue);
        json_decref(cl->joining);
        free(cl->leader_addr);
        free(cl->dir);
        free(cl->raft_dir);
        free(cl->address);
        free(cl->site);
        free(cl->host);
        free(cl->ca_pem);
        free(cl->cert_pem);
        if (cl->key_pem)
                explicit_bzero(cl->key_pem, strlen(cl->key_pem));
        free(cl->key_pem);
        pthread_mutex_destroy(&cl->lock);
        pthread_cond_destroy(&cl->started_cond);
        free(cl);
}

/* ---- queries and commands from other threads ---- */

bool sk_cluster_is_leader(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        bool r = cl->leader_ready;
        pthread_mutex_unlock(&cl->lock);
        return r;
}

char *sk_cluster_leader_address(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        char *a = cl->leader_addr ? strdup(cl->leader_addr) : NULL;
        pthread_mutex_unlock(&cl->lock);
        return a;
}

char *sk_cluster_next_peer(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        _cleanup_json_ json_t *all = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(cl->peers, i, p)
        {
                if (json_integer_value(json_object_get(p, "host-id")) != cl->host_id &&
                    json_is_string(json_object_get(p, "address")))
                        json_array_append(all, json_object_get(p, "address"));
        }
        const char *key;
        json_object_foreach(cl->members, key, p)
        {
                if (strtoll(key, NULL, 10) != cl->host_id)
                        json_array_append(all, json_object_get(p, "address"));
        }
        char *a = NULL;
        if (json_array_size(all) > 0)
                a = strdup(json_string_value(
                    json_array_get(all, cl->peer_cursor++ % json_array_size(all))));
        pthread_mutex_unlock(&cl->lock);
        return a;
}

static const char *role_locked(sk_cluster *cl, int64_t host_id)
{
        if (cl->leader_id && (int64_t)cl->leader_id == host_id)
                return "leader";
        char key[24];
        id_key(host_id, key);
        const char *role =
            json_string_value(json_object_get(json_object_get(cl->members, key), "role"));
        if (!role)
                return NULL;
        return strcmp(role, "voter") == 0 ? "voter" : "standby";
}

const char *sk_cluster_role_of(sk_cluster *cl, int64_t host_id)
{
        pthread_mutex_lock(&cl->lock);
        const char *r = role_locked(cl, host_id);
        pthread_mutex_unlock(&cl->lock);
        return r;
}

json_t *sk_cluster_state(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        json_t *s = json_deep_copy(cl->f.state);
        pthread_mutex_unlock(&cl->lock);
        return s;
}

int sk_cluster_local_placed(sk_cluster *cl, const json_t *discovery, json_t **placed,
                            sk_error **err)
{
        pthread_mutex_lock(&cl->lock);
        int r = sk_fsm_desired(&cl->f)
                    ? sk_fsm_local_placed(&cl->f, cl->host, discovery, placed, err)
                    : -ENOENT;
        pthread_mutex_unlock(&cl->lock);
        return r;
}

int sk_cluster_submit_desired(sk_cluster *cl, const json_t *doc)
{
        pthread_mutex_lock(&cl->lock);
        int r = -EAGAIN;
        if (cl->leader_ready) {
                json_array_append_new(cl->queue,
                                      json_pack("{s:s, s:O}", "op", "desired", "doc", doc));
                r = 0;
        }
        pthread_mutex_unlock(&cl->lock);
        return r;
}

void sk_cluster_step_aside(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        if (cl->leader_ready)
                cl->step_aside = true;
        pthread_mutex_unlock(&cl->lock);
}

int sk_cluster_heartbeat(sk_cluster *cl, int64_t host_id, const json_t *report)
{
        char key[24];
        id_key(host_id, key);
        pthread_mutex_lock(&cl->lock);
        int r = -EAGAIN;
        if (sk_fsm_is_removed(&cl->f, host_id))
                r = -EPERM;
        else if (cl->leader_ready) {
                const json_t *prev = json_object_get(json_object_get(cl->reports, key), "report");
                if (!json_equal(prev, report))
                        cl->changed = true; /* the tower should hear of it */
                json_object_set_new(cl->reports, key,
                                    json_pack("{s:O, s:I, s:I}", "report", report, "at",
                                              (json_int_t)sk_monotonic_ms(), "wall",
                                              (json_int_t)wall_ms()));
                r = 0;
        }
        pthread_mutex_unlock(&cl->lock);
        return r;
}

void sk_cluster_leader_contact(sk_cluster *cl, const char *address, int64_t at_ms)
{
        pthread_mutex_lock(&cl->lock);
        const char *key;
        json_t *m;
        json_object_foreach(cl->members, key, m)
        {
                const char *a = json_string_value(json_object_get(m, "address"));
                if (a && strcmp(a, address) == 0) {
                        cl->contact_id = (raft_id)strtoll(key, NULL, 10);
                        cl->contact_ms = at_ms;
                }
        }
        pthread_mutex_unlock(&cl->lock);
}

static const char *host_state(const json_t *h)
{
        return json_is_false(json_object_get(h, "alive")) ? "lost" : "alive";
}

json_t *sk_cluster_reports(sk_cluster *cl)
{
        json_t *out = json_array();
        pthread_mutex_lock(&cl->lock);
        const char *key;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&cl->f), key, h)
        {
                int64_t id = strtoll(key, NULL, 10);
                const json_t *rec = json_object_get(cl->reports, key);
                bool lost = json_is_false(json_object_get(h, "alive"));
                if (!rec && !lost)
                        continue;
                json_t *body =
                    json_pack("{s:O, s:I, s:O?, s:O?, s:O?, s:O?, s:s?, s:s}", "host",
                              json_object_get(h, "name"), "host-id", (json_int_t)id, "address",
                              json_object_get(h, "address"), "labels", json_object_get(h, "labels"),
                              "devices", json_object_get(h, "devices"), "capacity",
                              json_object_get(h, "capacity"), "role", role_locked(cl, id), "state",
                              host_state(h));
                if (!body)
                        continue;
                /* A lost host's last report is stale: it says what it runs when it is back. */
                json_t *insts = !lost ? json_deep_copy(json_object_get(
                                            json_object_get(rec, "report"), "instances"))
                                      : NULL;
                if (!insts)
                        insts = json_array();
                if (id == cl->host_id) {
                        json_t *unplaced = sk_fsm_unplaced_status(&cl->f, cl->site, cl->host);
                        json_array_extend(insts, unplaced); /* takes no reference */
                        json_decref(unplaced);
                }
                json_object_set_new(body, "instances", insts);
                json_array_append_new(out, body);
        }
        pthread_mutex_unlock(&cl->lock);
        return out;
}

json_t *sk_cluster_hosts_view(sk_cluster *cl)
{
        json_t *out = json_array();
        pthread_mutex_lock(&cl->lock);
        const char *key;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&cl->f), key, h)
        {
                int64_t id = strtoll(key, NULL, 10);
                const json_t *rec = json_object_get(cl->reports, key);
                _cleanup_free_ char *seen =
                    rec ? rfc3339(json_integer_value(json_object_get(rec, "wall"))) : NULL;
                json_t *item = json_pack("{s:O, s:s, s:I, s:s?, s:s, s:O?, s:O?, s:O?, s:O?, s:s?}",
                                         "name", json_object_get(h, "name"), "site", cl->site, "id",
                                         (json_int_t)id, "role", role_locked(cl, id), "state",
                                         host_state(h), "labels", json_object_get(h, "labels"),
                                         "devices", json_object_get(h, "devices"), "capacity",
                                         json_object_get(h, "capacity"), "address",
                                         json_object_get(h, "address"), "last-seen", seen);
                if (item)
                        json_array_append_new(out, item);
        }
        pthread_mutex_unlock(&cl->lock);
        return out;
}

json_t *sk_cluster_instances_view(sk_cluster *cl)
{
        json_t *out = json_array();
        _cleanup_json_ json_t *reports = sk_cluster_reports(cl);
        size_t i, k;
        json_t *r, *inst;
        json_array_foreach(reports, i, r)
        {
                json_array_foreach(json_object_get(r, "instances"), k, inst)
                {
                        json_t *copy = json_deep_copy(inst);
                        json_object_set_new(copy, "site", json_string(cl->site));
                        if (!json_object_get(copy, "host"))
                                json_object_set(copy, "host", json_object_get(r, "host"));
                        json_array_append_new(out, copy);
                }
        }
        return out;
}

/* ---- the site-local API ---- */

/* Asks the leader (the views and the joins are its): METHOD path there. */
static int proxy_call(sk_cluster *cl, const char *method, const char *path, const json_t *body,
                      json_t **answer)
{
        _cleanup_free_ char *leader = sk_cluster_leader_address(cl);
        if (!leader) {
                *answer = sk_siteapi_error("unavailable", "the site has no leader right now");
                return 503;
        }
        sk_site_client *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        long status = 0;
        int r = sk_site_client_new(cl->dir, &c, &err);
        if (r >= 0)
                r = sk_site_client_call(c, leader, method, path, body, PROXY_TIMEOUT_MS, &status,
                                        answer, &err);
        sk_site_client_free(c);
        if (r < 0) {
                *answer = sk_siteapi_error("unavailable", "the leader at %s: %s", leader,
                                           sk_error_msg(err, r));
                return 503;
        }
        return (int)status;
}

static int proxy(sk_cluster *cl, const char *path, json_t **answer)
{
        return proxy_call(cl, "GET", path, NULL, answer);
}

/* ---- site-local joins (docs/site-cluster.md) ---- */

static void sha256_hex(const char *text, char hex[65])
{
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
        sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* SHA-256 of the first certificate of a PEM, as hex: what a site-local token pins. */
static int cert_fingerprint(const char *pem, char hex[65])
{
        gnutls_x509_crt_t crt = NULL;
        unsigned char fp[32];
        size_t n = sizeof(fp);
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        int r = gnutls_x509_crt_init(&crt);
        if (r >= 0)
                r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        if (r >= 0)
                r = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &n);
        if (crt)
                gnutls_x509_crt_deinit(crt);
        if (r < 0 || n != sizeof(fp))
                return -EINVAL;
        sodium_bin2hex(hex, 65, fp, n);
        return 0;
}

/* Queues cmd for the leader (only while leading) and waits up to JOIN_WAIT_MS for done(). */
static int submit_and_wait(sk_cluster *cl, json_t *cmd, bool (*done)(const sk_fsm *, void *),
                           void *arg)
{
        pthread_mutex_lock(&cl->lock);
        bool ready = cl->leader_ready;
        if (ready)
                json_array_append(cl->queue, cmd);
        pthread_mutex_unlock(&cl->lock);
        if (!ready)
                return -EAGAIN;
        for (int waited = 0; waited < JOIN_WAIT_MS; waited += 20) {
                pthread_mutex_lock(&cl->lock);
                bool ok = done(&cl->f, arg);
                pthread_mutex_unlock(&cl->lock);
                if (ok)
                        return 0;
                usleep(20 * 1000);
        }
        return -ETIMEDOUT;
}

typedef struct token_wait {
        const char *hash;
        int64_t now;
} token_wait;

static bool token_known(const sk_fsm *f, void *arg)
{
        token_wait *w = arg;
        return sk_fsm_join_token_valid(f, w->hash, w->now);
}

static bool token_done(const sk_fsm *f, void *arg)
{
        token_wait *w = arg;
        return sk_fsm_join_result(f, w->hash) != 0 || !sk_fsm_join_token_valid(f, w->hash, w->now);
}

/* POST /v1/site/tokens {"ttl": seconds}: a one-time site-local join token, replicated as
 * its hash. The token is "SECRET.FINGERPRINT": the tower CA's SHA-256, which the joining
 * host pins before it sends the secret anywhere. */
static int site_token(sk_cluster *cl, const json_t *body, json_t **answer)
{
        const json_t *ttl = json_object_get(body, "ttl");
        json_int_t seconds = ttl ? json_integer_value(ttl) : 3600;
        if ((ttl && !json_is_integer(ttl)) || seconds < 60 || seconds > 7 * 86400) {
                *answer = sk_siteapi_error("invalid", "ttl: must be seconds between 60 and 604800");
                return 400;
        }
        unsigned char raw[32];
        randombytes_buf(raw, sizeof(raw));
        char secret[65], hash[65], fp[65];
        sodium_bin2hex(secret, sizeof(secret), raw, sizeof(raw));
        sodium_memzero(raw, sizeof(raw));
        sha256_hex(secret, hash);
        if (cert_fingerprint(cl->ca_pem, fp) < 0) {
                *answer = sk_siteapi_error("internal", "this host's CA certificate is unreadable");
                return 500;
        }
        int64_t now = wall_ms(), expires = now + (int64_t)seconds * 1000;
        _cleanup_json_ json_t *cmd =
            json_pack("{s:s, s:s, s:I, s:I}", "op", "join-token", "hash", hash, "expires",
                      (json_int_t)expires, "now", (json_int_t)now);
        token_wait w = {hash, now};
        int r = cmd ? submit_and_wait(cl, cmd, token_known, &w) : -ENOMEM;
        if (r < 0) {
                *answer = sk_siteapi_error("unavailable", "the site did not record the token: %s",
                                           strerror(-r));
                return 503;
        }
        char token[140];
        snprintf(token, sizeof(token), "%s.%s", secret, fp);
        _cleanup_free_ char *until = rfc3339(expires);
        *answer = json_pack("{s:s, s:s}", "token", token, "expires", until);
        sk_info("cluster: made a site-local join token (expires %s)", until);
        return 200;
}

static bool name_taken(const sk_fsm *f, const char *name)
{
        const char *k;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(f), k, h)
        {
                if (json_is_string(json_object_get(h, "name")) &&
                    strcmp(json_string_value(json_object_get(h, "name")), name) == 0)
                        return true;
        }
        return false;
}

static json_t *peers_of(sk_cluster *cl)
{
        json_t *out = json_array();
        pthread_mutex_lock(&cl->lock);
        const char *k;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&cl->f), k, h)
        {
                const json_t *addr = json_object_get(h, "address");
                if (json_is_string(addr))
                        json_array_append_new(out, json_pack("{s:O, s:I, s:O}", "host",
                                                             json_object_get(h, "name"), "host-id",
                                                             (json_int_t)strtoll(k, NULL, 10),
                                                             "address", addr));
        }
        pthread_mutex_unlock(&cl->lock);
        return out;
}

static char *read_dir_file(sk_cluster *cl, const char *name)
{
        _cleanup_free_ char *path = sk_identity_path(cl->dir, name);
        char *text = NULL;
        if (!path || sk_file_read(path, &text, NULL, NULL) < 0)
                return NULL;
        return text;
}

static void wipe_freep(char **p)
{
        if (*p) {
                sodium_memzero(*p, strlen(*p));
                free(*p);
        }
}
#define _cleanup_wipe_ __attribute__((cleanup(wipe_freep)))

/* POST /v1/site/join {"token", "csr", "name", "labels", "address"} from a host without a
 * certificate yet: the leader uses the token (a raft entry), signs the CSR with the site
 * CA for the next site-local host id and answers as the tower's join does. */
static int site_join(sk_cluster *cl, const json_t *body, json_t **answer)
{
        const char *token = json_string_value(json_object_get(body, "token"));
        const char *csr = json_string_value(json_object_get(body, "csr"));
        const char *name = json_string_value(json_object_get(body, "name"));
        const json_t *labels = json_object_get(body, "labels");
        const json_t *address = json_object_get(body, "address");
        if (!token || strlen(token) != 64) {
                *answer = sk_siteapi_error("invalid", "token: must be the token's secret part");
                return 400;
        }
        if (!name || !sk_spec_valid_name(name)) {
                *answer =
                    sk_siteapi_error("invalid", "name: must be a DNS label ([a-z0-9-], 1..63)");
                return 400;
        }
        if (!csr || !*csr) {
                *answer = sk_siteapi_error("invalid", "csr: must be a PEM certificate request");
                return 400;
        }
        if (labels && !json_is_object(labels)) {
                *answer = sk_siteapi_error("invalid", "labels: must be an object of strings");
                return 400;
        }
        if (!json_is_string(address) || !strchr(json_string_value(address), ':')) {
                *answer = sk_siteapi_error("invalid", "address: must be \"ADDR:PORT\"");
                return 400;
        }
        _cleanup_free_ char *site_ca = read_dir_file(cl, "site-ca.pem");
        _cleanup_wipe_ char *site_key = read_dir_file(cl, "site-ca.key");
        if (!site_ca || !site_key) {
                *answer = sk_siteapi_error("unavailable",
                                           "the leader holds no site CA (%s/site-ca.pem): "
                                           "its host joined before site CAs existed",
                                           cl->dir);
                return 503;
        }
        sk_identity id;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_identity_load(cl->dir, &id, &err);
        if (r < 0) {
                *answer = sk_siteapi_error("internal", "%s", sk_error_msg(err, r));
                return 500;
        }
        char hash[65];
        sha256_hex(token, hash);
        int64_t now = wall_ms();
        pthread_mutex_lock(&cl->lock);
        bool valid = sk_fsm_join_token_valid(&cl->f, hash, now);
        bool used = sk_fsm_join_result(&cl->f, hash) != 0;
        bool taken = name_taken(&cl->f, name);
        /* one request per token at a time: a second one would read the first's result */
        bool busy = json_object_get(cl->joining, hash) != NULL;
        if (valid && !taken && !busy)
                json_object_set_new(cl->joining, hash, json_true());
        pthread_mutex_unlock(&cl->lock);
        int status = 0;
        if (used || busy)
                *answer = sk_siteapi_error("unauthenticated", "join token already used"),
                status = 401;
        else if (!valid)
                *answer = sk_siteapi_error("unauthenticated", "unknown or expired join token"),
                status = 401;
        else if (taken)
                *answer = sk_siteapi_error("conflict", "name: the site already has a host named %s",
                                           name),
                status = 409;
        if (status) {
                sk_identity_clear(&id);
                return status;
        }
        _cleanup_json_ json_t *cmd =
            json_pack("{s:s, s:s, s:I, s:I}", "op", "join-use", "hash", hash, "now",
                      (json_int_t)now, "site-id", (json_int_t)id.site_id);
        token_wait w = {hash, now};
        r = cmd ? submit_and_wait(cl, cmd, token_done, &w) : -ENOMEM;
        pthread_mutex_lock(&cl->lock);
        int64_t host_id = sk_fsm_join_result(&cl->f, hash);
        json_object_del(cl->joining, hash);
        pthread_mutex_unlock(&cl->lock);
        if (r < 0 || host_id == 0) {
                sk_identity_clear(&id);
                *answer =
                    r < 0 ? sk_siteapi_error("unavailable", "the site did not record the join: %s",
                                             strerror(-r))
                          : sk_siteapi_error("unauthenticated", "unknown or expired join token");
                return r < 0 ? 503 : 401;
        }
        _cleanup_ca_ sk_ca *ca = NULL;
        _cleanup_free_ char *uri = NULL, *leaf = NULL;
        if (asprintf(&uri, "skerry://site/%lld/host/%lld", (long long)id.site_id,
                     (long long)host_id) < 0)
                uri = NULL;
        r = uri ? sk_ca_load_site(site_ca, site_key, &ca, &err) : -ENOMEM;
        if (r >= 0)
                r = sk_ca_sign_client(ca, csr, name, uri, SITE_HOST_CERT_DAYS, &leaf, &err);
        if (r < 0) {
                sk_identity_clear(&id);
                /* the token is spent: a bad CSR needs a new one, as at the tower */
                *answer = sk_siteapi_error(r == -EINVAL ? "invalid" : "internal", "csr: %s",
                                           sk_error_msg(err, r));
                return r == -EINVAL ? 400 : 500;
        }
        _cleanup_free_ char *chain = NULL;
        if (asprintf(&chain, "%s%s", leaf, site_ca) < 0)
                chain = NULL;
        json_t *peers = peers_of(cl);
        *answer = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s?, s:s, s:o, s:{s:s, s:s}}", "tower",
                            id.tower, "site", id.site, "tenant", id.tenant, "host", name, "site-id",
                            (json_int_t)id.site_id, "host-id", (json_int_t)host_id, "certificate",
                            chain, "ca", cl->ca_pem, "peers", peers, "site-ca", "certificate",
                            site_ca, "key", site_key);
        sk_info("cluster: host %s joined site %s locally (host-id %lld)", name, id.site,
                (long long)host_id);
        sk_identity_clear(&id);
        return *answer ? 200 : 500;
}

static int api_handle(void *user, const char *method, const char *path, const char *query,
                      int64_t peer, const json_t *body, json_t **answer)
{
        sk_cluster *cl = user;
        bool get = strcmp(method, "GET") == 0;
        bool post = strcmp(method, "POST") == 0;
        /* A caller without a certificate (host id 0, raft_tls lets it through for these two
         * requests only) may read the CA it pins and join; nothing else. */
        if (peer == 0 && !(get && strcmp(path, "/v1/site/ca") == 0) &&
            !(post && strcmp(path, "/v1/site/join") == 0)) {
                *answer = sk_siteapi_error("unauthenticated", "a host certificate is required");
                return 401;
        }
        if (get && strcmp(path, "/v1/site/ca") == 0) {
                *answer = json_pack("{s:s}", "ca", cl->ca_pem);
                return 200;
        }
        if (post && (strcmp(path, "/v1/site/join") == 0 || strcmp(path, "/v1/site/tokens") == 0)) {
                bool join = strcmp(path, "/v1/site/join") == 0;
                if (!json_is_object(body) && (join || body)) {
                        *answer = sk_siteapi_error("invalid", "the body must be a JSON object");
                        return 400;
                }
                if (!sk_cluster_is_leader(cl))
                        return proxy_call(cl, "POST", path, body, answer);
                return join ? site_join(cl, body, answer) : site_token(cl, body, answer);
        }
        /* raft_tls refuses a removed host's new connections; this covers one opened
         * before the removal reached this host */
        pthread_mutex_lock(&cl->lock);
        bool denied = sk_fsm_is_removed(&cl->f, peer);
        pthread_mutex_unlock(&cl->lock);
        if (denied) {
                *answer = sk_siteapi_error("forbidden", "host %lld was removed from the site",
                                           (long long)peer);
                return 403;
        }
        if (strcmp(path, "/v1/site/heartbeat") == 0 && strcmp(method, "POST") == 0) {
                if (!json_is_object(body)) {
                        *answer = sk_siteapi_error("invalid", "the body must be a report object");
                        return 400;
                }
                if (sk_cluster_heartbeat(cl, peer, body) == 0) {
                        *answer = json_pack("{s:s}", "result", "ok");
                        return 200;
                }
                _cleanup_free_ char *leader = sk_cluster_leader_address(cl);
                *answer = json_pack("{s:s, s:s?}", "result", "not-leader", "leader", leader);
                return 421;
        }
        bool hosts = strcmp(path, "/v1/hosts") == 0 || strcmp(path, "/v1/site/hosts") == 0;
        bool insts = strcmp(path, "/v1/instances") == 0 || strcmp(path, "/v1/site/instances") == 0;
        if (get && (hosts || insts)) {
                if (query && strcmp(query, cl->site) != 0) {
                        *answer = sk_siteapi_error("not-found", "this is site %s, not %s", cl->site,
                                                   query);
                        return 404;
                }
                if (sk_cluster_is_leader(cl)) {
                        *answer = json_pack("{s:o}", "items",
                                            hosts ? sk_cluster_hosts_view(cl)
                                                  : sk_cluster_instances_view(cl));
                        return 200;
                }
                if (strncmp(path, "/v1/site/", 9) == 0) {
                        *answer = sk_siteapi_error("unavailable", "not the leader");
                        return 503;
                }
                return proxy(cl, hosts ? "/v1/site/hosts" : "/v1/site/instances", answer);
        }
        if (hosts || insts || strcmp(path, "/v1/site/heartbeat") == 0) {
                *answer = sk_siteapi_error("method-not-allowed", "%s %s", method, path);
                return 405;
        }
        *answer = sk_siteapi_error("not-found", "no such path %s", path);
        return 404;
}
