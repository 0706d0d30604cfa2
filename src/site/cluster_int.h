/* Inside the site cluster (cluster.h): the state its files share. Each file has one job:
 *   cluster.c          raft glue: the FSM as raft sees it, proposals, the loop thread and
 *                      its tick, what other threads ask
 *   cluster_members.c  the raft configuration: members added and removed, 1, 3 or 5
 *                      voters, leadership handed over, each host's role
 *   cluster_hosts.c    the leader's host inventory: heartbeats in, liveness, hosts lost
 *                      (confirmed by a barrier), the reports and views built from them
 *   cluster_api.c      the site-local API over this node (siteroutes.h's function table,
 *                      requests forwarded to the leader)
 *   sitesign.c         the site CA's side of site-local joins: tokens and signing
 *   cluster_siteca.c   site CA generations: the pin verifiers use, the key files, the
 *                      leader proposing a new generation
 * Fields marked "loop" are the loop thread's own; the rest are under lock. */
#ifndef SK_SITE_CLUSTER_INT_H
#define SK_SITE_CLUSTER_INT_H

#include <jansson.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/clock.h"
#include "site/cluster.h"
#include "site/cluster_fsm.h"
#include "site/liveness.h"
#include "site/siteapi.h"

#define SK_CLUSTER_TICK_MS 100

struct sk_cluster {
        char *dir, *raft_dir, *address, *site, *host;
        int64_t host_id;
        json_t *peers;
        void (*on_change)(void *user);
        void *user;
        int election_ms, heartbeat_ms;
        unsigned snapshot_threshold;
        char *ca_pem, *cert_pem, *key_pem;
        const sk_clock *clock;
        sk_siteapi *api;

        /* loop */
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
        int start_error;
        bool barrier_inflight, change_inflight, sched_inflight, confirm_inflight, transfer_inflight;
        struct raft_barrier barrier, confirm;
        struct raft_change change;
        struct raft_transfer transfer;
        int64_t last_transfer_ms;
        json_t *candidates; /* host ids out of time, waiting for confirm */
        int64_t confirm_started;
        sk_liveness live;
        json_t *submitted;      /* host id -> host entry proposed, not yet applied */
        raft_id last_leader;    /* the leader raft last heard, while following */
        int64_t last_leader_ms; /* when (this cluster's clock) */
        raft_time last_heard;   /* raft's election timer start at the last tick */
        /* What the last tick saw, so an idle tick does nothing: the configuration and
         * leader published, the state the scheduler and the host entries last ran on. */
        raft_index pub_conf, pub_conf_uncommitted;
        raft_id pub_leader;
        bool pub_done, members_moved;
        uint64_t sched_seq, hosts_seq;

        /* under lock */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* loop started; an entry applied (site-local joins wait) */
        bool loop_ready;
        sk_fsm f;
        bool leader_ready, changed, stop, step_aside;
        uint64_t seq;       /* counts the entries that changed the state */
        bool reports_new;   /* a report with new content since the last tick */
        bool sched_reports; /* ... and the scheduler has not run on it yet */
        sk_cluster_work work;
        raft_id leader_id;
        char *leader_addr;
        json_t *members;    /* host id -> {"role": voter | standby | spare, "address"} */
        json_t *reports;    /* host id -> {"report": ..., "at": ms, "wall": unix ms} */
        json_t *queue;      /* commands for the leader to propose */
        json_t *joining;    /* token hashes of site-local joins in progress */
        raft_id contact_id; /* the leader that last answered this host's heartbeat */
        int64_t contact_ms; /* when */
        size_t peer_cursor;
        char site_ca_file_fp[65]; /* SHA-256 of DIR/site-ca.pem, "" when none */
        json_t *site_ca_pending;  /* a "site-ca" command for the leader to propose */
};

static inline int64_t sk_cluster_now(const sk_cluster *cl)
{
        return sk_clock_mono(cl->clock);
}

/* cluster.c */
void sk_cluster_id_key(int64_t id, char key[24]);
/* Runs the tick at the next loop iteration (loop). */
void sk_cluster_kick(sk_cluster *cl);
/* Proposes cmd (loop, leader); a "sched" one marks the scheduler busy, key names a host
 * entry in submitted until it is applied. */
int sk_cluster_propose(sk_cluster *cl, const json_t *cmd, bool sched, const char *key);

/* cluster_members.c (loop unless said) */
int sk_cluster_member_role(sk_cluster *cl, raft_id id);
void sk_cluster_add_member(sk_cluster *cl, raft_id id, const char *address);
void sk_cluster_manage_members(sk_cluster *cl, int64_t now);
/* Copies the raft configuration and leader for other threads. */
void sk_cluster_publish_members(sk_cluster *cl, raft_id lid, const char *laddr);
/* Under lock: "leader", "voter", "standby" or NULL. */
const char *sk_cluster_role_locked(sk_cluster *cl, int64_t host_id);

/* cluster_hosts.c (loop) */
/* Under the lock: liveness from the reports; with all, every report's host entry too
 * (cmds) and hosts to add to the configuration (adds). */
void sk_cluster_hosts_tick(sk_cluster *cl, int64_t now, bool all, json_t *cmds, json_t *adds);
void sk_cluster_confirm_lost(sk_cluster *cl, int64_t now);
/* The leader's barrier committed: every host the state knows is tracked afresh. */
void sk_cluster_hosts_lead(sk_cluster *cl, int64_t now);
/* A checked report (heartbeat.h), taken. Any thread. */
int sk_cluster_take_report(sk_cluster *cl, int64_t host_id, json_t *report);

/* cluster_api.c */
int sk_cluster_api_start(sk_cluster *cl, sk_error **err);

/* cluster_siteca.c */
/* Reads DIR/site-ca.pem's fingerprint (at start). */
void sk_cluster_site_ca_load(sk_cluster *cl);
/* After an entry or snapshot: writes a newer site CA to DIR/site-ca.{pem,key}. */
void sk_cluster_site_ca_save(sk_cluster *cl);
/* Leader (loop): proposes the pending generation once no removed host is a member. */
void sk_cluster_site_ca_propose(sk_cluster *cl);

/* sitesign.c (site API workers) */
int sk_cluster_make_token(void *ctx, int64_t ttl_s, json_t **answer);
int sk_cluster_sign_join(void *ctx, const sk_site_join *join, json_t **answer);

#endif
