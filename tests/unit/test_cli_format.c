/* CLI output: aligned tables, per-kind columns, describe, ages, the caret under a bad
 * expression, and rollout status. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/format.h"
#include "common/cleanup.h"

/* 2026-01-01T00:00:00Z */
#define NOW ((time_t)1767225600)

static json_t *parse(const char *text)
{
        json_error_t e;
        json_t *v = json_loads(text, 0, &e);
        if (!v)
                fail_msg("bad test JSON: %s", e.text);
        return v;
}

static void test_table_alignment(void **state)
{
        static const char *const hdr[] = {"NAME", "X", "LAST"};
        _cleanup_table_ sk_table *t = sk_table_new(3, hdr);
        assert_non_null(t);
        assert_int_equal(sk_table_add(t, (const char *const[]){"a", "longer-value", "z"}), 0);
        assert_int_equal(sk_table_add(t, (const char *const[]){"bbbbbb", NULL, "y y"}), 0);
        _cleanup_free_ char *out = sk_table_render(t);
        assert_string_equal(out, "NAME     X              LAST\n"
                                 "a        longer-value   z\n"
                                 "bbbbbb   -              y y\n");
}

static void test_table_utf8_and_control(void **state)
{
        static const char *const hdr[] = {"A", "B"};
        _cleanup_table_ sk_table *t = sk_table_new(2, hdr);
        /* "é" is two bytes but one column; an escape sequence must not reach the terminal. */
        assert_int_equal(sk_table_add(t, (const char *const[]){"caf\xc3\xa9", "1"}), 0);
        assert_int_equal(sk_table_add(t, (const char *const[]){"\x1b[31mred", "2\n"}), 0);
        _cleanup_free_ char *out = sk_table_render(t);
        assert_string_equal(out, "A          B\n"
                                 "caf\xc3\xa9       1\n"
                                 "?[31mred   2?\n");
}

static void test_display_width(void **state)
{
        assert_int_equal(sk_cli_display_width("abc"), 3);
        assert_int_equal(sk_cli_display_width("caf\xc3\xa9"), 4);
        /* CJK and emoji take two columns, a combining accent none */
        assert_int_equal(sk_cli_display_width("\xe6\x9d\xb1\xe4\xba\xac"), 4); /* 東京 */
        assert_int_equal(sk_cli_display_width("\xf0\x9f\x98\x80"), 2);         /* 😀 */
        assert_int_equal(sk_cli_display_width("e\xcc\x81"), 1);                /* e + ́ */
        assert_int_equal(sk_cli_display_width("\xe6\x9d"), 1);                 /* cut short */
        static const char *const hdr[] = {"SITE", "N"};
        _cleanup_table_ sk_table *t = sk_table_new(2, hdr);
        assert_int_equal(sk_table_add(t, (const char *const[]){"\xe6\x9d\xb1\xe4\xba\xac", "1"}),
                         0);
        assert_int_equal(sk_table_add(t, (const char *const[]){"osaka", "2"}), 0);
        _cleanup_free_ char *out = sk_table_render(t);
        assert_string_equal(out, "SITE    N\n"
                                 "\xe6\x9d\xb1\xe4\xba\xac    1\n"
                                 "osaka   2\n");
}

static void test_use_color(void **state)
{
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        unsetenv("NO_COLOR");
        assert_false(sk_cli_use_color(fds[1])); /* not a terminal */
        int tty = posix_openpt(O_RDWR | O_NOCTTY);
        if (tty >= 0) {
                setenv("TERM", "xterm", 1);
                assert_true(sk_cli_use_color(tty));
                setenv("NO_COLOR", "1", 1);
                assert_false(sk_cli_use_color(tty));
                unsetenv("NO_COLOR");
                setenv("TERM", "dumb", 1);
                assert_false(sk_cli_use_color(tty));
                close(tty);
        }
        close(fds[0]);
        close(fds[1]);
}

/* Line n (0-based) of text, without trailing blanks, equals want. */
static void expect_line(const char *text, int n, const char *want)
{
        const char *p = text;
        for (int i = 0; i < n && p; i++) {
                p = strchr(p, '\n');
                p = p ? p + 1 : NULL;
        }
        assert_non_null(p);
        size_t len = strcspn(p, "\n");
        while (len > 0 && p[len - 1] == ' ')
                len--;
        if (strlen(want) != len || strncmp(p, want, len) != 0)
                fail_msg("line %d is '%.*s', not '%s'", n, (int)len, p, want);
}

static void test_cell(void **state)
{
        _cleanup_json_ json_t *v =
            parse("{\"labels\": {\"region\": \"north\", \"chain\": \"acme\"},"
                  " \"list\": [\"a\", 1, true], \"empty\": [], \"r\": 0.5}");
        _cleanup_free_ char *labels = sk_cli_format_cell(json_object_get(v, "labels"));
        assert_string_equal(labels, "chain=acme,region=north"); /* keys sorted */
        _cleanup_free_ char *list = sk_cli_format_cell(json_object_get(v, "list"));
        assert_string_equal(list, "a,1,true");
        _cleanup_free_ char *empty = sk_cli_format_cell(json_object_get(v, "empty"));
        assert_string_equal(empty, "-");
        _cleanup_free_ char *missing = sk_cli_format_cell(json_object_get(v, "nope"));
        assert_string_equal(missing, "-");
        _cleanup_free_ char *real = sk_cli_format_cell(json_object_get(v, "r"));
        assert_string_equal(real, "0.5");
}

static void test_kind_tables(void **state)
{
        _cleanup_json_ json_t *sites =
            parse("[{\"name\": \"store-001\", \"labels\": {\"region\": \"north\", \"chain\": "
                  "\"acme\"}}, {\"name\": \"s2\", \"labels\": {}}]");
        _cleanup_free_ char *s = sk_cli_format_table(SK_KIND_SITE, sites, NOW);
        assert_string_equal(s, "NAME        LABELS\n"
                               "store-001   chain=acme,region=north\n"
                               "s2          -\n");

        _cleanup_json_ json_t *apps =
            parse("[{\"name\": \"pos\", \"version\": \"2.1.0\", \"versions\": [\"1.0.0\", "
                  "\"2.1.0\"], \"services\": [{\"name\": \"api\"}, {\"name\": \"db\"}]}]");
        _cleanup_free_ char *a = sk_cli_format_table(SK_KIND_APPLICATION, apps, NOW);
        assert_string_equal(a, "NAME   VERSION   VERSIONS      SERVICES\n"
                               "pos    2.1.0     1.0.0,2.1.0   api,db\n");

        _cleanup_json_ json_t *deps =
            parse("[{\"name\": \"pos-stores\", \"application\": \"pos\", \"version\": \"*\", "
                  "\"sites\": \"chain = acme\", \"status\": {\"running\": 3, \"desired\": 4}},"
                  " {\"name\": \"d2\", \"application\": \"x\", \"version\": \"1\", \"sites\": "
                  "\"a\"}]");
        _cleanup_free_ char *d = sk_cli_format_table(SK_KIND_DEPLOYMENT, deps, NOW);
        assert_string_equal(d, "NAME         APPLICATION   VERSION   SITES          "
                               "RUNNING/DESIRED\n"
                               "pos-stores   pos           *         chain = acme   3/4\n"
                               "d2           x             1         a              -\n");

        _cleanup_json_ json_t *hosts =
            parse("[{\"name\": \"h1\", \"site\": \"store-001\", \"last-seen\": "
                  "\"2025-12-31T23:59:55Z\", \"role\": \"leader\", \"state\": \"alive\", "
                  "\"labels\": {\"zone\": \"a\"}, \"address\": \"10.0.0.1\"}, {\"name\": "
                  "\"h2\", \"site\": \"store-001\"}]");
        _cleanup_free_ char *h = sk_cli_format_table(SK_KIND_HOST, hosts, NOW);
        assert_string_equal(h, "NAME   SITE        ROLE     STATE   LABELS   LAST-SEEN\n"
                               "h1     store-001   leader   alive   zone=a   5s\n"
                               "h2     store-001   -        -       -        -\n");
        /* -o wide adds the address and when it joined */
        _cleanup_free_ char *hw = sk_cli_format_table_opts(SK_KIND_HOST, hosts, NOW, true, false);
        expect_line(hw, 0,
                    "NAME   SITE        ROLE     STATE   LABELS   LAST-SEEN   ADDRESS    JOINED");
        expect_line(hw, 1, "h1     store-001   leader   alive   zone=a   5s          10.0.0.1   -");
        /* colour: a bold header, the rows as they are */
        _cleanup_free_ char *hc = sk_cli_format_table_opts(SK_KIND_HOST, hosts, NOW, false, true);
        assert_true(strncmp(hc, "\033[1mNAME", 8) == 0);
        assert_non_null(strstr(hc, "LAST-SEEN\033[0m\nh1 "));

        _cleanup_json_ json_t *insts =
            parse("[{\"instance\": \"default/pos-stores/api/0\", \"site\": \"s1\", \"host\": "
                  "\"h1\", \"state\": \"failed\", \"reason\": \"image missing\"}]");
        _cleanup_free_ char *i = sk_cli_format_table(SK_KIND_INSTANCE, insts, NOW);
        assert_string_equal(i, "INSTANCE                   SITE   HOST   STATE    REASON\n"
                               "default/pos-stores/api/0   s1     h1     failed   image missing\n");

        _cleanup_json_ json_t *ten = parse("[{\"name\": \"acme\", \"type\": \"application\"}]");
        _cleanup_free_ char *t = sk_cli_format_table(SK_KIND_TENANT, ten, NOW);
        assert_string_equal(t, "NAME   TYPE\nacme   application\n");
        _cleanup_json_ json_t *users = parse("[{\"name\": \"alice\", \"role\": \"developer\"}]");
        _cleanup_free_ char *u = sk_cli_format_table(SK_KIND_USER, users, NOW);
        assert_string_equal(u, "NAME    ROLE\nalice   developer\n");
}

static void test_age(void **state)
{
        struct {
                const char *in, *want;
        } cases[] = {
            {"2025-12-31T23:59:50Z", "10s"},
            {"2025-12-31T23:59:50.123456Z", "10s"},
            {"2026-01-01T01:00:00+01:00", "0s"},
            {"2025-12-31T23:00:00-01:00", "0s"},
            {"2025-12-31T23:50:00Z", "10m"},
            {"2025-12-31T21:00:00Z", "3h"},
            {"2025-12-25T00:00:00Z", "7d"},
            {"2026-01-02T00:00:00Z", "0s"}, /* clock skew: never negative */
            {"yesterday", "yesterday"},
            {"2025-12-31T23:59:50", "2025-12-31T23:59:50"}, /* no zone: shown as is */
            {"", "-"},
            {"2026-01-01\x1b[2J", "2026-01-01?[2J"}, /* never raw to a terminal */
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *got = sk_cli_format_age(cases[i].in, NOW);
                if (strcmp(got, cases[i].want) != 0)
                        fail_msg("%s: got %s, want %s", cases[i].in, got, cases[i].want);
        }
}

static void test_caret(void **state)
{
        _cleanup_free_ char *a = sk_cli_format_caret("chain = = acme", 9);
        assert_string_equal(a, "chain = = acme\n        ^\n");
        _cleanup_free_ char *b = sk_cli_format_caret("x", 1);
        assert_string_equal(b, "x\n^\n");
        /* Columns count characters, and a tab stays a tab so the caret lines up. */
        _cleanup_free_ char *c = sk_cli_format_caret("\t\xc3\xa9 = (", 6);
        assert_string_equal(c, "\t\xc3\xa9 = (\n\t    ^\n");
        /* One past the end: where something was expected. */
        _cleanup_free_ char *d = sk_cli_format_caret("a in", 5);
        assert_string_equal(d, "a in\n    ^\n");
}

static const char deployment[] =
    "{\"name\": \"pos-stores\", \"application\": \"pos\", \"version\": \"2.1.0\","
    " \"sites\": \"chain = acme\", \"tenant\": \"default\","
    " \"strategy\": {\"sites-in-parallel\": 50, \"on-failure\": \"halt\"},"
    " \"status\": {\"desired\": 3, \"running\": 2, \"sites\": ["
    "  {\"site\": \"store-001\", \"version\": \"2.1.0\", \"instances\": ["
    "    {\"instance\": \"default/pos-stores/api/0\", \"host\": \"h1\", \"state\": "
    "\"running\", \"reason\": \"\", \"restarts\": 0, \"updated\": \"2025-12-31T23:59:00Z\"},"
    "    {\"instance\": \"default/pos-stores/api/1\", \"host\": \"h2\", \"state\": "
    "\"backoff\", \"reason\": \"exit code 1\", \"restarts\": 4}]},"
    "  {\"site\": \"store-002\", \"version\": \"2.1.0\", \"instances\": ["
    "    {\"instance\": \"default/pos-stores/api/0\", \"host\": \"h9\", \"state\": "
    "\"running\", \"reason\": \"\", \"restarts\": 0}]},"
    "  {\"site\": \"store-003\", \"version\": \"2.1.0\", \"instances\": []}]}}";

static void test_describe_deployment(void **state)
{
        _cleanup_json_ json_t *d = parse(deployment);
        _cleanup_free_ char *out = sk_cli_format_describe(SK_KIND_DEPLOYMENT, d, NOW);
        assert_non_null(out);
        assert_string_equal(out, "deployment pos-stores\n"
                                 "  name:        pos-stores\n"
                                 "  application: pos\n"
                                 "  version:     2.1.0\n"
                                 "  sites:       chain = acme\n"
                                 "  tenant:      default\n"
                                 "  strategy:\n"
                                 "    sites-in-parallel: 50\n"
                                 "    on-failure:        halt\n"
                                 "\n"
                                 "Status:\n"
                                 "  running 2 of 3 instances\n"
                                 "  site store-001, version 2.1.0:\n"
                                 "    INSTANCE                   HOST   STATE     RESTARTS   "
                                 "UPDATED   REASON\n"
                                 "    default/pos-stores/api/0   h1     running   0          "
                                 "60s       -\n"
                                 "    default/pos-stores/api/1   h2     backoff   4          "
                                 "-         exit code 1\n"
                                 "  site store-002, version 2.1.0:\n"
                                 "    INSTANCE                   HOST   STATE     RESTARTS   "
                                 "UPDATED   REASON\n"
                                 "    default/pos-stores/api/0   h9     running   0          "
                                 "-         -\n"
                                 "  site store-003, version 2.1.0:\n"
                                 "    no instances reported yet\n");
}

static void test_describe_nested(void **state)
{
        _cleanup_json_ json_t *app = parse(
            "{\"name\": \"pos\", \"version\": \"2.1.0\", \"versions\": [\"1.0.0\", \"2.1.0\"],"
            " \"created\": \"2025-12-31T23:00:00Z\", \"services\": [{\"name\": \"api\", "
            "\"replicas\": 2, \"containers\": [{\"name\": \"api\", \"cmd\": [\"/bin/api\", "
            "\"--port\", \"8080\"]}]}]}");
        _cleanup_free_ char *out = sk_cli_format_describe(SK_KIND_APPLICATION, app, NOW);
        assert_string_equal(out, "application pos\n"
                                 "  name:     pos\n"
                                 "  version:  2.1.0\n"
                                 "  versions: 1.0.0, 2.1.0\n"
                                 "  created:  2025-12-31T23:00:00Z (60m ago)\n"
                                 "  services:\n"
                                 "    -\n"
                                 "      name:     api\n"
                                 "      replicas: 2\n"
                                 "      containers:\n"
                                 "        -\n"
                                 "          name: api\n"
                                 "          cmd:  /bin/api, --port, 8080\n");
}

static void test_rollout(void **state)
{
        _cleanup_json_ json_t *d = parse(deployment);
        bool done = true;
        _cleanup_free_ char *out = sk_cli_format_rollout(d, &done);
        assert_false(done);
        assert_string_equal(out, "deployment pos-stores (application pos 2.1.0): 2 of 3 instances "
                                 "running\n"
                                 "  SITE        VERSION   RUNNING   NOT RUNNING\n"
                                 "  store-001   2.1.0     1/2       default/pos-stores/api/1 "
                                 "backoff: exit code 1\n"
                                 "  store-002   2.1.0     1/1       -\n"
                                 "  store-003   2.1.0     0/0       -\n");
        json_object_set_new(json_object_get(d, "status"), "running", json_integer(3));
        _cleanup_free_ char *again = sk_cli_format_rollout(d, &done);
        assert_true(done);
        assert_non_null(strstr(again, "3 of 3 instances running"));
        _cleanup_json_ json_t *bare = parse("{\"name\": \"x\"}");
        done = false;
        _cleanup_free_ char *b = sk_cli_format_rollout(bare, &done);
        assert_true(done);
        assert_non_null(strstr(b, "no status reported"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_alignment),
            cmocka_unit_test(test_table_utf8_and_control),
            cmocka_unit_test(test_cell),
            cmocka_unit_test(test_display_width),
            cmocka_unit_test(test_use_color),
            cmocka_unit_test(test_kind_tables),
            cmocka_unit_test(test_age),
            cmocka_unit_test(test_caret),
            cmocka_unit_test(test_describe_deployment),
            cmocka_unit_test(test_describe_nested),
            cmocka_unit_test(test_rollout),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
