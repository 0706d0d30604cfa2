#include "site/uplink.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"

struct sk_uplink {
        char *dir, *tower, *host;
        char *ca, *cert, *key, *desired_path;
        int64_t generation;
        void (*on_desired)(const json_t *doc, void *user);
        json_t *(*reports)(void *user);
        void (*on_refused)(void *user);
        int64_t (*site_ca_held)(void *user);
        void (*on_site_ca)(const json_t *answer, void *user);
        int64_t site_ca_announced, site_ca_fetched; /* sync thread */
        void *user;

        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC */
        bool stop, status_dirty;
        pthread_t sync_thread, status_thread;
        bool sync_started, status_started;
};

static void timespec_at(struct timespec *ts, int64_t ms)
{
        ts->tv_sec = ms / 1000;
        ts->tv_nsec = (ms % 1000) * 1000000;
}

static bool stopping(sk_uplink *u)
{
        pthread_mutex_lock(&u->lock);
        bool s = u->stop;
        pthread_mutex_unlock(&u->lock);
        return s;
}

/* Sleeps until ms (monotonic) or stop; returns whether stopping. */
static bool sleep_until(sk_uplink *u, int64_t ms)
{
        struct timespec ts;
        timespec_at(&ts, ms);
        pthread_mutex_lock(&u->lock);
        while (!u->stop && pthread_cond_timedwait(&u->cond, &u->lock, &ts) == 0)
                ;
        bool s = u->stop;
        pthread_mutex_unlock(&u->lock);
        return s;
}

int sk_desired_load(const char *dir, json_t **doc, sk_error **err)
{
        _cleanup_free_ char *path = sk_identity_path(dir, "desired.json");
        if (!path)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (access(path, F_OK) < 0)
                return -ENOENT;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = sk_file_read(path, &text, &len, err);
        if (r < 0)
                return r;
        json_error_t je;
        json_t *o = json_loadb(text, len, 0, &je);
        if (!json_is_object(o) || !json_is_integer(json_object_get(o, "generation"))) {
                json_decref(o);
                return sk_error_set_pos(err, EINVAL, je.line, je.column,
                                        "%s: not a desired document%s%s", path, o ? "" : ": ",
                                        o ? "" : je.text);
        }
        *doc = o;
        return 0;
}

/* ---- one request to the tower ---- */

static int stop_requested(void *user)
{
        return stopping(user) ? 1 : 0;
}

/* A client with this host's certificate; a stop aborts whatever it is waiting for. */
static sk_httpc *tower_client(sk_uplink *u)
{
        sk_httpc_opts o = {.base_url = u->tower,
                           .ca_file = u->ca,
                           .cert_file = u->cert,
                           .key_file = u->key,
                           .connect_timeout_ms = 10000};
        sk_httpc *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        if (sk_httpc_new(&o, &c, &err) < 0) {
                sk_errorf("uplink: %s", sk_error_msg(err, -ENOMEM));
                return NULL;
        }
        sk_httpc_set_abort(c, stop_requested, u);
        return c;
}

/* 0 with *status and *body (caller frees) when any answer came, negative otherwise. */
static int tower_call(sk_httpc *c, const char *method, const char *path, const char *body,
                      long timeout_ms, long *status, char **out, sk_error **err)
{
        sk_http_response resp;
        int r = sk_httpc_request(c, method, path, body, body ? strlen(body) : 0, NULL, timeout_ms,
                                 &resp, err);
        if (r < 0)
                return r;
        *status = resp.status;
        *out = resp.body;
        return 0;
}

/* An error from a non-2xx answer, with the tower's message. */
static int answer_error(long status, const char *body, const char *what, sk_error **err)
{
        _cleanup_json_ json_t *o = json_loads(body ? body : "", 0, NULL);
        const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        return sk_error_set(err, status == 401 || status == 403 ? EACCES : EPROTO,
                            "%s: HTTP %ld: %s", what, status, m ? m : "(no message)");
}

/* Logs reachability only when it changes. */
typedef struct reach {
        const char *what;
        int state; /* 0 unknown, 1 up, -1 down */
} reach;

static void reach_up(reach *r)
{
        if (r->state != 1)
                sk_info("%s: connected to the tower", r->what);
        r->state = 1;
}

static void reach_down(reach *r, const sk_error *err, int code)
{
        if (r->state != -1)
                sk_warn("%s: %s (retrying with backoff)", r->what, sk_error_msg(err, code));
        r->state = -1;
}

static int64_t backoff_next(int64_t d)
{
        if (d <= 0)
                return SK_UPLINK_BACKOFF_MIN;
        return d * 2 > SK_UPLINK_BACKOFF_MAX ? SK_UPLINK_BACKOFF_MAX : d * 2;
}

/* A new desired document: persist it first, so a restart runs exactly what was seen. */
static int take_desired(sk_uplink *u, const char *body, sk_error **err)
{
        json_error_t je;
        _cleanup_json_ json_t *doc = json_loads(body, 0, &je);
        if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "generation")))
                return sk_error_set_pos(err, EPROTO, je.line, je.column, "desired document: %s",
                                        doc ? "no integer generation" : je.text);
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15));
        if (!text)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_file_write(u->desired_path, text, strlen(text), 0600, err);
        if (r < 0)
                return r;
        u->generation = json_integer_value(json_object_get(doc, "generation"));
        int64_t ca_gen =
            json_integer_value(json_object_get(json_object_get(doc, "site-ca"), "generation"));
        if (ca_gen > u->site_ca_announced)
                u->site_ca_announced = ca_gen;
        sk_info("desired state generation %lld", (long long)u->generation);
        u->on_desired(doc, u->user);
        return 0;
}

/* A site CA generation newer than the site holds was announced: fetch it for the leader
 * to propose. A failure is retried at the next turn of the sync loop. */
static void fetch_site_ca(sk_uplink *u, sk_httpc *h)
{
        if (!u->on_site_ca || u->site_ca_announced <= u->site_ca_fetched ||
            u->site_ca_announced <= u->site_ca_held(u->user))
                return;
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *body = NULL;
        long status = 0;
        int r = tower_call(h, "GET", "/v1/sync/site-ca", NULL, 15000, &status, &body, &err);
        if (r == 0 && status != 200)
                r = answer_error(status, body, "site CA", &err);
        _cleanup_json_ json_t *ans = r == 0 ? json_loads(body, 0, NULL) : NULL;
        int64_t gen = json_integer_value(json_object_get(ans, "generation"));
        if (r == 0 && gen < u->site_ca_announced)
                r = sk_error_set(&err, EPROTO, "site CA: generation %lld, %lld was announced",
                                 (long long)gen, (long long)u->site_ca_announced);
        if (r < 0) {
                sk_warn("fetching the site CA: %s", sk_error_msg(err, r));
                return;
        }
        sk_info("site CA generation %lld fetched from the tower", (long long)gen);
        u->site_ca_fetched = gen;
        u->on_site_ca(ans, u->user);
}

static void *sync_loop(void *arg)
{
        sk_uplink *u = arg;
        _cleanup_httpc_ sk_httpc *h = tower_client(u);
        reach rs = {"sync", 0};
        int64_t delay = 0;
        while (h && !stopping(u)) {
                fetch_site_ca(u, h);
                _cleanup_error_ sk_error *err = NULL;
                _cleanup_free_ char *path = NULL, *body = NULL;
                long status = 0;
                if (asprintf(&path, "/v1/sync/desired?generation=%lld&wait=%d",
                             (long long)u->generation, SK_UPLINK_WAIT_S) < 0)
                        break;
                int r = tower_call(h, "GET", path, NULL, (SK_UPLINK_WAIT_S + 15) * 1000L, &status,
                                   &body, &err);
                if (r == -ECANCELED)
                        break;
                if (r == 0 && status == 200)
                        r = take_desired(u, body, &err);
                else if (r == 0 && status != 204)
                        r = answer_error(status, body, "sync", &err);
                if (r < 0 && status == 401 && u->on_refused)
                        u->on_refused(u->user);
                if (r == 0) {
                        reach_up(&rs);
                        delay = 0;
                        continue;
                }
                reach_down(&rs, err, r);
                delay = backoff_next(delay);
                if (sleep_until(u, sk_monotonic_ms() + delay))
                        break;
        }
        return NULL;
}

static int post_one(sk_uplink *u, sk_httpc *h, const json_t *body, sk_error **err)
{
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (!text)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_free_ char *answer = NULL;
        long status = 0;
        int r = tower_call(h, "POST", "/v1/sync/status", text, 15000, &status, &answer, err);
        if (r < 0)
                return r;
        if (status < 200 || status > 299)
                return answer_error(status, answer, "status", err);
        return 0;
}

static int post_status(sk_uplink *u, sk_httpc *h, sk_error **err)
{
        _cleanup_json_ json_t *all = u->reports(u->user);
        size_t i;
        json_t *body;
        int first = 0;
        json_array_foreach(all, i, body)
        {
                /* One host's refused report must not hold back the others'. */
                int r = post_one(u, h, body, first < 0 ? NULL : err);
                if (r == -ECANCELED)
                        return r;
                if (r < 0 && first == 0)
                        first = r;
        }
        return first;
}

static void *status_loop(void *arg)
{
        sk_uplink *u = arg;
        _cleanup_httpc_ sk_httpc *h = tower_client(u);
        reach rs = {"status", 0};
        int64_t delay = 0, due = 0;
        while (h) {
                pthread_mutex_lock(&u->lock);
                struct timespec ts;
                timespec_at(&ts, due);
                while (!u->stop && !u->status_dirty &&
                       pthread_cond_timedwait(&u->cond, &u->lock, &ts) == 0)
                        ;
                bool stop = u->stop;
                u->status_dirty = false;
                pthread_mutex_unlock(&u->lock);
                if (stop)
                        break;
                _cleanup_error_ sk_error *err = NULL;
                int r = post_status(u, h, &err);
                if (r == -ECANCELED)
                        break;
                if (r == 0) {
                        reach_up(&rs);
                        delay = 0;
                        due = sk_monotonic_ms() + SK_UPLINK_HEARTBEAT_MS;
                } else {
                        reach_down(&rs, err, r);
                        delay = backoff_next(delay);
                        /* A failed post is retried after the backoff, changes or not. */
                        if (sleep_until(u, sk_monotonic_ms() + delay))
                                break;
                        pthread_mutex_lock(&u->lock);
                        u->status_dirty = true;
                        pthread_mutex_unlock(&u->lock);
                }
        }
        return NULL;
}

void sk_uplink_notify(sk_uplink *u)
{
        pthread_mutex_lock(&u->lock);
        u->status_dirty = true;
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
}

int sk_uplink_new(const sk_uplink_config *cfg, sk_uplink **out, sk_error **err)
{
        sk_uplink *u = calloc(1, sizeof(*u));
        if (!u)
                return sk_error_set(err, ENOMEM, "out of memory");
        pthread_mutex_init(&u->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&u->cond, &ca);
        pthread_condattr_destroy(&ca);
        u->dir = strdup(cfg->data_dir);
        u->tower = strdup(cfg->tower);
        u->host = strdup(cfg->host);
        u->ca = sk_identity_path(cfg->data_dir, "ca.pem");
        u->cert = sk_identity_path(cfg->data_dir, "cert.pem");
        u->key = sk_identity_path(cfg->data_dir, "key.pem");
        u->desired_path = sk_identity_path(cfg->data_dir, "desired.json");
        u->generation = cfg->generation;
        u->on_desired = cfg->on_desired;
        u->reports = cfg->reports;
        u->on_refused = cfg->on_refused;
        u->site_ca_held = cfg->site_ca_held;
        u->on_site_ca = cfg->site_ca_held ? cfg->on_site_ca : NULL;
        u->site_ca_announced = cfg->site_ca_announced;
        u->user = cfg->user;
        u->status_dirty = true;
        if (!cfg->on_desired || !cfg->reports) {
                sk_uplink_free(u);
                return sk_error_set(err, EINVAL, "uplink: on_desired and reports are required");
        }
        if (!u->dir || !u->tower || !u->host || !u->ca || !u->cert || !u->key || !u->desired_path) {
                sk_uplink_free(u);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        /* Without a trailing slash, paths append cleanly. */
        size_t n = strlen(u->tower);
        while (n > 0 && u->tower[n - 1] == '/')
                u->tower[--n] = '\0';
        *out = u;
        return 0;
}

int sk_uplink_start(sk_uplink *u, sk_error **err)
{
        if (pthread_create(&u->sync_thread, NULL, sync_loop, u) != 0)
                return sk_error_set(err, EAGAIN, "cannot start the sync thread");
        u->sync_started = true;
        if (pthread_create(&u->status_thread, NULL, status_loop, u) != 0)
                return sk_error_set(err, EAGAIN, "cannot start the status thread");
        u->status_started = true;
        return 0;
}

void sk_uplink_stop(sk_uplink *u)
{
        pthread_mutex_lock(&u->lock);
        u->stop = true;
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
        if (u->sync_started)
                pthread_join(u->sync_thread, NULL);
        if (u->status_started)
                pthread_join(u->status_thread, NULL);
        u->sync_started = u->status_started = false;
}

void sk_uplink_free(sk_uplink *u)
{
        if (!u)
                return;
        sk_uplink_stop(u);
        free(u->dir);
        free(u->tower);
        free(u->host);
        free(u->ca);
        free(u->cert);
        free(u->key);
        free(u->desired_path);
        pthread_mutex_destroy(&u->lock);
        pthread_cond_destroy(&u->cond);
        free(u);
}
