/* One raft connection over TLS: TCP, the GnuTLS handshake driven from libuv reads
 * (GnuTLS never touches the socket: its push queues uv_writes, its pull reads what the
 * last TCP read left), peer verification, the hello, then a pump between the TLS session
 * and our end of a socketpair whose other end raft reads and writes. */
#include <arpa/inet.h>
#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "site/raft_tls_int.h"

/* Stop reading one side while more than this waits to be written to the other. */
#define QUEUE_HIGH (4u << 20)
#define QUEUE_LOW  (1u << 20)
#define READ_CHUNK 65536

enum conn_state {
        C_CONNECTING, /* client: TCP connect in flight */
        C_HANDSHAKE,  /* TLS handshake */
        C_HELLO,      /* server: reading the dialler's hello */
        C_ACK,        /* client: waiting for the listener's ack */
        C_OPEN,       /* pumping */
        C_DRAINING,   /* one side ended: flushing the other before closing */
        C_CLOSING,
};

typedef struct sk_rtls_conn {
        sk_rtls *tr;
        struct sk_rtls_conn *prev, *next;
        enum conn_state state;
        bool client;
        char peer[SK_RTLS_ADDR_MAX + 16]; /* for logs */
        char peer_ip[SK_RTLS_ADDR_MAX];   /* without the port: refusal log limits */

        uv_tcp_t tcp;
        uv_connect_t connect_req;
        uv_shutdown_t shutdown_req;
        uv_timer_t timer;
        uv_pipe_t pump; /* our end of the socketpair */
        bool pump_init, tcp_paused, pump_paused, tcp_eof, handshaken;
        int handles; /* initialised handles whose close callback is still due */

        gnutls_session_t tls;
        uint8_t *in; /* ciphertext read from TCP, not yet pulled by GnuTLS */
        size_t in_len, in_off, in_cap;

        uint8_t hello[SK_RTLS_HELLO_HEADER + SK_RTLS_ADDR_MAX];
        size_t hello_len;
        raft_id peer_id;   /* client: the id dialled; server: the id the hello claims */
        int64_t cert_host; /* host id in the peer's verified certificate */
        bool anonymous;    /* server: the peer sent no certificate (site-local join only) */

        struct raft_uv_connect *req; /* client, until cb fired */
        raft_uv_connect_cb cb;

        char pbuf[READ_CHUNK]; /* plaintext read from raft's side */
} sk_rtls_conn;

struct wreq {
        uv_write_t req;
        sk_rtls_conn *c;
        char data[];
};

static void conn_close(sk_rtls_conn *c, int status);
static void conn_advance(sk_rtls_conn *c);
static void on_timeout(uv_timer_t *t);
static void conn_drain(sk_rtls_conn *c, uv_stream_t *towards);
static void on_pump_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_pump_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void conn_free(sk_rtls_conn *c)
{
        sk_rtls *tr = c->tr;
        if (c->prev)
                c->prev->next = c->next;
        else
                tr->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->tls)
                gnutls_deinit(c->tls);
        free(c->in);
        free(c);
        sk_rtls_maybe_closed(tr);
}

static void on_handle_closed(uv_handle_t *h)
{
        sk_rtls_conn *c = h->data;
        if (--c->handles == 0)
                conn_free(c);
}

/* Reports the outcome of a dial to raft, once. */
static void conn_report(sk_rtls_conn *c, uv_stream_t *stream, int status)
{
        struct raft_uv_connect *req = c->req;
        if (!req)
                return;
        c->req = NULL;
        c->cb(req, stream, status);
}

static void conn_close(sk_rtls_conn *c, int status)
{
        if (c->state == C_CLOSING)
                return;
        c->state = C_CLOSING;
        conn_report(c, NULL, status ? status : RAFT_NOCONNECTION);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        if (c->pump_init)
                uv_close((uv_handle_t *)&c->pump, on_handle_closed);
}

/* A warning the first time this peer address is refused for this reason in a while, then
 * debug: a misconfigured host or an intruder retries every second or so. */
static enum sk_log_level refusal_level(sk_rtls_conn *c, const char *msg)
{
        sk_rtls *tr = c->tr;
        uint64_t key = UINT64_C(1469598103934665603);
        for (const char *p = c->peer_ip; *p; p++)
                key = (key ^ (unsigned char)*p) * UINT64_C(1099511628211);
        for (const char *p = msg; *p; p++)
                key = (key ^ (unsigned char)*p) * UINT64_C(1099511628211);
        uint64_t now = uv_now(tr->loop);
        size_t oldest = 0;
        for (size_t i = 0; i < SK_ARRAY_SIZE(tr->quiet); i++) {
                if (tr->quiet[i].key == key && tr->quiet[i].at) {
                        if (now - tr->quiet[i].at < SK_RTLS_QUIET_MS)
                                return SK_LOG_DEBUG;
                        oldest = i;
                        break;
                }
                if (tr->quiet[i].at < tr->quiet[oldest].at)
                        oldest = i;
        }
        tr->quiet[oldest].key = key;
        tr->quiet[oldest].at = now ? now : 1;
        return SK_LOG_WARN;
}

/* We refuse the peer: logged, counted, told with a fatal alert, and closed once that alert
 * is out. */
static void conn_refuse(sk_rtls_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_refuse(sk_rtls_conn *c, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sk_log(refusal_level(c, msg), "raft-tls: refused %s %s: %s",
               c->client ? "server" : "client", c->peer, msg);
        c->tr->stats.refused++;
        if (c->handshaken)
                (void)gnutls_alert_send(c->tls, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
        conn_drain(c, (uv_stream_t *)&c->tcp);
}

/* The connection failed for another reason (peer down, peer refused us, I/O). */
static void conn_fail(sk_rtls_conn *c, enum sk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(sk_rtls_conn *c, enum sk_log_level level, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (level == SK_LOG_WARN)
                level = refusal_level(c, msg);
        sk_log(level, "raft-tls: lost %s %s: %s", c->client ? "server" : "client", c->peer, msg);
        conn_close(c, RAFT_NOCONNECTION);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        conn_close(req->data, 0);
}

/* One side ended cleanly: let what is queued towards the other side go, then close. */
static void conn_drain(sk_rtls_conn *c, uv_stream_t *towards)
{
        if (c->state == C_CLOSING || c->state == C_DRAINING)
                return;
        c->state = C_DRAINING;
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (c->pump_init)
                uv_read_stop((uv_stream_t *)&c->pump);
        uv_timer_start(&c->timer, on_timeout, SK_RAFT_TLS_HANDSHAKE_MS, 0);
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, towards, on_shutdown) < 0)
                conn_close(c, 0);
}

static void on_tcp_written(uv_write_t *req, int status)
{
        struct wreq *w = (struct wreq *)req;
        sk_rtls_conn *c = w->c;
        free(w);
        if (status < 0) {
                if (c->state != C_CLOSING)
                        conn_fail(c, SK_LOG_INFO, "send: %s", uv_strerror(status));
                return;
        }
        if (c->pump_paused && c->state == C_OPEN &&
            uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < QUEUE_LOW) {
                c->pump_paused = false;
                int r = uv_read_start((uv_stream_t *)&c->pump, on_pump_alloc, on_pump_read);
                if (r < 0)
                        conn_fail(c, SK_LOG_WARN, "raft side: %s", uv_strerror(r));
        }
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
        sk_rtls_conn *c = p;
        if (c->state == C_CLOSING || c->state == C_DRAINING)
                return (ssize_t)len; /* nobody reads it any more */
        struct wreq *w = malloc(sizeof(*w) + len);
        if (!w) {
                gnutls_transport_set_errno(c->tls, ENOMEM);
                return -1;
        }
        w->c = c;
        memcpy(w->data, data, len);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
        int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tcp_written);
        if (r < 0) {
                free(w);
                gnutls_transport_set_errno(c->tls, EPIPE);
                return -1;
        }
        return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
        sk_rtls_conn *c = p;
        size_t avail = c->in_len - c->in_off;
        if (avail == 0) {
                if (c->tcp_eof)
                        return 0;
                gnutls_transport_set_errno(c->tls, EAGAIN);
                return -1;
        }
        size_t n = len < avail ? len : avail;
        memcpy(data, c->in + c->in_off, n);
        c->in_off += n;
        if (c->in_off == c->in_len)
                c->in_off = c->in_len = 0;
        return (ssize_t)n;
}

static int conn_tls_setup(sk_rtls_conn *c)
{
        sk_rtls *tr = c->tr;
        unsigned flags = (c->client ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NONBLOCK;
        int r = gnutls_init(&c->tls, flags);
        if (r < 0) {
                c->tls = NULL;
                return r;
        }
        if ((r = gnutls_priority_set(c->tls, tr->prio)) < 0 ||
            (r = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, tr->cred)) < 0)
                return r;
        /* With the site API, a host that has no certificate yet may join (and only that:
         * conn_consume); without it, no certificate, no connection. */
        if (!c->client)
                gnutls_certificate_server_set_request(c->tls, tr->on_http ? GNUTLS_CERT_REQUEST
                                                                          : GNUTLS_CERT_REQUIRE);
        /* Our own timer bounds the handshake; GnuTLS has no clock in non-blocking use. */
        gnutls_handshake_set_timeout(c->tls, 0);
        gnutls_transport_set_ptr(c->tls, c);
        gnutls_transport_set_push_function(c->tls, tls_push);
        gnutls_transport_set_pull_function(c->tls, tls_pull);
        return 0;
}

/* Same CA, same site, and (dialling) the host we meant to reach. Both ends are hosts with
 * join certificates (clientAuth), so the pki check of a client certificate fits both. */
static int conn_verify(sk_rtls_conn *c)
{
        int64_t *host = &c->cert_host;
        sk_rtls *tr = c->tr;
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *uri = NULL;
        char site_ca[SK_PKI_FP_LEN] = "";
        int r = sk_pki_verify_peer_ca(c->tls, tr->ca_pem, &uri, site_ca, &err);
        if (r < 0) {
                conn_refuse(c, "peer certificate: %s", sk_error_msg(err, r));
                return r;
        }
        char leaf[SK_PKI_FP_LEN] = "";
        if (site_ca[0])
                sk_pki_peer_leaf_fp(c->tls, leaf);
        if (site_ca[0] && tr->is_retired_ca && tr->is_retired_ca(site_ca, leaf, tr->http_user)) {
                conn_refuse(c, "peer certificate is signed by a retired site CA (%.16s...)",
                            site_ca);
                return -EACCES;
        }
        int64_t site = 0;
        if (sk_pki_parse_host_uri(uri, &site, host) < 0) {
                conn_refuse(c, "certificate identity %s is not a skerry host", uri);
                return -EACCES;
        }
        if (site != tr->site_id) {
                conn_refuse(c, "certificate is for site %lld, this host is in site %lld",
                            (long long)site, (long long)tr->site_id);
                return -EACCES;
        }
        if (tr->is_denied && tr->is_denied(*host, tr->http_user)) {
                conn_refuse(c, "host %lld was removed from the site", (long long)*host);
                return -EACCES;
        }
        if (c->client && (uint64_t)*host != c->peer_id) {
                conn_refuse(c, "certificate is host %lld, raft server %llu was dialled",
                            (long long)*host, (unsigned long long)c->peer_id);
                return -EACCES;
        }
        return 0;
}

static int tls_send_all(sk_rtls_conn *c, const void *data, size_t len)
{
        const char *p = data;
        while (len > 0) {
                ssize_t n = gnutls_record_send(c->tls, p, len);
                if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                        continue; /* our push never blocks: only a retry is asked for */
                if (n < 0)
                        return (int)n;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static void on_pump_written(uv_write_t *req, int status)
{
        struct wreq *w = (struct wreq *)req;
        sk_rtls_conn *c = w->c;
        free(w);
        if (status < 0) {
                if (c->state != C_CLOSING)
                        conn_fail(c, SK_LOG_DEBUG, "raft side: %s", uv_strerror(status));
                return;
        }
        if (c->tcp_paused && c->state == C_OPEN &&
            uv_stream_get_write_queue_size((uv_stream_t *)&c->pump) < QUEUE_LOW) {
                c->tcp_paused = false;
                int r = uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read);
                if (r < 0) {
                        conn_fail(c, SK_LOG_WARN, "receive: %s", uv_strerror(r));
                        return;
                }
                conn_advance(c); /* records may wait in the ciphertext buffer */
        }
}

static int pump_write(sk_rtls_conn *c, const void *data, size_t len)
{
        struct wreq *w = malloc(sizeof(*w) + len);
        if (!w)
                return -ENOMEM;
        w->c = c;
        memcpy(w->data, data, len);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
        int r = uv_write(&w->req, (uv_stream_t *)&c->pump, &b, 1, on_pump_written);
        if (r < 0) {
                free(w);
                return r;
        }
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pump) > QUEUE_HIGH) {
                c->tcp_paused = true;
                uv_read_stop((uv_stream_t *)&c->tcp);
        }
        return 0;
}

static void on_pump_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        sk_rtls_conn *c = h->data;
        *buf = uv_buf_init(c->pbuf, sizeof(c->pbuf));
}

static void on_pump_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        sk_rtls_conn *c = s->data;
        if (c->state != C_OPEN)
                return;
        if (n == UV_EOF) {
                /* raft closed its end: say goodbye and flush before closing. */
                (void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
                conn_drain(c, (uv_stream_t *)&c->tcp);
                return;
        }
        if (n < 0) {
                conn_fail(c, SK_LOG_DEBUG, "raft side: %s", uv_strerror((int)n));
                return;
        }
        int r = tls_send_all(c, buf->base, (size_t)n);
        if (r < 0) {
                conn_fail(c, SK_LOG_INFO, "TLS send: %s", gnutls_strerror(r));
                return;
        }
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > QUEUE_HIGH) {
                c->pump_paused = true;
                uv_read_stop(s);
        }
}

static void free_raft_handle(uv_handle_t *h)
{
        raft_free(h);
}

/* The socketpair: our pump keeps one end, *peer_fd is the other (for raft, or the
 * site-local API). */
static int conn_open_pump(sk_rtls_conn *c, int *peer_fd)
{
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return -errno;
        int r = uv_pipe_init(c->tr->loop, &c->pump, 0);
        if (r < 0) {
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        c->pump.data = c;
        c->pump_init = true;
        c->handles++;
        r = uv_pipe_open(&c->pump, fds[1]);
        if (r < 0)
                close(fds[1]); /* not the pump's yet */
        else
                r = uv_read_start((uv_stream_t *)&c->pump, on_pump_alloc, on_pump_read);
        if (r < 0) {
                close(fds[0]);
                return r;
        }
        *peer_fd = fds[0];
        return 0;
}

/* raft's end as a handle allocated with raft_malloc (raft closes and frees it). */
static int conn_open_raft_pump(sk_rtls_conn *c, uv_stream_t **raft_stream)
{
        int fd = -1;
        int r = conn_open_pump(c, &fd);
        if (r < 0)
                return r;
        uv_pipe_t *p = raft_malloc(sizeof(*p));
        if (!p) {
                close(fd);
                return -ENOMEM;
        }
        r = uv_pipe_init(c->tr->loop, p, 0);
        if (r < 0) {
                raft_free(p);
                close(fd);
                return r;
        }
        r = uv_pipe_open(p, fd);
        if (r < 0) {
                close(fd);
                uv_close((uv_handle_t *)p, free_raft_handle);
                return r;
        }
        *raft_stream = (uv_stream_t *)p;
        return 0;
}

/* A verified peer speaks HTTP instead of the raft hello: hand the decrypted stream, with
 * the bytes read so far, to the site-local API. */
static bool looks_http(const uint8_t *p, size_t n)
{
        static const char *const methods[] = {"GET ", "POST", "PUT ", "DELE", "HEAD"};
        if (n < 4)
                return false;
        for (size_t i = 0; i < SK_ARRAY_SIZE(methods); i++)
                if (memcmp(p, methods[i], 4) == 0)
                        return true;
        return false;
}

static void conn_accept_http(sk_rtls_conn *c)
{
        sk_rtls *tr = c->tr;
        int fd = -1;
        int r = conn_open_pump(c, &fd);
        if (r < 0) {
                conn_fail(c, SK_LOG_WARN, "local socketpair: %s", strerror(-r));
                return;
        }
        c->state = C_OPEN;
        uv_timer_stop(&c->timer);
        r = pump_write(c, c->hello, c->hello_len);
        if (r < 0) {
                close(fd);
                conn_fail(c, SK_LOG_DEBUG, "site API side: %s", uv_strerror(r));
                return;
        }
        tr->stats.http++;
        snprintf(c->peer + strlen(c->peer), sizeof(c->peer) - strlen(c->peer), " (http, host %lld)",
                 (long long)c->cert_host);
        tr->on_http(fd, c->cert_host, tr->http_user);
}

/* A peer without a certificate: allowed at most SK_RTLS_ANON_MAX times a minute (the
 * join path is the one door open to anyone; keep it narrow), and only for the requests
 * anonymous_request names. */
static int conn_admit_anonymous(sk_rtls_conn *c)
{
        sk_rtls *tr = c->tr;
        uint64_t now = uv_now(tr->loop);
        if (now - tr->anon_window >= 60000) {
                tr->anon_window = now;
                tr->anon_count = 0;
        }
        if (++tr->anon_count > SK_RTLS_ANON_MAX) {
                conn_refuse(c, "too many connections without a certificate (%d a minute)",
                            SK_RTLS_ANON_MAX);
                return -EBUSY;
        }
        c->anonymous = true;
        c->cert_host = 0;
        c->state = C_HELLO;
        return 0;
}

/* The two requests a host without a certificate may make: read the CA it pins, and join. */
static bool anonymous_request(const uint8_t *p, size_t n)
{
        static const char *const allowed[] = {"GET /v1/site/ca ", "POST /v1/site/join "};
        for (size_t i = 0; i < SK_ARRAY_SIZE(allowed); i++)
                if (n >= strlen(allowed[i]) && memcmp(p, allowed[i], strlen(allowed[i])) == 0)
                        return true;
        return false;
}

/* The hello is complete: check it and hand the connection to raft. */
static void conn_accept_hello(sk_rtls_conn *c)
{
        int64_t cert_host = c->cert_host;
        sk_rtls *tr = c->tr;
        uint64_t v[3];
        memcpy(v, c->hello, sizeof(v));
        raft_id id = le64toh(v[1]);
        const char *addr = (const char *)c->hello + SK_RTLS_HELLO_HEADER;
        size_t alen = le64toh(v[2]);
        if (addr[alen - 1] != '\0' || strlen(addr) != alen - 1) {
                conn_refuse(c, "hello: address is not a string");
                return;
        }
        if ((uint64_t)cert_host != id) {
                conn_refuse(c, "hello claims raft server %llu, certificate is host %lld",
                            (unsigned long long)id, (long long)cert_host);
                return;
        }
        c->peer_id = id;
        snprintf(c->peer, sizeof(c->peer), "%.200s (server %llu)", addr, (unsigned long long)id);

        uv_stream_t *stream = NULL;
        int r = conn_open_raft_pump(c, &stream);
        if (r < 0) {
                conn_fail(c, SK_LOG_WARN, "local socketpair: %s", strerror(-r));
                return;
        }
        uint8_t ack = SK_RTLS_ACK;
        r = tls_send_all(c, &ack, 1);
        if (r < 0) {
                uv_close((uv_handle_t *)stream, free_raft_handle);
                conn_fail(c, SK_LOG_INFO, "TLS send: %s", gnutls_strerror(r));
                return;
        }
        c->state = C_OPEN;
        uv_timer_stop(&c->timer);
        tr->stats.accepted++;
        sk_debug("raft-tls: accepted %s", c->peer);
        tr->accept_cb(tr->t, id, addr, stream);
}

/* Plaintext arrived: hello, ack or raft's bytes, by state. */
static int conn_consume(sk_rtls_conn *c, const uint8_t *p, size_t n)
{
        while (n > 0 && c->state == C_HELLO) {
                size_t want = SK_RTLS_HELLO_HEADER;
                if (c->hello_len >= SK_RTLS_HELLO_HEADER) {
                        uint64_t v[3];
                        memcpy(v, c->hello, sizeof(v));
                        want += le64toh(v[2]);
                }
                size_t k = want - c->hello_len < n ? want - c->hello_len : n;
                memcpy(c->hello + c->hello_len, p, k);
                c->hello_len += k;
                p += k;
                n -= k;
                if (c->anonymous) {
                        /* both allowed request lines are shorter than a hello header */
                        if (c->hello_len < SK_RTLS_HELLO_HEADER)
                                continue;
                        if (!anonymous_request(c->hello, c->hello_len)) {
                                conn_refuse(c, "no certificate: only a site-local join is allowed");
                                return -EACCES;
                        }
                        conn_accept_http(c);
                        break;
                }
                if (c->tr->on_http && c->hello_len >= 4 &&
                    c->hello_len < SK_RTLS_HELLO_HEADER + 1 && looks_http(c->hello, c->hello_len)) {
                        if (c->hello_len < SK_RTLS_HELLO_HEADER && n > 0)
                                continue;
                        conn_accept_http(c);
                        break;
                }
                if (c->hello_len == SK_RTLS_HELLO_HEADER) {
                        uint64_t v[3];
                        memcpy(v, c->hello, sizeof(v));
                        uint64_t alen = le64toh(v[2]);
                        if (le64toh(v[0]) != SK_RTLS_PROTO) {
                                conn_refuse(c, "hello: not the skerry raft protocol");
                                return -EPROTO;
                        }
                        if (alen < 2 || alen > SK_RTLS_ADDR_MAX) {
                                conn_refuse(c, "hello: address length %llu out of range",
                                            (unsigned long long)alen);
                                return -EPROTO;
                        }
                } else if (c->hello_len == want) {
                        conn_accept_hello(c);
                }
        }
        if (n > 0 && c->state == C_ACK) {
                if (p[0] != SK_RTLS_ACK) {
                        conn_fail(c, SK_LOG_WARN, "bad acknowledgement from the listener");
                        return -EPROTO;
                }
                p++;
                n--;
                uv_stream_t *stream = NULL;
                int r = conn_open_raft_pump(c, &stream);
                if (r < 0) {
                        conn_fail(c, SK_LOG_WARN, "local socketpair: %s", strerror(-r));
                        return r;
                }
                c->state = C_OPEN;
                uv_timer_stop(&c->timer);
                c->tr->stats.connected++;
                sk_debug("raft-tls: connected to %s", c->peer);
                conn_report(c, stream, 0);
        }
        if (n > 0 && c->state == C_OPEN) {
                int r = pump_write(c, p, n);
                if (r < 0) {
                        conn_fail(c, SK_LOG_DEBUG, "raft side: %s", uv_strerror(r));
                        return r;
                }
        }
        return c->state >= C_DRAINING ? -ECONNABORTED : 0;
}

static void conn_send_hello(sk_rtls_conn *c)
{
        sk_rtls *tr = c->tr;
        size_t alen = strlen(tr->address) + 1;
        uint8_t hello[SK_RTLS_HELLO_HEADER + SK_RTLS_ADDR_MAX];
        uint64_t v[3] = {htole64(SK_RTLS_PROTO), htole64(tr->id), htole64(alen)};
        memcpy(hello, v, sizeof(v));
        memcpy(hello + SK_RTLS_HELLO_HEADER, tr->address, alen);
        int r = tls_send_all(c, hello, SK_RTLS_HELLO_HEADER + alen);
        if (r < 0) {
                conn_fail(c, SK_LOG_INFO, "TLS send: %s", gnutls_strerror(r));
                return;
        }
        c->state = C_ACK;
}

/* Runs the session as far as the ciphertext received so far allows. */
static void conn_advance(sk_rtls_conn *c)
{
        if (c->state == C_HANDSHAKE) {
                int r = gnutls_handshake(c->tls);
                if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                        return;
                if (r < 0) {
                        if (c->client) {
                                conn_fail(c, SK_LOG_WARN, "TLS handshake: %s", gnutls_strerror(r));
                                return;
                        }
                        (void)gnutls_alert_send_appropriate(c->tls, r);
                        conn_refuse(c, "TLS handshake: %s", gnutls_strerror(r));
                        return;
                }
                c->handshaken = true;
                unsigned n_certs = 0;
                if (!c->client && c->tr->on_http &&
                    !gnutls_certificate_get_peers(c->tls, &n_certs)) {
                        if (conn_admit_anonymous(c) < 0)
                                return;
                } else if (conn_verify(c) < 0) {
                        return;
                }
                if (c->client)
                        conn_send_hello(c);
                else
                        c->state = C_HELLO;
        }
        uint8_t buf[16384];
        while (c->state == C_HELLO || c->state == C_ACK || c->state == C_OPEN) {
                if (c->tcp_paused)
                        return;
                ssize_t n = gnutls_record_recv(c->tls, buf, sizeof(buf));
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                        return;
                if (n == 0 || (n == GNUTLS_E_PREMATURE_TERMINATION && c->state == C_OPEN)) {
                        if (c->state == C_OPEN) {
                                conn_drain(c, (uv_stream_t *)&c->pump);
                                return;
                        }
                        conn_fail(c, SK_LOG_WARN,
                                  "peer closed before the connection "
                                  "was set up (refused by the peer?)");
                        return;
                }
                if (n < 0) {
                        if (c->state == C_ACK && n == GNUTLS_E_FATAL_ALERT_RECEIVED) {
                                conn_fail(c, SK_LOG_WARN, "refused by the peer: %s",
                                          gnutls_alert_get_name(gnutls_alert_get(c->tls)));
                                return;
                        }
                        if (c->state == C_ACK) {
                                conn_fail(c, SK_LOG_WARN, "refused by the peer: %s",
                                          gnutls_strerror((int)n));
                                return;
                        }
                        if (c->state == C_HELLO) {
                                conn_refuse(c, "hello: %s", gnutls_strerror((int)n));
                                return;
                        }
                        conn_fail(c, SK_LOG_INFO, "TLS receive: %s", gnutls_strerror((int)n));
                        return;
                }
                if (conn_consume(c, buf, (size_t)n) < 0)
                        return;
        }
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        sk_rtls_conn *c = h->data;
        if (c->in_off > 0) {
                memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
                c->in_len -= c->in_off;
                c->in_off = 0;
        }
        if (c->in_cap - c->in_len < READ_CHUNK) {
                uint8_t *p = realloc(c->in, c->in_len + READ_CHUNK);
                if (!p) {
                        *buf = uv_buf_init(NULL, 0); /* the read fails with UV_ENOBUFS */
                        return;
                }
                c->in = p;
                c->in_cap = c->in_len + READ_CHUNK;
        }
        *buf = uv_buf_init((char *)c->in + c->in_len, READ_CHUNK);
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        sk_rtls_conn *c = s->data;
        if (c->state == C_CLOSING || c->state == C_DRAINING)
                return;
        if (n == UV_EOF) {
                c->tcp_eof = true;
                uv_read_stop(s);
        } else if (n < 0) {
                if (c->state == C_OPEN) {
                        conn_fail(c, SK_LOG_INFO, "receive: %s", uv_strerror((int)n));
                        return;
                }
                conn_fail(c, SK_LOG_WARN, "receive during setup: %s", uv_strerror((int)n));
                return;
        } else {
                c->in_len += (size_t)n;
        }
        conn_advance(c);
}

static void on_timeout(uv_timer_t *t)
{
        sk_rtls_conn *c = t->data;
        if (c->state == C_CONNECTING) {
                conn_fail(c, SK_LOG_DEBUG, "connect timed out");
                return;
        }
        if (c->state == C_DRAINING) {
                conn_close(c, 0); /* the peer stopped reading */
                return;
        }
        conn_refuse(c, "no TLS handshake and hello within %d ms", SK_RAFT_TLS_HANDSHAKE_MS);
}

static sk_rtls_conn *conn_new(sk_rtls *tr, bool client)
{
        sk_rtls_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->tr = tr;
        c->client = client;
        c->next = tr->conns;
        if (tr->conns)
                tr->conns->prev = c;
        tr->conns = c;
        /* Neither init fails for a valid loop. */
        uv_tcp_init(tr->loop, &c->tcp);
        uv_timer_init(tr->loop, &c->timer);
        c->tcp.data = c->timer.data = c;
        c->handles = 2;
        uv_timer_start(&c->timer, on_timeout, SK_RAFT_TLS_HANDSHAKE_MS, 0);
        return c;
}

static void conn_start_tls(sk_rtls_conn *c)
{
        int r = conn_tls_setup(c);
        if (r < 0) {
                conn_fail(c, SK_LOG_ERROR, "TLS setup: %s", gnutls_strerror(r));
                return;
        }
        c->state = C_HANDSHAKE;
        r = uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read);
        if (r < 0) {
                conn_fail(c, SK_LOG_WARN, "read: %s", uv_strerror(r));
                return;
        }
        if (c->client)
                conn_advance(c); /* sends the ClientHello */
}

void sk_rtls_conn_accept(sk_rtls *tr)
{
        sk_rtls_conn *c = conn_new(tr, false);
        if (!c) {
                sk_errorf("raft-tls: out of memory accepting a connection");
                return;
        }
        int r = uv_accept((uv_stream_t *)&tr->listener, (uv_stream_t *)&c->tcp);
        if (r < 0) {
                sk_warn("raft-tls: accept: %s", uv_strerror(r));
                conn_close(c, 0);
                return;
        }
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        strcpy(c->peer, "?");
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
                char ip[INET6_ADDRSTRLEN] = "?";
                int port = 0;
                if (ss.ss_family == AF_INET6) {
                        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                        uv_ip6_name(a, ip, sizeof(ip));
                        port = ntohs(a->sin6_port);
                } else {
                        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                        uv_ip4_name(a, ip, sizeof(ip));
                        port = ntohs(a->sin_port);
                }
                snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
                snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", ip);
        }
        conn_start_tls(c);
}

static void on_connected(uv_connect_t *req, int status)
{
        sk_rtls_conn *c = req->data;
        if (c->state == C_CLOSING)
                return;
        if (status < 0) {
                conn_fail(c, SK_LOG_DEBUG, "connect: %s", uv_strerror(status));
                return;
        }
        conn_start_tls(c);
}

int sk_rtls_conn_connect(sk_rtls *tr, struct raft_uv_connect *req, raft_id id, const char *address,
                         raft_uv_connect_cb cb)
{
        struct sockaddr_storage ss;
        if (sk_rtls_parse_addr(address, &ss) < 0) {
                snprintf(tr->t->errmsg, sizeof(tr->t->errmsg),
                         "raft server %llu: address \"%s\" is not IP:port", (unsigned long long)id,
                         address);
                return RAFT_NOCONNECTION;
        }
        sk_rtls_conn *c = conn_new(tr, true);
        if (!c)
                return RAFT_NOMEM;
        c->peer_id = id;
        snprintf(c->peer, sizeof(c->peer), "%.200s (server %llu)", address, (unsigned long long)id);
        snprintf(c->peer_ip, sizeof(c->peer_ip), "%.200s", address);
        c->connect_req.data = c;
        int r = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&ss, on_connected);
        if (r < 0) {
                snprintf(tr->t->errmsg, sizeof(tr->t->errmsg), "connect to %.200s: %s", c->peer,
                         uv_strerror(r));
                conn_close(c, 0); /* no request yet: raft hears it from the return value */
                return RAFT_NOCONNECTION;
        }
        c->req = req;
        c->cb = cb;
        return 0;
}

void sk_rtls_conn_close_all(sk_rtls *tr)
{
        for (sk_rtls_conn *c = tr->conns; c; c = c->next)
                conn_close(c, RAFT_CANCELED);
}
