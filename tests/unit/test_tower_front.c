/* The tower's front against hostile clients (docs/security.md): the request target decoder,
 * connection admission, the login throttle and lockout, and audit retention through the API
 * on a real SQLite store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "tower/admit.h"
#include "tower/api.h"
#include "tower/api_int.h"
#include "tower/store.h"
#include "tower/target.h"

/* Parses raw; returns the error's path (or "ok"), and leaves the result in path/query. */
static const char *parse(const char *raw, char **path, json_t **query)
{
        static char where[64];
        sk_error *err = NULL;
        int r = sk_tower_target_parse(raw, strlen(raw), path, query, &err);
        if (r == 0)
                return "ok";
        assert_int_equal(r, -EINVAL);
        snprintf(where, sizeof(where), "%s", err && err->path ? err->path : "");
        sk_error_free(&err);
        return where;
}

static void test_target(void **state)
{
        char *path = NULL;
        json_t *q = NULL;
        assert_string_equal(parse("/v1/sites?match=chain+%3D+acme&tenant=payco", &path, &q), "ok");
        assert_string_equal(path, "/v1/sites");
        assert_string_equal(json_string_value(json_object_get(q, "match")), "chain = acme");
        assert_string_equal(json_string_value(json_object_get(q, "tenant")), "payco");
        free(path);
        json_decref(q);
        assert_string_equal(parse("/v1/caf%C3%A9?flag&e=", &path, &q), "ok");
        assert_string_equal(path, "/v1/caf\xc3\xa9");
        assert_string_equal(json_string_value(json_object_get(q, "flag")), "");
        assert_string_equal(json_string_value(json_object_get(q, "e")), "");
        free(path);
        json_decref(q);
        /* what used to lose data: each a 400 naming the parameter */
        assert_string_equal(parse("/v1/applications/vapp?version=1.0.0%ff", &path, &q), "version");
        assert_string_equal(parse("/v1/users?tenant=payco%ff", &path, &q), "tenant");
        assert_string_equal(parse("/v1/sites/kiosk%00x", &path, &q), "path");
        assert_string_equal(parse("/v1/sites?match=a%00", &path, &q), "match");
        assert_string_equal(parse("/v1/x?version=1&version=2", &path, &q), "version");
        assert_string_equal(parse("/v1/x?a=%zz", &path, &q), "a");
        assert_string_equal(parse("/v1/x?a=%f", &path, &q), "a");
        assert_string_equal(parse("/v1/sites/a%2Fb", &path, &q), "path");
        assert_string_equal(parse("/v1/sites/a%0Ab", &path, &q), "path");
        assert_string_equal(parse("/v1/x?%ED%A0%80=1", &path, &q), "query"); /* a surrogate */
        assert_string_equal(parse("/v1/x?=1", &path, &q), "query");
        assert_string_equal(parse("/v1/x?a=%C0%AF", &path, &q), "a"); /* overlong '/' */
        assert_string_equal(parse("v1/x", &path, &q), "path");
        assert_null(path);
        assert_null(q);
        /* longer than the limit: -E2BIG, a 414 */
        char *long_target = malloc(SK_TOWER_TARGET_MAX + 2);
        memset(long_target, 'a', SK_TOWER_TARGET_MAX + 1);
        long_target[0] = '/';
        long_target[SK_TOWER_TARGET_MAX + 1] = '\0';
        assert_int_equal(sk_tower_target_parse(long_target, strlen(long_target), &path, &q, NULL),
                         -E2BIG);
        free(long_target);
}

static void test_utf8(void **state)
{
        assert_true(sk_utf8_valid("", 0));
        assert_true(sk_utf8_valid("\xf0\x9f\x98\x80", 4));
        assert_true(sk_utf8_valid("\xf4\x8f\xbf\xbf", 4));
        assert_false(sk_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
        assert_false(sk_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
        assert_false(sk_utf8_valid("\xc3", 1));             /* cut short */
        assert_false(sk_utf8_valid("\xff", 1));
}

static void test_admit(void **state)
{
        sk_admit_limits lim = {.limit = 100, .reserve = 97, .per_address = 2, .per_identity = 2};
        sk_admit *a = sk_admit_new(&lim);
        assert_true(sk_admit_open(a, "10.0.0.1"));
        assert_true(sk_admit_open(a, "10.0.0.1"));
        assert_false(sk_admit_open(a, "10.0.0.1")); /* per address */
        assert_true(sk_admit_open(a, "10.0.0.2"));
        assert_false(sk_admit_open(a, "10.0.0.3")); /* strangers in total */
        /* a proven connection leaves the strangers' places, per address and in total */
        assert_true(sk_admit_prove(a, "10.0.0.1", "host:1/1"));
        assert_true(sk_admit_open(a, "10.0.0.1"));
        sk_admit_stats st = sk_admit_get_stats(a);
        assert_int_equal(st.strangers, 3);
        assert_int_equal(st.proven, 1);
        assert_int_equal(st.refused, 2);
        /* proven ones count per identity: behind one address, many hosts; one host, few */
        assert_true(sk_admit_prove(a, "10.0.0.1", "host:1/1"));
        assert_false(sk_admit_prove(a, "10.0.0.1", "host:1/1"));
        assert_true(sk_admit_prove(a, "10.0.0.1", "host:1/2"));
        st = sk_admit_get_stats(a);
        assert_int_equal(st.strangers, 1);
        assert_int_equal(st.proven, 3);
        for (int i = 0; i < 3; i++)
                assert_true(sk_admit_open(a, "10.0.0.1") == (i < 2));
        sk_admit_close(a, "10.0.0.2", NULL);
        sk_admit_close(a, "10.0.0.1", "host:1/1");
        sk_admit_close(a, "10.0.0.1", "host:1/1");
        sk_admit_close(a, "10.0.0.1", "host:1/2");
        sk_admit_close(a, "10.0.0.1", NULL);
        sk_admit_close(a, "10.0.0.1", NULL);
        st = sk_admit_get_stats(a);
        assert_int_equal(st.strangers, 0);
        assert_int_equal(st.proven, 0);
        sk_admit_free(a);

        /* nearly full of proven connections: each address gets at most half of the rest */
        sk_admit_limits few = {.limit = 20, .reserve = 2, .per_address = 100, .per_identity = 100};
        a = sk_admit_new(&few);
        char who[32];
        for (int i = 0; i < 12; i++) {
                snprintf(who, sizeof(who), "10.1.0.%d", i);
                assert_true(sk_admit_open(a, who));
                assert_true(sk_admit_prove(a, who, who));
        }
        int n = 0;
        while (sk_admit_open(a, "10.9.9.9"))
                n++;
        assert_int_equal(n, 4); /* 8 places free: it stops with as many left */
        assert_true(sk_admit_open(a, "10.8.8.8"));
        assert_true(sk_admit_open(a, "10.8.8.8"));
        assert_false(sk_admit_open(a, "10.8.8.8"));
        assert_true(sk_admit_open(a, "10.7.7.7")); /* a newcomer still gets in */
        sk_admit_free(a);
}

static void test_login_limit(void **state)
{
        sk_login_limit *l = sk_login_limit_new();
        /* in flight per address */
        assert_true(sk_login_limit_begin(l, "addr:a", 2, 0));
        assert_true(sk_login_limit_begin(l, "addr:a", 2, 0));
        assert_false(sk_login_limit_begin(l, "addr:a", 2, 0));
        assert_true(sk_login_limit_begin(l, "addr:b", 2, 0));
        sk_login_limit_end(l, "addr:a");
        assert_true(sk_login_limit_begin(l, "addr:a", 2, 0));
        /* a user locked at one address is not locked at another */
        for (int i = 0; i < 5; i++)
                sk_login_limit_fail(l, "user:t/u@a", 5, 1000);
        assert_true(sk_login_limit_locked(l, "user:t/u@a", 1000) > 0);
        assert_int_equal(sk_login_limit_locked(l, "user:t/u@b", 1000), 0);
        assert_int_equal(sk_login_limit_locked(l, "user:t/u@a", 1000 + 31000), 0);
        /* a flood is noted once a minute */
        assert_true(sk_login_limit_note(l, "user:t/u@a", 1000));
        assert_false(sk_login_limit_note(l, "user:t/u@a", 2000));
        assert_false(sk_login_limit_note(l, "user:t/u@a", 60999));
        assert_true(sk_login_limit_note(l, "user:t/u@a", 61000));
        sk_login_limit_free(l);
}

static int64_t fake_now;
static int64_t clock_now(void)
{
        return fake_now;
}

static int count_event(const sk_event_row *row, void *user)
{
        (*(int *)user)++;
        return 0;
}

/* The API prunes the audit trail as it writes, by count and by age. */
static void test_retention(void **state)
{
        char dir[] = "/tmp/sk-front-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char db[64];
        snprintf(db, sizeof(db), "%s/tower.db", dir);
        sk_store *s = NULL;
        assert_int_equal(sk_store_sqlite_open(db, &s, NULL), 0);
        sk_tower_api *api = NULL;
        assert_int_equal(sk_tower_api_new(s, NULL, &api, NULL), 0);
        fake_now = 1700000000000LL;
        sk_tower_api_set_clock(api, clock_now);
        char *admin = NULL;
        assert_int_equal(sk_tower_bootstrap(api, &admin, NULL), 0);
        sk_tower_api_set_retention(api, 3600 * 1000, 3);
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", admin);
        for (int i = 0; i < 10; i++) {
                char path[64], body[128];
                snprintf(path, sizeof(path), "/v1/users/u%d", i);
                snprintf(body, sizeof(body),
                         "{\"kind\":\"user\",\"name\":\"u%d\",\"role\":\"viewer\"}", i);
                sk_tower_request req = {.method = "PUT",
                                        .path = path,
                                        .authorization = auth,
                                        .body = body,
                                        .body_len = strlen(body)};
                sk_tower_response resp;
                sk_tower_api_handle(api, &req, &resp);
                assert_int_equal(resp.status, 200);
                sk_tower_response_clear(&resp);
                fake_now += 61 * 1000; /* past the once-a-minute pruning */
        }
        int n = 0;
        assert_int_equal(s->ops->event_list(s, 0, count_event, &n, NULL), 0);
        assert_int_equal(n, 3);
        /* by age: an hour later, the next write leaves only itself */
        fake_now += 3600 * 1000;
        sk_tower_request req = {.method = "DELETE", .path = "/v1/users/u0", .authorization = auth};
        sk_tower_response resp;
        sk_tower_api_handle(api, &req, &resp);
        assert_int_equal(resp.status, 200);
        sk_tower_response_clear(&resp);
        n = 0;
        assert_int_equal(s->ops->event_list(s, 0, count_event, &n, NULL), 0);
        assert_int_equal(n, 1);
        free(admin);
        sk_tower_api_free(api);
        s->ops->close(s);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_target),    cmocka_unit_test(test_utf8),
            cmocka_unit_test(test_admit),     cmocka_unit_test(test_login_limit),
            cmocka_unit_test(test_retention),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
