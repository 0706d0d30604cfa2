#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "model/labelexpr.h"
#include "model/labelexpr_re.h"

static json_t *labels;

static int setup(void **state)
{
        labels = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "chain", "acme", "region",
                           "north", "floor-size", "medium", "system/name", "store-001",
                           "device/camera", "", "count", 3, "note", "a b\"c");
        return labels ? 0 : -1;
}

static int teardown(void **state)
{
        json_decref(labels);
        return 0;
}

static bool matches(const char *text)
{
        _cleanup_expr_ sk_expr *e = NULL;
        _cleanup_error_ sk_error *err = NULL;
        if (sk_expr_parse(text, &e, &err) < 0)
                fail_msg("\"%s\" does not parse: %s", text, err->msg);
        return sk_expr_match(e, labels);
}

static void expect_format(const char *text, const char *want)
{
        _cleanup_expr_ sk_expr *e = NULL;
        _cleanup_expr_ sk_expr *again = NULL;
        _cleanup_error_ sk_error *err = NULL;
        if (sk_expr_parse(text, &e, &err) < 0)
                fail_msg("\"%s\" does not parse: %s", text, err->msg);
        _cleanup_free_ char *got = sk_expr_format(e);
        assert_string_equal(got, want);
        assert_int_equal(sk_expr_parse(got, &again, &err), 0);
        _cleanup_free_ char *twice = sk_expr_format(again);
        assert_string_equal(twice, got);
}

static void expect_error(const char *text, int column, const char *needle)
{
        _cleanup_expr_ sk_expr *e = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_expr_parse(text, &e, &err), -EINVAL);
        assert_null(e);
        assert_non_null(err);
        if (!strstr(err->msg, needle))
                fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err->msg, needle);
        if (err->column != column)
                fail_msg("\"%s\": column %d, want %d (%s)", text, err->column, column, err->msg);
}

static void test_operators(void **state)
{
        assert_true(matches("chain = acme"));
        assert_false(matches("chain = acm"));
        assert_false(matches("chain = ACME")); /* case-sensitive */
        assert_true(matches("chain != other"));
        assert_false(matches("chain != acme"));
        assert_true(matches("missing != x")); /* absent is "not equal" */
        assert_true(matches("region in (south, north)"));
        assert_false(matches("region in (south, west)"));
        assert_false(matches("missing in (x)"));
        assert_true(matches("region notin (south, west)"));
        assert_false(matches("region notin (north)"));
        assert_true(matches("missing notin (x)"));
        assert_true(matches("chain"));
        assert_true(matches("device/camera"));
        assert_false(matches("missing"));
        assert_false(matches("count")); /* non-string values are ignored */
        assert_true(matches("system/name ~ store-0[0-9]+"));
        assert_true(matches("system/name ~ \"store-.*\""));
        assert_false(matches("system/name ~ store")); /* anchored to the whole value */
        assert_false(matches("system/name ~ 001"));
        assert_true(matches("system/name ~ (shop|store)-001"));
        assert_false(matches("missing ~ .*"));
        assert_true(matches("not missing"));
        assert_false(matches("not chain"));
        assert_true(matches("not not chain"));
}

static void test_precedence(void **state)
{
        /* and binds tighter than or; not tighter than and */
        assert_true(matches("missing and chain or region = north"));
        assert_false(matches("missing and (chain or region = north)"));
        assert_true(matches("chain = acme or missing and nothing"));
        assert_false(matches("(chain = acme or missing) and nothing"));
        assert_true(matches("not missing and chain"));
        assert_false(matches("not (missing or chain)"));
        assert_true(matches("chain = acme and region in (north, west) and floor-size = medium"));
        assert_true(matches("((chain))"));
}

static void test_quoting(void **state)
{
        assert_true(matches("note = \"a b\\\"c\""));
        assert_true(matches("note = 'a b\"c'"));
        assert_true(matches("chain = 'acme'"));
        assert_true(matches("chain in ('x y', \"acme\")"));
        assert_true(matches("device/camera = \"\""));
        assert_true(matches("region = \"north\" and chain=acme"));
        /* a quoted keyword is a value */
        assert_false(matches("chain = \"and\""));
}

static void test_format(void **state)
{
        expect_format("chain=acme", "chain = acme");
        expect_format("  a   !=b", "a != b");
        expect_format("a in (x,'y z')", "a in (x, \"y z\")");
        expect_format("a notin ( x )", "a notin (x)");
        expect_format("a ~ b.*", "a ~ \"b.*\"");
        expect_format("a ~ store-01", "a ~ store-01");
        expect_format("a ~ (x|y)[0-9]+", "a ~ \"(x|y)[0-9]+\"");
        expect_format("a or b and c", "a or b and c");
        expect_format("(a or b) and c", "(a or b) and c");
        expect_format("a and (b and c)", "a and b and c");
        expect_format("not (a and b)", "not (a and b)");
        expect_format("not (a = b)", "not a = b");
        expect_format("((a))", "a");
        expect_format("a = 'and'", "a = \"and\"");
        expect_format("a = ''", "a = \"\"");
        expect_format("a = 'q\"\\\\'", "a = \"q\\\"\\\\\"");
        expect_format("a ~ 'x\\.y'", "a ~ \"x\\.y\"");
}

static void test_errors(void **state)
{
        expect_error("", 1, "empty");
        expect_error("   ", 4, "empty");
        expect_error("a =", 4, "expected a value after '='");
        expect_error("a = (b)", 5, "expected a value after '='");
        expect_error("(a = b", 1, "unclosed '('");
        expect_error("x and (a = b or (c", 17, "unclosed '('");
        expect_error("a in (x, y", 6, "unclosed '('");
        expect_error("a in ()", 7, "empty list");
        expect_error("a in x", 6, "expected '(' after 'in'");
        expect_error("a in (x y)", 9, "expected ',' or ')'");
        expect_error("a = b )", 7, "unexpected ')'");
        expect_error("a b", 3, "expected 'and', 'or' or the end");
        expect_error("a = b and", 10, "expected a label key");
        expect_error("and", 1, "expected a label key");
        expect_error("not", 4, "expected a label key");
        expect_error("a = \"x", 5, "unterminated quoted string");
        expect_error("a # b", 3, "unexpected character '#'");
        expect_error("a ! b", 3, "unexpected '!'");
        expect_error("a:b = c", 2, "label key");
        expect_error("a ~ \"(\"", 5, "invalid regex");
        expect_error("a ~ \"x[\"", 5, "invalid regex");
        expect_error("a ~ \"(x)\\1\"", 5, "back-references");
        expect_error("a ~ x{100}{100}", 5, "regex too large: 10001 instructions");
        expect_error("a ~ x{99999999999999999999,}", 5, "regex too large");
        expect_error("a ~ 'x{2,1}'", 5, "invalid regex");
        expect_error("a ~ 'x|*'", 5, "invalid regex");
        expect_error("a ~ '[[:nope:]]'", 5, "invalid regex");
        expect_error("a ~ \"x\\\\\"", 5, "invalid regex: trailing backslash");
        assert_true(matches("system/name ~ [a-z]+-[0-9]+"));
        /* repetitions of nothing emit nothing, however many (this once looped 10^10 times) */
        assert_true(matches("system/name ~ '((){99999}){99999}store-001(a{0}){99999}'"));
        expect_error("a ~", 4, "expected a value after '~'");
}

static void test_limits(void **state)
{
        char deep[200] = "";
        for (int i = 0; i < 33; i++)
                strcat(deep, "(");
        strcat(deep, "a");
        for (int i = 0; i < 33; i++)
                strcat(deep, ")");
        expect_error(deep, 33, "nested deeper than 32");
        memmove(deep, deep + 1, strlen(deep)); /* 32 levels are fine */
        deep[strlen(deep) - 1] = '\0';
        assert_true(matches(deep) == false);
        _cleanup_expr_ sk_expr *e = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_expr_parse(deep, &e, &err), 0);

        char nots[200] = "";
        for (int i = 0; i < 40; i++)
                strcat(nots, "not ");
        strcat(nots, "a");
        expect_error(nots, 129, "nested deeper");

        char big[5000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        expect_error(big, 4097, "longer than 4096");
}

/* The engine reads regexes as glibc's regcomp (REG_EXTENDED, C locale) does, and selects
 * the same values: glibc, anchored to the whole value, is the oracle. */
static void test_regex_like_glibc(void **state)
{
        static const char *pats[] = {
            "a",
            "a*",
            "a+b",
            "(a|b)*c",
            "[a-c]+",
            "[^a]",
            "x{2,3}",
            "x{2,}",
            "x{,2}",
            "^a$",
            "a^",
            "$",
            "",
            "()",
            "(|a)b",
            "a||b",
            "[]a]+",
            "[^]a]",
            "[a-]",
            "[-a]",
            "[[:alpha:]]+",
            "[[:digit:]_]*",
            "\\w+",
            "\\W",
            "\\s",
            "\\bfoo\\b.*",
            "\\<a",
            "a\\>",
            "\\`a\\'",
            "[[.a.]]",
            "[[=a=]]",
            "a{0}",
            "(a*)*",
            "(a*)+b",
            "store-0[0-9]+",
            "(shop|store)-001",
            ".*",
            "a.c",
            "\\.",
            "[\\]",
            "[a\\]]",
            "a)",
            "(((.|..)?){3}){3}",
            "a**",
            "a+?",
            "[+--]",
            "[a-c-]",
            "[[:alpha:]-]",
            "a{1}{2}",
            "(ab|a)(bc|c)",
            "x++++++++++",
            "[[:upper:][:space:]]+",
            "[^[:alnum:]]",
            "\\Bb",
            "a{,}",
            ".*a.{8}", /* more than 256 DFA states: the NFA */
            "(a|b)*a(a|b){6}",
            "^$",
            "$^",
            "(a$|b)*",
            "^(ab)*$",
        };
        static const char *vals[] = {
            "",   "a",     "aa",   "aaa", "b",       "ab", "abc",       "c",        "x",
            "xx", "xxx",   "xxxx", "foo", "foo bar", "a)", "store-001", "shop-001", "]",
            "]a", "-",     "a-",   "_",   "1_a",     " ",  "\\",        "\\]",      ".",
            "ac", "abcbc", "abcc", "A B", "+",       "bb",
        };
        size_t dfas = 0;
        for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
                regex_t re;
                assert_int_equal(regcomp(&re, pats[i], REG_EXTENDED), 0);
                char text[64] = "k ~ \"", *t = text + strlen(text);
                for (const char *c = pats[i]; *c; c++) {
                        if (*c == '"' || *c == '\\')
                                *t++ = '\\';
                        *t++ = *c;
                }
                strcpy(t, "\"");
                _cleanup_expr_ sk_expr *e = NULL;
                _cleanup_error_ sk_error *err = NULL;
                if (sk_expr_parse(text, &e, &err) < 0)
                        fail_msg("/%s/ does not parse: %s", pats[i], err->msg);
                sk_lre *lre = NULL;
                char msg[160];
                assert_int_equal(sk_lre_compile(pats[i], 1000, &lre, msg, sizeof(msg)), 0);
                for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
                        regmatch_t m;
                        bool want = regexec(&re, vals[j], 1, &m, 0) == 0 && m.rm_so == 0 &&
                                    (size_t)m.rm_eo == strlen(vals[j]);
                        _cleanup_json_ json_t *l = json_pack("{s:s}", "k", vals[j]);
                        if (sk_expr_match(e, l) != want)
                                fail_msg("/%s/ on \"%s\": want %d", pats[i], vals[j], want);
                        if (sk_lre_match_nfa(lre, vals[j], strlen(vals[j]), NULL) != want)
                                fail_msg("/%s/ on \"%s\": NFA, want %d", pats[i], vals[j], want);
                }
                dfas += sk_lre_has_dfa(lre);
                sk_lre_free(lre);
                regfree(&re);
        }
        /* both ways were taken: most patterns have a DFA, word assertions and .*a.{8} not */
        assert_true(dfas > 40 && dfas < sizeof(pats) / sizeof(pats[0]) - 5);
}

static char *repeat_terms(const char *term, const char *sep, size_t max_len)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        assert_non_null(f);
        fputs(term, f);
        fflush(f);
        while (len + strlen(sep) + strlen(term) <= max_len) {
                fputs(sep, f);
                fputs(term, f);
                fflush(f);
        }
        fclose(f);
        return out;
}

/* The stall of issue 8: regexes each within the old per-regex guard, many of them. */
static void test_hostile_refused(void **state)
{
        const char *term = "system/name ~ \"(((.|..)?){31}){32}\"";
        _cleanup_free_ char *twenty = repeat_terms(term, " and ", 775);
        expect_error(twenty, 15, "regex too large");
        _cleanup_free_ char *full = repeat_terms(term, " and ", 4096);
        expect_error(full, 15, "regex too large");

        /* each regex fine alone; together over the bound: the term that passes it is named */
        const char *mid = "system/name ~ \"(.|..){60}\"";
        _cleanup_expr_ sk_expr *one = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_expr_parse(mid, &one, &err), 0);
        assert_true(sk_expr_cost(one) <= SK_EXPR_MAX_COST);
        size_t fit = SK_EXPR_MAX_COST / sk_expr_cost(one);
        _cleanup_free_ char *many = repeat_terms(mid, " or ", 4096);
        size_t at = fit * (strlen(mid) + strlen(" or ")) + 15;
        expect_error(many, (int)at, "too costly");
}

static json_t *long_labels(void)
{
        char v[SK_EXPR_VALUE_MAX + 1];
        memset(v, 'a', SK_EXPR_VALUE_MAX);
        v[SK_EXPR_VALUE_MAX] = '\0';
        return json_pack("{s:s, s:s, s:s}", "system/name", v, "a", v, "b", "ab");
}

/* The step counter never passes the bound computed at parse time, even for the most
 * costly expressions the parser still takes, on the longest values. */
static void test_steps_within_cost(void **state)
{
        static const char *texts[] = {
            "system/name ~ '(.|..){60}' or a ~ '(a|aa|aaa)*b' or b ~ '((a*)*)*b'",
            "system/name ~ '(.?){499}' and system/name ~ '.*'",
            "not (a ~ '[a-z]{1,63}' and b in (x, y, ab)) or a != b or system/name = zz",
            "system/name ~ '(a|b|c|d|e|f|g|h|i|j)*(x|a)' and a ~ '\\b(a+)+\\b'",
        };
        _cleanup_json_ json_t *longs = long_labels();
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                _cleanup_expr_ sk_expr *e = NULL;
                _cleanup_error_ sk_error *err = NULL;
                if (sk_expr_parse(texts[i], &e, &err) < 0)
                        fail_msg("\"%s\" does not parse: %s", texts[i], err->msg);
                uint64_t steps = 0;
                sk_expr_match_counted(e, longs, &steps);
                assert_true(steps > 0);
                if (steps > sk_expr_cost(e) || sk_expr_cost(e) > SK_EXPR_MAX_COST)
                        fail_msg("\"%s\": %llu steps, cost %llu", texts[i],
                                 (unsigned long long)steps, (unsigned long long)sk_expr_cost(e));
        }
}

static void test_cache(void **state)
{
        sk_expr *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(sk_expr_parse_cached("chain = acme", &a, NULL), 0);
        assert_int_equal(sk_expr_parse_cached("chain = acme", &b, NULL), 0);
        assert_ptr_equal(a, b); /* compiled once */
        assert_int_equal(sk_expr_parse_cached("chain = acm", &c, NULL), 0);
        assert_ptr_not_equal(a, c);
        assert_true(sk_expr_match(b, labels));
        assert_false(sk_expr_match(c, labels));
        _cleanup_error_ sk_error *err = NULL;
        sk_expr *bad = NULL;
        assert_int_equal(sk_expr_parse_cached("a ~ '('", &bad, &err), -EINVAL);
        assert_null(bad);
        assert_int_equal(err->column, 5);
        sk_expr_free(a);
        sk_expr_cache_clear(); /* the cache's reference goes; b still holds the tree */
        assert_true(sk_expr_match(b, labels));
        sk_expr_free(b);
        sk_expr_free(c);
        /* more texts than the cache holds: each still parses, none leaks (ASan) */
        for (int i = 0; i < 1100; i++) { /* the cache holds 1024 */
                char text[32];
                snprintf(text, sizeof(text), "n = v%d", i);
                sk_expr *e = NULL;
                assert_int_equal(sk_expr_parse_cached(text, &e, NULL), 0);
                sk_expr_free(e);
        }
        sk_expr_cache_clear();
}

static void *cache_user(void *arg)
{
        int *ok = arg;
        for (int i = 0; i < 2000; i++) {
                char text[32];
                snprintf(text, sizeof(text), "chain = acme or n = v%d", i % 1500);
                sk_expr *e = NULL;
                if (sk_expr_parse_cached(text, &e, NULL) < 0 || !sk_expr_match(e, labels))
                        *ok = 0;
                sk_expr_free(e);
        }
        return NULL;
}

/* Threads share, evict and release cached trees (ASan: no use after free, no leak). */
static void test_cache_threads(void **state)
{
        pthread_t t[4];
        int ok[4] = {1, 1, 1, 1};
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&t[i], NULL, cache_user, &ok[i]), 0);
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                assert_true(ok[i]);
        }
        sk_expr_cache_clear();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_operators),
            cmocka_unit_test(test_precedence),
            cmocka_unit_test(test_quoting),
            cmocka_unit_test(test_format),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_regex_like_glibc),
            cmocka_unit_test(test_hostile_refused),
            cmocka_unit_test(test_steps_within_cost),
            cmocka_unit_test(test_cache),
            cmocka_unit_test(test_cache_threads),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
