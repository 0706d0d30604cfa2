/* The CLI's pure helpers: -o jsonpath=, the unified diff of `skerry diff`, and the edit
 * distance behind "did you mean". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/diff.h"
#include "cli/jsonpath.h"
#include "cli/suggest.h"
#include "common/cleanup.h"

static const char answer[] =
    "{\"items\": [{\"name\": \"s1\", \"labels\": {\"chain\": \"acme\", \"sys/zone\": \"a\"}, "
    "\"n\": 2}, {\"name\": \"s2\", \"labels\": {}, \"n\": 3.5}]}";

static char *jp(const char *tmpl)
{
        _cleanup_json_ json_t *v = json_loads(answer, 0, NULL);
        assert_non_null(v);
        char *out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_cli_jsonpath(tmpl, v, &out, &err);
        if (r < 0)
                return strdup(sk_error_msg(err, r));
        return out;
}

#define EXPECT_JP(tmpl, want)                                                                      \
        do {                                                                                       \
                _cleanup_free_ char *got_ = jp(tmpl);                                              \
                assert_string_equal(got_, want);                                                   \
        } while (0)

static void test_jsonpath(void **state)
{
        EXPECT_JP("{.items[*].name}", "s1 s2");
        EXPECT_JP("{.items[0].labels.chain}", "acme");
        EXPECT_JP("{.items[-1].n}", "3.5");
        EXPECT_JP("{.items[0].labels['sys/zone']}", "a");
        EXPECT_JP("{.items[0].labels.sys/zone}", "a");
        EXPECT_JP("{.items[0].labels}", "{\"chain\":\"acme\",\"sys/zone\":\"a\"}");
        EXPECT_JP("{.items[*].labels.*}", "acme a");
        EXPECT_JP("names: {.items[0].name}{\"\\n\"}{ .items[1].name }", "names: s1\ns2");
        EXPECT_JP("{.items[7].name}{.nothing}", "");
        EXPECT_JP("{$.items[1].n}", "3.5");
        /* errors name the column */
        EXPECT_JP("{.items[x]}", "jsonpath: expected [N], [*] or ['name'] at column 8");
        EXPECT_JP("{.items", "jsonpath: expected '}' at column 8");
        EXPECT_JP("{items}", "jsonpath: expected '.' or '[' at column 2");
        EXPECT_JP("{.}", "jsonpath: a field name is missing at column 3");
        EXPECT_JP("{\"open}", "jsonpath: an unclosed quote at column 8");
}

static void test_diff(void **state)
{
        _cleanup_free_ char *same = sk_cli_unified_diff("a", "x\ny\n", "b", "x\ny\n", false);
        assert_string_equal(same, "");
        _cleanup_free_ char *d = sk_cli_unified_diff("old", "a\nb\nc\nd\ne\nf\ng\nh\ni\n", "new",
                                                     "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n", false);
        assert_string_equal(d, "--- old\n+++ new\n"
                               "@@ -2,8 +2,9 @@\n"
                               " b\n c\n d\n-e\n+E\n f\n g\n h\n i\n+j\n");
        /* far apart changes make two hunks */
        _cleanup_free_ char *two =
            sk_cli_unified_diff("o", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "n",
                                "x\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ny\n", false);
        assert_string_equal(two, "--- o\n+++ n\n"
                                 "@@ -1,4 +1,4 @@\n-1\n+x\n 2\n 3\n 4\n"
                                 "@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+y\n");
        /* a new resource: everything added, old side empty */
        _cleanup_free_ char *created = sk_cli_unified_diff("/dev/null", "", "n", "k: v\n", false);
        assert_string_equal(created, "--- /dev/null\n+++ n\n@@ -0,0 +1,1 @@\n+k: v\n");
        _cleanup_free_ char *col = sk_cli_unified_diff("o", "a\n", "n", "b\n", true);
        assert_string_equal(col, "--- o\n+++ n\n@@ -1,1 +1,1 @@\n\033[31m-a\033[0m\n"
                                 "\033[32m+b\033[0m\n");
}

static void test_suggest(void **state)
{
        assert_int_equal(sk_cli_edit_distance("get", "get"), 0);
        assert_int_equal(sk_cli_edit_distance("gte", "get"), 1); /* a swap is one edit */
        assert_int_equal(sk_cli_edit_distance("aply", "apply"), 1);
        assert_int_equal(sk_cli_edit_distance("Sites", "sites"), 0);
        assert_int_equal(sk_cli_edit_distance("", "abc"), 3);
        const char *const verbs[] = {"apply", "get", "describe", "delete", "diff"};
        assert_string_equal(sk_cli_suggest("gte", verbs, 5), "get");
        assert_string_equal(sk_cli_suggest("desribe", verbs, 5), "describe");
        assert_string_equal(sk_cli_suggest("dif", verbs, 5), "diff");
        assert_null(sk_cli_suggest("frobnicate", verbs, 5));
        assert_null(sk_cli_suggest("x", verbs, 5));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_jsonpath),
            cmocka_unit_test(test_diff),
            cmocka_unit_test(test_suggest),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
