#include "host/reconcile.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

static void track_clear(sk_track *t)
{
        free(t->name);
        free(t->create_error);
}

void sk_tracker_clear(sk_tracker *t)
{
        for (size_t i = 0; i < t->n; i++)
                track_clear(&t->items[i]);
        free(t->items);
        memset(t, 0, sizeof(*t));
}

static sk_track *tracker_find(sk_tracker *t, const char *name)
{
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->items[i].name, name) == 0)
                        return &t->items[i];
        return NULL;
}

sk_track *sk_tracker_get(sk_tracker *t, const char *name)
{
        sk_track *found = tracker_find(t, name);
        if (found)
                return found;
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                sk_track *p = realloc(t->items, cap * sizeof(*p));
                if (!p)
                        return NULL;
                t->items = p;
                t->cap = cap;
        }
        sk_track *tr = &t->items[t->n];
        memset(tr, 0, sizeof(*tr));
        tr->name = strdup(name);
        if (!tr->name)
                return NULL;
        t->n++;
        return tr;
}

void sk_tracker_note_started(sk_tracker *t, const char *name, bool restart)
{
        sk_track *tr = sk_tracker_get(t, name);
        if (!tr)
                return;
        if (restart)
                tr->restarts++;
        tr->backoff_until_ms = 0;
        tr->running_since_ms = 0;
        free(tr->create_error);
        tr->create_error = NULL;
        tr->create_delay_ms = 0;
}

static int64_t next_delay(int64_t prev)
{
        if (prev <= 0)
                return SK_BACKOFF_MIN_MS;
        return prev * 2 > SK_BACKOFF_MAX_MS ? SK_BACKOFF_MAX_MS : prev * 2;
}

void sk_tracker_note_create_failed(sk_tracker *t, const char *name, const char *reason,
                                   int64_t now_ms)
{
        sk_track *tr = sk_tracker_get(t, name);
        if (!tr)
                return;
        free(tr->create_error);
        tr->create_error = strdup(reason ? reason : "cannot create the container");
        tr->create_delay_ms = next_delay(tr->create_delay_ms);
        tr->create_retry_ms = now_ms + tr->create_delay_ms;
}

void sk_plan_clear(sk_plan *p)
{
        free(p->actions);
        json_decref(p->status);
        memset(p, 0, sizeof(*p));
}

/* Container states in the instance vocabulary, ordered by how much they say about the
 * instance: the worst one present becomes the instance's state. */
enum cstate { CS_RUNNING, CS_EXITED, CS_STARTING, CS_PENDING, CS_BACKOFF, CS_FAILED };
static const char *const cstate_names[] = {"running", "exited",  "starting",
                                           "pending", "backoff", "failed"};

typedef struct actlist {
        sk_action *items;
        size_t n, cap;
} actlist;

typedef struct planner {
        actlist removes; /* executed first (stops run concurrently) */
        actlist work;    /* creates and starts, after the removals */
        int64_t next_ms;
} planner;

static int add_to(actlist *l, sk_action a)
{
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 16;
                sk_action *n = realloc(l->items, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                l->items = n;
                l->cap = cap;
        }
        l->items[l->n++] = a;
        return 0;
}

static int add_action(planner *p, sk_action a)
{
        return add_to(a.kind == SK_ACTION_REMOVE ? &p->removes : &p->work, a);
}

static void wake_at(planner *p, int64_t t)
{
        if (t > 0 && (p->next_ms == 0 || t < p->next_ms))
                p->next_ms = t;
}

static const char *label(const sk_container_info *c, const char *key)
{
        return json_string_value(json_object_get(c->labels, key));
}

static bool matches(const sk_container_info *c, const sk_desired_container *w)
{
        const char *inst = label(c, "skerry.instance"), *ctr = label(c, "skerry.container");
        const char *hash = label(c, "skerry.spec-hash");
        return inst && ctr && hash && strcmp(inst, w->instance) == 0 &&
               strcmp(ctr, w->container) == 0 && strcmp(hash, w->spec_hash) == 0;
}

static bool is_up(sk_container_state s)
{
        return s == SK_CONTAINER_RUNNING || s == SK_CONTAINER_PAUSED ||
               s == SK_CONTAINER_RESTARTING;
}

/* Finds the observed container for w, preferring a running one. */
static ssize_t find_seen(const sk_container_list *seen, const bool *used,
                         const sk_desired_container *w)
{
        ssize_t best = -1;
        for (size_t i = 0; i < seen->n; i++) {
                if (used[i] || !matches(&seen->items[i], w))
                        continue;
                if (best < 0 || (is_up(seen->items[i].state) && !is_up(seen->items[best].state)))
                        best = (ssize_t)i;
        }
        return best;
}

/* Decides for one exited container of w whether and when it restarts. */
static enum cstate plan_exited(planner *p, const sk_container_info *c,
                               const sk_desired_container *w, sk_track *tr, int64_t now,
                               char **reason)
{
        bool again = w->restart == SK_RESTART_ALWAYS ||
                     (w->restart == SK_RESTART_ON_FAILURE && c->exit_code != 0);
        int64_t ran = 0;
        if (c->started_at > 0 && c->finished_at >= c->started_at)
                ran = (c->finished_at - c->started_at) * 1000;
        else if (tr->running_since_ms > 0)
                ran = now - tr->running_since_ms;
        tr->running_since_ms = 0;
        if (!again) {
                tr->backoff_until_ms = 0;
                if (!*reason && asprintf(reason, "container %s exited with code %d", w->container,
                                         c->exit_code) < 0)
                        *reason = NULL;
                return CS_EXITED;
        }
        if (tr->backoff_until_ms == 0) {
                tr->delay_ms =
                    ran >= SK_BACKOFF_RESET_MS ? SK_BACKOFF_MIN_MS : next_delay(tr->delay_ms);
                tr->backoff_until_ms = now + tr->delay_ms;
        }
        if (now >= tr->backoff_until_ms) {
                /* A restart is a fresh container from the spec, as on first start. */
                if (add_action(p, (sk_action){SK_ACTION_REMOVE, c->id, NULL, false}) < 0 ||
                    add_action(p, (sk_action){SK_ACTION_CREATE, NULL, w, true}) < 0)
                        return CS_FAILED;
                return CS_STARTING;
        }
        wake_at(p, tr->backoff_until_ms);
        /* Stable while the backoff lasts, so the report does not change every pass. */
        if (!*reason &&
            asprintf(reason, "container %s exited with code %d; restarting after %lld s",
                     w->container, c->exit_code, (long long)(tr->delay_ms / 1000)) < 0)
                *reason = NULL;
        return CS_BACKOFF;
}

static enum cstate plan_container(planner *p, const sk_container_list *seen, bool *used,
                                  const sk_desired_container *w, sk_tracker *tracker, int64_t now,
                                  json_t *cjson, char **reason)
{
        sk_track *tr = sk_tracker_get(tracker, w->name);
        if (!tr)
                return CS_FAILED;
        ssize_t i = find_seen(seen, used, w);
        if (i < 0) {
                json_object_set_new(cjson, "id", json_string(""));
                json_object_set_new(cjson, "exit-code", json_integer(0));
                tr->running_since_ms = 0;
                if (tr->create_error && now < tr->create_retry_ms) {
                        wake_at(p, tr->create_retry_ms);
                        if (!*reason)
                                *reason = strdup(tr->create_error);
                        return CS_FAILED;
                }
                add_action(p, (sk_action){SK_ACTION_CREATE, NULL, w, false});
                return CS_PENDING;
        }
        used[i] = true;
        const sk_container_info *c = &seen->items[i];
        json_object_set_new(cjson, "id", json_string(c->id ? c->id : ""));
        json_object_set_new(cjson, "exit-code", json_integer(is_up(c->state) ? 0 : c->exit_code));
        switch (c->state) {
        case SK_CONTAINER_RUNNING:
        case SK_CONTAINER_PAUSED:
        case SK_CONTAINER_RESTARTING:
                if (tr->running_since_ms == 0)
                        tr->running_since_ms = now;
                tr->backoff_until_ms = 0;
                return CS_RUNNING;
        case SK_CONTAINER_CREATED:
                if (tr->create_error && now < tr->create_retry_ms) {
                        wake_at(p, tr->create_retry_ms);
                        if (!*reason)
                                *reason = strdup(tr->create_error);
                        return CS_FAILED;
                }
                add_action(p, (sk_action){SK_ACTION_START, c->id, w, false});
                return CS_STARTING;
        default:
                return plan_exited(p, c, w, tr, now, reason);
        }
}

static json_t *instance_status(const sk_desired_instance *inst, const char *site, const char *host)
{
        json_t *s = json_deep_copy(inst->meta);
        if (!s)
                return NULL;
        json_object_set_new(s, "site", json_string(site));
        json_object_set_new(s, "host", json_string(host));
        json_object_set_new(s, "containers", json_array());
        return s;
}

static int plan_instance(planner *p, const sk_desired_instance *inst, const sk_container_list *seen,
                         bool *used, const char *site, const char *host, sk_tracker *tracker,
                         int64_t now, json_t *status)
{
        json_t *s = instance_status(inst, site, host);
        if (!s || json_array_append_new(status, s) < 0)
                return -ENOMEM;
        json_t *cs = json_object_get(s, "containers");
        _cleanup_free_ char *reason = NULL;
        enum cstate worst = CS_RUNNING;
        bool any_running = false;
        int restarts = 0;
        if (inst->fail_reason) {
                worst = CS_FAILED;
                reason = strdup(inst->fail_reason);
        }
        for (size_t k = 0; k < inst->n_containers && !inst->fail_reason; k++) {
                const sk_desired_container *w = &inst->containers[k];
                json_t *cj = json_pack("{s:s}", "name", w->container);
                if (!cj || json_array_append_new(cs, cj) < 0)
                        return -ENOMEM;
                enum cstate st = plan_container(p, seen, used, w, tracker, now, cj, &reason);
                json_object_set_new(cj, "state", json_string(cstate_names[st]));
                sk_track *tr = sk_tracker_get(tracker, w->name);
                restarts += tr ? tr->restarts : 0;
                any_running |= st == CS_RUNNING;
                if (st > worst)
                        worst = st;
        }
        /* A container that exited for good (an init step) does not stop the others from
         * serving: the instance runs while any of its containers does. */
        if (worst == CS_EXITED && any_running) {
                worst = CS_RUNNING;
                free(reason);
                reason = NULL;
        }
        json_object_set_new(s, "state", json_string(cstate_names[worst]));
        json_object_set_new(s, "reason", json_string(reason ? reason : ""));
        json_object_set_new(s, "restarts", json_integer(restarts));
        return 0;
}

/* Forgets containers that are no longer desired, so a re-deployed one starts fresh. */
static void tracker_sweep(sk_tracker *t, const sk_desired_set *want)
{
        size_t keep = 0;
        for (size_t i = 0; i < t->n; i++) {
                bool wanted = false;
                for (size_t a = 0; a < want->n && !wanted; a++)
                        for (size_t b = 0; b < want->items[a].n_containers && !wanted; b++)
                                wanted = strcmp(want->items[a].containers[b].name,
                                                t->items[i].name) == 0;
                if (wanted)
                        t->items[keep++] = t->items[i];
                else
                        track_clear(&t->items[i]);
        }
        t->n = keep;
}

/* Breadth first across services: replica 0 of every service before any replica 1, so
 * after a mass replacement every service has one instance up as early as possible. */
static int by_replica(const void *a, const void *b)
{
        const sk_action *x = a, *y = b;
        if (x->want->replica != y->want->replica)
                return x->want->replica < y->want->replica ? -1 : 1;
        return x < y ? -1 : x > y; /* keeps plan order: qsort is not stable */
}

int sk_reconcile_plan(const sk_desired_set *want, const sk_container_list *seen, const char *site,
                      const char *host, sk_tracker *tracker, int64_t now_ms, sk_plan *out,
                      sk_error **err)
{
        memset(out, 0, sizeof(*out));
        planner p = {0};
        _cleanup_free_ bool *used = calloc(seen->n ? seen->n : 1, sizeof(*used));
        _cleanup_json_ json_t *status = json_array();
        int r = used && status ? 0 : -ENOMEM;
        tracker_sweep(tracker, want);
        for (size_t i = 0; i < want->n && r == 0; i++)
                r = plan_instance(&p, &want->items[i], seen, used, site, host, tracker, now_ms,
                                  status);
        for (size_t i = 0; i < seen->n && r == 0; i++)
                if (!used[i])
                        r = add_action(
                            &p, (sk_action){SK_ACTION_REMOVE, seen->items[i].id, NULL, false});
        if (p.work.n > 1)
                qsort(p.work.items, p.work.n, sizeof(sk_action), by_replica);
        for (size_t i = 0; i < p.work.n && r == 0; i++)
                r = add_to(&p.removes, p.work.items[i]);
        free(p.work.items);
        if (r < 0) {
                free(p.removes.items);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        out->actions = p.removes.items;
        out->n = p.removes.n;
        out->next_ms = p.next_ms;
        out->status = take_ptr(&status);
        return 0;
}
