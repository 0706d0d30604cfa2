/* The site-local API: its request handler (siteroutes.h) as a pure function against an
 * in-memory node, the heartbeat parser, and the server (siteapi.h) over real sockets: a
 * heartbeat is answered while other requests hang in the node and a client sends its
 * request a byte at a time. The node here is a function table of the test's; the cluster's
 * own is tested in test_cluster. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "site/heartbeat.h"
#include "site/siteapi.h"
#include "site/siteroutes.h"

/* ---- an in-memory node ---- */

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool leader, hold; /* hold: hosts_view waits until released */
        int holding, heartbeats, forwards;
        int64_t last_host; /* the caller of the last heartbeat */
        json_t *last_report;
} node = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static bool is_leader(void *ctx)
{
        pthread_mutex_lock(&node.lock);
        bool r = node.leader;
        pthread_mutex_unlock(&node.lock);
        return r;
}

static char *leader_address(void *ctx)
{
        return is_leader(ctx) ? NULL : strdup("10.0.0.1:7443");
}

static bool is_removed(void *ctx, int64_t host)
{
        return host == 3;
}

static int heartbeat(void *ctx, int64_t host, json_t *report)
{
        pthread_mutex_lock(&node.lock);
        node.heartbeats++;
        node.last_host = host;
        json_decref(node.last_report);
        node.last_report = report;
        bool leader = node.leader;
        pthread_mutex_unlock(&node.lock);
        return leader ? 0 : -EAGAIN;
}

/* Slow as a node can be: until the test lets go. */
static json_t *hosts_view(void *ctx)
{
        pthread_mutex_lock(&node.lock);
        node.holding++;
        pthread_cond_broadcast(&node.cond);
        while (node.hold)
                pthread_cond_wait(&node.cond, &node.lock);
        node.holding--;
        pthread_mutex_unlock(&node.lock);
        return json_pack("[{s:s}]", "name", "h1");
}

static json_t *instances_view(void *ctx)
{
        return json_array();
}

static int forward(void *ctx, const char *method, const char *path, const json_t *body,
                   json_t **answer)
{
        pthread_mutex_lock(&node.lock);
        node.forwards++;
        pthread_mutex_unlock(&node.lock);
        *answer = json_pack("{s:s, s:s}", "forwarded", method, "path", path);
        return 200;
}

static int make_token(void *ctx, int64_t ttl_s, json_t **answer)
{
        *answer = json_pack("{s:I}", "ttl", (json_int_t)ttl_s);
        return 200;
}

static int join(void *ctx, const sk_site_join *j, json_t **answer)
{
        *answer = json_pack("{s:s}", "host", j->name);
        return 200;
}

static const sk_site_ops ops = {
    .is_leader = is_leader,
    .leader_address = leader_address,
    .is_removed = is_removed,
    .heartbeat = heartbeat,
    .hosts_view = hosts_view,
    .instances_view = instances_view,
    .forward = forward,
    .make_token = make_token,
    .join = join,
};

static const sk_site_routes routes = {.ops = &ops, .site = "s1", .ca_pem = "CA PEM"};

static int reset(void **state)
{
        pthread_mutex_lock(&node.lock);
        node.leader = true;
        node.hold = false;
        node.heartbeats = node.forwards = 0;
        json_decref(node.last_report);
        node.last_report = NULL;
        pthread_mutex_unlock(&node.lock);
        return 0;
}

/* ---- the handler ---- */

static const char REPORT[] = "{\"host\": \"h1\", \"address\": \"10.0.0.5:7443\", \"labels\": "
                             "{\"system/name\": \"h1\"}, \"capacity\": {\"cpu\": 1000, "
                             "\"memory\": 1073741824}}";

static int route(const char *method, const char *path, const char *site, int64_t peer,
                 const char *body, json_t **answer)
{
        sk_site_request rq = {.method = method,
                              .path = path,
                              .site = site,
                              .peer = peer,
                              .body = body,
                              .len = body ? strlen(body) : 0};
        return sk_site_route(&routes, &rq, answer);
}

static const char *error_code(const json_t *answer)
{
        return json_string_value(json_object_get(json_object_get(answer, "error"), "code"));
}

static void expect(const char *method, const char *path, const char *site, int64_t peer,
                   const char *body, int status, const char *code)
{
        _cleanup_json_ json_t *answer = NULL;
        assert_int_equal(route(method, path, site, peer, body, &answer), status);
        if (code)
                assert_string_equal(error_code(answer), code);
}

static void test_routes(void **state)
{
        /* without a certificate: the CA and joining only */
        expect("GET", "/v1/hosts", NULL, 0, NULL, 401, "unauthenticated");
        expect("POST", "/v1/site/heartbeat", NULL, 0, REPORT, 401, "unauthenticated");
        expect("POST", "/v1/site/tokens", NULL, 0, "{}", 401, "unauthenticated");
        _cleanup_json_ json_t *ca = NULL;
        assert_int_equal(route("GET", "/v1/site/ca", NULL, 0, NULL, &ca), 200);
        assert_string_equal(json_string_value(json_object_get(ca, "ca")), "CA PEM");
        /* a removed host: nothing but the public CA */
        expect("POST", "/v1/site/heartbeat", NULL, 3, REPORT, 403, "forbidden");
        expect("POST", "/v1/site/tokens", NULL, 3, "{}", 403, "forbidden");
        /* bodies */
        expect("POST", "/v1/site/heartbeat", NULL, 1, "{bad", 400, "bad-json");
        expect("POST", "/v1/site/tokens", NULL, 1, "{\"ttl\": 59}", 400, "invalid");
        expect("POST", "/v1/site/tokens", NULL, 1, "{\"ttl\": \"1h\"}", 400, "invalid");
        expect("POST", "/v1/site/join", NULL, 0, "{\"token\": \"short\"}", 400, "invalid");
        expect("POST", "/v1/site/join", NULL, 0, "[]", 400, "invalid");
        _cleanup_json_ json_t *token = NULL;
        assert_int_equal(route("POST", "/v1/site/tokens", NULL, 1, NULL, &token), 200);
        assert_int_equal(json_integer_value(json_object_get(token, "ttl")), 3600);
        /* paths and methods */
        expect("GET", "/v1/nope", NULL, 1, NULL, 404, "not-found");
        expect("DELETE", "/v1/hosts", NULL, 1, NULL, 405, "method-not-allowed");
        expect("GET", "/v1/site/heartbeat", NULL, 1, NULL, 405, "method-not-allowed");
        expect("GET", "/v1/instances", "other", 1, NULL, 404, "not-found");
        expect("GET", "/v1/instances", "s1", 1, NULL, 200, NULL);
        /* bytes that are not UTF-8 are quoted, not lost */
        _cleanup_json_ json_t *odd = NULL;
        assert_int_equal(route("GET", "/v1/\xff\xfe", NULL, 1, NULL, &odd), 404);
        assert_non_null(
            strstr(json_string_value(json_object_get(json_object_get(odd, "error"), "message")),
                   "/v1/??"));
}

static void test_routes_on_a_follower(void **state)
{
        node.leader = false;
        /* a heartbeat points at the leader */
        _cleanup_json_ json_t *answer = NULL;
        assert_int_equal(route("POST", "/v1/site/heartbeat", NULL, 1, REPORT, &answer), 421);
        assert_string_equal(json_string_value(json_object_get(answer, "leader")), "10.0.0.1:7443");
        assert_int_equal(node.heartbeats, 1);
        /* views and site CA requests go to the leader; its own /v1/site/ views do not */
        _cleanup_json_ json_t *hosts = NULL, *tok = NULL;
        assert_int_equal(route("GET", "/v1/hosts", NULL, 1, NULL, &hosts), 200);
        assert_string_equal(json_string_value(json_object_get(hosts, "path")), "/v1/site/hosts");
        assert_int_equal(route("POST", "/v1/site/tokens", NULL, 1, "{\"ttl\": 60}", &tok), 200);
        assert_string_equal(json_string_value(json_object_get(tok, "forwarded")), "POST");
        expect("GET", "/v1/site/hosts", NULL, 1, NULL, 503, "unavailable");
        assert_int_equal(node.forwards, 2);
}

static void test_heartbeat_parse(void **state)
{
        _cleanup_json_ json_t *body = json_loads(REPORT, 0, NULL), *report = NULL;
        assert_int_equal(sk_heartbeat_parse(body, 5, &report, NULL), 0);
        assert_int_equal(json_integer_value(json_object_get(report, "host-id")), 5);
        assert_true(json_is_object(json_object_get(report, "devices")));
        assert_true(json_is_array(json_object_get(report, "instances")));
        _cleanup_json_ json_t *entry = sk_heartbeat_host_entry(report, 5, true);
        assert_string_equal(json_string_value(json_object_get(entry, "name")), "h1");
        assert_true(json_is_true(json_object_get(entry, "alive")));

        static const struct {
                const char *set, *path;
        } bad[] = {
            {"{\"host-id\": 6}", "host-id"},
            {"{\"host\": \"H 1\"}", "host"},
            {"{\"address\": \"nowhere\"}", "address"},
            {"{\"labels\": {\"system/name\": 1}}", "labels"},
            {"{\"labels\": {\"bad key\": \"x\"}}", "labels"},
            {"{\"capacity\": {\"cpu\": -1, \"memory\": 1}}", "capacity"},
            {"{\"devices\": []}", "devices"},
            /* device nodes by the host model's rules: the state must take the entry */
            {"{\"devices\": {\"camera\": 5}}", "devices.camera"},
            {"{\"devices\": {\"camera\": [{\"path\": \"/dev/video0\", \"host-path\": "
             "\"/dev/video0\", \"minxr\": 0}]}}",
             "devices.camera[0].minxr"},
            {"{\"instances\": [1]}", "instances"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                _cleanup_json_ json_t *b = json_loads(REPORT, 0, NULL);
                _cleanup_json_ json_t *set = json_loads(bad[i].set, 0, NULL);
                json_object_update(b, set);
                _cleanup_json_ json_t *out = NULL;
                _cleanup_error_ sk_error *err = NULL;
                assert_int_equal(sk_heartbeat_parse(b, 5, &out, &err), -EINVAL);
                assert_null(out);
                assert_string_equal(err->path, bad[i].path);
        }
}

/* ---- the server, over real sockets ---- */

/* A connection as raft_tls hands one over: our end of a socketpair. */
static int connect_api(sk_siteapi *api, int64_t host)
{
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        sk_siteapi_add(api, sv[1], host);
        return sv[0];
}

static void send_all(int fd, const char *text)
{
        size_t len = strlen(text);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
}

/* The status of the answer on fd, or 0 when none came within 10 s. */
static int read_status(int fd)
{
        char buf[4096];
        size_t n = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (n < sizeof(buf) - 1 && !memchr(buf, '\n', n) && poll(&p, 1, 10000) == 1) {
                ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
                if (r <= 0)
                        break;
                n += (size_t)r;
        }
        buf[n] = '\0';
        int status = 0;
        return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

static int holding(void)
{
        pthread_mutex_lock(&node.lock);
        int n = node.holding;
        pthread_mutex_unlock(&node.lock);
        return n;
}

static void test_heartbeats_answered_while_requests_hang(void **state)
{
        sk_siteapi *api = NULL;
        assert_int_equal(sk_siteapi_new(&routes, &api, NULL), 0);
        node.hold = true;
        /* More hanging requests than workers: some wait their turn. */
        int slow[SK_SITEAPI_WORKERS + 2];
        for (size_t i = 0; i < SK_ARRAY_SIZE(slow); i++) {
                slow[i] = connect_api(api, 2);
                send_all(slow[i], "GET /v1/hosts HTTP/1.1\r\nHost: s\r\n\r\n");
        }
        pthread_mutex_lock(&node.lock);
        while (node.holding < SK_SITEAPI_WORKERS)
                pthread_cond_wait(&node.cond, &node.lock);
        pthread_mutex_unlock(&node.lock);
        /* and a client that sends its request a byte at a time, never finishing */
        int dribble = connect_api(api, 2);
        send_all(dribble, "POST /v1/site/heartbeat HTTP/1.1\r\nHo");

        char req[1024];
        snprintf(req, sizeof(req),
                 "POST /v1/site/heartbeat HTTP/1.1\r\nHost: s\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(REPORT), REPORT);
        static const int64_t hosts[] = {1, 2, 4}; /* 3 is removed */
        for (int beat = 0; beat < 3; beat++) {
                int fd = connect_api(api, hosts[beat]); /* each connection knows its host */
                send_all(fd, req);
                send_all(dribble, "s");
                assert_int_equal(read_status(fd), 200);
                pthread_mutex_lock(&node.lock);
                int64_t caller = node.last_host;
                pthread_mutex_unlock(&node.lock);
                assert_int_equal(caller, hosts[beat]);
                close(fd);
        }
        assert_int_equal(holding(), SK_SITEAPI_WORKERS);
        pthread_mutex_lock(&node.lock);
        assert_int_equal(node.heartbeats, 3);
        assert_string_equal(json_string_value(json_object_get(node.last_report, "host")), "h1");
        node.hold = false;
        pthread_cond_broadcast(&node.cond);
        pthread_mutex_unlock(&node.lock);
        for (size_t i = 0; i < SK_ARRAY_SIZE(slow); i++) {
                assert_int_equal(read_status(slow[i]), 200);
                close(slow[i]);
        }
        close(dribble);
        sk_siteapi_free(api);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_routes, reset),
            cmocka_unit_test_setup(test_routes_on_a_follower, reset),
            cmocka_unit_test_setup(test_heartbeat_parse, reset),
            cmocka_unit_test_setup(test_heartbeats_answered_while_requests_hang, reset),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
