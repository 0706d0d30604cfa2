#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "host/devices.h"

/* A fake /dev with real device nodes (the tests run as root), and things that must not
 * count: a plain file, a fifo, a folder, a symlink to a plain file. The folder's name holds
 * glob characters, so that only the rule's pattern globs. */
static char dir[64];

static void path_in(char *buf, size_t size, const char *rel)
{
        snprintf(buf, size, "%s/%s", dir, rel);
}

static void make_node(const char *rel, mode_t type, unsigned maj, unsigned min)
{
        char p[256];
        path_in(p, sizeof(p), rel);
        if (mknod(p, type | 0600, makedev(maj, min)) < 0)
                fail_msg("mknod %s: %s", p, strerror(errno));
}

static void make_file(const char *rel)
{
        char p[256];
        path_in(p, sizeof(p), rel);
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        assert_true(fd >= 0);
        close(fd);
}

static void make_link(const char *rel, const char *target)
{
        char p[256];
        path_in(p, sizeof(p), rel);
        assert_int_equal(symlink(target, p), 0);
}

static void make_dir(const char *rel)
{
        char p[256];
        path_in(p, sizeof(p), rel);
        assert_int_equal(mkdir(p, 0700), 0);
}

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/sk-dev[*]-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        make_node("video0", S_IFCHR, 81, 0);
        make_node("video2", S_IFCHR, 81, 2);
        make_node("video10", S_IFCHR, 81, 10);
        make_file("video9");               /* a plain file */
        make_dir("video-dir");             /* a folder */
        make_link("video-file", "video9"); /* a symlink to a plain file */
        char p[256];
        path_in(p, sizeof(p), "video7");
        assert_int_equal(mkfifo(p, 0600), 0);
        make_node("nvidia0", S_IFCHR, 195, 0);
        make_node("nvidiactl", S_IFCHR, 195, 255);
        make_node("loop0", S_IFBLK, 7, 0);
        make_dir("v4l");
        make_dir("v4l/by-id");
        make_link("v4l/by-id/usb-cam", "../../video2"); /* a symlink to a node counts */
        return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(p);
}

static int teardown(void **state)
{
        return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static json_t *rules(const char *text)
{
        json_error_t e;
        json_t *r = json_loads(text, 0, &e);
        if (!r)
                fail_msg("bad rules JSON: %s", e.text);
        return r;
}

static json_t *discover_ok(const char *rules_text)
{
        _cleanup_json_ json_t *r = rules(rules_text);
        _cleanup_error_ sk_error *err = NULL;
        json_t *out = NULL;
        if (sk_devices_discover(r, dir, &out, &err) < 0)
                fail_msg("discovery failed: %s", sk_error_msg(err, -EINVAL));
        return out;
}

static void assert_paths(const json_t *d, const char *label, const char *want)
{
        char got[512] = "";
        size_t i;
        const json_t *n;
        const json_t *nodes = json_object_get(d, label);
        assert_true(json_is_array(nodes));
        json_array_foreach(nodes, i, n)
        {
                size_t len = strlen(got);
                snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "",
                         json_string_value(json_object_get(n, "path")));
        }
        assert_string_equal(got, want);
}

static void test_discover(void **unused)
{
        _cleanup_json_ json_t *d =
            discover_ok("[{\"label\": \"camera\", \"match\": \"/dev/video*\"},"
                        " {\"label\": \"gpu\", \"match\": "
                        "\"/dev/nvidia[0-9]*\"},"
                        " {\"label\": \"disk\", \"match\": \"/dev/loop*\"},"
                        " {\"label\": \"none\", \"match\": \"/dev/tty*\"}]");
        /* only the device nodes, in version order; the file, fifo, folder and the symlink to
         * a file do not count */
        assert_paths(d, "camera", "/dev/video0 /dev/video2 /dev/video10");
        assert_paths(d, "gpu", "/dev/nvidia0");
        assert_paths(d, "disk", "/dev/loop0");
        assert_paths(d, "none", ""); /* the label is there, with no nodes */
        assert_int_equal(json_object_size(d), 4);

        const json_t *v10 = json_array_get(json_object_get(d, "camera"), 2);
        char want[256];
        path_in(want, sizeof(want), "video10");
        assert_string_equal(json_string_value(json_object_get(v10, "host-path")), want);
        assert_string_equal(json_string_value(json_object_get(v10, "type")), "char");
        assert_int_equal(json_integer_value(json_object_get(v10, "major")), 81);
        assert_int_equal(json_integer_value(json_object_get(v10, "minor")), 10);
        const json_t *loop = json_array_get(json_object_get(d, "disk"), 0);
        assert_string_equal(json_string_value(json_object_get(loop, "type")), "block");
        assert_int_equal(json_integer_value(json_object_get(loop, "major")), 7);
}

static void test_symlinks_and_subfolders(void **unused)
{
        _cleanup_json_ json_t *d =
            discover_ok("[{\"label\": \"cam\", \"match\": \"/dev/v4l/by-id/*\"},"
                        " {\"label\": \"file\", \"match\": \"/dev/video-*\"}]");
        assert_paths(d, "cam", "/dev/v4l/by-id/usb-cam");
        const json_t *n = json_array_get(json_object_get(d, "cam"), 0);
        assert_int_equal(json_integer_value(json_object_get(n, "minor")), 2);
        assert_paths(d, "file", "");
}

static void test_rules_union(void **unused)
{
        /* two rules for one label: the union, each node once, still sorted; a udev rule
         * finds nothing here; a trailing slash on the dev-dir is fine */
        _cleanup_json_ json_t *r = rules("[{\"label\": \"cam\", \"match\": \"/dev/video1*\"},"
                                         " {\"label\": \"cam\", \"match\": \"/dev/video[0-9]*\"},"
                                         " {\"label\": \"usb\", \"udev\": {\"ID_BUS\": \"usb\"}}]");
        char slash[80];
        snprintf(slash, sizeof(slash), "%s/", dir);
        _cleanup_json_ json_t *d = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_devices_discover(r, slash, &d, &err), 0);
        assert_paths(d, "cam", "/dev/video0 /dev/video2 /dev/video10");
        assert_paths(d, "usb", "");

        /* no rules: nothing, not an error */
        _cleanup_json_ json_t *none = NULL;
        assert_int_equal(sk_devices_discover(NULL, dir, &none, &err), 0);
        assert_int_equal(json_object_size(none), 0);
}

static void test_host_labels(void **unused)
{
        _cleanup_json_ json_t *d =
            discover_ok("[{\"label\": \"camera\", \"match\": \"/dev/video*\"},"
                        " {\"label\": \"gpu\", \"match\": \"/dev/nvidia*\"},"
                        " {\"label\": \"none\", \"match\": \"/dev/tty*\"}]");
        _cleanup_json_ json_t *labels = sk_devices_host_labels(d);
        _cleanup_json_ json_t *want =
            json_pack("{s:s, s:s}", "device/camera", "3", "device/gpu", "2");
        assert_true(json_equal(labels, want));
}

static void test_diff(void **unused)
{
        const char *text = "[{\"label\": \"camera\", \"match\": \"/dev/video*\"},"
                           " {\"label\": \"gpu\", \"match\": \"/dev/nvidia*\"},"
                           " {\"label\": \"none\", \"match\": \"/dev/tty*\"}]";
        _cleanup_json_ json_t *before = discover_ok(text);
        _cleanup_json_ json_t *same = discover_ok(text);
        _cleanup_free_ char *summary = NULL;
        assert_int_equal(sk_devices_diff(before, same, &summary), 0);
        assert_null(summary);

        /* a camera comes, one goes, a gpu node is replaced by another device */
        make_node("video3", S_IFCHR, 81, 3);
        char p[256];
        path_in(p, sizeof(p), "video0");
        assert_int_equal(unlink(p), 0);
        path_in(p, sizeof(p), "nvidia0");
        assert_int_equal(unlink(p), 0);
        make_node("nvidia0", S_IFCHR, 195, 1);
        _cleanup_json_ json_t *after = discover_ok(text);
        assert_int_equal(sk_devices_diff(before, after, &summary), 1);
        assert_string_equal(summary, "camera: added /dev/video3, removed /dev/video0; gpu: changed "
                                     "/dev/nvidia0");
        free(summary);
        summary = NULL;

        /* and back: the mirror image */
        assert_int_equal(sk_devices_diff(after, before, &summary), 1);
        assert_string_equal(summary, "camera: added /dev/video0, removed /dev/video3; gpu: changed "
                                     "/dev/nvidia0");
        free(summary);
        summary = NULL;

        /* a label without nodes is the same as no label; all nodes gone is a change */
        _cleanup_json_ json_t *empty = json_object();
        _cleanup_json_ json_t *no_nodes = json_pack("{s:[]}", "camera");
        assert_int_equal(sk_devices_diff(empty, no_nodes, NULL), 0);
        assert_int_equal(sk_devices_diff(NULL, no_nodes, NULL), 0);
        assert_int_equal(sk_devices_diff(after, NULL, &summary), 1);
        assert_string_equal(summary, "camera: removed /dev/video2, removed /dev/video3, removed "
                                     "/dev/video10; gpu: removed /dev/nvidia0, removed "
                                     "/dev/nvidiactl");

        /* restore the fixture for the other tests */
        make_node("video0", S_IFCHR, 81, 0);
        path_in(p, sizeof(p), "video3");
        assert_int_equal(unlink(p), 0);
        path_in(p, sizeof(p), "nvidia0");
        assert_int_equal(unlink(p), 0);
        make_node("nvidia0", S_IFCHR, 195, 0);
}

static void expect_error(const char *rules_text, const char *dev_dir, const char *path,
                         const char *needle)
{
        _cleanup_json_ json_t *r = rules(rules_text);
        _cleanup_json_ json_t *out = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_true(sk_devices_discover(r, dev_dir ? dev_dir : dir, &out, &err) < 0);
        assert_null(out);
        assert_non_null(err);
        if (path)
                assert_string_equal(err->path, path);
        if (!strstr(err->msg, needle))
                fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
}

static void test_errors(void **unused)
{
        expect_error("[{\"label\": \"cam\", \"match\": \"/sys/video*\"}]", NULL, "devices[0].match",
                     "devices[0].match: must be a glob pattern under /dev/");
        expect_error("[{\"label\": \"cam\", \"match\": \"/dev/video*\"},"
                     " {\"label\": \"cam\", \"match\": \"/dev/../etc/*\"}]",
                     NULL, "devices[1].match", "without spaces or '..'");
        expect_error("[{\"label\": \"cam\", \"match\": \"/dev/\"}]", NULL, "devices[0].match",
                     "under /dev/");
        expect_error("[{\"label\": \"Cam!\", \"match\": \"/dev/video*\"}]", NULL,
                     "devices[0].label", "devices[0].label: must be a device label");
        expect_error("[{\"match\": \"/dev/video*\"}]", NULL, "devices[0].label", "device label");
        expect_error("{}", NULL, "devices", "must be a list");
        expect_error("[]", "/nonexistent/skerry-dev", NULL,
                     "dev-dir /nonexistent/skerry-dev: No such file or directory");
        char file[256];
        path_in(file, sizeof(file), "video9");
        expect_error("[]", file, NULL, "not a folder");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_discover),    cmocka_unit_test(test_symlinks_and_subfolders),
            cmocka_unit_test(test_rules_union), cmocka_unit_test(test_host_labels),
            cmocka_unit_test(test_diff),        cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
