/* The leader's host inventory (cluster_int.h): heartbeats in, liveness, hosts lost, and
 * the reports and views built from them. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "site/cluster_int.h"
#include "site/heartbeat.h"

/* A heartbeat answer older than this when raft last heard the leader is not the last
 * contact (two agent heartbeats): raft's own contact counts instead. */
#define CONTACT_SLACK_MS 2000
/* A new leader leaves an old leader that may still be alive this long (at most
 * host-lost-after) to report: its heartbeats could not reach the new leader before. */
#define LEADER_GRACE_MS 2000

/* The inventory entry a report asks for: heard from again, alive; otherwise as the state
 * says: only a confirmed loss (on_confirmed) writes a host lost, never a report that
 * happens to change while the host is a candidate. Under the lock. */
static json_t *host_entry(sk_cluster *cl, int64_t id, const json_t *report)
{
        const json_t *now = sk_fsm_host(&cl->f, id);
        bool alive = sk_liveness_state(&cl->live, id) == 1 || !now ||
                     !json_is_false(json_object_get(now, "alive"));
        return sk_heartbeat_host_entry(report, id, alive);
}

/* The host entry a report asks for, when it differs from the state's and from what is
 * proposed already (cmds), or its host to add to the configuration (adds). Under the
 * lock. */
static void want_entry(sk_cluster *cl, const char *key, int64_t id, const json_t *report,
                       json_t *cmds, json_t *adds)
{
        /* A host enters the inventory once it is a member with a role (not a spare still
         * catching up). */
        int role = sk_cluster_member_role(cl, (raft_id)id);
        if (role < 0)
                json_array_append_new(adds, json_pack("{s:I, s:O}", "id", (json_int_t)id, "address",
                                                      json_object_get(report, "address")));
        if (role < 0 || role == RAFT_SPARE)
                return;
        _cleanup_json_ json_t *want = host_entry(cl, id, report);
        if (!want || json_equal(sk_fsm_host(&cl->f, id), want) ||
            json_equal(json_object_get(cl->submitted, key), want))
                return;
        json_array_append_new(cmds, json_pack("{s:s, s:O}", "op", "host", "host", want));
}

/* Every report is a contact; a host heard from again after its loss, or every host when
 * all, gets its entry looked at. Under the lock. */
static void take_reports(sk_cluster *cl, bool all, json_t *cmds, json_t *adds)
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
                bool back = sk_liveness_seen(&cl->live, id, at) == 1;
                if (back)
                        sk_info("cluster: host %s is back",
                                json_string_value(json_object_get(report, "host")));
                if (all || back)
                        want_entry(cl, key, id, report, cmds, adds);
        }
}

/* Hosts whose time ran out become candidates; they are declared lost only once a barrier
 * committed after that, which proves this leader still has its quorum. A leader cut off
 * from the others must not put "everyone else is lost" into its log: those entries would
 * commit when the site is whole again and move work off hosts that never stopped. */
static void mark_lost(sk_cluster *cl, int64_t now)
{
        int64_t lost[cl->live.n + 1];
        size_t n = sk_liveness_check(&cl->live, now, lost);
        for (size_t i = 0; i < n; i++)
                if (sk_fsm_host(&cl->f, lost[i]))
                        json_array_append_new(cl->candidates, json_integer(lost[i]));
}

void sk_cluster_hosts_tick(sk_cluster *cl, int64_t now, bool all, json_t *cmds, json_t *adds)
{
        if (all) /* the state may have a new host-lost-after */
                cl->live.lost_after_ms = sk_fsm_lost_after_ms(&cl->f);
        sk_liveness_seen(&cl->live, cl->host_id, now);
        take_reports(cl, all, cmds, adds);
        mark_lost(cl, now);
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

/* Under the lock: "host lost" entries for the candidates still out of time. */
static json_t *lost_entries(sk_cluster *cl)
{
        json_t *cmds = json_array();
        size_t i;
        json_t *id;
        json_array_foreach(cl->candidates, i, id)
        {
                int64_t h = json_integer_value(id);
                const json_t *host = sk_fsm_host(&cl->f, h);
                /* heard from meanwhile (a report that came during the barrier's round trip
                 * counts, not only those a tick took), or already lost */
                char key[24];
                sk_cluster_id_key(h, key);
                const json_t *rec = json_object_get(cl->reports, key);
                if (rec)
                        sk_liveness_seen(&cl->live, h,
                                         json_integer_value(json_object_get(rec, "at")));
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
        return cmds;
}

static void on_confirmed(struct raft_barrier *req, int status)
{
        sk_cluster *cl = req->data;
        cl->confirm_inflight = false;
        int64_t now = sk_cluster_now(cl);
        if (cl->closing)
                return;
        if (status != 0 || !cl->leader_ready ||
            now - cl->confirm_started > cl->live.lost_after_ms) {
                retry_candidates(cl, now);
                return;
        }
        pthread_mutex_lock(&cl->lock);
        _cleanup_json_ json_t *cmds = lost_entries(cl);
        pthread_mutex_unlock(&cl->lock);
        size_t i;
        json_t *cmd;
        json_array_foreach(cmds, i, cmd)
        {
                char key[24];
                const json_t *h = json_object_get(cmd, "host");
                sk_cluster_id_key(json_integer_value(json_object_get(h, "id")), key);
                json_object_set(cl->submitted, key, (json_t *)h);
                if (sk_cluster_propose(cl, cmd, false, key) < 0)
                        json_object_del(cl->submitted, key);
        }
}

void sk_cluster_confirm_lost(sk_cluster *cl, int64_t now)
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

void sk_cluster_hosts_lead(sk_cluster *cl, int64_t now)
{
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
        cl->sched_seq = cl->hosts_seq = 0; /* a new leader looks at everything once */
        pthread_mutex_unlock(&cl->lock);
}

int sk_cluster_take_report(sk_cluster *cl, int64_t host_id, json_t *report)
{
        char key[24];
        sk_cluster_id_key(host_id, key);
        int64_t at = sk_cluster_now(cl), wall = sk_clock_wall(cl->clock);
        pthread_mutex_lock(&cl->lock);
        int r = -EAGAIN;
        if (sk_fsm_is_removed(&cl->f, host_id))
                r = -EPERM;
        else if (cl->leader_ready) {
                const json_t *prev = json_object_get(json_object_get(cl->reports, key), "report");
                if (!json_equal(prev, report))
                        cl->changed = cl->reports_new = true; /* the tower should hear of it */
                json_object_set_new(cl->reports, key,
                                    json_pack("{s:O, s:I, s:I}", "report", report, "at",
                                              (json_int_t)at, "wall", (json_int_t)wall));
                r = 0;
        }
        pthread_mutex_unlock(&cl->lock);
        json_decref(report);
        return r;
}

int64_t sk_cluster_lost_after_ms(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        int64_t ms = sk_fsm_lost_after_ms(&cl->f);
        pthread_mutex_unlock(&cl->lock);
        return ms;
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

/* A lost host's last report is stale: it says what it runs when it is back. The leader's
 * own carries the unplaced instances. Under the lock. */
static json_t *report_instances(sk_cluster *cl, int64_t id, const json_t *rec, bool lost)
{
        json_t *insts =
            !lost ? json_deep_copy(json_object_get(json_object_get(rec, "report"), "instances"))
                  : NULL;
        if (!insts)
                insts = json_array();
        if (id == cl->host_id) {
                json_t *unplaced = sk_fsm_unplaced_status(&cl->f, cl->site, cl->host);
                json_array_extend(insts, unplaced); /* takes no reference */
                json_decref(unplaced);
        }
        return insts;
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
                              json_object_get(h, "capacity"), "role",
                              sk_cluster_role_locked(cl, id), "state", host_state(h));
                if (!body)
                        continue;
                json_object_set_new(body, "instances", report_instances(cl, id, rec, lost));
                const json_t *cert = json_object_get(json_object_get(rec, "report"), "certificate");
                if (cert)
                        json_object_set(body, "certificate", (json_t *)cert);
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
                    rec ? sk_rfc3339(json_integer_value(json_object_get(rec, "wall"))) : NULL;
                json_t *item = json_pack(
                    "{s:O, s:s, s:I, s:s?, s:s, s:O?, s:O?, s:O?, s:O?, s:s?}", "name",
                    json_object_get(h, "name"), "site", cl->site, "id", (json_int_t)id, "role",
                    sk_cluster_role_locked(cl, id), "state", host_state(h), "labels",
                    json_object_get(h, "labels"), "devices", json_object_get(h, "devices"),
                    "capacity", json_object_get(h, "capacity"), "address",
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
