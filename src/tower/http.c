/* libmicrohttpd glue: a pool of request threads (TLS, parsing and the client certificate
 * check run in parallel; the API and its store one thread at a time under api_lock), TLS
 * with optional client certificates verified once per connection, a 1 MiB body limit,
 * long-polls held as suspended connections in per-site waiter lists, resumed on change or
 * by a small timer thread, and slow jobs on worker threads, one per lane. */
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "tower/admit.h"
#include "tower/http.h"
#include "tower/target.h"

#define N_BUCKETS    1024
#define DRAIN_MAX    (8ULL * 1024 * 1024)
#define TICK_MS      200
#define RESERVED_FDS 64 /* the store, logs, the worker */
/* libmicrohttpd's per-connection memory: it answers 414/431 itself (in HTML) only when
 * the request line and headers outgrow it (about 64 KiB), well above our own JSON-answered
 * limits (SK_TOWER_TARGET_MAX, SK_TOWER_HEADERS_MAX). Above 32 KiB it is mmap'ed, so
 * pages a connection never touches cost nothing. */
#define POOL_SIZE            (64 * 1024)
#define SK_TOWER_HEADERS_MAX (16 * 1024)

typedef struct conn conn;
struct conn {
        struct MHD_Connection *mc;
        bool started; /* the access handler has seen this request */
        char *target; /* the raw request target, as it came on the request line */
        size_t target_len;
        int refused; /* a negative errno answered once the body is read, or 0 */
        sk_error *refusal;
        char *body;
        size_t len;
        bool too_large;
        uint64_t dropped; /* bytes of an oversized body read and thrown away */
        int64_t deadline; /* monotonic ms; 0 until the first hold */
        /* waiter list membership, under sk_tower_http.lock */
        bool held;
        int64_t site;
        conn *prev, *next;
        /* a slow job: queued for the worker, then handed back to the API */
        sk_tower_job *job;
        conn *job_next;
        bool stop_woken; /* woken by stop: stop waits until it is answered */
};

/* What the client certificate of a connection proved, kept from its first request on:
 * verified again only when the peer's chain differs (a new handshake). */
typedef struct peer_cache {
        unsigned char *chain; /* the peer's certificates as sent: DER, each after its size */
        size_t chain_len;
        int r; /* 0: verified as uri; < 0: refused for msg */
        char *uri, *msg;
        sk_pki_chain verified; /* the site CA it went through and the leaf, by SHA-256 */
} peer_cache;

/* A connection's own state (libmicrohttpd's socket context), from accept to close. */
typedef struct sock {
        char addr[SK_ADMIT_ADDR_MAX];
        char identity[SK_ADMIT_IDENTITY_MAX]; /* who it was proven as; "" a stranger */
        peer_cache peer;                      /* used by the connection's thread only */
} sock;

/* Jobs of one lane run one at a time on the lane's thread: Argon2id apart from matching,
 * so that neither waits behind the other. */
typedef struct lane {
        pthread_t thread;
        bool started;
        pthread_cond_t work;
        conn *jobs, *jobs_tail;
        unsigned n, max; /* jobs queued or running; at most max (0: no bound) */
} lane;

struct sk_tower_http {
        struct MHD_Daemon *daemon;
        sk_admit *admit;
        unsigned per_identity;
        sk_tower_api *api;
        sk_pki_trust *trust; /* the CA, loaded once; read-only, shared by the threads */
        /* The API and its store are used by one thread at a time: a request thread, or the
         * store-notification thread of a replica. Taken before lock, never after. */
        pthread_mutex_t api_lock;
        /* The waiter lists, the job queues and stopping. */
        pthread_mutex_t lock;
        pthread_cond_t tick;
        pthread_t timer;
        bool timer_started, stopping;
        lane lanes[SK_TOWER_JOB_LANES];
        unsigned long peer_checks; /* atomic */
        long n_stop_pending;
        long n_held;
        conn *buckets[N_BUCKETS];
};

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static conn **bucket(sk_tower_http *h, int64_t site)
{
        return &h->buckets[(uint64_t)site % N_BUCKETS];
}

/* Under lock. */
static void unhold(sk_tower_http *h, conn *c)
{
        if (!c->held)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                *bucket(h, c->site) = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        c->held = false;
        h->n_held--;
}

/* Under lock: the connection comes back to the access handler, which asks again. */
static void wake(sk_tower_http *h, conn *c)
{
        unhold(h, c);
        MHD_resume_connection(c->mc);
}

static void on_site_changed(void *ctx, int64_t site_id)
{
        sk_tower_http *h = ctx;
        pthread_mutex_lock(&h->lock);
        conn *c = *bucket(h, site_id);
        while (c) {
                conn *next = c->next;
                if (c->site == site_id)
                        wake(h, c);
                c = next;
        }
        pthread_mutex_unlock(&h->lock);
}

static long held_count(void *ctx)
{
        sk_tower_http *h = ctx;
        pthread_mutex_lock(&h->lock);
        long n = h->n_held;
        pthread_mutex_unlock(&h->lock);
        return n;
}

static void conn_stats(void *ctx, long *strangers, long *proven, long *refused)
{
        sk_tower_http *h = ctx;
        sk_admit_stats st = sk_admit_get_stats(h->admit);
        *strangers = (long)st.strangers;
        *proven = (long)st.proven;
        *refused = (long)st.refused;
}

static void *timer_main(void *arg)
{
        sk_tower_http *h = arg;
        pthread_mutex_lock(&h->lock);
        while (!h->stopping) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += TICK_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&h->tick, &h->lock, &ts);
                int64_t now = mono_ms();
                for (size_t i = 0; i < N_BUCKETS; i++) {
                        conn *c = h->buckets[i];
                        while (c) {
                                conn *next = c->next;
                                if (c->deadline <= now)
                                        wake(h, c);
                                c = next;
                        }
                }
        }
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

typedef struct lane_arg {
        sk_tower_http *h;
        lane *l;
} lane_arg;

/* Runs a lane's queued jobs one at a time (Argon2id is memory-hard: one at a time bounds
 * memory), then resumes their connections. Drains the queue before it stops. */
static void *worker_main(void *arg)
{
        lane_arg a = *(lane_arg *)arg;
        free(arg);
        sk_tower_http *h = a.h;
        lane *l = a.l;
        pthread_mutex_lock(&h->lock);
        for (;;) {
                while (!l->jobs && !h->stopping)
                        pthread_cond_wait(&l->work, &h->lock);
                conn *c = l->jobs;
                if (!c)
                        break;
                l->jobs = c->job_next;
                if (!l->jobs)
                        l->jobs_tail = NULL;
                c->job_next = NULL;
                pthread_mutex_unlock(&h->lock);
                c->job->run(c->job);
                pthread_mutex_lock(&h->lock);
                l->n--;
                MHD_resume_connection(c->mc);
        }
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

/* Under lock: suspends the connection until the worker has run its job. False when the
 * lane is full (each queued match holds a copy of the sites: the bound bounds memory). */
static bool queue_job(sk_tower_http *h, conn *c)
{
        unsigned i = c->job->lane < SK_TOWER_JOB_LANES ? c->job->lane : 0;
        lane *l = &h->lanes[i];
        if (l->max && l->n >= l->max)
                return false;
        l->n++;
        MHD_suspend_connection(c->mc);
        if (l->jobs_tail)
                l->jobs_tail->job_next = c;
        else
                l->jobs = c;
        l->jobs_tail = c;
        pthread_cond_signal(&l->work);
        return true;
}

static gnutls_session_t tls_session(struct MHD_Connection *mc)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        return ci ? (gnutls_session_t)ci->tls_session : NULL;
}

static void peer_cache_clear(peer_cache *pc)
{
        free(pc->chain);
        free(pc->uri);
        free(pc->msg);
        *pc = (peer_cache){0};
}

/* The peer's certificates as one byte string, to tell a new handshake's chain apart. */
static unsigned char *chain_bytes(const gnutls_datum_t *raw, unsigned n, size_t *len)
{
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
                total += sizeof(unsigned) + raw[i].size;
        unsigned char *b = malloc(total ? total : 1), *p = b;
        for (unsigned i = 0; b && i < n; i++) {
                memcpy(p, &raw[i].size, sizeof(unsigned));
                memcpy(p + sizeof(unsigned), raw[i].data, raw[i].size);
                p += sizeof(unsigned) + raw[i].size;
        }
        *len = total;
        return b;
}

/* Verifies the connection's client certificate unless this very chain was verified on it
 * already; on the request thread, before the API lock, so that handshakes and chain checks
 * of many sites run in parallel. */
static void peer_check(sk_tower_http *h, gnutls_session_t s, peer_cache *pc)
{
        unsigned n = 0;
        const gnutls_datum_t *raw = s ? gnutls_certificate_get_peers(s, &n) : NULL;
        size_t len = 0;
        _cleanup_free_ unsigned char *chain = raw && n ? chain_bytes(raw, n, &len) : NULL;
        if (pc->chain && chain && pc->chain_len == len && memcmp(pc->chain, chain, len) == 0)
                return;
        peer_cache_clear(pc);
        __atomic_add_fetch(&h->peer_checks, 1, __ATOMIC_RELAXED);
        _cleanup_error_ sk_error *e = NULL;
        pc->r = s ? sk_pki_verify_peer_trust(s, h->trust, &pc->uri, pc->verified.site_ca, &e)
                  : sk_error_set(&e, EACCES, "no TLS session");
        if (pc->r >= 0)
                sk_pki_peer_leaf_fp(s, pc->verified.leaf);
        if (pc->r < 0)
                pc->msg = strdup(sk_error_msg(e, -pc->r));
        pc->chain = take_ptr(&chain);
        pc->chain_len = len;
}

static int verify_peer(void *ctx, char **uri, sk_pki_chain *chain, sk_error **err)
{
        const peer_cache *pc = ctx;
        if (pc->r < 0)
                return sk_error_set(err, -pc->r, "%s", pc->msg ? pc->msg : "out of memory");
        if (!pc->uri || !(*uri = strdup(pc->uri)))
                return sk_error_set(err, ENOMEM, "out of memory");
        *chain = pc->verified;
        return 0;
}

static bool has_peer_cert(struct MHD_Connection *mc)
{
        gnutls_session_t s = tls_session(mc);
        unsigned n = 0;
        return s && gnutls_certificate_get_peers(s, &n) && n > 0;
}

static enum MHD_Result send_response(struct MHD_Connection *mc, sk_tower_response *resp)
{
        char *text = NULL;
        const char *type = "application/json";
        if (resp->text) {
                text = take_ptr(&resp->text);
                type = "text/plain; version=0.0.4";
        } else if (resp->body) {
                text = json_dumps(resp->body, JSON_COMPACT | JSON_REAL_PRECISION(15));
        }
        struct MHD_Response *r =
            MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
                                            text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!r) {
                free(text);
                return MHD_NO;
        }
        if (text)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        /* a connection over its identity's limit goes once told why */
        if (resp->status == 503)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
        enum MHD_Result ret = MHD_queue_response(mc, (unsigned)resp->status, r);
        MHD_destroy_response(r);
        return ret;
}

/* An answer given before routing (a refused target, a body or headers over the limits):
 * the JSON error body like every other, counted under its own route. */
static enum MHD_Result refuse(sk_tower_http *h, struct MHD_Connection *mc, const char *route, int r,
                              const sk_error *e)
{
        sk_tower_response resp = {0};
        sk_tower_error_response(&resp, r, e);
        resp.route = route;
        pthread_mutex_lock(&h->api_lock);
        sk_tower_api_count(h->api, resp.route, resp.status);
        pthread_mutex_unlock(&h->api_lock);
        enum MHD_Result ret = send_response(mc, &resp);
        sk_tower_response_clear(&resp);
        return ret;
}

static enum MHD_Result too_large(sk_tower_http *h, struct MHD_Connection *mc)
{
        _cleanup_error_ sk_error *e = NULL;
        int r = sk_error_set(&e, EFBIG, "the request body is over 1 MiB");
        return refuse(h, mc, "body-limit", r, e);
}

static enum MHD_Result add_header_len(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
        *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
        return MHD_YES;
}

/* Whatever in the request line or headers the tower refuses: checked by us, below
 * libmicrohttpd's own limits, so that the answer is the JSON error body. */
static int check_request(conn *c, sk_error **err)
{
        if (!c->target)
                return sk_error_set(err, E2BIG, "the request target is over %d bytes",
                                    SK_TOWER_TARGET_MAX);
        size_t n = 0;
        MHD_get_connection_values(c->mc, MHD_HEADER_KIND, add_header_len, &n);
        if (n > SK_TOWER_HEADERS_MAX)
                return sk_error_set(err, EMSGSIZE, "the request headers are over %d bytes",
                                    SK_TOWER_HEADERS_MAX);
        return 0;
}

/* Called by libmicrohttpd with the raw request target before it decodes anything; what
 * this returns is the request's context in the access handler. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
        conn *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->mc = mc;
        size_t n = strnlen(uri, SK_TOWER_TARGET_MAX + 1);
        if (n <= SK_TOWER_TARGET_MAX && (c->target = strndup(uri, n)))
                c->target_len = n;
        return c;
}

/* The client's address as text (no port), for the audit trail and the login lockout. */
static void remote_address(struct MHD_Connection *mc, char *out, size_t cap)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!ci || !ci->client_addr)
                return;
        socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in);
        if (getnameinfo(ci->client_addr, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
                out[0] = '\0';
}

static void addr_text(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
        if (!sa || getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
                snprintf(out, cap, "?");
}

/* Before libmicrohttpd takes a new connection: a stranger's place, or a close at once. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
        sk_tower_http *h = cls;
        char addr[SK_ADMIT_ADDR_MAX];
        addr_text(sa, len, addr, sizeof(addr));
        return sk_admit_open(h->admit, addr) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        sk_tower_http *h = cls;
        sock *k = *socket_context;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                k = calloc(1, sizeof(*k));
                const union MHD_ConnectionInfo *ci =
                    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                const struct sockaddr *sa = ci ? ci->client_addr : NULL;
                char addr[SK_ADMIT_ADDR_MAX];
                addr_text(sa,
                          sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in),
                          addr, sizeof(addr));
                if (k)
                        memcpy(k->addr, addr, sizeof(addr));
                else /* out of memory: give the place back now rather than never */
                        sk_admit_close(h->admit, addr, NULL);
                *socket_context = k;
        } else if (k) {
                sk_admit_close(h->admit, k->addr, k->identity[0] ? k->identity : NULL);
                peer_cache_clear(&k->peer);
                free(k);
                *socket_context = NULL;
        }
}

/* A request on mc authenticated: the connection is no stranger any more, and may idle as
 * long as a long-poll lasts. False when its identity holds all the connections it may. */
static sock *sock_of(struct MHD_Connection *mc)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static bool prove(struct MHD_Connection *mc, sk_tower_http *h, const char *identity)
{
        sock *k = sock_of(mc);
        if (!k || k->identity[0])
                return true;
        if (!sk_admit_prove(h->admit, k->addr, identity))
                return false;
        snprintf(k->identity, sizeof(k->identity), "%s", identity);
        MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)(SK_TOWER_WAIT_MAX_S + 30));
        return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        sk_tower_http *h = cls;
        conn *c = *con_cls;
        if (!c)
                return MHD_NO; /* out of memory in on_uri */
        if (!c->started) {
                c->started = true;
                c->refused = check_request(c, &c->refusal);
                if (c->refused == -E2BIG || c->refused == -EMSGSIZE)
                        return refuse(h, mc, "request-limit", c->refused, c->refusal);
                const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
                unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
                if (n > SK_TOWER_BODY_MAX) {
                        c->too_large = true;
                        /* A modest excess is read and dropped so that the client, still
                         * sending, sees the 413 rather than a reset; a huge one is refused
                         * at once. */
                        if (n > DRAIN_MAX)
                                return too_large(h, mc);
                }
                return MHD_YES;
        }
        if (*upload_data_size) {
                /* a body over the limit is read and dropped, never kept */
                if (!c->too_large &&
                    (c->refused || c->len + *upload_data_size > SK_TOWER_BODY_MAX)) {
                        c->too_large = true;
                        free(take_ptr(&c->body));
                        c->len = 0;
                }
                if (c->too_large) {
                        c->dropped += *upload_data_size;
                        if (c->dropped > DRAIN_MAX)
                                return MHD_NO; /* an endless body: close */
                }
                if (!c->too_large) {
                        char *b = realloc(c->body, c->len + *upload_data_size + 1);
                        if (!b)
                                return MHD_NO;
                        memcpy(b + c->len, upload_data, *upload_data_size);
                        c->len += *upload_data_size;
                        b[c->len] = '\0';
                        c->body = b;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (c->too_large && !c->refused)
                return too_large(h, mc);
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *query = NULL;
        if (!c->refused)
                c->refused =
                    sk_tower_target_parse(c->target, c->target_len, &path, &query, &c->refusal);
        if (c->refused)
                return refuse(h, mc, "bad-target", c->refused, c->refusal);
        /* a connection without its socket context (out of memory) verifies per request */
        sock *k = sock_of(mc);
        peer_cache own = {0};
        peer_cache *pc = k ? &k->peer : &own;
        bool peer_cert = has_peer_cert(mc);
        if (peer_cert)
                peer_check(h, tls_session(mc), pc);
        char addr[NI_MAXHOST] = "";
        remote_address(mc, addr, sizeof(addr));
        sk_tower_request req = {
            .method = method,
            .path = path,
            .query = query,
            .authorization = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization"),
            .body = c->body,
            .body_len = c->len,
            .has_peer_cert = peer_cert,
            .verify_peer = verify_peer,
            .peer_ctx = pc,
            .job = c->job,
            .remote_addr = addr[0] ? addr : NULL,
        };
        sk_tower_response resp;
        pthread_mutex_lock(&h->api_lock);
        sk_tower_api_handle(h->api, &req, &resp);
        pthread_mutex_unlock(&h->api_lock);
        peer_cache_clear(&own);
        if (resp.authenticated && !prove(mc, h, resp.identity)) {
                if (resp.job)
                        resp.job->free(resp.job);
                sk_tower_response_clear(&resp);
                _cleanup_error_ sk_error *e = NULL;
                int r = sk_error_set(&e, EMFILE,
                                     "this host or user holds all the connections it may (%u); "
                                     "close some",
                                     h->per_identity);
                return refuse(h, mc, "connection-limit", r, e);
        }
        if (resp.job) {
                if (c->job)
                        c->job->free(c->job);
                c->job = take_ptr(&resp.job);
                sk_tower_response_clear(&resp);
                pthread_mutex_lock(&h->lock);
                bool queued = queue_job(h, c);
                pthread_mutex_unlock(&h->lock);
                if (queued)
                        return MHD_YES;
                c->job->free(c->job);
                c->job = NULL;
                _cleanup_error_ sk_error *e = NULL;
                int r = sk_error_set(&e, EAGAIN,
                                     "the tower is busy with %u such requests; try again shortly",
                                     SK_TOWER_MATCH_QUEUE_MAX);
                return refuse(h, mc, "job-limit", r, e);
        }
        if (resp.wait_site) {
                int64_t now = mono_ms();
                if (!c->deadline)
                        c->deadline = now + resp.wait_ms;
                pthread_mutex_lock(&h->lock);
                bool hold = now < c->deadline && !h->stopping;
                if (hold) {
                        conn **b = bucket(h, resp.wait_site);
                        c->site = resp.wait_site;
                        c->prev = NULL;
                        c->next = *b;
                        if (*b)
                                (*b)->prev = c;
                        *b = c;
                        c->held = true;
                        h->n_held++;
                        MHD_suspend_connection(mc);
                }
                pthread_mutex_unlock(&h->lock);
                if (hold) {
                        sk_tower_response_clear(&resp);
                        return MHD_YES;
                }
                json_decref(resp.body);
                resp.body = NULL;
                resp.status = 204;
        }
        pthread_mutex_lock(&h->api_lock);
        sk_tower_api_count(h->api, resp.route, resp.status);
        pthread_mutex_unlock(&h->api_lock);
        sk_debug("%s %s -> %d", method, url, resp.status);
        enum MHD_Result r = send_response(mc, &resp);
        sk_tower_response_clear(&resp);
        return r;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        sk_tower_http *h = cls;
        conn *c = *con_cls;
        if (!c)
                return;
        if (c->held || c->stop_woken) {
                pthread_mutex_lock(&h->lock);
                unhold(h, c);
                if (c->stop_woken && --h->n_stop_pending == 0)
                        pthread_cond_broadcast(&h->tick);
                pthread_mutex_unlock(&h->lock);
        }
        if (c->job)
                c->job->free(c->job);
        free(c->body);
        free(c->target);
        sk_error_free(&c->refusal);
        free(c);
        *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        size_t n = strlen(msg);
        while (n && msg[n - 1] == '\n')
                msg[--n] = '\0';
        sk_debug("http: %s", msg);
}

int sk_tower_split_listen(const char *listen, char **host, char **port, sk_error **err)
{
        const char *colon = strrchr(listen, ':');
        if (!colon || !colon[1])
                return sk_error_set(err, EINVAL, "--listen must be ADDR:PORT, not '%s'", listen);
        const char *h = listen;
        size_t hl = (size_t)(colon - listen);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
                h++, hl -= 2;
        char *end;
        long pn = strtol(colon + 1, &end, 10);
        if (*end || pn < 0 || pn > 65535)
                return sk_error_set(err, EINVAL, "--listen: '%s' is not a port", colon + 1);
        *host = strndup(h, hl);
        *port = strdup(colon + 1);
        if (!*host || !*port) {
                free(*host);
                free(*port);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

int sk_tower_http_start(sk_tower_api *api, const sk_tower_http_opts *opts, sk_tower_http **out,
                        uint16_t *port, sk_error **err)
{
        _cleanup_free_ char *host = NULL, *portstr = NULL;
        int r = sk_tower_split_listen(opts->listen, &host, &portstr, err);
        if (r < 0)
                return r;
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
        struct addrinfo *ai = NULL;
        int gr = getaddrinfo(*host ? host : NULL, portstr, &hints, &ai);
        if (gr != 0)
                return sk_error_set(err, EINVAL, "--listen %s: %s", opts->listen, gai_strerror(gr));
        sk_tower_http *h = calloc(1, sizeof(*h));
        if (!h) {
                freeaddrinfo(ai);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        h->api = api;
        pthread_mutex_init(&h->api_lock, NULL);
        pthread_mutex_init(&h->lock, NULL);
        pthread_cond_init(&h->tick, NULL);
        for (size_t i = 0; i < SK_TOWER_JOB_LANES; i++)
                pthread_cond_init(&h->lanes[i].work, NULL);
        h->lanes[SK_TOWER_LANE_MATCH].max = SK_TOWER_MATCH_QUEUE_MAX;
        r = sk_pki_trust_new(opts->ca_pem, &h->trust, err);
        if (r < 0) {
                freeaddrinfo(ai);
                sk_tower_http_stop(h);
                return r;
        }
        unsigned threads = opts->threads ? opts->threads : SK_TOWER_HTTP_THREADS;
        unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        /* Every connected site holds a connection: as many as the descriptors allow, with
         * a reserve that strangers never get. */
        struct rlimit rl;
        unsigned limit = 1000;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur > 2 * RESERVED_FDS)
                limit = (unsigned)(rl.rlim_cur - RESERVED_FDS);
        unsigned reserve = opts->conn_reserve ? opts->conn_reserve : limit / 4;
        if (reserve >= limit)
                reserve = limit - 1;
        h->per_identity =
            opts->conn_per_identity ? opts->conn_per_identity : SK_TOWER_CONN_PER_IDENTITY;
        sk_admit_limits al = {.limit = limit,
                              .reserve = reserve,
                              .per_address = opts->conn_per_address ? opts->conn_per_address
                                                                    : SK_TOWER_CONN_PER_ADDRESS,
                              .per_identity = h->per_identity};
        h->admit = sk_admit_new(&al);
        if (!h->admit) {
                freeaddrinfo(ai);
                sk_tower_http_stop(h);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        unsigned header_timeout =
            opts->header_timeout_s ? opts->header_timeout_s : SK_TOWER_HEADER_TIMEOUT_S;
        sk_tower_api_set_hooks(api, on_site_changed, held_count, h);
        sk_tower_api_set_conn_stats(api, conn_stats);
        h->daemon = MHD_start_daemon(
            flags, 0, on_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
            MHD_OPTION_HTTPS_MEM_KEY, opts->key_pem, MHD_OPTION_HTTPS_MEM_CERT, opts->cert_pem,
            MHD_OPTION_HTTPS_MEM_TRUST, opts->ca_pem, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_HTTPS_PRIORITIES, SK_TLS_PRIORITY,
            MHD_OPTION_CONNECTION_TIMEOUT, header_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)POOL_SIZE, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_LISTEN_BACKLOG_SIZE,
            (unsigned)1024, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!h->daemon) {
                sk_tower_api_set_hooks(api, NULL, NULL, NULL);
                sk_tower_http_stop(h);
                return sk_error_set(err, EADDRINUSE, "cannot listen on %s", opts->listen);
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        *port = di ? di->port : 0;
        if (pthread_create(&h->timer, NULL, timer_main, h) != 0) {
                sk_tower_http_stop(h);
                return sk_error_set(err, EAGAIN, "cannot start the long-poll timer");
        }
        h->timer_started = true;
        for (size_t i = 0; i < SK_TOWER_JOB_LANES; i++) {
                lane_arg *a = malloc(sizeof(*a));
                if (a)
                        *a = (lane_arg){h, &h->lanes[i]};
                if (!a || pthread_create(&h->lanes[i].thread, NULL, worker_main, a) != 0) {
                        free(a);
                        sk_tower_http_stop(h);
                        return sk_error_set(err, EAGAIN, "cannot start the job workers");
                }
                h->lanes[i].started = true;
        }
        *out = h;
        return 0;
}

void sk_tower_http_stop(sk_tower_http *h)
{
        if (!h)
                return;
        /* no new connections; the listen socket is ours to close after the stop */
        MHD_socket listen_fd = h->daemon ? MHD_quiesce_daemon(h->daemon) : MHD_INVALID_SOCKET;
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_broadcast(&h->tick);
        for (size_t i = 0; i < SK_TOWER_JOB_LANES; i++)
                pthread_cond_signal(&h->lanes[i].work);
        pthread_mutex_unlock(&h->lock);
        if (h->timer_started)
                pthread_join(h->timer, NULL);
        for (size_t i = 0; i < SK_TOWER_JOB_LANES; i++)
                if (h->lanes[i].started)
                        pthread_join(h->lanes[i].thread, NULL);
        /* Held long-polls get their 204 before the server goes (for at most 2 s). */
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < N_BUCKETS; i++) {
                while (h->buckets[i]) {
                        conn *c = h->buckets[i];
                        c->stop_woken = true;
                        h->n_stop_pending++;
                        wake(h, c);
                }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        while (h->n_stop_pending > 0 && h->daemon)
                if (pthread_cond_timedwait(&h->tick, &h->lock, &until) != 0)
                        break;
        pthread_mutex_unlock(&h->lock);
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        if (listen_fd != MHD_INVALID_SOCKET)
                close(listen_fd);
        sk_tower_api_set_hooks(h->api, NULL, NULL, NULL);
        sk_tower_api_set_conn_stats(h->api, NULL);
        sk_admit_free(h->admit);
        pthread_cond_destroy(&h->tick);
        for (size_t i = 0; i < SK_TOWER_JOB_LANES; i++)
                pthread_cond_destroy(&h->lanes[i].work);
        pthread_mutex_destroy(&h->lock);
        pthread_mutex_destroy(&h->api_lock);
        sk_pki_trust_free(h->trust);
        free(h);
}

void sk_tower_http_refresh(sk_tower_http *h)
{
        _cleanup_error_ sk_error *e = NULL;
        pthread_mutex_lock(&h->api_lock);
        int r = sk_tower_sync_refresh(h->api, false, &e);
        pthread_mutex_unlock(&h->api_lock);
        if (r < 0)
                sk_errorf("site sync refresh failed: %s", sk_error_msg(e, -r));
}

unsigned long sk_tower_http_peer_checks(const sk_tower_http *h)
{
        return __atomic_load_n(&h->peer_checks, __ATOMIC_RELAXED);
}

void sk_tower_http_wake_site(sk_tower_http *h, int64_t site_id)
{
        on_site_changed(h, site_id);
}
