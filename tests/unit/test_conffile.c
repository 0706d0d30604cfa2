/* Config files of the server roles: the line grammar, errors that name file:line, and
 * --config placing the file's flags before the command line's (so those win). */
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
#include "common/conffile.h"

static char *joined(char **args)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (char **p = args; *p; p++)
                fprintf(f, "%s[%s]", p == args ? "" : " ", *p);
        fclose(f);
        return buf;
}

static void expect_parse(const char *text, const char *want)
{
        char **args = NULL;
        size_t n = 0;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_conffile_parse(text, "t.conf", &args, &n, &err);
        if (r < 0)
                fail_msg("parse failed: %s", sk_error_msg(err, r));
        _cleanup_free_ char *got = joined(args);
        assert_string_equal(got, want);
        sk_conffile_free(args);
}

static void expect_error(const char *text, const char *want)
{
        char **args = NULL;
        size_t n = 0;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_conffile_parse(text, "t.conf", &args, &n, &err), -EINVAL);
        if (!strstr(err->msg, want))
                fail_msg("'%s' does not contain '%s'", err->msg, want);
}

static void test_parse(void **state)
{
        expect_parse("", "");
        expect_parse("# only a comment\n\n   \n", "");
        expect_parse("listen = 0.0.0.0:7443\ndata /var/lib/x\n",
                     "[--listen] [0.0.0.0:7443] [--data] [/var/lib/x]");
        expect_parse("  labels = \"zone=a, rack=7\"  # trailing comment\n",
                     "[--labels] [zone=a, rack=7]");
        expect_parse("name=\"a#b\"\nverbose\nstore=postgresql://u@h/db?x=1",
                     "[--name] [a#b] [--verbose] [--store] [postgresql://u@h/db?x=1]");
        expect_parse("empty =\n", "[--empty] []");
        expect_error("--listen = x\n", "t.conf:1: expected a flag name");
        expect_error("ok = 1\nLISTEN = x\n", "t.conf:2: expected a flag name");
        expect_error("listen:x\n", "t.conf:1: 'listen:x' is not a flag name");
        expect_error("labels = \"open\n", "t.conf:1: the value's quote is not closed");
}

static void test_args(void **state)
{
        char path[] = "/tmp/sk-conf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char text[] = "listen = 0.0.0.0:7443\ndata = /var/lib/skerry-tower\n";
        assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
        close(fd);
        char *argv[] = {"tower", "--listen", "127.0.0.1:1", "--config", path, NULL};
        int n = 0;
        char **out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_conffile_args(5, argv, &n, &out, &err), 0);
        assert_int_equal(n, 7);
        _cleanup_free_ char *got = joined(out);
        /* the file first: the command line's --listen comes later and wins */
        assert_string_equal(got, "[tower] [--listen] [0.0.0.0:7443] [--data] "
                                 "[/var/lib/skerry-tower] [--listen] [127.0.0.1:1]");
        sk_conffile_free(out);

        char *eq = NULL;
        assert_true(asprintf(&eq, "--config=%s", path) > 0);
        char *argv2[] = {"agent", eq, "--name", "h1", NULL};
        assert_int_equal(sk_conffile_args(4, argv2, &n, &out, &err), 0);
        _cleanup_free_ char *got2 = joined(out);
        assert_string_equal(got2, "[agent] [--listen] [0.0.0.0:7443] [--data] "
                                  "[/var/lib/skerry-tower] [--name] [h1]");
        sk_conffile_free(out);
        free(eq);

        char *plain[] = {"tower", "--data", "d", NULL};
        assert_int_equal(sk_conffile_args(3, plain, &n, &out, &err), 0);
        assert_int_equal(n, 3);
        sk_conffile_free(out);
        unlink(path);

        char *missing[] = {"tower", "--config", path, NULL};
        assert_int_equal(sk_conffile_args(3, missing, &n, &out, &err), -ENOENT);
        assert_non_null(strstr(err->msg, path));
        sk_error_free(&err);
        char *novalue[] = {"tower", "--config", NULL};
        assert_int_equal(sk_conffile_args(2, novalue, &n, &out, &err), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_args),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
