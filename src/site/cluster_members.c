/* The raft configuration (cluster_int.h): members added and removed, 1, 3 or 5 voters,
 * leadership handed over, and each host's role as other threads see it. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "site/cluster_int.h"

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

typedef struct census {
        unsigned target, voters, alive_voters;
        raft_id spare, standby, dead_voter, other_voter;
} census;

static census count_members(sk_cluster *cl)
{
        const struct raft_configuration *c = &cl->raft.configuration;
        census n = {.target = c->n >= 5 ? 5 : c->n >= 3 ? 3 : 1};
        for (unsigned i = 0; i < c->n; i++) {
                const struct raft_server *s = &c->servers[i];
                bool alive = host_alive(cl, s->id), me = (int64_t)s->id == cl->host_id;
                if (s->role == RAFT_VOTER) {
                        n.voters++;
                        n.alive_voters += alive;
                        if (!alive && !me)
                                n.dead_voter = s->id;
                        else if (!me)
                                n.other_voter = s->id;
                } else if (alive && s->role == RAFT_SPARE && !n.spare) {
                        n.spare = s->id;
                } else if (alive && s->role == RAFT_STANDBY && !n.standby) {
                        n.standby = s->id;
                }
        }
        return n;
}

/* 1, 3 or 5 voters among the members; a dead voter gives its place to a live standby. */
static void manage_voters(sk_cluster *cl)
{
        if (cl->change_inflight)
                return;
        census n = count_members(cl);
        /* Standbys first: a joining host shows up in the inventory only once it has its
         * role, and the roles it sees then are final. */
        if (n.alive_voters < n.target && n.standby)
                assign(cl, n.standby, RAFT_VOTER, "the site needs voters");
        else if (n.spare)
                assign(cl, n.spare, n.alive_voters < n.target ? RAFT_VOTER : RAFT_STANDBY,
                       "joined");
        else if (n.voters > n.target && (n.dead_voter || n.other_voter))
                assign(cl, n.dead_voter ? n.dead_voter : n.other_voter, RAFT_STANDBY,
                       n.dead_voter ? "lost" : "too many voters");
}

static void on_transferred(struct raft_transfer *req)
{
        sk_cluster *cl = req->data;
        cl->transfer_inflight = false;
}

static bool hand_over(sk_cluster *cl, int64_t now, const char *why)
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
        cl->last_transfer_ms = now;
        sk_warn("cluster: handing over leadership: %s", why);
        return true;
}

/* Hosts the tower removed (the FSM's deny list) leave the raft configuration, one change
 * at a time. A removed leader hands leadership over first: the next leader removes it. */
static void remove_members(sk_cluster *cl, int64_t now)
{
        if (cl->change_inflight || cl->transfer_inflight)
                return;
        const struct raft_configuration *c = &cl->raft.configuration;
        raft_id gone = 0;
        pthread_mutex_lock(&cl->lock);
        for (unsigned i = 0; i < c->n && !gone; i++) {
                if (sk_fsm_is_removed(&cl->f, (int64_t)c->servers[i].id))
                        gone = c->servers[i].id;
        }
        pthread_mutex_unlock(&cl->lock);
        if (!gone)
                return;
        if ((int64_t)gone == cl->host_id) {
                hand_over(cl, now, "this host was removed from the site");
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

/* The uplink asked (sk_cluster_step_aside), at most once per SK_CLUSTER_STEP_ASIDE_MS. */
static void step_aside(sk_cluster *cl, int64_t now)
{
        pthread_mutex_lock(&cl->lock);
        bool aside = cl->step_aside;
        cl->step_aside = false;
        pthread_mutex_unlock(&cl->lock);
        if (aside &&
            (!cl->last_transfer_ms || now - cl->last_transfer_ms >= SK_CLUSTER_STEP_ASIDE_MS))
                hand_over(cl, now, "the tower refuses this host's certificate");
}

void sk_cluster_manage_members(sk_cluster *cl, int64_t now)
{
        step_aside(cl, now);
        remove_members(cl, now);
        manage_voters(cl);
}

int sk_cluster_member_role(sk_cluster *cl, raft_id id)
{
        const struct raft_configuration *c = &cl->raft.configuration;
        for (unsigned i = 0; i < c->n; i++)
                if (c->servers[i].id == id)
                        return c->servers[i].role;
        return -1;
}

void sk_cluster_add_member(sk_cluster *cl, raft_id id, const char *address)
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

static json_t *configuration_json(sk_cluster *cl)
{
        json_t *m = json_object();
        const struct raft_configuration *c = &cl->raft.configuration;
        for (unsigned i = 0; m && i < c->n; i++) {
                char key[24];
                sk_cluster_id_key((int64_t)c->servers[i].id, key);
                const char *role = c->servers[i].role == RAFT_VOTER     ? "voter"
                                   : c->servers[i].role == RAFT_STANDBY ? "standby"
                                                                        : "spare";
                json_object_set_new(
                    m, key,
                    json_pack("{s:s, s:s}", "role", role, "address", c->servers[i].address));
        }
        return m;
}

void sk_cluster_publish_members(sk_cluster *cl, raft_id lid, const char *laddr)
{
        /* The leader's address comes from the configuration: the same configuration and
         * leader, the same everything. */
        if (cl->pub_done && cl->pub_leader == lid && cl->pub_conf == cl->raft.configuration_index &&
            cl->pub_conf_uncommitted == cl->raft.configuration_uncommitted_index)
                return;
        cl->pub_done = true;
        cl->pub_leader = lid;
        cl->pub_conf = cl->raft.configuration_index;
        cl->pub_conf_uncommitted = cl->raft.configuration_uncommitted_index;
        cl->members_moved = true;
        _cleanup_json_ json_t *m = configuration_json(cl);
        pthread_mutex_lock(&cl->lock);
        if (cl->leader_id != lid)
                cl->changed = true;
        cl->leader_id = lid;
        if (!cl->leader_addr || !laddr || strcmp(cl->leader_addr, laddr) != 0) {
                free(cl->leader_addr);
                cl->leader_addr = laddr ? strdup(laddr) : NULL;
        }
        if (m && !json_equal(m, cl->members)) {
                json_decref(cl->members);
                cl->members = json_incref(m);
                cl->changed = true;
        }
        pthread_mutex_unlock(&cl->lock);
}

const char *sk_cluster_role_locked(sk_cluster *cl, int64_t host_id)
{
        if (cl->leader_id && (int64_t)cl->leader_id == host_id)
                return "leader";
        char key[24];
        sk_cluster_id_key(host_id, key);
        const char *role =
            json_string_value(json_object_get(json_object_get(cl->members, key), "role"));
        if (!role)
                return NULL;
        return strcmp(role, "voter") == 0 ? "voter" : "standby";
}

const char *sk_cluster_role_of(sk_cluster *cl, int64_t host_id)
{
        pthread_mutex_lock(&cl->lock);
        const char *r = sk_cluster_role_locked(cl, host_id);
        pthread_mutex_unlock(&cl->lock);
        return r;
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

void sk_cluster_step_aside(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        if (cl->leader_ready)
                cl->step_aside = true;
        pthread_mutex_unlock(&cl->lock);
}
