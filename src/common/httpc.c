#include "common/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/httpparse.h"
#include "common/pki.h"

struct sk_httpc {
        char *base_url;  /* as given, for messages */
        char *authority; /* host[:port] of base_url, for the Host header */
        char *host;      /* for connecting, SNI and the certificate's name */
        char *port;
        char *prefix; /* the path of base_url, put before each request's path */
        char *unix_socket;
        bool tls;
        char *ca_file, *cert_file, *key_file;
        char *auth_header;
        long connect_timeout_ms;
        int (*verify)(void *session, void *user, char *why, size_t why_len);
        void *verify_user;
        bool tls13_only;
        gnutls_certificate_credentials_t cred; /* loaded at the first TLS connection */
        int fd;                                /* the kept-alive connection, or -1 */
        gnutls_session_t session;
        int (*abort_check)(void *user);
        void *abort_user;
        int64_t last_check_ms;
        char why[512]; /* what went wrong, for the error message */
        char rbuf[16384];
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits "scheme://authority/prefix". */
static int parse_base(sk_httpc *c, const char *url)
{
        const char *rest;
        if (strncmp(url, "https://", 8) == 0) {
                c->tls = true;
                rest = url + 8;
        } else if (strncmp(url, "http://", 7) == 0) {
                rest = url + 7;
        } else {
                return -EINVAL;
        }
        size_t alen = strcspn(rest, "/?#");
        if (alen == 0)
                return -EINVAL;
        c->authority = strndup(rest, alen);
        c->prefix = strdup(rest + alen);
        if (!c->authority || !c->prefix)
                return -ENOMEM;
        const char *a = c->authority, *colon;
        if (a[0] == '[') { /* [v6]:port */
                const char *close = strchr(a, ']');
                if (!close)
                        return -EINVAL;
                c->host = strndup(a + 1, (size_t)(close - a - 1));
                colon = close[1] == ':' ? close + 1 : NULL;
        } else {
                colon = strrchr(a, ':');
                c->host = colon ? strndup(a, (size_t)(colon - a)) : strdup(a);
        }
        c->port = strdup(colon && colon[1] ? colon + 1 : c->tls ? "443" : "80");
        return c->host && c->port ? 0 : -ENOMEM;
}

static char *dup_or_null(const char *s, bool *failed)
{
        char *d = s ? strdup(s) : NULL;
        if (s && !d)
                *failed = true;
        return d;
}

int sk_httpc_new(const sk_httpc_opts *opts, sk_httpc **out, sk_error **err)
{
        sk_httpc *c = calloc(1, sizeof(*c));
        if (!c)
                return sk_error_set(err, ENOMEM, "out of memory");
        c->fd = -1;
        bool failed = false;
        c->base_url = dup_or_null(opts->base_url, &failed);
        c->unix_socket = dup_or_null(opts->unix_socket, &failed);
        c->ca_file = dup_or_null(opts->ca_file, &failed);
        c->cert_file = dup_or_null(opts->cert_file, &failed);
        c->key_file = dup_or_null(opts->key_file, &failed);
        if (opts->token &&
            asprintf(&c->auth_header, "Authorization: Bearer %s\r\n", opts->token) < 0) {
                c->auth_header = NULL;
                failed = true;
        }
        c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
        c->verify = opts->verify;
        c->verify_user = opts->verify_user;
        c->tls13_only = opts->tls13_only;
        int r = failed || !c->base_url ? -ENOMEM : parse_base(c, c->base_url);
        if (r < 0) {
                sk_httpc_free(c);
                return r == -ENOMEM
                           ? sk_error_set(err, ENOMEM, "out of memory")
                           : sk_error_set(err, EINVAL, "%s: not an http(s) URL", opts->base_url);
        }
        *out = c;
        return 0;
}

static void conn_close(sk_httpc *c)
{
        if (c->session) {
                gnutls_deinit(c->session);
                c->session = NULL;
        }
        if (c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
        }
}

void sk_httpc_free(sk_httpc *c)
{
        if (!c)
                return;
        conn_close(c);
        if (c->cred)
                gnutls_certificate_free_credentials(c->cred);
        if (c->auth_header) /* holds a token */
                explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
        free(c->base_url);
        free(c->authority);
        free(c->host);
        free(c->port);
        free(c->prefix);
        free(c->unix_socket);
        free(c->ca_file);
        free(c->cert_file);
        free(c->key_file);
        free(c);
}

void sk_httpc_set_abort(sk_httpc *c, int (*check)(void *user), void *user)
{
        c->abort_check = check;
        c->abort_user = user;
}

/* Waits until the connection is ready for events, asking the abort check about once a
 * second. deadline 0: none. */
static int check_abort(sk_httpc *c, int64_t now)
{
        if (!c->abort_check || now - c->last_check_ms < 1000)
                return 0;
        c->last_check_ms = now;
        if (!c->abort_check(c->abort_user))
                return 0;
        snprintf(c->why, sizeof(c->why), "stopped");
        return -ECANCELED;
}

static int wait_io(sk_httpc *c, short events, int64_t deadline)
{
        for (;;) {
                int64_t now = now_ms();
                if (check_abort(c, now) < 0)
                        return -ECANCELED;
                int slice = 1000;
                if (deadline) {
                        if (now >= deadline) {
                                snprintf(c->why, sizeof(c->why), "timed out");
                                return -ETIMEDOUT;
                        }
                        if (deadline - now < slice)
                                slice = (int)(deadline - now);
                }
                struct pollfd pfd = {.fd = c->fd, .events = events};
                int r = poll(&pfd, 1, slice);
                if (r > 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return -errno;
        }
}

static int connect_fd(sk_httpc *c, int fd, const struct sockaddr *addr, socklen_t len,
                      int64_t deadline)
{
        c->fd = fd;
        if (connect(fd, addr, len) == 0)
                return 0;
        if (errno != EINPROGRESS && errno != EAGAIN) {
                int e = errno;
                snprintf(c->why, sizeof(c->why), "cannot connect: %s", strerror(e));
                return -e;
        }
        int r = wait_io(c, POLLOUT, deadline);
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        snprintf(c->why, sizeof(c->why), "connection timed out");
                return r;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
                snprintf(c->why, sizeof(c->why), "cannot connect: %s", strerror(soerr));
                return -soerr;
        }
        return 0;
}

static int unix_connect(sk_httpc *c, int64_t deadline)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(c->unix_socket) >= sizeof(sa.sun_path)) {
                snprintf(c->why, sizeof(c->why), "%s: path too long", c->unix_socket);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, c->unix_socket);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int r = connect_fd(c, fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
        if (r < 0) {
                size_t n = strlen(c->why);
                snprintf(c->why + n, sizeof(c->why) - n, " (%s)", c->unix_socket);
                conn_close(c);
        }
        return r;
}

static int tcp_connect(sk_httpc *c, int64_t deadline)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(c->host, c->port, &hints, &res);
        if (g) {
                snprintf(c->why, sizeof(c->why), "cannot resolve %s: %s", c->host, gai_strerror(g));
                return -EHOSTUNREACH;
        }
        int r = -ECONNREFUSED;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        continue;
                r = connect_fd(c, fd, ai->ai_addr, ai->ai_addrlen, deadline);
                if (r == 0)
                        break;
                conn_close(c);
                if (r == -ECANCELED || r == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        if (r == 0) {
                int one = 1;
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        }
        return r;
}

/* The reason of a failed TLS call, with the alert the server sent if any. */
static void tls_reason(sk_httpc *c, const char *what, int r)
{
        const char *alert = NULL;
        if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
                alert = gnutls_alert_get_name(gnutls_alert_get(c->session));
        if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
                gnutls_datum_t out = {0};
                unsigned status = gnutls_session_get_verify_cert_status(c->session);
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
                snprintf(c->why, sizeof(c->why), "%s: the server's certificate is not trusted: %s",
                         what, out.data ? (char *)out.data : "");
                gnutls_free(out.data);
                return;
        }
        snprintf(c->why, sizeof(c->why), "%s: %s%s%s%s", what, gnutls_strerror(r),
                 alert ? " (" : "", alert ? alert : "", alert ? ")" : "");
}

static int load_credentials(sk_httpc *c)
{
        if (c->cred)
                return 0;
        gnutls_certificate_credentials_t cred;
        if (gnutls_certificate_allocate_credentials(&cred) < 0) {
                snprintf(c->why, sizeof(c->why), "out of memory");
                return -ENOMEM;
        }
        int r = 0;
        if (c->verify) {
                /* the check given judges the server: no trust store */
        } else if (c->ca_file) {
                r = gnutls_certificate_set_x509_trust_file(cred, c->ca_file, GNUTLS_X509_FMT_PEM);
                if (r == 0)
                        r = GNUTLS_E_NO_CERTIFICATE_FOUND;
                if (r < 0)
                        snprintf(c->why, sizeof(c->why), "%s: no CA certificate to trust (%s)",
                                 c->ca_file, gnutls_strerror(r));
        } else {
                r = gnutls_certificate_set_x509_system_trust(cred);
                if (r < 0)
                        snprintf(c->why, sizeof(c->why), "the system's CA certificates: %s",
                                 gnutls_strerror(r));
        }
        if (r >= 0 && c->cert_file) {
                r = gnutls_certificate_set_x509_key_file(cred, c->cert_file,
                                                         c->key_file ? c->key_file : c->cert_file,
                                                         GNUTLS_X509_FMT_PEM);
                if (r < 0)
                        snprintf(c->why, sizeof(c->why), "client certificate %s: %s", c->cert_file,
                                 gnutls_strerror(r));
        }
        if (r < 0) {
                gnutls_certificate_free_credentials(cred);
                return -EINVAL;
        }
        c->cred = cred;
        return 0;
}

static bool is_ip_literal(const char *host)
{
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int tls_handshake(sk_httpc *c, int64_t deadline)
{
        int r = load_credentials(c);
        if (r < 0)
                return r;
        if (gnutls_init(&c->session, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0) {
                c->session = NULL;
                return -ENOMEM;
        }
        gnutls_session_t s = c->session;
        /* The project's one priority string (pki.h); the site API speaks TLS 1.3 alone. */
        const char *priority = c->tls13_only ? SK_TLS_PRIORITY ":-VERS-TLS1.2" : SK_TLS_PRIORITY;
        if (gnutls_priority_set_direct(s, priority, NULL) < 0 ||
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0) {
                snprintf(c->why, sizeof(c->why), "cannot set up a TLS session");
                return -ENOMEM;
        }
        if (!c->unix_socket && !is_ip_literal(c->host))
                gnutls_server_name_set(s, GNUTLS_NAME_DNS, c->host, strlen(c->host));
        if (!c->verify)
                gnutls_session_set_verify_cert(s, c->host, 0);
        gnutls_transport_set_int(s, c->fd);
        while ((r = gnutls_handshake(s)) < 0) {
                if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r)) {
                        int w =
                            wait_io(c, gnutls_record_get_direction(s) ? POLLOUT : POLLIN, deadline);
                        if (w < 0)
                                return w;
                        continue;
                }
                tls_reason(c, "TLS handshake", r);
                return -ECONNREFUSED;
        }
        if (c->verify) {
                c->why[0] = '\0';
                if (c->verify(s, c->verify_user, c->why, sizeof(c->why)) != 0) {
                        if (!c->why[0])
                                snprintf(c->why, sizeof(c->why), "the server was refused");
                        return -EACCES;
                }
        }
        return 0;
}

static int conn_open(sk_httpc *c, int64_t deadline)
{
        int64_t connect_deadline = now_ms() + c->connect_timeout_ms;
        if (deadline && deadline < connect_deadline)
                connect_deadline = deadline;
        int r =
            c->unix_socket ? unix_connect(c, connect_deadline) : tcp_connect(c, connect_deadline);
        if (r == 0 && c->tls)
                r = tls_handshake(c, connect_deadline);
        if (r < 0)
                conn_close(c);
        return r;
}

/* A kept-alive connection the server has closed (or sent something unasked on). */
static bool conn_stale(sk_httpc *c)
{
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
                return false;
        if (pfd.revents & (POLLERR | POLLHUP))
                return true;
        char b[1];
        if (c->session) /* may be a TLS 1.3 session ticket: that leaves nothing to read */
                return gnutls_record_recv(c->session, b, 1) != GNUTLS_E_AGAIN;
        return !(recv(c->fd, b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN);
}

static int conn_write(sk_httpc *c, const char *p, size_t n, int64_t deadline)
{
        while (n > 0) {
                ssize_t k;
                if (c->session) {
                        k = gnutls_record_send(c->session, p, n);
                        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
                                k = -EAGAIN;
                        else if (k < 0) {
                                tls_reason(c, "TLS send", (int)k);
                                return -ECONNRESET;
                        }
                } else {
                        k = send(c->fd, p, n, MSG_NOSIGNAL);
                        if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                int e = errno;
                                snprintf(c->why, sizeof(c->why), "send: %s", strerror(e));
                                return -e;
                        }
                        if (k < 0)
                                k = -EAGAIN;
                }
                if (k == -EAGAIN) {
                        int r = wait_io(c, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Returns bytes read, 0 at the end of the connection, negative on failure. */
static ssize_t conn_read(sk_httpc *c, char *buf, size_t n, int64_t deadline)
{
        for (;;) {
                ssize_t k;
                short dir = POLLIN;
                if (c->session) {
                        k = gnutls_record_recv(c->session, buf, n);
                        if (k >= 0)
                                return k;
                        if (k == GNUTLS_E_PREMATURE_TERMINATION)
                                return 0; /* closed without close_notify: common, harmless */
                        if (k != GNUTLS_E_AGAIN && k != GNUTLS_E_INTERRUPTED &&
                            gnutls_error_is_fatal((int)k)) {
                                tls_reason(c, "TLS receive", (int)k);
                                return -ECONNRESET;
                        }
                        if (gnutls_record_get_direction(c->session))
                                dir = POLLOUT;
                        /* A warning alert or a non-fatal error: try again. */
                        if (k != GNUTLS_E_AGAIN && k != GNUTLS_E_INTERRUPTED)
                                continue;
                } else {
                        k = recv(c->fd, buf, n, 0);
                        if (k >= 0)
                                return k;
                        if (errno != EAGAIN && errno != EINTR) {
                                int e = errno;
                                snprintf(c->why, sizeof(c->why), "receive: %s", strerror(e));
                                return -e;
                        }
                }
                int r = wait_io(c, dir, deadline);
                if (r < 0)
                        return r;
        }
}

typedef struct exchange {
        const char *method, *path, *body, *content_type;
        size_t body_len;
        sk_http_body_fn on_body;
        void *user;
        long status;
        bool got_bytes; /* something of a response arrived */
} exchange;

static char *request_text(sk_httpc *c, const exchange *x, size_t *len)
{
        bool needs_length = x->body || strcmp(x->method, "POST") == 0 ||
                            strcmp(x->method, "PUT") == 0 || strcmp(x->method, "PATCH") == 0;
        char *head = NULL;
        char type[256] = "", length[48] = "";
        if (x->body)
                snprintf(type, sizeof(type), "Content-Type: %s\r\n",
                         x->content_type ? x->content_type : "application/json");
        if (needs_length)
                snprintf(length, sizeof(length), "Content-Length: %zu\r\n",
                         x->body ? x->body_len : 0);
        int n = asprintf(&head, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: skerry\r\n%s%s%s\r\n",
                         x->method, c->prefix, x->path, c->authority,
                         c->auth_header ? c->auth_header : "", type, length);
        if (n < 0)
                return NULL;
        if (!x->body || !x->body_len) {
                *len = (size_t)n;
                return head;
        }
        char *all = realloc(head, (size_t)n + x->body_len);
        if (!all) {
                free(head);
                return NULL;
        }
        memcpy(all + n, x->body, x->body_len);
        *len = (size_t)n + x->body_len;
        return all;
}

static int read_response(sk_httpc *c, sk_http_parser *p, exchange *x, int64_t deadline)
{
        for (;;) {
                ssize_t k = conn_read(c, c->rbuf, sizeof(c->rbuf), deadline);
                if (k < 0)
                        return (int)k;
                if (k == 0) {
                        if (sk_http_parser_eof(p) == 0)
                                return 0;
                        snprintf(c->why, sizeof(c->why), "the server closed the connection %s",
                                 x->got_bytes ? "in the middle of its response"
                                              : "without a response");
                        return -ECONNRESET;
                }
                x->got_bytes = true;
                if (check_abort(c, now_ms()) < 0) /* a stream that never pauses */
                        return -ECANCELED;
                ssize_t used = sk_http_parser_feed(p, c->rbuf, (size_t)k);
                if (sk_http_parser_has_status(p))
                        x->status = p->status;
                if (used == -ECANCELED)
                        return -ECANCELED;
                if (used < 0) {
                        snprintf(c->why, sizeof(c->why), "malformed HTTP response");
                        return -EPROTO;
                }
                if (sk_http_parser_done(p)) {
                        if (used < k) /* more than was asked for: do not trust what follows */
                                p->close = true;
                        return 0;
                }
        }
}

/* Sends the request and reads the response, once more on a fresh connection when a
 * kept-alive one turns out closed before any answer (as servers close idle ones). */
static int exchange_run(sk_httpc *c, exchange *x, int64_t deadline)
{
        size_t len = 0;
        _cleanup_free_ char *text = request_text(c, x, &len);
        if (!text) {
                snprintf(c->why, sizeof(c->why), "out of memory");
                return -ENOMEM;
        }
        c->last_check_ms = 0;
        c->why[0] = '\0';
        for (int attempt = 0;; attempt++) {
                bool reused = c->fd >= 0;
                if (reused && conn_stale(c)) {
                        conn_close(c);
                        reused = false;
                }
                int r = reused ? 0 : conn_open(c, deadline);
                if (r < 0)
                        return r;
                sk_http_parser p;
                sk_http_parser_init(&p, strcmp(x->method, "HEAD") == 0, x->on_body, x->user);
                x->got_bytes = false;
                x->status = 0;
                r = conn_write(c, text, len, deadline);
                if (r == 0)
                        r = read_response(c, &p, x, deadline);
                if (r < 0 || p.close)
                        conn_close(c);
                if (r < 0 && reused && attempt == 0 && !x->got_bytes && r != -ECANCELED &&
                    r != -ETIMEDOUT)
                        continue;
                return r;
        }
}

struct growbuf {
        char *data;
        size_t len, cap;
        bool failed;
};

static int collect(const char *data, size_t n, void *user)
{
        struct growbuf *b = user;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 1024;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->data, cap);
                if (!p) {
                        b->failed = true;
                        return -1;
                }
                b->data = p;
                b->cap = cap;
        }
        memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

static int transport_error(int r, int other)
{
        switch (r) {
        case -ECANCELED:
        case -ETIMEDOUT:
        case -EACCES:
        case -ENOMEM:
                return -r;
        default:
                return other;
        }
}

int sk_httpc_request(sk_httpc *c, const char *method, const char *path, const char *body,
                     size_t body_len, const char *content_type, long timeout_ms,
                     sk_http_response *resp, sk_error **err)
{
        memset(resp, 0, sizeof(*resp));
        struct growbuf b = {0};
        exchange x = {.method = method,
                      .path = path,
                      .body = body,
                      .body_len = body_len,
                      .content_type = content_type,
                      .on_body = collect,
                      .user = &b};
        int r = exchange_run(c, &x, timeout_ms > 0 ? now_ms() + timeout_ms : 0);
        if (b.failed) {
                r = -ENOMEM;
                snprintf(c->why, sizeof(c->why), "out of memory");
        }
        if (r < 0) {
                free(b.data);
                return sk_error_set(err, transport_error(r, ECONNREFUSED), "%s %s%s: %s", method,
                                    c->base_url, path, c->why[0] ? c->why : strerror(-r));
        }
        resp->status = x.status;
        resp->body = b.data ? b.data : strdup("");
        resp->len = b.len;
        return resp->body ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

struct stream_ctx {
        sk_httpc_data_fn fn;
        void *user;
        bool stopped; /* fn asked to stop: not a failure */
};

static int stream_cb(const char *data, size_t n, void *user)
{
        struct stream_ctx *s = user;
        if (s->fn(data, n, s->user) == 0)
                return 0;
        s->stopped = true;
        return 1;
}

int sk_httpc_stream(sk_httpc *c, const char *method, const char *path, sk_httpc_data_fn on_data,
                    void *user, long *status, sk_error **err)
{
        struct stream_ctx s = {on_data, user, false};
        exchange x = {.method = method, .path = path, .on_body = stream_cb, .user = &s};
        int r = exchange_run(c, &x, 0);
        if (status)
                *status = x.status;
        if (s.stopped) {
                conn_close(c); /* the rest of the stream is not read */
                return 0;
        }
        if (r == -ECANCELED)
                return sk_error_set(err, ECANCELED, "%s %s%s: stopped", method, c->base_url, path);
        if (r < 0)
                return sk_error_set(err, transport_error(r, ECONNRESET), "%s %s%s: %s", method,
                                    c->base_url, path, c->why[0] ? c->why : strerror(-r));
        return 0;
}

void sk_http_response_free(sk_http_response *r)
{
        free(r->body);
        r->body = NULL;
        r->len = 0;
}

char *sk_url_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out = malloc(n * 3 + 1), *o = out;
        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
                        *o++ = (char)*p;
                } else {
                        *o++ = '%';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 15];
                }
        }
        *o = '\0';
        return out;
}
