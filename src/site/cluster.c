/* Raft glue (cluster_int.h lists the other files' jobs). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"
#include "model/site.h"
#include "site/cluster_int.h"
#include "site/heartbeat.h"
#include "site/raft_tls.h"
#include "site/uplink.h"

#define SEGMENT_SIZE   (1u << 20)
#define SNAPSHOT_TRAIL 32

void sk_cluster_id_key(int64_t id, char key[24])
{
        snprintf(key, 24, "%" PRId64, id);
}

static void on_tick(uv_timer_t *t);

/* Runs the tick at the next loop iteration: an applied entry reaches the supervisor, and a
 * lost host's placements the scheduler, without waiting up to a tick each. */
void sk_cluster_kick(sk_cluster *cl)
{
        if (!cl->closing)
                uv_timer_start(&cl->tick, on_tick, 0, SK_CLUSTER_TICK_MS);
}

/* ---- the FSM, as raft sees it ---- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
        sk_cluster *cl = fsm->data;
        _cleanup_error_ sk_error *err = NULL;
        pthread_mutex_lock(&cl->lock);
        int r = sk_fsm_apply(&cl->f, buf->base, buf->len, &err);
        if (r > 0) {
                cl->changed = true;
                cl->seq++;
                pthread_cond_broadcast(&cl->cond);
        }
        pthread_mutex_unlock(&cl->lock);
        if (r > 0 && (r & SK_FSM_SITE_CA))
                sk_cluster_site_ca_save(cl);
        if (r > 0)
                sk_cluster_kick(cl);
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
        if (r == 0) {
                cl->changed = true;
                cl->seq++;
                pthread_cond_broadcast(&cl->cond);
        }
        pthread_mutex_unlock(&cl->lock);
        raft_free(buf->base);
        if (r == 0)
                sk_cluster_site_ca_save(cl);
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
        if (status != 0) {
                sk_debug("cluster: proposal failed: %s", raft_strerror(status));
                /* look again at the next tick */
                a->cl->sched_seq = a->cl->hosts_seq = 0;
        }
        free(a);
}

int sk_cluster_propose(sk_cluster *cl, const json_t *cmd, bool sched, const char *key)
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
                cl->sched_seq = cl->hosts_seq = 0; /* look again at the next tick */
                return -EAGAIN;
        }
        if (sched)
                cl->sched_inflight = true;
        return 0;
}

/* Proposes each command; a host entry waits in submitted until applied, so the same entry
 * is not proposed again meanwhile. */
static void propose_all(sk_cluster *cl, const json_t *cmds)
{
        size_t i;
        json_t *cmd;
        json_array_foreach(cmds, i, cmd)
        {
                const json_t *h = json_object_get(cmd, "host");
                char key[24] = "";
                if (h) {
                        sk_cluster_id_key(json_integer_value(json_object_get(h, "id")), key);
                        json_object_set(cl->submitted, key, (json_t *)h);
                }
                if (sk_cluster_propose(cl, cmd, false, h ? key : NULL) < 0 && h)
                        json_object_del(cl->submitted, key);
        }
}

/* ---- the leader's work, every tick ---- */

/* An idle site costs a tick nothing beyond a look at the clock: the reports' host
 * entries are built again only for a report with new content, a configuration change or
 * a state change, and the scheduler runs only on a state or reports it has not seen. */
static void leader_work(sk_cluster *cl, int64_t now)
{
        _cleanup_json_ json_t *cmds = json_array(), *adds = json_array();
        json_t *sched = NULL;
        pthread_mutex_lock(&cl->lock);
        json_array_extend(cmds, cl->queue);
        json_array_clear(cl->queue);
        uint64_t seq = cl->seq;
        bool all = cl->reports_new || cl->members_moved || seq != cl->hosts_seq;
        /* a move finishes when its new host reports it running: new reports schedule too */
        cl->sched_reports |= cl->reports_new;
        cl->reports_new = cl->members_moved = false;
        cl->hosts_seq = seq;
        cl->work.ticks++;
        cl->work.inventory_passes += all;
        sk_cluster_hosts_tick(cl, now, all, cmds, adds);
        /* a host not yet a member is tried again until the configuration takes it */
        if (json_array_size(adds) > 0)
                cl->members_moved = true;
        if (!cl->sched_inflight && json_array_size(cmds) == 0 &&
            (seq != cl->sched_seq || cl->sched_reports)) {
                _cleanup_error_ sk_error *err = NULL;
                cl->sched_seq = seq;
                cl->sched_reports = false;
                cl->work.schedules++;
                if (sk_fsm_schedule(&cl->f, cl->reports, &sched, &err) < 0)
                        sk_warn("cluster: scheduler: %s", sk_error_msg(err, -EINVAL));
        }
        pthread_mutex_unlock(&cl->lock);
        propose_all(cl, cmds);
        if (sched) {
                sk_cluster_propose(cl, sched, true, NULL);
                json_decref(sched);
        }
        size_t i;
        json_t *add;
        json_array_foreach(adds, i, add)
        {
                sk_cluster_add_member(cl, (raft_id)json_integer_value(json_object_get(add, "id")),
                                      json_string_value(json_object_get(add, "address")));
        }
        sk_cluster_confirm_lost(cl, now);
        sk_cluster_manage_members(cl, now);
        sk_cluster_site_ca_propose(cl);
        /* A host's time runs out between ticks: look then, not up to a tick later. */
        int64_t due = sk_liveness_next_due(&cl->live);
        if (due > now && due - now < SK_CLUSTER_TICK_MS)
                uv_timer_start(&cl->tick, on_tick, (uint64_t)(due - now) + 1, SK_CLUSTER_TICK_MS);
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
        if (cmd && sk_cluster_propose(cl, cmd, false, NULL) == 0)
                sk_info("cluster: seeding the site state from %s/desired.json", cl->dir);
}

static void on_barrier(struct raft_barrier *req, int status)
{
        sk_cluster *cl = req->data;
        cl->barrier_inflight = false;
        if (status != 0 || cl->closing || raft_state(&cl->raft) != RAFT_LEADER)
                return;
        sk_cluster_hosts_lead(cl, sk_cluster_now(cl));
        sk_info("cluster: this host (%s) leads site %s", cl->host, cl->site);
        seed_desired(cl);
        sk_cluster_kick(cl);
}

/* A follower notes when raft last heard the leader (not when it last named it: it names a
 * dead leader until its election timer runs out), on this cluster's clock: raft restarts
 * its election timer on every message from the leader. */
static void follow(sk_cluster *cl, raft_id lid, int64_t now)
{
        if (lid && (int64_t)lid != cl->host_id) {
                raft_time heard = cl->raft.election_timer_start;
                if (lid != cl->last_leader || heard != cl->last_heard || !cl->last_leader_ms)
                        cl->last_leader_ms = now;
                cl->last_leader = lid;
                cl->last_heard = heard;
        }
        pthread_mutex_lock(&cl->lock);
        if (cl->leader_ready) {
                sk_info("cluster: this host no longer leads");
                cl->leader_ready = false;
                cl->changed = true;
                json_object_clear(cl->reports);
                json_array_clear(cl->queue);
                json_decref(cl->site_ca_pending);
                cl->site_ca_pending = NULL;
        }
        pthread_mutex_unlock(&cl->lock);
}

static void on_tick(uv_timer_t *t)
{
        sk_cluster *cl = t->data;
        if (cl->closing)
                return;
        int64_t now = sk_cluster_now(cl);
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
        sk_cluster_publish_members(cl, lid, laddr);
        if (!leader) {
                follow(cl, lid, now);
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

static void close_handles(sk_cluster *cl)
{
        uv_close((uv_handle_t *)&cl->tick, on_handle_closed);
        uv_close((uv_handle_t *)&cl->wake, on_handle_closed);
}

static void on_raft_closed(struct raft *r)
{
        sk_cluster *cl = r->data;
        raft_uv_close(&cl->io);
        sk_raft_tls_close(&cl->transport);
        close_handles(cl);
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

static int transport_setup(sk_cluster *cl, sk_error **err)
{
        sk_raft_tls_config tc = {.ca_pem = cl->ca_pem,
                                 .cert_pem = cl->cert_pem,
                                 .key_pem = cl->key_pem,
                                 .on_http = on_http,
                                 .is_denied = is_denied,
                                 .is_retired_ca = sk_cluster_site_ca_retired,
                                 .http_user = cl};
        int r = sk_raft_tls_init(&cl->transport, &cl->loop, &tc, err);
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
        return 0;
}

static int raft_setup(sk_cluster *cl, sk_error **err)
{
        cl->fsm.version = 1;
        cl->fsm.data = cl;
        cl->fsm.apply = fsm_apply;
        cl->fsm.snapshot = fsm_snapshot;
        cl->fsm.restore = fsm_restore;
        int r = raft_init(&cl->raft, &cl->io, &cl->fsm, (raft_id)cl->host_id, cl->address);
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
        return 0;
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
        r = transport_setup(cl, err);
        if (r >= 0)
                r = raft_setup(cl, err);
        if (r >= 0)
                uv_timer_start(&cl->tick, on_tick, SK_CLUSTER_TICK_MS, SK_CLUSTER_TICK_MS);
        return r;
}

/* Closes what loop_setup set up; the loop then runs out. */
static void loop_abandon(sk_cluster *cl)
{
        if (cl->raft_init) {
                cl->closing = true;
                raft_close(&cl->raft, on_raft_closed);
                return;
        }
        if (cl->io_init)
                raft_uv_close(&cl->io);
        if (cl->transport_init)
                sk_raft_tls_close(&cl->transport);
        close_handles(cl);
}

static void *loop_thread(void *arg)
{
        sk_cluster *cl = arg;
        _cleanup_error_ sk_error *err = NULL;
        int r = loop_setup(cl, &err);
        pthread_mutex_lock(&cl->lock);
        cl->start_error = r;
        cl->loop_ready = true;
        pthread_cond_broadcast(&cl->cond);
        pthread_mutex_unlock(&cl->lock);
        if (r < 0) {
                sk_errorf("cluster: %s", sk_error_msg(err, r));
                loop_abandon(cl);
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

static int copy_config(sk_cluster *cl, const sk_cluster_config *cfg)
{
        cl->dir = strdup(cfg->data_dir);
        cl->raft_dir = sk_identity_path(cfg->data_dir, "raft");
        cl->address = strdup(cfg->address);
        cl->site = strdup(cfg->site);
        cl->host = strdup(cfg->host);
        cl->host_id = cfg->host_id;
        cl->peers = cfg->peers ? json_deep_copy(cfg->peers) : json_array();
        cl->on_change = cfg->on_change;
        cl->user = cfg->user;
        cl->clock = cfg->clock ? cfg->clock : sk_clock_system();
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
        bool ok = cl->dir && cl->raft_dir && cl->address && cl->site && cl->host && cl->peers &&
                  cl->submitted && cl->candidates && cl->members && cl->reports && cl->queue &&
                  cl->joining;
        return ok ? sk_fsm_init(&cl->f) : -ENOMEM;
}

int sk_cluster_new(const sk_cluster_config *cfg, sk_cluster **out, sk_error **err)
{
        sk_cluster *cl = calloc(1, sizeof(*cl));
        if (!cl)
                return sk_error_set(err, ENOMEM, "out of memory");
        pthread_mutex_init(&cl->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&cl->cond, &ca);
        pthread_condattr_destroy(&ca);
        int r = copy_config(cl, cfg);
        if (r < 0)
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0 && !(cl->ca_pem = read_text(cfg->data_dir, "ca.pem", err)))
                r = -EIO;
        if (r >= 0 && !(cl->cert_pem = read_text(cfg->data_dir, "cert.pem", err)))
                r = -EIO;
        if (r >= 0 && !(cl->key_pem = read_text(cfg->data_dir, "key.pem", err)))
                r = -EIO;
        if (r >= 0)
                sk_cluster_site_ca_load(cl);
        if (r >= 0 && mkdir(cl->raft_dir, 0700) < 0 && errno != EEXIST)
                r = sk_error_set(err, errno, "%s: %s", cl->raft_dir, strerror(errno));
        if (r < 0) {
                sk_cluster_free(cl);
                return r;
        }
        *out = cl;
        return 0;
}

int sk_cluster_start(sk_cluster *cl, sk_error **err)
{
        int r = sk_cluster_api_start(cl, err);
        if (r < 0)
                return r;
        if (pthread_create(&cl->thread, NULL, loop_thread, cl) != 0)
                return sk_error_set(err, EAGAIN, "cannot start the cluster thread");
        cl->thread_started = true;
        pthread_mutex_lock(&cl->lock);
        while (!cl->loop_ready)
                pthread_cond_wait(&cl->cond, &cl->lock);
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
        json_decref(cl->site_ca_pending);
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
        pthread_cond_destroy(&cl->cond);
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

json_t *sk_cluster_state(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        json_t *s = json_deep_copy(cl->f.state);
        pthread_mutex_unlock(&cl->lock);
        return s;
}

void sk_cluster_work_done(sk_cluster *cl, sk_cluster_work *out)
{
        pthread_mutex_lock(&cl->lock);
        *out = cl->work;
        pthread_mutex_unlock(&cl->lock);
}

uint64_t sk_cluster_seq(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        uint64_t seq = cl->seq;
        pthread_mutex_unlock(&cl->lock);
        return seq;
}

int64_t sk_cluster_generation(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        int64_t g = sk_fsm_generation(&cl->f);
        pthread_mutex_unlock(&cl->lock);
        return g;
}

int64_t sk_cluster_site_ca_announced(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        int64_t g = sk_fsm_site_ca_announced(&cl->f);
        pthread_mutex_unlock(&cl->lock);
        return g;
}

json_t *sk_cluster_device_rules(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        const sk_desired_doc *d = sk_fsm_desired(&cl->f);
        _cleanup_json_ json_t *site = d ? sk_model_write(&sk_site_desired_table, &d->site) : NULL;
        json_t *rules = json_object_get(site, "devices");
        json_t *copy = json_is_array(rules) ? json_incref(rules) : NULL;
        pthread_mutex_unlock(&cl->lock);
        return copy;
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

int sk_cluster_heartbeat(sk_cluster *cl, int64_t host_id, const json_t *report)
{
        json_t *checked = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_heartbeat_parse(report, host_id, &checked, &err);
        if (r < 0) {
                sk_warn("cluster: this host's own report: %s", sk_error_msg(err, r));
                return r;
        }
        return sk_cluster_take_report(cl, host_id, checked);
}
