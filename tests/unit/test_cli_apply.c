/* The pure parts of `skerry apply` and the API glue: dependency order, JSON path back to
 * FILE:LINE:COLUMN (with the real YAML loader and validator), request paths, error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/api.h"
#include "cli/apply.h"
#include "common/cleanup.h"

static const char mixed[] = "kind: deployment\n"           /* 1 */
                            "name: pos-stores\n"           /* 2 */
                            "application: pos\n"           /* 3 */
                            "version: \"*\"\n"             /* 4 */
                            "sites: chain = acme\n"        /* 5 */
                            "---\n"                        /* 6 */
                            "kind: application\n"          /* 7 */
                            "name: pos\n"                  /* 8 */
                            "version: \"2.1.0\"\n"         /* 9 */
                            "services:\n"                  /* 10 */
                            "  - name: api\n"              /* 11 */
                            "    replicas: many\n"         /* 12 */
                            "    containers:\n"            /* 13 */
                            "      - name: api\n"          /* 14 */
                            "        image: pos/api:2.1\n" /* 15 */
                            "---\n"                        /* 16 */
                            "kind: site\n"                 /* 17 */
                            "name: store-001\n"            /* 18 */
                            "---\n"                        /* 19 */
                            "kind: user\n"                 /* 20 */
                            "name: alice\n"                /* 21 */
                            "tenant: acme\n"               /* 22 */
                            "role: developer\n"            /* 23 */
                            "---\n"                        /* 24 */
                            "kind: tenant\n"               /* 25 */
                            "name: acme\n"                 /* 26 */
                            "type: application\n"          /* 27 */
                            "---\n"                        /* 28 */
                            "kind: site\n"                 /* 29 */
                            "name: store-002\n";           /* 30 */

static void test_order(void **state)
{
        sk_cli_doc docs[] = {
            {"f", NULL, SK_KIND_DEPLOYMENT, 0}, {"f", NULL, SK_KIND_APPLICATION, 1},
            {"f", NULL, SK_KIND_SITE, 2},       {"f", NULL, SK_KIND_USER, 3},
            {"f", NULL, SK_KIND_TENANT, 4},     {"f", NULL, SK_KIND_SITE, 5},
            {"g", NULL, SK_KIND_VAULT, 6},      {"g", NULL, SK_KIND_TENANT, 7},
        };
        sk_cli_order_docs(docs, sizeof(docs) / sizeof(docs[0]));
        size_t want[] = {4, 7, 3, 2, 5, 6, 1, 0};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                assert_int_equal(docs[i].index, want[i]);
        assert_true(sk_cli_kind_rank(SK_KIND_TENANT) < sk_cli_kind_rank(SK_KIND_USER));
        assert_true(sk_cli_kind_rank(SK_KIND_USER) < sk_cli_kind_rank(SK_KIND_SITE));
        assert_true(sk_cli_kind_rank(SK_KIND_SITE) < sk_cli_kind_rank(SK_KIND_APPLICATION));
        assert_true(sk_cli_kind_rank(SK_KIND_APPLICATION) < sk_cli_kind_rank(SK_KIND_DEPLOYMENT));
}

static void test_error_position(void **state)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs = {0};
        assert_int_equal(sk_yaml_load(mixed, strlen(mixed), &docs, NULL), 0);
        assert_int_equal(docs.n, 6);
        const sk_yaml_doc *app = &docs.docs[1];

        /* The validator's own path, mapped back into the file. */
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *norm = NULL;
        assert_true(sk_spec_validate(app->value, &norm, &err) < 0);
        assert_non_null(err);
        assert_string_equal(err->path, "services[0].replicas");
        _cleanup_free_ char *msg = sk_cli_doc_error("pos.yaml", app, err->path, err->msg);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "pos.yaml:12:15: services[0].replicas: %s", err->msg) > 0);
        assert_string_equal(msg, want);

        /* A server path for a field that is not in the file: its nearest ancestor. */
        _cleanup_free_ char *m2 =
            sk_cli_doc_error("pos.yaml", app, "services[0].containers[0].probes", "x");
        assert_string_equal(m2, "pos.yaml:14:9: services[0].containers[0].probes: x");
        /* No path: the document itself. */
        _cleanup_free_ char *m3 = sk_cli_doc_error("pos.yaml", &docs.docs[2], NULL, "gone");
        assert_string_equal(m3, "pos.yaml:17:1: gone");
        _cleanup_free_ char *m4 = sk_cli_doc_error("pos.yaml", &docs.docs[3], "role", "bad");
        assert_string_equal(m4, "pos.yaml:23:7: role: bad");
}

static void test_valid_documents(void **state)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs = {0};
        assert_int_equal(sk_yaml_load(mixed, strlen(mixed), &docs, NULL), 0);
        size_t invalid = 0;
        for (size_t i = 0; i < docs.n; i++) {
                _cleanup_error_ sk_error *err = NULL;
                _cleanup_json_ json_t *norm = NULL;
                if (sk_spec_validate(docs.docs[i].value, &norm, &err) < 0)
                        invalid++;
        }
        assert_int_equal(invalid, 1); /* only the application with replicas: many */
}

static void test_apply_line(void **state)
{
        json_t *app =
            json_pack("{s:s, s:s, s:s}", "kind", "application", "name", "pos", "version", "2.1.0");
        json_t *site = json_pack("{s:s, s:s}", "kind", "site", "name", "store-001");
        _cleanup_free_ char *a = sk_cli_apply_line(SK_KIND_APPLICATION, app, "created");
        _cleanup_free_ char *s = sk_cli_apply_line(SK_KIND_SITE, site, "unchanged");
        assert_string_equal(a, "application/pos 2.1.0 created");
        assert_string_equal(s, "site/store-001 unchanged");
        json_decref(app);
        json_decref(site);
}

static void test_resource_path(void **state)
{
        _cleanup_free_ char *a = sk_cli_resource_path("applications", "pos", NULL, NULL);
        assert_string_equal(a, "/v1/applications/pos");
        const char *q[] = {"version", "2.1.0", "tenant", NULL, "site", "", NULL};
        _cleanup_free_ char *b = sk_cli_resource_path("applications", "pos", NULL, q);
        assert_string_equal(b, "/v1/applications/pos?version=2.1.0");
        const char *q2[] = {"match", "chain = acme and x in (a, b)", "tenant", "t 1", NULL};
        _cleanup_free_ char *c = sk_cli_resource_path("sites", NULL, NULL, q2);
        assert_string_equal(c, "/v1/sites?match=chain%20%3D%20acme%20and%20x%20in%20%28a%2C%20b%29"
                               "&tenant=t%201");
        _cleanup_free_ char *d = sk_cli_resource_path("users", "a/b", "password", NULL);
        assert_string_equal(d, "/v1/users/a%2Fb/password");
        _cleanup_free_ char *e = sk_cli_resource_path("sites", NULL, "ignored", NULL);
        assert_string_equal(e, "/v1/sites");
}

static void test_api_error(void **state)
{
        sk_cli_api_err e;
        assert_int_equal(sk_cli_api_err_parse(400,
                                              "{\"error\": {\"code\": \"invalid\", \"message\": "
                                              "\"must be an integer\", \"path\": "
                                              "\"services[0].replicas\"}}",
                                              &e),
                         0);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "invalid");
        assert_string_equal(e.message, "must be an integer");
        assert_string_equal(e.path, "services[0].replicas");
        assert_int_equal(e.column, 0);
        sk_cli_api_err_clear(&e);

        assert_int_equal(sk_cli_api_err_parse(400,
                                              "{\"error\": {\"code\": \"invalid\", \"message\": "
                                              "\"expected a value\", \"column\": 9}}",
                                              &e),
                         0);
        assert_int_equal(e.column, 9);
        assert_null(e.path);
        sk_cli_api_err_clear(&e);

        assert_int_equal(sk_cli_api_err_parse(502, "<html>Bad gateway</html>\nmore", &e), 0);
        assert_null(e.code);
        assert_string_equal(e.message, "HTTP 502: <html>Bad gateway</html>");
        sk_cli_api_err_clear(&e);

        assert_int_equal(sk_cli_api_err_parse(500, "", &e), 0);
        assert_string_equal(e.message, "HTTP 500 with no error message");
        sk_cli_api_err_clear(&e);

        assert_int_equal(sk_cli_api_err_parse(503, "a\x1b[2Jb", &e), 0);
        assert_string_equal(e.message, "HTTP 503: a?[2Jb");
        sk_cli_api_err_clear(&e);

        /* The API's own shape is no way to reach the terminal either. */
        assert_int_equal(sk_cli_api_err_parse(400,
                                              "{\"error\": {\"code\": \"in\\u001bvalid\", "
                                              "\"message\": \"bad\\u001b[2J\", \"path\": "
                                              "\"a\\u0007b\"}}",
                                              &e),
                         0);
        assert_string_equal(e.code, "in?valid");
        assert_string_equal(e.message, "bad?[2J");
        assert_string_equal(e.path, "a?b");
        sk_cli_api_err_clear(&e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_order),           cmocka_unit_test(test_error_position),
            cmocka_unit_test(test_valid_documents), cmocka_unit_test(test_apply_line),
            cmocka_unit_test(test_resource_path),   cmocka_unit_test(test_api_error),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
