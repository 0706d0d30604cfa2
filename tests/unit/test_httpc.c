/* The HTTP client against a small HTTP/1.1 server on loopback run by the test itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/httpc.h"

/* Serves one keep-alive connection: answers every request with its method and body length,
 * except a request for /hold, which it never answers. */
struct server {
        int listen_fd;
        int port;
        pthread_t thread;
        char seen[8][64]; /* "METHOD PATH LEN" of each request */
        int n_seen;
};

static void *serve(void *arg)
{
        struct server *s = arg;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
                return NULL;
        char buf[65536];
        size_t have = 0;
        for (;;) {
                ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
                if (n <= 0)
                        break;
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
                        if (s->n_seen < 8)
                                snprintf(s->seen[s->n_seen++], 64, "%s %s %ld", method, path, len);
                        if (strcmp(path, "/hold") != 0) {
                                char reply[256];
                                int body_len = snprintf(NULL, 0, "%s %ld", method, len);
                                int r = snprintf(reply, sizeof(reply),
                                                 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                                 "%s %ld",
                                                 body_len, method, len);
                                if (write(fd, reply, (size_t)r) != r)
                                        goto out;
                        }
                        memmove(buf, buf + head + len, have - head - (size_t)len);
                        have -= head + (size_t)len;
                        buf[have] = '\0';
                }
        }
out:
        close(fd);
        return NULL;
}

static int server_setup(void **state)
{
        struct server *s = calloc(1, sizeof(*s));
        s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(s->listen_fd, 4), 0);
        socklen_t len = sizeof(a);
        getsockname(s->listen_fd, (struct sockaddr *)&a, &len);
        s->port = ntohs(a.sin_port);
        pthread_create(&s->thread, NULL, serve, s);
        *state = s;
        return 0;
}

static int server_teardown(void **state)
{
        struct server *s = *state;
        shutdown(s->listen_fd, SHUT_RDWR);
        close(s->listen_fd);
        pthread_join(s->thread, NULL);
        free(s);
        return 0;
}

static sk_httpc *client(struct server *s)
{
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
        sk_httpc_opts o = {.base_url = url};
        sk_httpc *c = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_httpc_new(&o, &c, &err), 0);
        return c;
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
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        assert_true(end.tv_sec - start.tv_sec < 10);
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

static void test_url_escape(void **state)
{
        _cleanup_free_ char *e = sk_url_escape("chain = acme and x~/a.b_c-d");
        assert_string_equal(e, "chain%20%3D%20acme%20and%20x~%2Fa.b_c-d");
}

int main(void)
{
        const struct CMUnitTest server_tests[] = {
            cmocka_unit_test(test_bodyless_after_body),
        };
        const struct CMUnitTest hold_tests[] = {
            cmocka_unit_test(test_abort_held_request),
        };
        const struct CMUnitTest plain_tests[] = {
            cmocka_unit_test(test_unreachable_names_the_address),
            cmocka_unit_test(test_url_escape),
        };
        int failed =
            cmocka_run_group_tests_name("httpc", server_tests, server_setup, server_teardown);
        failed +=
            cmocka_run_group_tests_name("httpc_hold", hold_tests, server_setup, server_teardown);
        failed += cmocka_run_group_tests_name("httpc_plain", plain_tests, NULL, NULL);
        return failed ? 1 : 0;
}
