/* CLI configuration: address normalisation, config file path, parsing, precedence of flags
 * over environment over file, and the 0600/0700 modes of what login writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/config.h"
#include "common/cleanup.h"

static void expect_addr(const char *in, const char *want)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *out = NULL;
        int r = sk_cli_normalize_addr(in, &out, &err);
        if (r < 0)
                fail_msg("%s: %s", in, sk_error_msg(err, r));
        assert_string_equal(out, want);
}

static void expect_bad_addr(const char *in, const char *msg_part)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *out = NULL;
        assert_int_equal(sk_cli_normalize_addr(in, &out, &err), -EINVAL);
        assert_null(out);
        assert_non_null(err);
        if (!strstr(err->msg, msg_part))
                fail_msg("'%s': message '%s' lacks '%s'", in, err->msg, msg_part);
}

static void test_normalize_addr(void **state)
{
        expect_addr("127.0.0.1:7443", "https://127.0.0.1:7443");
        expect_addr("127.0.0.1", "https://127.0.0.1:7443");
        expect_addr("tower.example.com:8443", "https://tower.example.com:8443");
        expect_addr("https://tower.example.com:8443/", "https://tower.example.com:8443");
        expect_addr("HTTPS://tower", "https://tower");
        expect_addr("http://127.0.0.1:8080", "http://127.0.0.1:8080");
        expect_addr("[::1]:7443", "https://[::1]:7443");
        expect_addr("[::1]", "https://[::1]:7443");
        expect_addr("https://10.0.0.1:7443/prefix//", "https://10.0.0.1:7443/prefix");

        expect_bad_addr("", "empty");
        expect_bad_addr(NULL, "empty");
        expect_bad_addr("ftp://host:21", "unsupported scheme");
        expect_bad_addr("::1:7443", "brackets");
        expect_bad_addr("host:99999", "out of range");
        expect_bad_addr("host:0", "out of range");
        expect_bad_addr("host:abc", "bad port");
        expect_bad_addr("host:", "bad port");
        expect_bad_addr("a b:7443", "space");
        expect_bad_addr("https://", "no host");
        expect_bad_addr(":7443", "no host");
        expect_bad_addr("[::1", "IPv6");
}

static void test_config_path(void **state)
{
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        assert_int_equal(sk_cli_config_path("/x/conf", "/home/u", &a, NULL), 0);
        assert_string_equal(a, "/x/conf/skerry/config.json");
        /* A relative XDG_CONFIG_HOME is invalid per the spec: fall back to HOME. */
        assert_int_equal(sk_cli_config_path("rel", "/home/u", &b, NULL), 0);
        assert_string_equal(b, "/home/u/.config/skerry/config.json");
        assert_int_equal(sk_cli_config_path("", "/home/u", &c, NULL), 0);
        assert_string_equal(c, "/home/u/.config/skerry/config.json");
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_cli_config_path(NULL, NULL, &d, &err), -ENOENT);
        assert_null(d);
        assert_non_null(strstr(err->msg, "HOME"));
}

static void test_config_parse(void **state)
{
        _cleanup_cli_config_ sk_cli_config c = {0};
        assert_int_equal(sk_cli_config_parse("{\"addr\": \"https://t:1\", \"token\": \"abc\", "
                                             "\"ca\": \"/d/ca.pem\"}",
                                             "cfg.json", &c, NULL),
                         0);
        assert_string_equal(c.addr, "https://t:1");
        assert_string_equal(c.token, "abc");
        assert_string_equal(c.ca, "/d/ca.pem");

        _cleanup_cli_config_ sk_cli_config d = {0};
        _cleanup_error_ sk_error *e1 = NULL;
        assert_int_equal(sk_cli_config_parse("{\n  \"addr\": ,\n}", "cfg.json", &d, &e1), -EINVAL);
        assert_int_equal(e1->line, 2);
        assert_true(strncmp(e1->msg, "cfg.json:2:", 11) == 0);
        assert_null(d.addr);

        _cleanup_error_ sk_error *e2 = NULL;
        assert_int_equal(
            sk_cli_config_parse("{\"addr\": \"x\", \"token\": 5}", "cfg.json", &d, &e2), -EINVAL);
        assert_string_equal(e2->path, "token");
        assert_string_equal(e2->msg, "cfg.json: token: must be a string");
        assert_null(d.addr); /* nothing half-filled on error */

        _cleanup_error_ sk_error *e3 = NULL;
        assert_int_equal(sk_cli_config_parse("{\"adress\": \"x\"}", "cfg.json", &d, &e3), -EINVAL);
        assert_string_equal(e3->path, "adress");

        _cleanup_error_ sk_error *e4 = NULL;
        assert_int_equal(sk_cli_config_parse("[]", "cfg.json", &d, &e4), -EINVAL);
}

static void test_resolve_precedence(void **state)
{
        sk_cli_config flags = {"flag-host:1", NULL, ""};
        sk_cli_config env = {"env-host:2", "env-token", NULL};
        sk_cli_config file = {"file-host:3", "file-token", "/file/ca.pem"};
        _cleanup_cli_config_ sk_cli_config out = {0};
        assert_int_equal(sk_cli_config_resolve(&flags, &env, &file, "cfg", &out, NULL), 0);
        assert_string_equal(out.addr, "https://flag-host:1");
        assert_string_equal(out.token, "env-token");
        /* An empty flag counts as not given. */
        assert_string_equal(out.ca, "/file/ca.pem");

        _cleanup_cli_config_ sk_cli_config only_file = {0};
        assert_int_equal(sk_cli_config_resolve(NULL, NULL, &file, "cfg", &only_file, NULL), 0);
        assert_string_equal(only_file.addr, "https://file-host:3");
        assert_string_equal(only_file.token, "file-token");

        _cleanup_cli_config_ sk_cli_config none = {0};
        assert_int_equal(sk_cli_config_resolve(NULL, NULL, NULL, NULL, &none, NULL), 0);
        assert_null(none.addr);
        assert_null(none.token);
        assert_null(none.ca);

        /* A bad address says where it came from. */
        sk_cli_config bad_env = {"ftp://x", NULL, NULL};
        _cleanup_cli_config_ sk_cli_config o2 = {0};
        _cleanup_error_ sk_error *e1 = NULL;
        assert_int_equal(sk_cli_config_resolve(NULL, &bad_env, &file, "cfg", &o2, &e1), -EINVAL);
        assert_true(strncmp(e1->msg, "SKERRY_ADDR: ", 13) == 0);
        sk_cli_config bad_file = {"host:70000", NULL, NULL};
        _cleanup_error_ sk_error *e2 = NULL;
        assert_int_equal(sk_cli_config_resolve(NULL, NULL, &bad_file, "/h/cfg.json", &o2, &e2),
                         -EINVAL);
        assert_true(strncmp(e2->msg, "/h/cfg.json: addr: ", 19) == 0);
        sk_cli_config bad_flag = {"a b", NULL, NULL};
        _cleanup_error_ sk_error *e3 = NULL;
        assert_int_equal(sk_cli_config_resolve(&bad_flag, &env, NULL, NULL, &o2, &e3), -EINVAL);
        assert_true(strncmp(e3->msg, "--addr: ", 8) == 0);
}

static void test_save_load(void **state)
{
        char tmpl[] = "/tmp/sk-cli-config-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_free_ char *path = NULL, *dir = NULL, *parent = NULL;
        assert_int_equal(sk_cli_config_path(NULL, tmpl, &path, NULL), 0);
        assert_true(asprintf(&dir, "%s/.config/skerry", tmpl) > 0);
        assert_true(asprintf(&parent, "%s/.config", tmpl) > 0);

        _cleanup_cli_config_ sk_cli_config missing = {0};
        assert_int_equal(sk_cli_config_load(path, &missing, NULL), 0);
        assert_null(missing.addr);

        mode_t old = umask(0); /* the modes must not depend on the caller's umask */
        sk_cli_config c = {"https://127.0.0.1:7443", "secret-token", "/data/ca.pem"};
        int r = sk_cli_config_save(path, &c, NULL);
        umask(old);
        assert_int_equal(r, 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        _cleanup_cli_config_ sk_cli_config back = {0};
        assert_int_equal(sk_cli_config_load(path, &back, NULL), 0);
        assert_string_equal(back.addr, c.addr);
        assert_string_equal(back.token, c.token);
        assert_string_equal(back.ca, c.ca);

        /* Saving again replaces the file and keeps it private. */
        sk_cli_config c2 = {"https://other:1", "t2", NULL};
        assert_int_equal(sk_cli_config_save(path, &c2, NULL), 0);
        _cleanup_cli_config_ sk_cli_config back2 = {0};
        assert_int_equal(sk_cli_config_load(path, &back2, NULL), 0);
        assert_string_equal(back2.token, "t2");
        assert_null(back2.ca);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        assert_int_equal(rmdir(parent), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normalize_addr), cmocka_unit_test(test_config_path),
            cmocka_unit_test(test_config_parse),   cmocka_unit_test(test_resolve_precedence),
            cmocka_unit_test(test_save_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
