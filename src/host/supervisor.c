#include "host/supervisor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "host/desired.h"
#include "host/reconcile.h"

#define STOP_GRACE_S      10
#define EVENTS_BACKOFF_MS 1000
#define EVENTS_MAX_MS     15000

struct sk_supervisor {
        sk_runtime *rt;
        sk_runtime *events_rt;
        char *site, *host;
        void (*on_status)(void *user);
        void *user;
        int interval_ms;

        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC */
        json_t *placed;      /* under lock: this host's instances, as the site placed them */
        unsigned placed_gen;
        json_t *status; /* under lock */
        bool woken, stop;
        pthread_t thread, events_thread;
        bool thread_started;
        struct events_ctx *events;

        /* Only the reconciling thread touches these. */
        unsigned built_gen;
        sk_desired_set want;
        sk_tracker tracker;
        bool list_failing;
        bool want_valid;
};

int sk_supervisor_new(const sk_supervisor_config *cfg, sk_supervisor **out, sk_error **err)
{
        sk_supervisor *s = calloc(1, sizeof(*s));
        if (!s)
                return sk_error_set(err, ENOMEM, "out of memory");
        s->rt = cfg->runtime;
        s->events_rt = cfg->events_runtime;
        s->site = strdup(cfg->site);
        s->host = strdup(cfg->host);
        s->status = json_array();
        s->on_status = cfg->on_status;
        s->user = cfg->user;
        s->interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 3000;
        pthread_mutex_init(&s->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
        if (!s->site || !s->host || !s->status) {
                sk_supervisor_free(s);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        *out = s;
        return 0;
}

void sk_supervisor_wake(sk_supervisor *s)
{
        pthread_mutex_lock(&s->lock);
        s->woken = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void sk_supervisor_set_placed(sk_supervisor *s, json_t *placed)
{
        pthread_mutex_lock(&s->lock);
        if (!json_equal(s->placed, placed)) {
                json_decref(s->placed);
                s->placed = json_incref(placed);
                s->placed_gen++;
                s->woken = true;
                pthread_cond_broadcast(&s->cond);
        }
        pthread_mutex_unlock(&s->lock);
}

json_t *sk_supervisor_status(sk_supervisor *s)
{
        pthread_mutex_lock(&s->lock);
        json_t *st = json_incref(s->status);
        pthread_mutex_unlock(&s->lock);
        return st;
}

/* Rebuilds the desired containers when the placement changed. 1: have a desired set. */
static int refresh_want(sk_supervisor *s)
{
        pthread_mutex_lock(&s->lock);
        _cleanup_json_ json_t *placed = json_incref(s->placed);
        unsigned gen = s->placed_gen;
        pthread_mutex_unlock(&s->lock);
        if (!placed)
                return 0;
        if (gen == s->built_gen)
                return 1;
        /* A placement this agent cannot read keeps the previous one running. */
        s->built_gen = gen;
        _cleanup_error_ sk_error *perr = NULL;
        sk_desired_set next;
        int r = sk_desired_build(placed, s->site, s->host, &next, &perr);
        if (r < 0) {
                sk_errorf("desired state: %s%s%s; keeping the previous one", sk_error_msg(perr, r),
                          perr && perr->path ? " at " : "", perr && perr->path ? perr->path : "");
                return s->want_valid ? 1 : 0;
        }
        sk_desired_set_clear(&s->want);
        s->want = next;
        s->want_valid = true;
        return 1;
}

/* This host's containers, with exit codes and run times for the exited ones (a list
 * call need not carry them). */
static int observe(sk_supervisor *s, sk_container_list *seen, sk_error **err)
{
        _cleanup_json_ json_t *filter = json_pack("{s:s}", "skerry.host", s->host);
        if (!filter)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = s->rt->ops->list(s->rt, filter, seen, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < seen->n; i++) {
                sk_container_info *c = &seen->items[i];
                if (c->state != SK_CONTAINER_EXITED && c->state != SK_CONTAINER_DEAD)
                        continue;
                sk_container_info full = {0};
                _cleanup_error_ sk_error *ierr = NULL;
                if (s->rt->ops->inspect(s->rt, c->id, &full, &ierr) < 0)
                        continue; /* removed meanwhile: the next pass sees it gone */
                c->exit_code = full.exit_code;
                c->started_at = full.started_at;
                c->finished_at = full.finished_at;
                c->state = full.state;
                sk_container_info_clear(&full);
        }
        return 0;
}

static void do_remove(sk_supervisor *s, const char *id)
{
        _cleanup_error_ sk_error *err = NULL;
        sk_info("removing container %.12s (not desired or outdated)", id);
        int r = s->rt->ops->stop(s->rt, id, STOP_GRACE_S, &err);
        if (r < 0 && r != -ENOENT)
                sk_debug("stopping %.12s: %s", id, sk_error_msg(err, r));
        sk_error_free(&err);
        r = s->rt->ops->remove(s->rt, id, true, &err);
        if (r < 0 && r != -ENOENT)
                sk_warn("removing container %.12s: %s", id, sk_error_msg(err, r));
}

static void do_create(sk_supervisor *s, const sk_desired_container *w, bool restart, int64_t now)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *id = NULL, *reason = NULL;
        int r = s->rt->ops->pull(s->rt, w->image, &err);
        if (r < 0) {
                if (asprintf(&reason, "pulling image %s: %s", w->image, sk_error_msg(err, r)) < 0)
                        reason = NULL;
        } else {
                sk_container_spec spec = {
                    .name = w->name,
                    .image = w->image,
                    .cmd = (const char *const *)w->cmd,
                    .env = (const char *const *)w->env,
                    .labels = w->labels,
                    .cpu_millicores = w->cpu_millicores,
                    .memory_bytes = w->memory_bytes,
                    .devices = (const char *const *)w->devices,
                    .device_targets = (const char *const *)w->device_targets,
                };
                sk_info("%s container %s (%s)", restart ? "restarting" : "creating", w->name,
                        w->image);
                r = s->rt->ops->create(s->rt, &spec, &id, &err);
                if (r >= 0)
                        r = s->rt->ops->start(s->rt, id, &err);
                if (r < 0 && asprintf(&reason, "%s %s: %s", id ? "starting" : "creating", w->name,
                                      sk_error_msg(err, r)) < 0)
                        reason = NULL;
        }
        if (r < 0) {
                sk_warn("%s", reason ? reason : "cannot create a container");
                sk_tracker_note_create_failed(&s->tracker, w->name, reason, now);
        } else {
                sk_tracker_note_started(&s->tracker, w->name, restart);
        }
}

static void do_start(sk_supervisor *s, const sk_action *a, int64_t now)
{
        _cleanup_error_ sk_error *err = NULL;
        int r = s->rt->ops->start(s->rt, a->id, &err);
        if (r < 0) {
                _cleanup_free_ char *reason = NULL;
                if (asprintf(&reason, "starting %s: %s", a->want->name, sk_error_msg(err, r)) < 0)
                        reason = NULL;
                sk_warn("%s", reason ? reason : "cannot start a container");
                sk_tracker_note_create_failed(&s->tracker, a->want->name, reason, now);
                return;
        }
        sk_tracker_note_started(&s->tracker, a->want->name, false);
}

#define MAX_PARALLEL_REMOVES 16

struct removal {
        sk_supervisor *s;
        const char *id;
        pthread_t thread;
        bool started;
};

static void *removal_thread(void *arg)
{
        struct removal *rm = arg;
        do_remove(rm->s, rm->id);
        return NULL;
}

/* Stops run concurrently: each may wait its 10 s grace, and they are independent. */
static void remove_all(sk_supervisor *s, const sk_action *acts, size_t n)
{
        struct removal rm[MAX_PARALLEL_REMOVES];
        for (size_t base = 0; base < n; base += MAX_PARALLEL_REMOVES) {
                size_t batch = n - base < MAX_PARALLEL_REMOVES ? n - base : MAX_PARALLEL_REMOVES;
                for (size_t i = 0; i < batch; i++) {
                        rm[i] = (struct removal){s, acts[base + i].id, 0, false};
                        rm[i].started =
                            pthread_create(&rm[i].thread, NULL, removal_thread, &rm[i]) == 0;
                        if (!rm[i].started)
                                do_remove(s, rm[i].id);
                }
                for (size_t i = 0; i < batch; i++)
                        if (rm[i].started)
                                pthread_join(rm[i].thread, NULL);
        }
}

static void execute(sk_supervisor *s, const sk_plan *plan, int64_t now)
{
        size_t n_remove = 0;
        while (n_remove < plan->n && plan->actions[n_remove].kind == SK_ACTION_REMOVE)
                n_remove++;
        remove_all(s, plan->actions, n_remove);
        for (size_t i = n_remove; i < plan->n; i++) {
                const sk_action *a = &plan->actions[i];
                if (a->kind == SK_ACTION_CREATE)
                        do_create(s, a->want, a->restart, now);
                else if (a->kind == SK_ACTION_START)
                        do_start(s, a, now);
        }
}

/* Installs a new report, keeping each instance's "updated" while its state is the same.
 * Returns whether anything changed. */
static bool publish(sk_supervisor *s, json_t *report)
{
        _cleanup_free_ char *now = sk_rfc3339(sk_wall_ms());
        pthread_mutex_lock(&s->lock);
        bool changed = json_array_size(report) != json_array_size(s->status);
        size_t i;
        json_t *inst;
        json_array_foreach(report, i, inst)
        {
                const char *id = json_string_value(json_object_get(inst, "instance"));
                json_t *old = NULL, *o;
                size_t k;
                json_array_foreach(s->status, k, o)
                {
                        if (strcmp(json_string_value(json_object_get(o, "instance")), id) == 0)
                                old = o;
                }
                _cleanup_json_ json_t *old_bare = old ? json_deep_copy(old) : NULL;
                json_object_del(old_bare, "updated");
                if (old_bare && json_equal(old_bare, inst)) {
                        json_object_set(inst, "updated", json_object_get(old, "updated"));
                } else {
                        json_object_set_new(inst, "updated", json_string(now ? now : ""));
                        changed = true;
                }
        }
        json_decref(s->status);
        s->status = json_incref(report);
        pthread_mutex_unlock(&s->lock);
        return changed;
}

int sk_supervisor_pass(sk_supervisor *s, int64_t now_ms, int64_t *next_ms, sk_error **err)
{
        *next_ms = 0;
        int r = refresh_want(s);
        if (r <= 0)
                return r;
        sk_container_list seen = {0};
        r = observe(s, &seen, err);
        if (r < 0) {
                if (!s->list_failing)
                        sk_warn("runtime unavailable: %s", sk_error_msg(err ? *err : NULL, r));
                s->list_failing = true;
                return r;
        }
        if (s->list_failing)
                sk_info("runtime available again");
        s->list_failing = false;
        sk_plan plan;
        r = sk_reconcile_plan(&s->want, &seen, s->site, s->host, &s->tracker, now_ms, &plan, err);
        if (r < 0) {
                sk_container_list_clear(&seen);
                return r;
        }
        if (plan.n > 0) {
                execute(s, &plan, now_ms);
                /* Report what the actions led to, not what was there before them; the
                 * actions of this second look wait for the next pass. */
                sk_plan after;
                sk_container_list seen2 = {0};
                if (observe(s, &seen2, NULL) == 0 &&
                    sk_reconcile_plan(&s->want, &seen2, s->site, s->host, &s->tracker, now_ms,
                                      &after, NULL) == 0) {
                        sk_plan_clear(&plan);
                        plan = after;
                        if (plan.n > 0 && (plan.next_ms == 0 || plan.next_ms > now_ms + 1000))
                                plan.next_ms = now_ms + 1000;
                }
                sk_container_list_clear(&seen2);
        }
        sk_container_list_clear(&seen);
        *next_ms = plan.next_ms;
        bool changed = publish(s, plan.status);
        sk_plan_clear(&plan);
        if (changed && s->on_status)
                s->on_status(s->user);
        return 0;
}

static void timespec_at(struct timespec *ts, int64_t ms)
{
        ts->tv_sec = ms / 1000;
        ts->tv_nsec = (ms % 1000) * 1000000;
}

static void *supervise(void *arg)
{
        sk_supervisor *s = arg;
        pthread_mutex_lock(&s->lock);
        while (!s->stop) {
                s->woken = false;
                pthread_mutex_unlock(&s->lock);
                int64_t now = sk_monotonic_ms(), next = 0;
                _cleanup_error_ sk_error *err = NULL;
                int r = sk_supervisor_pass(s, now, &next, &err);
                if (r < 0 && !s->list_failing)
                        sk_errorf("reconcile: %s", sk_error_msg(err, r));
                int64_t due = now + s->interval_ms;
                if (next > 0 && next < due)
                        due = next;
                struct timespec ts;
                timespec_at(&ts, due);
                pthread_mutex_lock(&s->lock);
                while (!s->stop && !s->woken &&
                       pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
                        ;
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* What the events thread shares with the supervisor. */
typedef struct events_ctx {
        pthread_mutex_t lock;
        pthread_cond_t stop_cond; /* CLOCK_MONOTONIC */
        sk_supervisor *sup;       /* NULL once the supervisor stops */
        sk_runtime *rt;
        json_t *filter;
} events_ctx;

static void events_ctx_free(events_ctx *c)
{
        if (c->rt)
                c->rt->ops->free(c->rt);
        json_decref(c->filter);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->stop_cond);
        free(c);
}

static int on_event(const sk_runtime_event *ev, void *user)
{
        events_ctx *c = user;
        pthread_mutex_lock(&c->lock);
        if (c->sup && ev) /* ev NULL: the stream's idle tick, a chance to stop */
                sk_supervisor_wake(c->sup);
        bool stop = !c->sup;
        pthread_mutex_unlock(&c->lock);
        if (ev)
                sk_debug("runtime event %s %.12s", ev->action ? ev->action : "?",
                         ev->container_id ? ev->container_id : "?");
        return stop ? 1 : 0;
}

static void *watch_events(void *arg)
{
        events_ctx *c = arg;
        int64_t delay = EVENTS_BACKOFF_MS;
        bool failing = false;
        pthread_mutex_lock(&c->lock);
        while (c->sup) {
                pthread_mutex_unlock(&c->lock);
                _cleanup_error_ sk_error *err = NULL;
                int64_t began = sk_monotonic_ms();
                int r = c->rt->ops->events(c->rt, c->filter, on_event, c, &err);
                if (sk_monotonic_ms() - began > 60000)
                        delay = EVENTS_BACKOFF_MS;
                if (r < 0 && !failing)
                        sk_warn("runtime events: %s (retrying)", sk_error_msg(err, r));
                failing = r < 0;
                struct timespec ts;
                timespec_at(&ts, sk_monotonic_ms() + delay);
                delay = delay * 2 > EVENTS_MAX_MS ? EVENTS_MAX_MS : delay * 2;
                pthread_mutex_lock(&c->lock);
                /* The stream may have missed something while it was down. */
                if (c->sup)
                        sk_supervisor_wake(c->sup);
                while (c->sup && pthread_cond_timedwait(&c->stop_cond, &c->lock, &ts) == 0)
                        ;
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static int start_events(sk_supervisor *s, sk_error **err)
{
        events_ctx *c = calloc(1, sizeof(*c));
        if (!c)
                return sk_error_set(err, ENOMEM, "out of memory");
        pthread_mutex_init(&c->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->stop_cond, &ca);
        pthread_condattr_destroy(&ca);
        c->sup = s;
        c->rt = take_ptr(&s->events_rt);
        c->filter = json_pack("{s:s, s:s}", "skerry.host", s->host, "skerry.site", s->site);
        if (!c->filter || pthread_create(&s->events_thread, NULL, watch_events, c) != 0) {
                events_ctx_free(c);
                return sk_error_set(err, EAGAIN, "cannot start the runtime events thread");
        }
        s->events = c;
        return 0;
}

/* The stream's idle tick sees the stop within about a second. */
static void stop_events(sk_supervisor *s)
{
        events_ctx *c = take_ptr(&s->events);
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->sup = NULL;
        pthread_cond_broadcast(&c->stop_cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(s->events_thread, NULL);
        events_ctx_free(c);
}

int sk_supervisor_start(sk_supervisor *s, sk_error **err)
{
        if (pthread_create(&s->thread, NULL, supervise, s) != 0)
                return sk_error_set(err, EAGAIN, "cannot start the supervisor thread");
        s->thread_started = true;
        return s->events_rt ? start_events(s, err) : 0;
}

void sk_supervisor_stop(sk_supervisor *s)
{
        stop_events(s);
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->thread_started)
                pthread_join(s->thread, NULL);
        s->thread_started = false;
}

void sk_supervisor_free(sk_supervisor *s)
{
        if (!s)
                return;
        sk_supervisor_stop(s);
        if (s->events_rt)
                s->events_rt->ops->free(s->events_rt);
        sk_desired_set_clear(&s->want);
        sk_tracker_clear(&s->tracker);
        json_decref(s->placed);
        json_decref(s->status);
        free(s->site);
        free(s->host);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
}
