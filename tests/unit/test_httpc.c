/* The HTTP client against a small HTTP/1.1 server run by the test itself: plain TCP on
 * loopback, a unix socket, and TLS (GnuTLS, certificates from our own CA code). */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "common/pki.h"

enum mode { PLAIN, UNIX, TLS, TLS_REQUIRE };

/* Serves one connection at a time. Answers a request with its method and body length,
 * except for a few paths (reply()). */
struct server {
        enum mode mode;
        int listen_fd;
        int port;
        char dir[64];
        char sock_path[96];
        pthread_t thread;
        char seen[16][64]; /* "METHOD PATH LEN" of each request */
        int n_seen;
        int n_conns; /* connections accepted */
        gnutls_certificate_credentials_t cred;
        char ca_file[128], other_ca_file[128], cert_file[128], key_file[128];
};

struct sconn {
        int fd;
        gnutls_session_t tls;
};

static int s_write(struct sconn *c, const char *b)
{
        size_t n = strlen(b);
        ssize_t k = c->tls ? gnutls_record_send(c->tls, b, n) : write(c->fd, b, n);
        return k == (ssize_t)n ? 0 : -1;
}

static int s_reply(struct sconn *c, const char *body)
{
        char head[128];
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                 strlen(body));
        return s_write(c, head) < 0 || s_write(c, body) < 0 ? -1 : 0;
}

/* Returns 0 to go on with the connection, non-zero to close it. */
static int reply(struct sconn *c, const char *method, const char *path, long len)
{
        if (strcmp(path, "/hold") == 0)
                return 0;
        if (strcmp(path, "/chunked") == 0) { /* one write a piece: the client sees them apart */
                const char *parts[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                       "5\r\nhello\r\n", "1;ext=1\r\n \r\n", "5\r\nworld\r\n",
                                       "0\r\nX-Trailer: 1\r\n\r\n"};
                for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                        if (s_write(c, parts[i]) < 0)
                                return 1;
                        usleep(2000);
                }
                return 0;
        }
        if (strcmp(path, "/close") == 0) {
                s_write(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
                return 1;
        }
        if (strcmp(path, "/bye") == 0) { /* keep-alive said, closed anyway (an idle timeout) */
                s_reply(c, "bye");
                return 1;
        }
        if (strcmp(path, "/stream") == 0) {
                s_write(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n");
                return 0; /* and nothing more: the client stops reading */
        }
        if (strcmp(path, "/bad") == 0) {
                s_write(c, "HTTP/1.1 2x0 OK\r\n\r\n");
                return 1;
        }
        if (strcmp(path, "/cert") == 0) {
                unsigned n = 0;
                bool has = c->tls && gnutls_certificate_get_peers(c->tls, &n) && n > 0;
                return s_reply(c, has ? "yes" : "no") < 0;
        }
        char body[64];
        snprintf(body, sizeof(body), "%s %ld", method, len);
        return s_reply(c, body) < 0;
}

static void serve_conn(struct server *s, struct sconn *c)
{
        char buf[65536];
        size_t have = 0;
        for (;;) {
                ssize_t n = c->tls ? gnutls_record_recv(c->tls, buf + have, sizeof(buf) - 1 - have)
                                   : read(c->fd, buf + have, sizeof(buf) - 1 - have);
                if (n <= 0)
                        return;
                have += (size_t)n;
                buf[have] = '\0';
                char *end;
                while ((end = strstr(buf, "\r\n\r\n"))) {
                        size_t head = (size_t)(end - buf) + 4;
                        long len = 0;
                        const char *cl = strcasestr(buf, "Content-Length:");
                        if (cl && cl < end)
                                len = strtol(cl + 15, NULL, 10);
                        if (have < head + (size_t)len)
                                break;
                        char method[16] = "", path[32] = "";
                        sscanf(buf, "%15s %31s", method, path);
                        if (s->n_seen < 16)
                                snprintf(s->seen[s->n_seen++], 64, "%s %s %ld", method, path, len);
                        if (reply(c, method, path, len) != 0)
                                return;
                        memmove(buf, buf + head + len, have - head - (size_t)len);
                        have -= head + (size_t)len;
                        buf[have] = '\0';
                }
        }
}

static void *serve(void *arg)
{
        struct server *s = arg;
        int fd;
        while ((fd = accept(s->listen_fd, NULL, NULL)) >= 0) {
                __atomic_add_fetch(&s->n_conns, 1, __ATOMIC_SEQ_CST);
                struct sconn c = {.fd = fd};
                int r = 0;
                if (s->mode == TLS || s->mode == TLS_REQUIRE) {
                        gnutls_init(&c.tls, GNUTLS_SERVER);
                        gnutls_set_default_priority(c.tls);
                        gnutls_credentials_set(c.tls, GNUTLS_CRD_CERTIFICATE, s->cred);
                        gnutls_certificate_server_set_request(c.tls, s->mode == TLS_REQUIRE
                                                                         ? GNUTLS_CERT_REQUIRE
                                                                         : GNUTLS_CERT_REQUEST);
                        gnutls_transport_set_int(c.tls, fd);
                        do {
                                r = gnutls_handshake(c.tls);
                        } while (r < 0 && !gnutls_error_is_fatal(r));
                }
                if (r == 0)
                        serve_conn(s, &c);
                if (c.tls)
                        gnutls_deinit(c.tls);
                close(fd);
        }
        return NULL;
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/* A CA, the server's certificate for 127.0.0.1, a client certificate, and a second CA. */
static void make_certs(struct server *s)
{
        char cadir[128], otherdir[128];
        snprintf(cadir, sizeof(cadir), "%s/ca", s->dir);
        snprintf(otherdir, sizeof(otherdir), "%s/other", s->dir);
        sk_ca *ca = NULL, *other = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_ca_open(cadir, &ca, &err), 0);
        assert_int_equal(sk_ca_open(otherdir, &other, &err), 0);
        const char *names[] = {"127.0.0.1", "localhost"};
        _cleanup_free_ char *scert = NULL, *skey = NULL, *ckey = NULL, *csr = NULL, *ccert = NULL;
        assert_int_equal(sk_ca_issue_server(ca, names, 2, 1, &scert, &skey, &err), 0);
        assert_int_equal(sk_pki_make_key_and_csr("h1", &ckey, &csr, &err), 0);
        assert_int_equal(
            sk_ca_sign_client(ca, csr, "h1", "skerry://site/1/host/2", 1, &ccert, &err), 0);
        snprintf(s->ca_file, sizeof(s->ca_file), "%s/ca.pem", s->dir);
        snprintf(s->other_ca_file, sizeof(s->other_ca_file), "%s/other.pem", s->dir);
        snprintf(s->cert_file, sizeof(s->cert_file), "%s/client.pem", s->dir);
        snprintf(s->key_file, sizeof(s->key_file), "%s/client.key", s->dir);
        write_file(s->ca_file, sk_ca_cert_pem(ca));
        write_file(s->other_ca_file, sk_ca_cert_pem(other));
        write_file(s->cert_file, ccert);
        write_file(s->key_file, ckey);
        gnutls_certificate_allocate_credentials(&s->cred);
        gnutls_datum_t c = {(unsigned char *)scert, (unsigned)strlen(scert)};
        gnutls_datum_t k = {(unsigned char *)skey, (unsigned)strlen(skey)};
        assert_int_equal(gnutls_certificate_set_x509_key_mem(s->cred, &c, &k, GNUTLS_X509_FMT_PEM),
                         0);
        gnutls_datum_t t = {(unsigned char *)sk_ca_cert_pem(ca),
                            (unsigned)strlen(sk_ca_cert_pem(ca))};
        assert_true(gnutls_certificate_set_x509_trust_mem(s->cred, &t, GNUTLS_X509_FMT_PEM) > 0);
        sk_ca_free(ca);
        sk_ca_free(other);
}

static int setup_mode(void **state, enum mode mode)
{
        struct server *s = calloc(1, sizeof(*s));
        s->mode = mode;
        snprintf(s->dir, sizeof(s->dir), "/tmp/skerry-httpc-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        if (mode == UNIX) {
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                snprintf(s->sock_path, sizeof(s->sock_path), "%s/s.sock", s->dir);
                snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->sock_path);
                s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
                assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
        } else {
                struct sockaddr_in a = {.sin_family = AF_INET,
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
                assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
                socklen_t len = sizeof(a);
                getsockname(s->listen_fd, (struct sockaddr *)&a, &len);
                s->port = ntohs(a.sin_port);
        }
        if (mode == TLS || mode == TLS_REQUIRE)
                make_certs(s);
        assert_int_equal(listen(s->listen_fd, 4), 0);
        pthread_create(&s->thread, NULL, serve, s);
        *state = s;
        return 0;
}

static int setup_plain(void **state)
{
        return setup_mode(state, PLAIN);
}
static int setup_unix(void **state)
{
        return setup_mode(state, UNIX);
}
static int setup_tls(void **state)
{
        return setup_mode(state, TLS);
}
static int setup_tls_require(void **state)
{
        return setup_mode(state, TLS_REQUIRE);
}

static int server_teardown(void **state)
{
        struct server *s = *state;
        shutdown(s->listen_fd, SHUT_RDWR);
        close(s->listen_fd);
        pthread_join(s->thread, NULL);
        if (s->cred)
                gnutls_certificate_free_credentials(s->cred);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        assert_int_equal(system(cmd), 0);
        free(s);
        return 0;
}

static int conns(struct server *s)
{
        return __atomic_load_n(&s->n_conns, __ATOMIC_SEQ_CST);
}

static sk_httpc *client_with(struct server *s, sk_httpc_opts o)
{
        char url[64];
        if (s->mode == UNIX) {
                o.base_url = "http://d";
                o.unix_socket = s->sock_path;
        } else {
                snprintf(url, sizeof(url), "%s://127.0.0.1:%d", s->mode == PLAIN ? "http" : "https",
                         s->port);
                o.base_url = url;
        }
        sk_httpc *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_httpc_new(&o, &c, &err);
        if (r < 0)
                fail_msg("sk_httpc_new: %s", sk_error_msg(err, r));
        return c;
}

static sk_httpc *client(struct server *s)
{
        return client_with(s, (sk_httpc_opts){.ca_file = s->mode >= TLS ? s->ca_file : NULL});
}

/* GET path; fails the test unless it answers 200 with want. */
static void get_ok(sk_httpc *c, const char *path, const char *want)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(c, "GET", path, NULL, 0, NULL, 5000, &r, &err);
        if (rc < 0)
                fail_msg("GET %s: %s", path, sk_error_msg(err, rc));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want);
        assert_int_equal(r.len, strlen(want));
}

/* A DELETE after a POST on the same connection must not carry the POST's body size. */
static void test_bodyless_after_body(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        _cleanup_error_ sk_error *err = NULL;
        const char *methods[] = {"POST", "DELETE", "PUT", "GET"};
        const char *bodies[] = {"{\"a\":1}", NULL, "x", NULL};
        const char *want[] = {"POST 7", "DELETE 0", "PUT 1", "GET 0"};
        for (size_t i = 0; i < 4; i++) {
                _cleanup_response_ sk_http_response r = {0};
                int rc = sk_httpc_request(c, methods[i], "/x", bodies[i],
                                          bodies[i] ? strlen(bodies[i]) : 0, NULL, 3000, &r, &err);
                if (rc < 0)
                        fail_msg("%s: %s", methods[i], sk_error_msg(err, rc));
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, want[i]);
        }
}

/* Requests one after another share one connection. */
static void test_keepalive_reuse(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        int before = conns(s);
        for (int i = 0; i < 4; i++)
                get_ok(c, "/x", "GET 0");
        assert_int_equal(conns(s) - before, 1);
}

/* A chunked body arrives whole (extensions and trailer skipped), and the connection
 * serves the next request. */
static void test_chunked(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        int before = conns(s);
        get_ok(c, "/chunked", "hello world");
        get_ok(c, "/x", "GET 0");
        assert_int_equal(conns(s) - before, 1);
}

/* A body that ends with the connection; the next request opens a new one. */
static void test_close_delimited(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        int before = conns(s);
        get_ok(c, "/close", "until the end");
        get_ok(c, "/x", "GET 0");
        assert_int_equal(conns(s) - before, 2);
}

/* A server that closes a kept-alive connection: the next request goes on a new one. */
static void test_server_closes_idle(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        get_ok(c, "/bye", "bye");
        get_ok(c, "/x", "GET 0");
        get_ok(c, "/bye", "bye");
        get_ok(c, "/x", "GET 0");
}

static void test_malformed_response(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(c, "GET", "/bad", NULL, 0, NULL, 3000, &r, &err);
        assert_true(rc < 0);
        assert_non_null(strstr(err->msg, "malformed"));
        get_ok(c, "/x", "GET 0");
}

struct collected {
        char text[64];
        size_t len;
};

static int collect_until_b(const char *data, size_t len, void *user)
{
        struct collected *c = user;
        assert_true(c->len + len < sizeof(c->text));
        memcpy(c->text + c->len, data, len);
        c->len += len;
        return memchr(data, 'b', len) ? 1 : 0;
}

/* A stream goes to the callback piece by piece and stops when it says so, though the
 * server keeps the response open. */
static void test_stream_stops(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        _cleanup_error_ sk_error *err = NULL;
        struct collected got = {0};
        long status = 0;
        int rc = sk_httpc_stream(c, "GET", "/stream", collect_until_b, &got, &status, &err);
        if (rc < 0)
                fail_msg("stream: %s", sk_error_msg(err, rc));
        assert_int_equal(status, 200);
        assert_string_equal(got.text, "ab");
        get_ok(c, "/x", "GET 0");
}

static double elapsed_s(const struct timespec *start)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* A request the server never answers ends at its timeout, and the client goes on. */
static void test_request_timeout(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int rc = sk_httpc_request(c, "GET", "/hold", NULL, 0, NULL, 300, &r, &err);
        assert_int_equal(rc, -ETIMEDOUT);
        assert_true(elapsed_s(&start) >= 0.29);
        assert_non_null(strstr(err->msg, "timed out"));
        get_ok(c, "/x", "GET 0");
}

static int stop_after_deadline(void *user)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return now.tv_sec >= *(time_t *)user;
}

/* The abort check ends a request the server holds (a long-poll) without waiting it out. */
static void test_abort_held_request(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        time_t deadline = start.tv_sec + 2;
        sk_httpc_set_abort(c, stop_after_deadline, &deadline);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(c, "GET", "/hold", NULL, 0, NULL, 0, &r, &err);
        assert_int_equal(rc, -ECANCELED);
        assert_true(elapsed_s(&start) < 10);
}

static void test_unreachable_names_the_address(void **state)
{
        sk_httpc_opts o = {.base_url = "http://127.0.0.1:1"};
        _cleanup_httpc_ sk_httpc *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_httpc_new(&o, &c, &err), 0);
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(c, "GET", "/v1/x", NULL, 0, NULL, 3000, &r, &err);
        assert_true(rc < 0);
        assert_non_null(strstr(err->msg, "http://127.0.0.1:1/v1/x"));
}

static void test_not_a_url(void **state)
{
        sk_httpc_opts o = {.base_url = "ftp://x"};
        _cleanup_httpc_ sk_httpc *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_httpc_new(&o, &c, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "ftp://x"));
}

static void test_url_escape(void **state)
{
        _cleanup_free_ char *e = sk_url_escape("chain = acme and x~/a.b_c-d");
        assert_string_equal(e, "chain%20%3D%20acme%20and%20x~%2Fa.b_c-d");
}

/* Over TLS: the server verified with the CA file, several requests on one connection,
 * and no client certificate sent when none is given. */
static void test_tls_with_ca(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        int before = conns(s);
        get_ok(c, "/x", "GET 0");
        get_ok(c, "/chunked", "hello world");
        get_ok(c, "/cert", "no");
        assert_int_equal(conns(s) - before, 1);
}

static void test_tls_client_cert(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client_with(s, (sk_httpc_opts){.ca_file = s->ca_file,
                                                                     .cert_file = s->cert_file,
                                                                     .key_file = s->key_file});
        get_ok(c, "/cert", "yes");
}

/* A server whose certificate another CA signed is refused, and the message says why. */
static void test_tls_untrusted_server(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client_with(s, (sk_httpc_opts){.ca_file = s->other_ca_file});
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(c, "GET", "/x", NULL, 0, NULL, 5000, &r, &err);
        assert_true(rc < 0);
        assert_non_null(strstr(err->msg, "certificate"));
}

struct pin {
        int calls;
        bool refuse;
};

static int pin_check(void *session, void *user, char *why, size_t why_len)
{
        struct pin *p = user;
        unsigned n = 0;
        p->calls++;
        if (!gnutls_certificate_get_peers(session, &n) || n == 0) {
                snprintf(why, why_len, "no peer certificate");
                return -1;
        }
        if (p->refuse)
                snprintf(why, why_len, "refused by the test");
        return p->refuse ? -1 : 0;
}

/* The verify hook judges the server in place of a CA file (a pinned site CA): its answer
 * stands, and it runs once a connection, not once a request. */
static void test_tls_verify_hook(void **state)
{
        struct server *s = *state;
        struct pin ok = {0}, no = {.refuse = true};
        sk_httpc *c = client_with(
            s, (sk_httpc_opts){.verify = pin_check, .verify_user = &ok, .tls13_only = 1});
        get_ok(c, "/x", "GET 0");
        get_ok(c, "/x", "GET 0");
        assert_int_equal(ok.calls, 1);
        sk_httpc_free(c); /* the test's server serves one connection at a time */
        _cleanup_httpc_ sk_httpc *d =
            client_with(s, (sk_httpc_opts){.verify = pin_check, .verify_user = &no});
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(d, "GET", "/x", NULL, 0, NULL, 5000, &r, &err);
        assert_int_equal(rc, -EACCES);
        assert_non_null(strstr(err->msg, "refused by the test"));
        /* Nothing reached the server's request handling from the refused client. */
        assert_string_equal(s->seen[s->n_seen - 1], "GET /x 0");
}

/* A server that requires a client certificate: refused without one, served with one. */
static void test_tls_required_cert(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *without = client(s);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_response_ sk_http_response r = {0};
        int rc = sk_httpc_request(without, "GET", "/x", NULL, 0, NULL, 5000, &r, &err);
        assert_true(rc < 0);
        assert_int_not_equal(rc, -ETIMEDOUT);
        _cleanup_httpc_ sk_httpc *with = client_with(s, (sk_httpc_opts){.ca_file = s->ca_file,
                                                                        .cert_file = s->cert_file,
                                                                        .key_file = s->key_file});
        get_ok(with, "/cert", "yes");
}

/* Over a unix socket (the Docker Engine API): chunked, then kept alive. */
static void test_unix_socket(void **state)
{
        struct server *s = *state;
        _cleanup_httpc_ sk_httpc *c = client(s);
        get_ok(c, "/chunked", "hello world");
        get_ok(c, "/x", "GET 0");
        assert_int_equal(conns(s), 1);
}

int main(void)
{
        const struct CMUnitTest plain[] = {
            cmocka_unit_test(test_bodyless_after_body),
            cmocka_unit_test(test_keepalive_reuse),
            cmocka_unit_test(test_chunked),
            cmocka_unit_test(test_close_delimited),
            cmocka_unit_test(test_server_closes_idle),
            cmocka_unit_test(test_malformed_response),
            cmocka_unit_test(test_stream_stops),
            cmocka_unit_test(test_request_timeout),
            cmocka_unit_test(test_abort_held_request),
        };
        const struct CMUnitTest no_server[] = {
            cmocka_unit_test(test_unreachable_names_the_address),
            cmocka_unit_test(test_not_a_url),
            cmocka_unit_test(test_url_escape),
        };
        const struct CMUnitTest tls[] = {
            cmocka_unit_test(test_tls_with_ca),
            cmocka_unit_test(test_tls_client_cert),
            cmocka_unit_test(test_tls_untrusted_server),
            cmocka_unit_test(test_tls_verify_hook),
        };
        const struct CMUnitTest tls_require[] = {
            cmocka_unit_test(test_tls_required_cert),
        };
        const struct CMUnitTest unix_socket[] = {
            cmocka_unit_test(test_unix_socket),
        };
        int failed = cmocka_run_group_tests_name("httpc", plain, setup_plain, server_teardown);
        failed += cmocka_run_group_tests_name("httpc_none", no_server, NULL, NULL);
        failed += cmocka_run_group_tests_name("httpc_tls", tls, setup_tls, server_teardown);
        failed += cmocka_run_group_tests_name("httpc_tls_require", tls_require, setup_tls_require,
                                              server_teardown);
        failed +=
            cmocka_run_group_tests_name("httpc_unix", unix_socket, setup_unix, server_teardown);
        return failed ? 1 : 0;
}
