#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/yaml.h"

static int load(const char *text, sk_yaml_docs *docs, sk_error **err)
{
        return sk_yaml_load(text, strlen(text), docs, err);
}

/* Loads text, which must fail, and checks the error's line, column and message. */
static void expect_error(const char *text, int line, int column, const char *needle)
{
        sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load(text, &docs, &err), -EINVAL);
        assert_non_null(err);
        assert_int_equal(docs.n, 0);
        if (!strstr(err->msg, needle))
                fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
        assert_int_equal(err->line, line);
        assert_int_equal(err->column, column);
}

static void test_typed_scalars(void **state)
{
        const char *text = "n1: null\nn2: ~\nn3:\nn4: NULL\n"
                           "b1: true\nb2: False\n"
                           "i1: 42\ni2: -7\ni3: 0x1F\ni4: 0o17\ni5: +3\n"
                           "r1: 0.5\nr2: -1.5e3\nr3: .25\n"
                           "s1: yes\ns2: \"42\"\ns3: 'true'\ns4: 2.1.0\ns5: .inf\ns6: !!str 12\n"
                           "s7: 0x\ns8: hello world\n";
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load(text, &docs, &err), 0);
        assert_int_equal(docs.n, 1);
        json_t *v = docs.docs[0].value;
        for (const char *k = "n1\0n2\0n3\0n4\0"; *k; k += strlen(k) + 1)
                assert_true(json_is_null(json_object_get(v, k)));
        assert_true(json_is_true(json_object_get(v, "b1")));
        assert_true(json_is_false(json_object_get(v, "b2")));
        assert_int_equal(json_integer_value(json_object_get(v, "i1")), 42);
        assert_int_equal(json_integer_value(json_object_get(v, "i2")), -7);
        assert_int_equal(json_integer_value(json_object_get(v, "i3")), 31);
        assert_int_equal(json_integer_value(json_object_get(v, "i4")), 15);
        assert_int_equal(json_integer_value(json_object_get(v, "i5")), 3);
        assert_true(json_is_real(json_object_get(v, "r1")));
        assert_true(json_real_value(json_object_get(v, "r1")) == 0.5);
        assert_true(json_real_value(json_object_get(v, "r2")) == -1500.0);
        assert_true(json_real_value(json_object_get(v, "r3")) == 0.25);
        assert_string_equal(json_string_value(json_object_get(v, "s1")), "yes");
        assert_string_equal(json_string_value(json_object_get(v, "s2")), "42");
        assert_string_equal(json_string_value(json_object_get(v, "s3")), "true");
        assert_string_equal(json_string_value(json_object_get(v, "s4")), "2.1.0");
        assert_string_equal(json_string_value(json_object_get(v, "s5")), ".inf");
        assert_string_equal(json_string_value(json_object_get(v, "s6")), "12");
        assert_string_equal(json_string_value(json_object_get(v, "s7")), "0x");
        assert_string_equal(json_string_value(json_object_get(v, "s8")), "hello world");
}

static void test_int64_range(void **state)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load("a: 9223372036854775807\n", &docs, &err), 0);
        assert_true(json_integer_value(json_object_get(docs.docs[0].value, "a")) == INT64_MAX);
        expect_error("a: 1\nb: 9223372036854775808\n", 2, 4, "out of range");
}

static void test_json_input(void **state)
{
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        const char *text = "{\"kind\": \"site\", \"n\": [1, 2.5, \"x\", true, null, {}],"
                           " \"e\": \"a\\u00e9\\n\"}";
        assert_int_equal(load(text, &docs, &err), 0);
        assert_int_equal(docs.n, 1);
        _cleanup_json_ json_t *want = json_loads(text, 0, NULL);
        assert_non_null(want);
        assert_true(json_equal(want, docs.docs[0].value));
}

static void test_positions(void **state)
{
        const char *text = "kind: application\n"
                           "labels: {\"system/x\": a, b.c: d}\n"
                           "services:\n"
                           "  - name: api\n"
                           "    containers:\n"
                           "      - name: c0\n"
                           "      - name: c1\n"
                           "        image: busybox\n";
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load(text, &docs, &err), 0);
        const sk_yaml_doc *d = &docs.docs[0];
        int line = 0, col = 0;
        assert_int_equal(sk_yaml_doc_position(d, "kind", &line, &col), 0);
        assert_int_equal(line, 1);
        assert_int_equal(col, 7);
        assert_int_equal(sk_yaml_doc_position(d, "services[0].containers[1].image", &line, &col),
                         0);
        assert_int_equal(line, 8);
        assert_int_equal(col, 16);
        assert_int_equal(sk_yaml_doc_position(d, "labels[\"system/x\"]", &line, &col), 0);
        assert_int_equal(line, 2);
        assert_int_equal(col, 22);
        assert_int_equal(sk_yaml_doc_position(d, "labels[\"b.c\"]", &line, &col), 0);
        assert_int_equal(col, 30);
        /* a missing field falls back to its nearest ancestor */
        assert_int_equal(sk_yaml_doc_position(d, "services[0].containers[0].image", &line, &col),
                         0);
        assert_int_equal(line, 6);
        assert_int_equal(col, 9);
        assert_int_equal(sk_yaml_doc_position(d, "labels[\"no.such\"]", &line, &col), 0);
        assert_int_equal(line, 2);
        assert_int_equal(col, 9);
        assert_int_equal(sk_yaml_doc_position(d, "nothing.at.all", &line, &col), 0);
        assert_int_equal(line, 1);
        assert_int_equal(col, 1);
}

static void test_paths(void **state)
{
        _cleanup_free_ char *a = sk_yaml_path_key("", "services");
        _cleanup_free_ char *b = sk_yaml_path_index(a, 2);
        _cleanup_free_ char *c = sk_yaml_path_key(b, "replicas");
        _cleanup_free_ char *d = sk_yaml_path_key("labels", "system/name");
        _cleanup_free_ char *e = sk_yaml_path_key("env", "a\"b\\c");
        _cleanup_free_ char *f = sk_yaml_path_key("x", "");
        assert_string_equal(c, "services[2].replicas");
        assert_string_equal(d, "labels[\"system/name\"]");
        assert_string_equal(e, "env[\"a\\\"b\\\\c\"]");
        assert_string_equal(f, "x[\"\"]");
}

static void test_multi_document(void **state)
{
        const char *text = "# leading comment\n---\na: 1\n---\n---\n# empty\n---\n- x\n...\n"
                           "---\nlast\n";
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load(text, &docs, &err), 0);
        assert_int_equal(docs.n, 3);
        assert_int_equal(docs.docs[0].line, 2);
        assert_int_equal(json_integer_value(json_object_get(docs.docs[0].value, "a")), 1);
        assert_int_equal(docs.docs[1].line, 7);
        assert_string_equal(json_string_value(json_array_get(docs.docs[1].value, 0)), "x");
        assert_int_equal(docs.docs[2].line, 10);
        assert_string_equal(json_string_value(docs.docs[2].value), "last");

        sk_yaml_docs none;
        assert_int_equal(load("# only a comment\n", &none, &err), 0);
        assert_int_equal(none.n, 0);
        sk_yaml_docs_free(&none);
}

static void test_syntax_errors(void **state)
{
        expect_error("a: [1, 2\nb: 3\n", 2, 2, "did not find expected ',' or ']'");
        expect_error("a:\n  b: 1\n c: 2\n", 3, 2, "did not find expected key");
        expect_error("a: \"unterminated\n", 2, 1, "unexpected end of stream");
        expect_error("a: b: c\n", 1, 5, "mapping values are not allowed");
        expect_error("a: 1\nb: x\xff\n", 2, 5, "invalid");
        expect_error("a: 1\nbb: \x01\n", 2, 5, "control characters");
}

static void test_refusals(void **state)
{
        expect_error("a: &x 1\nb: *x\n", 1, 4, "anchors and aliases");
        expect_error("a: 1\nb: *x\n", 2, 4, "anchors and aliases");
        expect_error("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key \"a\"");
        expect_error("x:\n  {a: 1, a: 2}\n", 2, 10, "duplicate key");
        expect_error("? [a]\n: 1\n", 1, 3, "mapping keys must be scalars");
        expect_error("a: !custom 1\n", 1, 4, "unsupported tag");
        expect_error("a: \"x\\0y\"\n", 1, 4, "NUL");

        char deep[300] = "";
        for (int i = 0; i < 65; i++)
                strcat(deep, "[");
        for (int i = 0; i < 65; i++)
                strcat(deep, "]");
        expect_error(deep, 1, 65, "nesting deeper than 64");
        deep[64] = '\0'; /* 64 levels are fine */
        for (int i = 0; i < 64; i++)
                strcat(deep, "]");
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(load(deep, &docs, &err), 0);
}

static void round_trip(const json_t *v)
{
        _cleanup_free_ char *text = sk_yaml_dump(v);
        assert_non_null(text);
        _cleanup_yaml_docs_ sk_yaml_docs docs;
        _cleanup_error_ sk_error *err = NULL;
        if (load(text, &docs, &err) < 0)
                fail_msg("dump does not load: %s\n%s", err->msg, text);
        assert_int_equal(docs.n, 1);
        if (!json_equal((json_t *)v, docs.docs[0].value))
                fail_msg("round trip differs:\n%s", text);
}

static void test_dump_round_trip(void **state)
{
        _cleanup_json_ json_t *v = json_loads(
            "{\"kind\": \"application\", \"version\": \"2.1.0\","
            " \"quoted\": [\"true\", \"null\", \"\", \"42\", \"0x1f\", \"1e3\", \"- x\","
            "  \"a: b\", \"#c\", \" lead\", \"trail \", \"tab\\there\", \"line\\nbreak\","
            "  \"quote\\\"s\", \"back\\\\slash\", \"~\", \"[x]\", \"{y}\", \"*star\", \"&amp\","
            "  \"!bang\", \"|pipe\", \">gt\", \"%pct\", \"@at\", \"`tick\", \"'sq\","
            "  \"caf\\u00e9\", \"nel\\u0085x\", \"bom\\ufeffx\", \"\\u0001ctl\", \"---\"],"
            " \"numbers\": [0, -1, 9223372036854775807, 0.5, 1e300, -2.25],"
            " \"misc\": [true, false, null, {}, [], [[1, [2]], {\"a\": {\"b\": []}}]],"
            " \"system/name\": \"x\", \"a.b\": 1, \"\": \"empty key\", \"true\": 1,"
            " \"k: v\": 2}",
            0, NULL);
        assert_non_null(v);
        round_trip(v);

        /* libyaml refuses implicit keys longer than 1024 characters */
        char key[1500];
        memset(key, 'k', sizeof(key) - 1);
        key[sizeof(key) - 1] = '\0';
        _cleanup_json_ json_t *big = json_pack("{s:[i,{s:s}]}", key, 1, key, "v");
        assert_non_null(big);
        round_trip(big);

        _cleanup_json_ json_t *scalar = json_string("just text");
        round_trip(scalar);
        /* document markers as whole documents (found by fuzzing) */
        _cleanup_json_ json_t *dots = json_string("...");
        round_trip(dots);
        _cleanup_json_ json_t *dashes = json_string("--- x");
        round_trip(dashes);
}

static void test_dump_readable(void **state)
{
        _cleanup_json_ json_t *v =
            json_loads("{\"name\": \"pos\", \"services\": [{\"name\": \"api\", \"replicas\": 2,"
                       " \"cmd\": [\"a\", \"b\"]}], \"labels\": {}}",
                       0, NULL);
        _cleanup_free_ char *text = sk_yaml_dump(v);
        assert_string_equal(text, "name: pos\n"
                                  "services:\n"
                                  "  - name: api\n"
                                  "    replicas: 2\n"
                                  "    cmd:\n"
                                  "      - a\n"
                                  "      - b\n"
                                  "labels: {}\n");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_typed_scalars),   cmocka_unit_test(test_int64_range),
            cmocka_unit_test(test_json_input),      cmocka_unit_test(test_positions),
            cmocka_unit_test(test_paths),           cmocka_unit_test(test_multi_document),
            cmocka_unit_test(test_syntax_errors),   cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_dump_round_trip), cmocka_unit_test(test_dump_readable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
