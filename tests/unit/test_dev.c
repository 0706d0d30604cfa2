/* `skerry dev`: its flags, names, the busybox image archive, the Podman configuration, child
 * processes, and its tower calls against a small HTTP server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "dev/dev-internal.h"

static char tmpdir[64];

static int setup_tmp(void **state)
{
        strcpy(tmpdir, "/tmp/skerry-test-dev-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown_tmp(void **state)
{
        const char *argv[] = {"rm", "-rf", tmpdir, NULL};
        assert_int_equal(sk_dev_run(argv), 0);
        return 0;
}

static int parse(sk_error **err, sk_dev_opts *o, ...)
{
        char *argv[16] = {"dev"};
        int argc = 1;
        va_list ap;
        va_start(ap, o);
        for (char *a; argc < 15 && (a = va_arg(ap, char *));)
                argv[argc++] = a;
        va_end(ap);
        return sk_dev_parse_args(argc, argv, o, err);
}

static void test_args_defaults(void **state)
{
        setenv("XDG_STATE_HOME", "/var/tmp/state", 1);
        sk_dev_opts o;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(parse(&err, &o, NULL), 0);
        assert_int_equal(o.hosts, 1);
        assert_int_equal(o.sites, 1);
        assert_string_equal(o.listen, "127.0.0.1:7443");
        assert_string_equal(o.data_dir, "/var/tmp/state/skerry/dev");
        assert_null(o.runtime_url);
        sk_dev_opts_free(&o);

        unsetenv("XDG_STATE_HOME");
        setenv("HOME", "/home/someone", 1);
        _cleanup_free_ char *d = sk_dev_default_data_dir();
        assert_string_equal(d, "/home/someone/.local/state/skerry/dev");
}

static void test_args_values(void **state)
{
        sk_dev_opts o;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(parse(&err, &o, "--hosts", "3", "--sites=2", "--data", "rel/dir/",
                               "--listen", "127.0.0.1:9000", "--runtime", "unix:///run/p.sock",
                               NULL),
                         0);
        assert_int_equal(o.hosts, 3);
        assert_int_equal(o.sites, 2);
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "%s/rel/dir", cwd) > 0);
        assert_string_equal(o.data_dir, want);
        assert_string_equal(o.listen, "127.0.0.1:9000");
        assert_string_equal(o.runtime_url, "unix:///run/p.sock");
        sk_dev_opts_free(&o);
}

/* Every bad input is refused with a message that names the flag at fault. */
static void test_args_errors(void **state)
{
        struct {
                const char *flag, *value, *expect;
        } cases[] = {
            {"--hosts", "0", "--hosts"},
            {"--hosts", "11", "--hosts"},
            {"--hosts", "two", "--hosts"},
            {"--sites", "-1", "--sites"},
            {"--listen", "7443", "--listen"},
            {"--listen", "host:99999", "--listen"},
            {"--runtime", "tcp://x:1", "--runtime"},
            {"--runtime", "unix://rel", "--runtime"},
            {"--data", "", "--data"},
            {"--bogus", "x", "--bogus"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                sk_dev_opts o;
                _cleanup_error_ sk_error *err = NULL;
                int r = parse(&err, &o, cases[i].flag, cases[i].value, NULL);
                assert_int_equal(r, -EINVAL);
                assert_non_null(err);
                if (!strstr(err->msg, cases[i].expect))
                        fail_msg("%s %s: message \"%s\" does not name %s", cases[i].flag,
                                 cases[i].value, err->msg, cases[i].expect);
        }
        sk_dev_opts o;
        _cleanup_error_ sk_error *e1 = NULL, *e2 = NULL;
        assert_int_equal(parse(&e1, &o, "stray", NULL), -EINVAL);
        assert_non_null(strstr(e1->msg, "stray"));
        assert_int_equal(parse(&e2, &o, "--hosts", NULL), -EINVAL);
        assert_non_null(strstr(e2->msg, "--hosts"));
}

static void test_names(void **state)
{
        _cleanup_free_ char *s1 = sk_dev_site_name(0, 1), *s2 = sk_dev_site_name(2, 3);
        assert_string_equal(s1, "dev-site");
        assert_string_equal(s2, "dev-site-3");
        _cleanup_free_ char *h1 = sk_dev_host_name(0, 1, 1), *h2 = sk_dev_host_name(1, 2, 0);
        assert_string_equal(h1, "host-2");
        assert_string_equal(h2, "dev-site-2-host-1");
        _cleanup_free_ char *p = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_runtime_socket("unix:///a/b.sock", &p, &err), 0);
        assert_string_equal(p, "/a/b.sock");
}

struct tar_entry {
        char name[101];
        char type;
        unsigned long size;
        char link[101];
};

/* Reads the archive back with an independent parser: checksums, sizes, names. */
static size_t read_tar(const char *path, struct tar_entry *out, size_t max, unsigned long *bb_size)
{
        _cleanup_fclose_ FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = 0;
        unsigned char h[512];
        while (fread(h, 1, 512, f) == 512) {
                int zero = 1;
                for (int i = 0; i < 512; i++)
                        zero &= h[i] == 0;
                if (zero)
                        break;
                unsigned long want = strtoul((char *)h + 148, NULL, 8), sum = 0;
                for (int i = 0; i < 512; i++)
                        sum += (i >= 148 && i < 156) ? ' ' : h[i];
                assert_int_equal(sum, want);
                assert_memory_equal(h + 257, "ustar", 6);
                assert_true(n < max);
                struct tar_entry *e = &out[n++];
                memcpy(e->name, h, 100);
                e->name[100] = '\0';
                e->type = (char)h[156];
                e->size = strtoul((char *)h + 124, NULL, 8);
                memcpy(e->link, h + 157, 100);
                e->link[100] = '\0';
                if (!strcmp(e->name, "bin/busybox"))
                        *bb_size = e->size;
                assert_int_equal(fseek(f, (long)((e->size + 511) / 512 * 512), SEEK_CUR), 0);
        }
        return n;
}

static void test_busybox_tar(void **state)
{
        if (access("/bin/busybox", X_OK) != 0)
                skip();
        _cleanup_free_ char *tar = NULL;
        assert_true(asprintf(&tar, "%s/bb.tar", tmpdir) > 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_busybox_tar("/bin/busybox", tar, &err), 0);
        static struct tar_entry e[1024];
        unsigned long bb = 0;
        size_t n = read_tar(tar, e, SK_ARRAY_SIZE(e), &bb);
        struct stat st;
        assert_int_equal(stat("/bin/busybox", &st), 0);
        assert_int_equal(bb, (unsigned long)st.st_size);
        int sh = 0, httpd = 0, sleep_ = 0, passwd = 0;
        for (size_t i = 0; i < n; i++) {
                if (e[i].type == '2')
                        assert_string_equal(e[i].link, "busybox");
                sh += !strcmp(e[i].name, "bin/sh") && e[i].type == '2';
                httpd += !strcmp(e[i].name, "bin/httpd");
                sleep_ += !strcmp(e[i].name, "bin/sleep");
                passwd += !strcmp(e[i].name, "etc/passwd") && e[i].type == '0';
        }
        assert_int_equal(sh + httpd + sleep_ + passwd, 4);
        /* And the system's tar agrees that it is a valid archive. */
        const char *argv[] = {"tar", "-tf", tar, NULL};
        assert_int_equal(sk_dev_run(argv), 0);

        _cleanup_error_ sk_error *err2 = NULL;
        assert_true(sk_dev_busybox_tar("/nonexistent/busybox", tar, &err2) < 0);
        assert_non_null(strstr(err2->msg, "busybox-static"));
}

static void test_containers_conf(void **state)
{
        _cleanup_free_ char *runc = sk_dev_containers_conf("/x/podman", true);
        _cleanup_free_ char *dflt = sk_dev_containers_conf("/x/podman", false);
        assert_non_null(strstr(runc, "runtime = \"runc\""));
        assert_null(strstr(dflt, "runtime ="));
        assert_non_null(strstr(dflt, "nofile=1024:1024"));
        assert_non_null(strstr(dflt, "cgroup_manager = \"cgroupfs\""));
        assert_non_null(strstr(dflt, "tmp_dir = \"/x/podman/tmp\""));
        assert_non_null(strstr(dflt, "network_config_dir = \"/x/podman/networks\""));
}

static char *slurp(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        char *buf = calloc(1, 4096);
        size_t n = fread(buf, 1, 4095, f);
        buf[n] = '\0';
        return buf;
}

static void test_spawn_and_stop(void **state)
{
        _cleanup_free_ char *log = NULL;
        assert_true(asprintf(&log, "%s/child.log", tmpdir) > 0);
        _cleanup_error_ sk_error *err = NULL;
        const char *argv[] = {"sh", "-c", "echo out $SK_TEST_VAR; echo err >&2; exit 3", NULL};
        const char *env[] = {"SK_TEST_VAR=value", NULL};
        pid_t pid;
        assert_int_equal(sk_dev_spawn(argv, env, log, &pid, &err), 0);
        assert_int_equal(getpgid(pid) == pid || getpgid(pid) < 0, 1); /* own group */
        int st = 0;
        for (int i = 0; i < 500 && !sk_dev_child_exited(pid, &st); i++)
                usleep(10000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 3);
        char how[64];
        assert_string_equal(sk_dev_describe_status(st, how, sizeof(how)), "exited with status 3");
        _cleanup_free_ char *text = slurp(log);
        assert_non_null(strstr(text, "out value"));
        assert_non_null(strstr(text, "err"));

        const char *sleeper[] = {"sleep", "30", NULL};
        assert_int_equal(sk_dev_spawn(sleeper, NULL, log, &pid, &err), 0);
        assert_false(sk_dev_child_exited(pid, &st));
        st = sk_dev_stop_pid(pid, 2000);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGTERM);
        assert_int_equal(kill(pid, 0), -1);

        /* An executable that does not exist: the child says so in its log and exits 127. */
        const char *missing[] = {"/nonexistent/prog", NULL};
        assert_int_equal(sk_dev_spawn(missing, NULL, log, &pid, &err), 0);
        for (int i = 0; i < 500 && !sk_dev_child_exited(pid, &st); i++)
                usleep(10000);
        assert_int_equal(WEXITSTATUS(st), 127);
}

static void test_kill_mentioning(void **state)
{
        _cleanup_free_ char *log = NULL, *arg = NULL;
        assert_true(asprintf(&log, "%s/k.log", tmpdir) > 0);
        assert_true(asprintf(&arg, "1000.%d", (int)getpid()) > 0);
        const char *argv[] = {"sleep", arg, NULL};
        pid_t pid;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_spawn(argv, NULL, log, &pid, &err), 0);
        usleep(100000); /* let exec happen, so the command line is sleep's */
        assert_int_equal(sk_dev_kill_mentioning(arg), 1);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        assert_int_equal(sk_dev_kill_mentioning(arg), 0);
}

static void test_files_and_port(void **state)
{
        _cleanup_free_ char *deep = NULL, *file = NULL;
        assert_true(asprintf(&deep, "%s/a/b/c", tmpdir) > 0);
        assert_true(asprintf(&file, "%s/f", deep) > 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_mkdirs(deep, &err), 0);
        assert_int_equal(sk_dev_mkdirs(deep, &err), 0); /* again: fine */
        assert_int_equal(sk_dev_write_file(file, "abc", 3, 0600, &err), 0);
        struct stat st;
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_size, 3);
        assert_int_equal(st.st_mode & 0777, 0600);
        _cleanup_error_ sk_error *err2 = NULL;
        assert_true(sk_dev_write_file("/nonexistent/dir/f", "x", 1, 0600, &err2) < 0);
        assert_non_null(strstr(err2->msg, "/nonexistent/dir/f"));

        /* One skerry dev per folder. */
        int lock = sk_dev_lock(deep, &err);
        assert_true(lock >= 0);
        _cleanup_error_ sk_error *err3 = NULL;
        assert_int_equal(sk_dev_lock(deep, &err3), -EBUSY);
        assert_non_null(strstr(err3->msg, "another skerry dev"));
        close(lock);
        int lock2 = sk_dev_lock(deep, &err);
        assert_true(lock2 >= 0);
        close(lock2);

        assert_true(sk_dev_on_path("sh"));
        assert_false(sk_dev_on_path("no-such-program-skerry"));

        int port = sk_dev_free_port(&err);
        assert_true(port > 0 && port < 65536);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        close(fd);
}

static void test_example_yaml(void **state)
{
        _cleanup_free_ char *y = sk_dev_example_yaml();
        sk_yaml_docs docs = {0};
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_yaml_load(y, strlen(y), &docs, &err), 0);
        assert_int_equal(docs.n, 2);
        json_t *app = docs.docs[0].value, *dep = docs.docs[1].value;
        assert_string_equal(json_string_value(json_object_get(app, "kind")), "application");
        assert_string_equal(json_string_value(json_object_get(dep, "kind")), "deployment");
        assert_string_equal(json_string_value(json_object_get(dep, "name")), "example");
        assert_string_equal(json_string_value(json_object_get(dep, "application")),
                            json_string_value(json_object_get(app, "name")));
        assert_string_equal(json_string_value(json_object_get(dep, "sites")), "env = dev");
        json_t *c = json_array_get(
            json_object_get(json_array_get(json_object_get(app, "services"), 0), "containers"), 0);
        assert_string_equal(json_string_value(json_object_get(c, "image")),
                            "localhost/busybox:latest");
        sk_yaml_docs_free(&docs);
}

/* A fake tower on loopback (plain HTTP, no CA): records what dev asks. */
struct fake {
        pthread_mutex_t lock;
        char last_put[512];
        int whoami_calls;
        int token_calls;
};

struct body {
        char data[1024];
        size_t len;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        struct fake *f = cls;
        struct body *b = *con_cls;
        if (!b) {
                *con_cls = calloc(1, sizeof(struct body));
                return MHD_YES;
        }
        if (*upload_size) {
                size_t n = *upload_size < sizeof(b->data) - 1 - b->len ? *upload_size : 0;
                memcpy(b->data + b->len, upload, n);
                b->len += n;
                *upload_size = 0;
                return MHD_YES;
        }
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        bool ok = auth && !strcmp(auth, "Bearer admin-secret");
        const char *reply = "{\"error\":{\"code\":\"not-found\",\"message\":\"no such path\"}}";
        unsigned status = 404;
        pthread_mutex_lock(&f->lock);
        if (!ok) {
                status = 401;
                reply = "{\"error\":{\"code\":\"unauthenticated\",\"message\":\"bad token\"}}";
        } else if (!strcmp(method, "GET") && !strcmp(url, "/v1/whoami")) {
                status = f->whoami_calls++ < 2 ? 503 : 200; /* not ready at first */
                reply = "{\"tenant\":\"default\",\"user\":\"admin\",\"role\":\"admin\"}";
        } else if (!strcmp(method, "PUT") && !strcmp(url, "/v1/sites/dev-site")) {
                snprintf(f->last_put, sizeof(f->last_put), "%.*s", (int)b->len, b->data);
                status = 200;
                reply = "{\"result\":\"created\",\"item\":{}}";
        } else if (!strcmp(method, "PUT") && !strcmp(url, "/v1/sites/bad-site")) {
                status = 400;
                reply = "{\"error\":{\"code\":\"invalid\",\"message\":\"labels: nope\"}}";
        } else if (!strcmp(method, "POST") && !strcmp(url, "/v1/sites/dev-site/tokens")) {
                status = 200;
                f->token_calls++;
                reply = "{\"token\":\"join-1\",\"site\":\"dev-site\",\"expires\":\"x\"}";
        }
        pthread_mutex_unlock(&f->lock);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(reply), (void *)reply, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
        free(*con_cls);
        *con_cls = NULL;
}

static void test_tower_calls(void **state)
{
        struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
        _cleanup_error_ sk_error *err = NULL;
        int port = sk_dev_free_port(&err);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct MHD_Daemon *d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, &f, MHD_OPTION_SOCK_ADDR, &a,
            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
        assert_non_null(d);
        _cleanup_free_ char *base = NULL, *tokfile = NULL, *ca = NULL;
        assert_true(asprintf(&base, "http://127.0.0.1:%d", port) > 0);
        assert_true(asprintf(&tokfile, "%s/admin.token", tmpdir) > 0);
        assert_true(asprintf(&ca, "%s/ca.pem", tmpdir) > 0);

        /* No token file yet: the wait times out and says so. */
        _cleanup_error_ sk_error *e1 = NULL;
        _cleanup_free_ char *token = NULL;
        assert_int_equal(sk_dev_tower_wait(base, ca, tokfile, 300, 0, &token, &e1), -ETIMEDOUT);
        assert_non_null(strstr(e1->msg, "admin token"));

        /* The wait reads the token and retries until whoami answers 200. */
        assert_int_equal(sk_dev_write_file(tokfile, "admin-secret\n", 13, 0600, &err), 0);
        assert_int_equal(sk_dev_write_file(ca, "", 0, 0600, &err), 0);
        /* libcurl with an empty CA file on plain http: the CA is not used. */
        assert_int_equal(sk_dev_tower_wait(base, NULL, tokfile, 5000, 0, &token, &err), 0);
        assert_string_equal(token, "admin-secret");
        assert_int_equal(f.whoami_calls, 3);

        assert_int_equal(sk_dev_put_site(base, NULL, token, "dev-site", &err), 0);
        _cleanup_json_ json_t *put = json_loads(f.last_put, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(put, "kind")), "site");
        assert_string_equal(json_string_value(json_object_get(put, "name")), "dev-site");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(put, "labels"), "env")), "dev");

        _cleanup_error_ sk_error *e2 = NULL;
        assert_true(sk_dev_put_site(base, NULL, token, "bad-site", &e2) < 0);
        assert_non_null(strstr(e2->msg, "bad-site"));
        assert_non_null(strstr(e2->msg, "labels: nope"));

        _cleanup_free_ char *join = NULL;
        assert_int_equal(sk_dev_join_token(base, NULL, token, "dev-site", &join, &err), 0);
        assert_string_equal(join, "join-1");
        _cleanup_error_ sk_error *e3 = NULL;
        _cleanup_free_ char *join2 = NULL;
        assert_true(sk_dev_join_token(base, NULL, "wrong", "dev-site", &join2, &e3) < 0);
        assert_non_null(strstr(e3->msg, "bad token"));
        MHD_stop_daemon(d);

        /* A watched process that exits ends the wait at once, naming how it ended. */
        _cleanup_free_ char *log = NULL;
        assert_true(asprintf(&log, "%s/w.log", tmpdir) > 0);
        const char *argv[] = {"sh", "-c", "exit 4", NULL};
        pid_t pid;
        assert_int_equal(sk_dev_spawn(argv, NULL, log, &pid, &err), 0);
        _cleanup_error_ sk_error *e4 = NULL;
        _cleanup_free_ char *t2 = NULL;
        assert_int_equal(sk_dev_tower_wait(base, NULL, tokfile, 10000, pid, &t2, &e4), -ECHILD);
        assert_non_null(strstr(e4->msg, "exited with status 4"));
}

/* A fake Docker Engine API on a unix socket: two containers, records filters and deletes. */
struct fake_rt {
        pthread_mutex_t lock;
        char filters[8][256];
        int n_filters;
        char deleted[8][64];
        int n_deleted;
};

static enum MHD_Result rt_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
        struct fake_rt *f = cls;
        const char *reply = "{\"message\":\"no such path\"}";
        unsigned status = 404;
        pthread_mutex_lock(&f->lock);
        if (!strcmp(method, "GET") && !strcmp(url, "/_ping")) {
                status = 200;
                reply = "OK";
        } else if (!strcmp(method, "GET") && !strcmp(url, "/v1.41/containers/json")) {
                const char *fl =
                    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "filters");
                const char *all = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "all");
                if (f->n_filters < 8)
                        snprintf(f->filters[f->n_filters++], 256, "%s all=%s", fl ? fl : "-",
                                 all ? all : "-");
                status = 200;
                reply = "[{\"Id\":\"aaa\"},{\"Id\":\"bbb\"}]";
        } else if (!strcmp(method, "DELETE") && !strncmp(url, "/v1.41/containers/", 18)) {
                const char *force =
                    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "force");
                if (f->n_deleted < 8 && force && !strcmp(force, "1"))
                        snprintf(f->deleted[f->n_deleted++], 64, "%s", url + 18);
                status = 204;
                reply = "";
        }
        pthread_mutex_unlock(&f->lock);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(reply), (void *)reply, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static void test_remove_containers(void **state)
{
        struct fake_rt f = {.lock = PTHREAD_MUTEX_INITIALIZER};
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s/rt.sock", tmpdir);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(fd, 16), 0);
        struct MHD_Daemon *d =
            MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, rt_answer, &f,
                             MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
        assert_non_null(d);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_runtime_wait(a.sun_path, 2000, 0, &err), 0);

        const char *sites[] = {"dev-site-1", "dev-site-2", NULL};
        assert_int_equal(sk_dev_remove_containers(a.sun_path, sites, &err), 4);
        assert_int_equal(f.n_filters, 2);
        assert_string_equal(f.filters[0], "{\"label\":[\"skerry.site=dev-site-1\"]} all=1");
        assert_string_equal(f.filters[1], "{\"label\":[\"skerry.site=dev-site-2\"]} all=1");
        assert_int_equal(f.n_deleted, 4);
        assert_string_equal(f.deleted[0], "aaa");
        assert_string_equal(f.deleted[1], "bbb");

        /* NULL: every container of the (private) store, no filter. */
        assert_int_equal(sk_dev_remove_containers(a.sun_path, NULL, &err), 2);
        assert_int_equal(f.n_filters, 3);
        assert_string_equal(f.filters[2], "{\"label\":[]} all=1");
        MHD_stop_daemon(d);
        close(fd);
}

static void test_runtime_wait_timeout(void **state)
{
        _cleanup_free_ char *sock = NULL;
        assert_true(asprintf(&sock, "%s/none.sock", tmpdir) > 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_dev_runtime_wait(sock, 200, 0, &err), -ETIMEDOUT);
        assert_non_null(strstr(err->msg, sock));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_args_defaults),     cmocka_unit_test(test_args_values),
            cmocka_unit_test(test_args_errors),       cmocka_unit_test(test_names),
            cmocka_unit_test(test_busybox_tar),       cmocka_unit_test(test_containers_conf),
            cmocka_unit_test(test_spawn_and_stop),    cmocka_unit_test(test_kill_mentioning),
            cmocka_unit_test(test_files_and_port),    cmocka_unit_test(test_example_yaml),
            cmocka_unit_test(test_tower_calls),       cmocka_unit_test(test_runtime_wait_timeout),
            cmocka_unit_test(test_remove_containers),
        };
        return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
