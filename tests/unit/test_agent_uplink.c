/* The agent's join and uplink against a small fake tower on loopback: libmicrohttpd with
 * TLS, certificates from a real CA (common/pki.h), client certificates checked as the
 * tower checks them. */
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/pki.h"
#include "host/identity.h"
#include "site/uplink.h"

/* ---- the fake tower ---- */

typedef struct tower {
        struct MHD_Daemon *d;
        int port;
        char *ca_pem;
        pthread_mutex_t lock;
        json_t *desired; /* the site's document, with "generation" */
        int64_t last_asked_generation;
        int desired_gets, status_posts, untrusted;
        json_t *last_status;
        json_t *hosts_posted; /* host name -> its last status body */
        bool stopping;
} tower;

typedef struct upload {
        char *data;
        size_t len;
} upload;

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static bool client_trusted(tower *t, struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        _cleanup_free_ char *uri = NULL;
        if (!ci || sk_pki_verify_peer((gnutls_session_t)ci->tls_session, t->ca_pem, &uri, NULL) < 0)
                return false;
        return strcmp(uri, "skerry://site/7/host/3") == 0;
}

static char *g_ca_dir; /* the fake tower's CA folder */

static enum MHD_Result handle_join(tower *t, struct MHD_Connection *c, const upload *u)
{
        _cleanup_json_ json_t *req = json_loadb(u->data ? u->data : "", u->len, 0, NULL);
        const char *token = json_string_value(json_object_get(req, "token"));
        if (!token || strcmp(token, "good") != 0)
                return reply(c, 401,
                             "{\"error\": {\"code\": \"unauthenticated\", \"message\": \"the join "
                             "token was already used\"}}");
        const char *role =
            json_string_value(json_object_get(json_object_get(req, "labels"), "role"));
        if (!role || strcmp(role, "till") != 0)
                return reply(c, 400,
                             "{\"error\": {\"code\": \"invalid\", \"message\": "
                             "\"labels\"}}");
        _cleanup_ca_ sk_ca *ca = NULL;
        assert_int_equal(sk_ca_open(g_ca_dir, &ca, NULL), 0);
        _cleanup_free_ char *cert = NULL;
        assert_int_equal(sk_ca_sign_client(ca, json_string_value(json_object_get(req, "csr")),
                                           json_string_value(json_object_get(req, "name")),
                                           "skerry://site/7/host/3", 30, &cert, NULL),
                         0);
        _cleanup_json_ json_t *ans =
            json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s}", "site", "store-001", "tenant",
                      "default", "host", json_string_value(json_object_get(req, "name")), "site-id",
                      7, "host-id", 3, "certificate", cert, "ca", t->ca_pem);
        _cleanup_free_ char *text = json_dumps(ans, JSON_COMPACT);
        return reply(c, 200, text);
}

static enum MHD_Result handle_desired(tower *t, struct MHD_Connection *c)
{
        const char *g = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "generation");
        const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
        int64_t asked = g ? strtoll(g, NULL, 10) : 0;
        int64_t deadline = mono_ms() + (w ? atoi(w) : 30) * 1000;
        pthread_mutex_lock(&t->lock);
        t->desired_gets++;
        t->last_asked_generation = asked;
        /* Held like the tower holds it, until the document changes or the wait runs out. */
        while (!t->stopping && mono_ms() < deadline &&
               json_integer_value(json_object_get(t->desired, "generation")) == asked) {
                pthread_mutex_unlock(&t->lock);
                usleep(20000);
                pthread_mutex_lock(&t->lock);
        }
        _cleanup_free_ char *text = NULL;
        if (json_integer_value(json_object_get(t->desired, "generation")) != asked)
                text = json_dumps(t->desired, JSON_COMPACT);
        pthread_mutex_unlock(&t->lock);
        if (!text) {
                struct MHD_Response *r =
                    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                enum MHD_Result ret = MHD_queue_response(c, 204, r);
                MHD_destroy_response(r);
                return ret;
        }
        return reply(c, 200, text);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
        tower *t = cls;
        upload *u = *con_cls;
        if (!u) {
                *con_cls = calloc(1, sizeof(upload));
                return MHD_YES;
        }
        if (*size) {
                u->data = realloc(u->data, u->len + *size + 1);
                memcpy(u->data + u->len, data, *size);
                u->len += *size;
                u->data[u->len] = '\0';
                *size = 0;
                return MHD_YES;
        }
        if (strcmp(url, "/v1/join") == 0 && strcmp(method, "POST") == 0)
                return handle_join(t, c, u);
        if (!client_trusted(t, c)) {
                pthread_mutex_lock(&t->lock);
                t->untrusted++;
                pthread_mutex_unlock(&t->lock);
                return reply(c, 401,
                             "{\"error\": {\"code\": \"unauthenticated\", \"message\": \"no "
                             "trusted client certificate\"}}");
        }
        if (strcmp(url, "/v1/sync/desired") == 0 && strcmp(method, "GET") == 0)
                return handle_desired(t, c);
        if (strcmp(url, "/v1/sync/status") == 0 && strcmp(method, "POST") == 0) {
                json_t *body = json_loadb(u->data ? u->data : "", u->len, 0, NULL);
                pthread_mutex_lock(&t->lock);
                t->status_posts++;
                const char *h = json_string_value(json_object_get(body, "host"));
                if (h)
                        json_object_set(t->hosts_posted, h, body);
                json_decref(t->last_status);
                t->last_status = body;
                pthread_mutex_unlock(&t->lock);
                return reply(c, 200, "{\"result\": \"ok\"}");
        }
        return reply(c, 404,
                     "{\"error\": {\"code\": \"not-found\", \"message\": \"no such path\"}}");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        upload *u = *con_cls;
        if (u) {
                free(u->data);
                free(u);
        }
        *con_cls = NULL;
}

typedef struct fixture {
        char *dir;       /* test folder */
        char *agent_dir; /* the agent's --data */
        char *ca_file;
        char *url;
        tower t;
        char *cert_pem, *key_pem;
} fixture;

static int setup(void **state)
{
        fixture *f = calloc(1, sizeof(*f));
        f->dir = strdup("/tmp/skerry-test-uplink-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_true(asprintf(&f->agent_dir, "%s/agent", f->dir) > 0);
        assert_int_equal(mkdir(f->agent_dir, 0700), 0);
        assert_true(asprintf(&g_ca_dir, "%s/ca", f->dir) > 0);
        assert_int_equal(mkdir(g_ca_dir, 0700), 0);
        _cleanup_ca_ sk_ca *ca = NULL;
        assert_int_equal(sk_ca_open(g_ca_dir, &ca, NULL), 0);
        const char *names[] = {"127.0.0.1"};
        assert_int_equal(sk_ca_issue_server(ca, names, 1, 1, &f->cert_pem, &f->key_pem, NULL), 0);
        f->t.ca_pem = strdup(sk_ca_cert_pem(ca));
        assert_true(asprintf(&f->ca_file, "%s/tower-ca.pem", f->dir) > 0);
        assert_int_equal(sk_file_write(f->ca_file, f->t.ca_pem, strlen(f->t.ca_pem), 0644, NULL),
                         0);
        pthread_mutex_init(&f->t.lock, NULL);
        f->t.desired = json_pack("{s:I, s:{s:s}, s:[]}", "generation", (json_int_t)5, "site",
                                 "name", "store-001", "deployments");
        f->t.d = MHD_start_daemon(
            MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
            NULL, on_request, &f->t, MHD_OPTION_HTTPS_MEM_KEY, f->key_pem,
            MHD_OPTION_HTTPS_MEM_CERT, f->cert_pem, MHD_OPTION_HTTPS_MEM_TRUST, f->t.ca_pem,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
        assert_non_null(f->t.d);
        f->t.port = MHD_get_daemon_info(f->t.d, MHD_DAEMON_INFO_BIND_PORT)->port;
        assert_true(asprintf(&f->url, "https://127.0.0.1:%d", f->t.port) > 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fixture *f = *state;
        pthread_mutex_lock(&f->t.lock);
        f->t.stopping = true;
        pthread_mutex_unlock(&f->t.lock);
        MHD_stop_daemon(f->t.d);
        json_decref(f->t.desired);
        json_decref(f->t.last_status);
        json_decref(f->t.hosts_posted);
        pthread_mutex_destroy(&f->t.lock);
        _cleanup_free_ char *cmd = NULL;
        assert_true(asprintf(&cmd, "rm -rf '%s'", f->dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(f->dir);
        free(f->agent_dir);
        free(f->ca_file);
        free(f->url);
        free(f->t.ca_pem);
        free(f->cert_pem);
        free(f->key_pem);
        free(g_ca_dir);
        free(f);
        return 0;
}

static void join_ok(fixture *f, sk_identity *id)
{
        _cleanup_json_ json_t *labels = json_pack("{s:s}", "role", "till");
        sk_join_request req = {f->url, f->ca_file, "good", "h1", labels, NULL};
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_agent_join(f->agent_dir, &req, id, &err);
        if (r < 0)
                fail_msg("join: %s", sk_error_msg(err, r));
}

static void test_join_refused_and_accepted(void **state)
{
        fixture *f = *state;
        _cleanup_json_ json_t *labels = json_pack("{s:s}", "role", "till");
        sk_join_request req = {f->url, f->ca_file, "used", "h1", labels, NULL};
        sk_identity id;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_agent_join(f->agent_dir, &req, &id, &err), -EACCES);
        assert_non_null(strstr(err->msg, "the join token was already used"));
        _cleanup_free_ char *key_path = sk_identity_path(f->agent_dir, "key.pem");
        assert_int_equal(access(key_path, F_OK), -1); /* nothing stored on a refusal */

        join_ok(f, &id);
        assert_string_equal(id.site, "store-001");
        assert_string_equal(id.host, "h1");
        assert_int_equal(id.site_id, 7);
        assert_int_equal(id.host_id, 3);
        struct stat st;
        assert_int_equal(stat(key_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        id.runtime = strdup("unix:///run/x.sock");
        assert_int_equal(sk_identity_save(f->agent_dir, &id, NULL), 0);
        sk_identity back;
        assert_int_equal(sk_identity_load(f->agent_dir, &back, NULL), 0);
        assert_string_equal(back.tower, f->url);
        assert_string_equal(back.runtime, "unix:///run/x.sock");
        assert_string_equal(json_string_value(json_object_get(back.labels, "role")), "till");
        assert_int_equal(back.host_id, 3);
        sk_identity_clear(&back);
        sk_identity_clear(&id);

        /* A tower that the given CA does not vouch for is refused before any token goes. */
        _cleanup_free_ char *other = NULL;
        assert_true(asprintf(&other, "%s/other-ca", f->dir) > 0);
        assert_int_equal(mkdir(other, 0700), 0);
        _cleanup_ca_ sk_ca *ca2 = NULL;
        assert_int_equal(sk_ca_open(other, &ca2, NULL), 0);
        _cleanup_free_ char *other_pem = NULL;
        assert_true(asprintf(&other_pem, "%s/ca.pem", other) > 0);
        sk_join_request bad = {f->url, other_pem, "good", "h2", NULL, NULL};
        sk_error_free(&err);
        assert_true(sk_agent_join(f->agent_dir, &bad, &id, &err) < 0);
}

static void test_parse_labels(void **state)
{
        _cleanup_json_ json_t *l = NULL;
        assert_int_equal(sk_parse_labels("role=till,floor=2,empty=", &l, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(l, "floor")), "2");
        assert_string_equal(json_string_value(json_object_get(l, "empty")), "");
        _cleanup_json_ json_t *bad = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_parse_labels("role=till,oops", &bad, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "item 2 \"oops\""));
}

static bool wait_until(bool (*pred)(fixture *), fixture *f, int ms)
{
        for (int64_t end = mono_ms() + ms; mono_ms() < end; usleep(20000))
                if (pred(f))
                        return true;
        return pred(f);
}

static bool desired_file_has_6(fixture *f)
{
        _cleanup_json_ json_t *doc = NULL;
        return sk_desired_load(f->agent_dir, &doc, NULL) == 0 &&
               json_integer_value(json_object_get(doc, "generation")) == 6;
}

static bool held_at_5(fixture *f)
{
        pthread_mutex_lock(&f->t.lock);
        bool ok = f->t.last_asked_generation == 5;
        pthread_mutex_unlock(&f->t.lock);
        return ok;
}

static int posts(fixture *f)
{
        pthread_mutex_lock(&f->t.lock);
        int n = f->t.status_posts;
        pthread_mutex_unlock(&f->t.lock);
        return n;
}

/* The site leader's side of the uplink: what on_desired got, and the reports it hands
 * over (one status body per host of the site, as sk_cluster_reports makes them). */
typedef struct leader {
        pthread_mutex_t lock;
        json_t *generations; /* of each document on_desired got, in order */
} leader;

static void on_desired(const json_t *doc, void *user)
{
        leader *l = user;
        pthread_mutex_lock(&l->lock);
        json_array_append(l->generations, json_object_get(doc, "generation"));
        pthread_mutex_unlock(&l->lock);
}

static json_t *reports(void *user)
{
        return json_pack("[{s:s, s:I, s:s, s:[], s:{s:I, s:I}}, {s:s, s:I, s:s, s:[], s:{s:I, "
                         "s:I}}]",
                         "host", "h1", "host-id", 1, "state", "alive", "instances", "capacity",
                         "cpu", 2000, "memory", (json_int_t)1 << 30, "host", "h2", "host-id", 2,
                         "state", "lost", "instances", "capacity", "cpu", 1000, "memory",
                         (json_int_t)1 << 30);
}

static leader *site_leader; /* the one the running test gave the uplink */

static bool got_5_and_6(fixture *f)
{
        leader *l = site_leader;
        pthread_mutex_lock(&l->lock);
        bool r = json_array_size(l->generations) == 2 &&
                 json_integer_value(json_array_get(l->generations, 0)) == 5 &&
                 json_integer_value(json_array_get(l->generations, 1)) == 6;
        pthread_mutex_unlock(&l->lock);
        return r;
}

static bool both_hosts_posted(fixture *f)
{
        pthread_mutex_lock(&f->t.lock);
        bool r =
            json_object_get(f->t.hosts_posted, "h1") && json_object_get(f->t.hosts_posted, "h2");
        pthread_mutex_unlock(&f->t.lock);
        return r;
}

static void test_uplink_sync_status_and_stop(void **state)
{
        fixture *f = *state;
        sk_identity id;
        join_ok(f, &id);
        leader l = {.generations = json_array()};
        pthread_mutex_init(&l.lock, NULL);
        site_leader = &l;
        f->t.hosts_posted = json_object();
        sk_uplink_config uc = {.data_dir = f->agent_dir,
                               .tower = f->url,
                               .host = "h1",
                               .generation = 0,
                               .on_desired = on_desired,
                               .reports = reports,
                               .user = &l};
        sk_uplink *up = NULL;
        assert_int_equal(sk_uplink_new(&uc, &up, NULL), 0);
        assert_int_equal(sk_uplink_start(up, NULL), 0);

        /* It fetches generation 5, persists it, then holds a long-poll at 5. */
        assert_true(wait_until(held_at_5, f, 5000));
        _cleanup_json_ json_t *doc = NULL;
        assert_int_equal(sk_desired_load(f->agent_dir, &doc, NULL), 0);
        assert_int_equal(json_integer_value(json_object_get(doc, "generation")), 5);
        _cleanup_free_ char *path = sk_identity_path(f->agent_dir, "desired.json");
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* A change reaches it through the held request, persisted before the site hears. */
        pthread_mutex_lock(&f->t.lock);
        json_object_set_new(f->t.desired, "generation", json_integer(6));
        pthread_mutex_unlock(&f->t.lock);
        assert_true(wait_until(desired_file_has_6, f, 3000));
        assert_true(wait_until(got_5_and_6, f, 3000));

        /* Status: every host of the site, at once, on a change, and every 5 s. */
        assert_true(wait_until(both_hosts_posted, f, 3000));
        pthread_mutex_lock(&f->t.lock);
        const json_t *h2 = json_object_get(f->t.hosts_posted, "h2");
        assert_string_equal(json_string_value(json_object_get(h2, "state")), "lost");
        assert_int_equal(json_integer_value(json_object_get(h2, "host-id")), 2);
        assert_true(json_is_array(json_object_get(h2, "instances")));
        assert_int_equal(f->t.untrusted, 0);
        pthread_mutex_unlock(&f->t.lock);
        int before = posts(f);
        sk_uplink_notify(up);
        usleep(500000);
        assert_true(posts(f) >= before + 2);
        before = posts(f);
        usleep(5600000);
        assert_true(posts(f) >= before + 2);

        /* Stopping aborts the held long-poll at once rather than waiting it out. */
        int64_t t0 = mono_ms();
        sk_uplink_free(up);
        assert_true(mono_ms() - t0 < 2500);
        json_decref(l.generations);
        pthread_mutex_destroy(&l.lock);
        sk_identity_clear(&id);
}

static void test_uplink_unreachable_stops_quickly(void **state)
{
        fixture *f = *state;
        sk_identity id;
        join_ok(f, &id);
        leader l = {.generations = json_array()};
        pthread_mutex_init(&l.lock, NULL);
        /* A port nothing listens on: the tower is down. */
        sk_uplink_config uc = {.data_dir = f->agent_dir,
                               .tower = "https://127.0.0.1:1",
                               .host = "h1",
                               .on_desired = on_desired,
                               .reports = reports,
                               .user = &l};
        sk_uplink *up = NULL;
        assert_int_equal(sk_uplink_new(&uc, &up, NULL), 0);
        assert_int_equal(sk_uplink_start(up, NULL), 0);
        usleep(1500000);
        int64_t t0 = mono_ms();
        sk_uplink_free(up);
        assert_true(mono_ms() - t0 < 2500);
        _cleanup_json_ json_t *doc = NULL;
        assert_int_equal(sk_desired_load(f->agent_dir, &doc, NULL), -ENOENT);
        assert_int_equal(json_array_size(l.generations), 0);
        json_decref(l.generations);
        pthread_mutex_destroy(&l.lock);

        /* The site's side is not optional: there is no uplink without it. */
        sk_uplink_config bare = {.data_dir = f->agent_dir, .tower = f->url, .host = "h1"};
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_uplink_new(&bare, &up, &err), -EINVAL);
        sk_identity_clear(&id);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_labels),
            cmocka_unit_test_setup_teardown(test_join_refused_and_accepted, setup, teardown),
            cmocka_unit_test_setup_teardown(test_uplink_sync_status_and_stop, setup, teardown),
            cmocka_unit_test_setup_teardown(test_uplink_unreachable_stops_quickly, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
