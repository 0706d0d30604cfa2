/* The Docker Engine API driver against a real, private Podman service
 * (tests/lib/podman-service.sh), plus its pure helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "host/runtime.h"

#define IMAGE "localhost/busybox:latest"

static struct {
        char dir[64];
        char script[PATH_MAX];
        char *socket;
        sk_runtime *rt;
        char tag[32]; /* unique per run: container names and the test label */
} fx;

static const char *const sleep_cmd[] = {"sleep", "300", NULL};

static bool in_path(const char *prog)
{
        const char *path = getenv("PATH");
        if (!path)
                return false;
        _cleanup_free_ char *copy = strdup(path);
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char full[PATH_MAX];
                snprintf(full, sizeof(full), "%s/%s", d, prog);
                if (access(full, X_OK) == 0)
                        return true;
        }
        return false;
}

static int find_script(void)
{
        const char *src = getenv("SKERRY_SRC");
        snprintf(fx.script, sizeof(fx.script), "%s/tests/lib/podman-service.sh",
                 src && *src ? src : ".");
        if (access(fx.script, X_OK) == 0)
                return 0;
        fprintf(stderr, "cannot find %s: run the test from the repository root or set SKERRY_SRC\n",
                fx.script);
        return -1;
}

/* Runs the service script; its first stdout line goes to out (when given). */
static int service(const char *verb, char **out)
{
        _cleanup_free_ char *cmd = NULL;
        if (asprintf(&cmd, "'%s' %s '%s'", fx.script, verb, fx.dir) < 0)
                return -1;
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        char line[PATH_MAX] = "";
        if (!fgets(line, sizeof(line), p))
                line[0] = '\0';
        char drain[256];
        while (fgets(drain, sizeof(drain), p))
                ;
        int st = pclose(p);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "%s failed (status %d)\n", cmd, st);
                return -1;
        }
        line[strcspn(line, "\n")] = '\0';
        if (out && !(*out = strdup(line)))
                return -1;
        return 0;
}

static void remove_dir(void)
{
        _cleanup_free_ char *cmd = NULL;
        if (fx.dir[0] && asprintf(&cmd, "rm -rf '%s'", fx.dir) >= 0 && system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", fx.dir);
        fx.dir[0] = '\0';
}

static int group_setup(void **state)
{
        if (!in_path("podman")) {
                fprintf(stderr, "FAIL: podman is not installed; scripts/install-deps.sh installs "
                                "it (these tests need a real Podman)\n");
                return -1;
        }
        if (find_script() < 0)
                return -1;
        strcpy(fx.dir, "/tmp/skerry-rt.XXXXXX");
        if (!mkdtemp(fx.dir)) {
                perror("mkdtemp");
                return -1;
        }
        snprintf(fx.tag, sizeof(fx.tag), "t%d", (int)getpid());
        if (service("start", &fx.socket) < 0 || !*fx.socket) {
                service("stop", NULL);
                remove_dir();
                return -1;
        }
        _cleanup_free_ char *url = NULL;
        _cleanup_error_ sk_error *err = NULL;
        if (asprintf(&url, "unix://%s", fx.socket) < 0 ||
            sk_runtime_docker_new(url, &fx.rt, &err) < 0) {
                fprintf(stderr, "runtime: %s\n", sk_error_msg(err, -EINVAL));
                service("stop", NULL);
                remove_dir();
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        if (fx.rt)
                fx.rt->ops->free(fx.rt);
        fx.rt = NULL;
        /* cmocka runs the teardown even when the setup failed (and cleaned up). */
        if (!fx.dir[0])
                return 0;
        int r = service("stop", NULL);
        remove_dir();
        free(fx.socket);
        fx.socket = NULL;
        return r;
}

/* A label set unique to this run plus one key that says which test made it. */
static json_t *test_labels(const char *which)
{
        return json_pack("{s:s, s:s}", "skerry.test", fx.tag, "skerry.case", which);
}

static char *container_name(const char *which)
{
        char *n = NULL;
        assert_true(asprintf(&n, "sk-%s-%s", fx.tag, which) > 0);
        return n;
}

static const char *const *device_targets; /* for the next create, then reset */

static char *create(const char *which, const char *const *cmd, const char *const *devices)
{
        _cleanup_json_ json_t *labels = test_labels(which);
        _cleanup_free_ char *name = container_name(which);
        sk_container_spec spec = {.name = name,
                                  .image = IMAGE,
                                  .cmd = cmd,
                                  .labels = labels,
                                  .devices = devices,
                                  .device_targets = device_targets};
        device_targets = NULL;
        _cleanup_error_ sk_error *err = NULL;
        char *id = NULL;
        int r = fx.rt->ops->create(fx.rt, &spec, &id, &err);
        if (r < 0)
                fail_msg("create %s: %s", which, sk_error_msg(err, r));
        return id;
}

static char *run(const char *which, const char *const *cmd, const char *const *devices)
{
        char *id = create(which, cmd, devices);
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->start(fx.rt, id, &err);
        if (r < 0)
                fail_msg("start %s: %s", which, sk_error_msg(err, r));
        return id;
}

static void destroy(char *id)
{
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->remove(fx.rt, id, true, &err);
        if (r < 0)
                fail_msg("remove %s: %s", id, sk_error_msg(err, r));
        free(id);
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_exited(const char *id, sk_container_info *out)
{
        for (double end = now_s() + 30; now_s() < end;) {
                _cleanup_error_ sk_error *err = NULL;
                int r = fx.rt->ops->inspect(fx.rt, id, out, &err);
                if (r < 0)
                        fail_msg("inspect %s: %s", id, sk_error_msg(err, r));
                if (out->state == SK_CONTAINER_EXITED)
                        return;
                sk_container_info_clear(out);
                usleep(100 * 1000);
        }
        fail_msg("container %s did not exit within 30 s", id);
}

static void test_run_list_inspect(void **state)
{
        time_t before = time(NULL);
        char *id = run("list", sleep_cmd, NULL);

        _cleanup_json_ json_t *filter = test_labels("list");
        sk_container_list l = {0};
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->list(fx.rt, filter, &l, &err);
        if (r < 0)
                fail_msg("list: %s", sk_error_msg(err, r));
        assert_int_equal(l.n, 1);
        assert_string_equal(l.items[0].id, id);
        _cleanup_free_ char *name = container_name("list");
        assert_string_equal(l.items[0].name, name);
        assert_int_equal(l.items[0].state, SK_CONTAINER_RUNNING);
        assert_string_equal(json_string_value(json_object_get(l.items[0].labels, "skerry.case")),
                            "list");
        assert_string_equal(json_string_value(json_object_get(l.items[0].labels, "skerry.test")),
                            fx.tag);
        sk_container_list_clear(&l);

        /* Every pair must match: a different value selects nothing. */
        _cleanup_json_ json_t *other =
            json_pack("{s:s, s:s}", "skerry.test", fx.tag, "skerry.case", "no-such-case");
        assert_int_equal(fx.rt->ops->list(fx.rt, other, &l, NULL), 0);
        assert_int_equal(l.n, 0);
        sk_container_list_clear(&l);

        sk_container_info info = {0};
        r = fx.rt->ops->inspect(fx.rt, id, &info, &err);
        if (r < 0)
                fail_msg("inspect: %s", sk_error_msg(err, r));
        assert_string_equal(info.id, id);
        assert_string_equal(info.name, name);
        assert_string_equal(info.image, IMAGE);
        assert_int_equal(info.state, SK_CONTAINER_RUNNING);
        assert_true(info.started_at >= before - 5 && info.started_at <= time(NULL) + 5);
        assert_int_equal(info.finished_at, 0);
        assert_string_equal(json_string_value(json_object_get(info.labels, "skerry.case")), "list");
        sk_container_info_clear(&info);

        /* Inspect by name works too. */
        assert_int_equal(fx.rt->ops->inspect(fx.rt, name, &info, NULL), 0);
        assert_string_equal(info.id, id);
        sk_container_info_clear(&info);
        destroy(id);
}

static void test_stop_grace_remove(void **state)
{
        char *id = run("stop", sleep_cmd, NULL);
        _cleanup_error_ sk_error *err = NULL;
        /* sleep is PID 1 with no SIGTERM handler: only the kill after the grace ends it. */
        double t0 = now_s();
        int r = fx.rt->ops->stop(fx.rt, id, 2, &err);
        if (r < 0)
                fail_msg("stop: %s", sk_error_msg(err, r));
        double took = now_s() - t0;
        assert_true(took >= 1.5);
        assert_true(took < 20);

        sk_container_info info = {0};
        assert_int_equal(fx.rt->ops->inspect(fx.rt, id, &info, NULL), 0);
        assert_int_equal(info.state, SK_CONTAINER_EXITED);
        assert_true(info.finished_at >= info.started_at && info.finished_at > 0);
        sk_container_info_clear(&info);

        /* Already stopped: success, not an error. */
        assert_int_equal(fx.rt->ops->stop(fx.rt, id, 0, NULL), 0);

        assert_int_equal(fx.rt->ops->remove(fx.rt, id, false, NULL), 0);
        sk_error_free(&err);
        assert_int_equal(fx.rt->ops->inspect(fx.rt, id, &info, &err), -ENOENT);
        assert_int_equal(fx.rt->ops->remove(fx.rt, id, true, NULL), -ENOENT);
        free(id);
}

static void test_start_twice_and_remove_running(void **state)
{
        char *id = run("twice", sleep_cmd, NULL);
        /* Already running: success. */
        assert_int_equal(fx.rt->ops->start(fx.rt, id, NULL), 0);
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->remove(fx.rt, id, false, &err);
        assert_int_equal(r, -EBUSY);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "cannot remove container"));
        destroy(id);
}

static void test_logs(void **state)
{
        static const char *const cmd[] = {
            "sh", "-c", "echo out-line-1; echo err-line >&2; sleep 0.3; echo out-line-2", NULL};
        char *id = run("logs", cmd, NULL);
        sk_container_info info = {0};
        wait_exited(id, &info);
        assert_int_equal(info.exit_code, 0);
        sk_container_info_clear(&info);

        _cleanup_free_ char *text = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->logs(fx.rt, id, 0, 0, &text, &err);
        if (r < 0)
                fail_msg("logs: %s", sk_error_msg(err, r));
        assert_non_null(strstr(text, "out-line-1\n"));
        assert_non_null(strstr(text, "err-line\n"));
        assert_non_null(strstr(text, "out-line-2\n"));
        /* The frame headers are gone: nothing but the three lines. */
        assert_int_equal(strlen(text), strlen("out-line-1\nerr-line\nout-line-2\n"));

        _cleanup_free_ char *last = NULL;
        assert_int_equal(fx.rt->ops->logs(fx.rt, id, 0, 1, &last, NULL), 0);
        assert_string_equal(last, "out-line-2\n");
        destroy(id);
}

static void test_exit_code(void **state)
{
        static const char *const cmd[] = {"sh", "-c", "exit 7", NULL};
        char *id = run("exit", cmd, NULL);
        sk_container_info info = {0};
        wait_exited(id, &info);
        assert_int_equal(info.exit_code, 7);
        sk_container_info_clear(&info);

        _cleanup_json_ json_t *filter = test_labels("exit");
        sk_container_list l = {0};
        assert_int_equal(fx.rt->ops->list(fx.rt, filter, &l, NULL), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.items[0].state, SK_CONTAINER_EXITED);
        assert_int_equal(l.items[0].exit_code, 7);
        sk_container_list_clear(&l);
        destroy(id);
}

struct events_ctx {
        pthread_mutex_t lock;
        char id[128];
        bool saw_start, saw_die, finished, stop_on_tick;
        int ticks;
        int rc;
        char *msg;
};

static int on_event(const sk_runtime_event *ev, void *user)
{
        struct events_ctx *c = user;
        pthread_mutex_lock(&c->lock);
        if (!ev)
                c->ticks++;
        else if (c->id[0] && strcmp(ev->container_id, c->id) == 0) {
                if (strcmp(ev->action, "start") == 0)
                        c->saw_start = true;
                if (strcmp(ev->action, "die") == 0 && c->saw_start)
                        c->saw_die = true;
        }
        bool stop = (c->saw_start && c->saw_die) || (c->stop_on_tick && c->ticks >= 2);
        pthread_mutex_unlock(&c->lock);
        return stop ? 1 : 0;
}

static void *events_thread(void *arg)
{
        struct events_ctx *c = arg;
        _cleanup_json_ json_t *filter = test_labels("events");
        sk_error *err = NULL;
        int r = fx.rt->ops->events(fx.rt, filter, on_event, c, &err);
        pthread_mutex_lock(&c->lock);
        c->rc = r;
        c->msg = err && err->msg ? strdup(err->msg) : NULL;
        c->finished = true;
        pthread_mutex_unlock(&c->lock);
        sk_error_free(&err);
        return NULL;
}

static bool events_done(struct events_ctx *c)
{
        pthread_mutex_lock(&c->lock);
        bool done = c->finished;
        pthread_mutex_unlock(&c->lock);
        return done;
}

static void test_events(void **state)
{
        struct events_ctx c = {.lock = PTHREAD_MUTEX_INITIALIZER};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, events_thread, &c), 0);
        usleep(500 * 1000); /* let the stream subscribe */
        static const char *const cmd[] = {"true", NULL};
        /* A container started before the subscription was live is missed: try again with a
         * new one, a few times. */
        for (int attempt = 0; attempt < 3 && !events_done(&c); attempt++) {
                char *id = create("events", cmd, NULL);
                pthread_mutex_lock(&c.lock);
                snprintf(c.id, sizeof(c.id), "%s", id);
                pthread_mutex_unlock(&c.lock);
                assert_int_equal(fx.rt->ops->start(fx.rt, id, NULL), 0);
                for (double end = now_s() + 10; now_s() < end && !events_done(&c);)
                        usleep(50 * 1000);
                destroy(id);
        }
        if (!events_done(&c))
                fail_msg("the event stream did not report start and die of a container");
        pthread_join(th, NULL);
        if (c.rc < 0)
                fail_msg("events: %s", c.msg ? c.msg : "error");
        assert_true(c.saw_start);
        assert_true(c.saw_die);
        free(c.msg);
}

/* A stream with no events still ends when the caller says so, through the idle tick. */
static void test_events_quiet_stream_stops(void **state)
{
        struct events_ctx c = {.lock = PTHREAD_MUTEX_INITIALIZER, .stop_on_tick = true};
        double start = now_s();
        events_thread(&c);
        if (c.rc < 0)
                fail_msg("events: %s", c.msg ? c.msg : "error");
        assert_true(c.ticks >= 2);
        assert_false(c.saw_start);
        assert_true(now_s() - start < 10);
        free(c.msg);
}

static void test_pull(void **state)
{
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->pull(fx.rt, IMAGE, &err);
        if (r < 0)
                fail_msg("pull of the local image: %s", sk_error_msg(err, r));
        /* localhost: the attempt stays on loopback, where no registry listens. */
        r = fx.rt->ops->pull(fx.rt, "localhost/skerry-no-such-image:1", &err);
        assert_int_equal(r, -ENOENT);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "localhost/skerry-no-such-image:1"));
}

static void test_name_conflict(void **state)
{
        char *id = create("dup", sleep_cmd, NULL);
        _cleanup_free_ char *name = container_name("dup");
        sk_container_spec spec = {.name = name, .image = IMAGE, .cmd = sleep_cmd};
        _cleanup_error_ sk_error *err = NULL;
        char *id2 = NULL;
        assert_int_equal(fx.rt->ops->create(fx.rt, &spec, &id2, &err), -EEXIST);
        assert_null(id2);
        assert_non_null(err);
        /* The runtime's own words are in the message. */
        assert_non_null(strstr(err->msg, name));
        destroy(id);
}

static void test_missing_image_and_unknown_id(void **state)
{
        sk_container_spec spec = {.image = "localhost/skerry-no-such-image:2", .cmd = sleep_cmd};
        _cleanup_error_ sk_error *err = NULL;
        char *id = NULL;
        assert_int_equal(fx.rt->ops->create(fx.rt, &spec, &id, &err), -ENOENT);
        assert_null(id);

        sk_container_info info = {0};
        sk_error_free(&err);
        assert_int_equal(fx.rt->ops->inspect(fx.rt, "skerry-no-such-container", &info, &err),
                         -ENOENT);
        assert_non_null(strstr(err->msg, "skerry-no-such-container"));
        assert_null(info.id);
        assert_int_equal(fx.rt->ops->start(fx.rt, "skerry-no-such-container", NULL), -ENOENT);
        assert_int_equal(fx.rt->ops->stop(fx.rt, "skerry-no-such-container", 0, NULL), -ENOENT);
        int64_t cpu, mem;
        assert_int_equal(fx.rt->ops->stats(fx.rt, "skerry-no-such-container", &cpu, &mem, NULL),
                         -ENOENT);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(fx.rt->ops->logs(fx.rt, "skerry-no-such-container", 0, 0, &text, NULL),
                         -ENOENT);
}

static void test_stats(void **state)
{
        char *id = run("stats", sleep_cmd, NULL);
        int64_t cpu = -1, mem = -1;
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->stats(fx.rt, id, &cpu, &mem, &err);
        if (r < 0)
                fail_msg("stats: %s", sk_error_msg(err, r));
        assert_true(mem > 0);
        assert_true(cpu >= 0);
        destroy(id);
}

/* The limits reach the runtime as Docker spells them. */
static void test_limits(void **state)
{
        _cleanup_json_ json_t *labels = test_labels("limits");
        _cleanup_free_ char *name = container_name("limits");
        sk_container_spec spec = {.name = name,
                                  .image = IMAGE,
                                  .cmd = sleep_cmd,
                                  .labels = labels,
                                  .cpu_millicores = 500,
                                  .memory_bytes = 64 << 20};
        char *id = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->create(fx.rt, &spec, &id, &err);
        if (r < 0)
                fail_msg("create: %s", sk_error_msg(err, r));

        _cleanup_httpc_ sk_httpc *h = NULL;
        sk_httpc_opts opts = {.base_url = "http://d", .unix_socket = fx.socket};
        assert_int_equal(sk_httpc_new(&opts, &h, NULL), 0);
        _cleanup_free_ char *path = NULL;
        assert_true(asprintf(&path, "/v1.41/containers/%s/json", id) > 0);
        _cleanup_response_ sk_http_response resp = {0};
        assert_int_equal(sk_httpc_request(h, "GET", path, NULL, 0, NULL, 10000, &resp, NULL), 0);
        assert_int_equal(resp.status, 200);
        _cleanup_json_ json_t *j = json_loads(resp.body, 0, NULL);
        json_t *hc = json_object_get(j, "HostConfig");
        assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
        assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
        destroy(id);

        spec.memory_bytes = -1;
        id = NULL;
        sk_error_free(&err);
        assert_int_equal(fx.rt->ops->create(fx.rt, &spec, &id, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "memory_bytes"));
        assert_null(id);
}

static void test_device(void **state)
{
        char node[PATH_MAX];
        snprintf(node, sizeof(node), "%s/skerry-null", fx.dir);
        if (mknod(node, S_IFCHR | 0666, makedev(1, 3)) < 0)
                fail_msg("mknod %s: %s", node, strerror(errno));
        _cleanup_free_ char *script = NULL;
        /* Found outside /dev on the host (as under --dev-dir), at its /dev path inside. */
        const char *inside = "/dev/skerry-cam0";
        assert_true(
            asprintf(&script, "ls -l %s && echo written >%s && echo write-ok", inside, inside) > 0);
        const char *const cmd[] = {"sh", "-c", script, NULL};
        const char *const devices[] = {node, NULL};
        static const char *const targets[] = {"/dev/skerry-cam0", NULL};
        device_targets = targets;
        char *id = run("device", cmd, devices);
        sk_container_info info = {0};
        wait_exited(id, &info);
        sk_container_info_clear(&info);
        _cleanup_free_ char *text = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = fx.rt->ops->logs(fx.rt, id, 0, 0, &text, &err);
        if (r < 0)
                fail_msg("logs: %s", sk_error_msg(err, r));
        /* busybox: "crw-rw-rw-    1 root     root        1,   3 Jan  1 00:00 PATH" */
        if (text[0] != 'c' || !strstr(text, "1,   3") || !strstr(text, inside) ||
            !strstr(text, "write-ok\n"))
                fail_msg("device not passed through; container said: %s", text);
        destroy(id);
        unlink(node);
}

static void *inspect_many(void *arg)
{
        const char *id = arg;
        for (int i = 0; i < 10; i++) {
                sk_container_info info = {0};
                if (fx.rt->ops->inspect(fx.rt, id, &info, NULL) < 0 || strcmp(info.id, id) != 0) {
                        sk_container_info_clear(&info);
                        return (void *)1;
                }
                sk_container_info_clear(&info);
        }
        return NULL;
}

/* One runtime, several threads: each gets its own connection. */
static void test_threads(void **state)
{
        char *id = create("threads", sleep_cmd, NULL);
        pthread_t th[4];
        for (size_t i = 0; i < SK_ARRAY_SIZE(th); i++)
                assert_int_equal(pthread_create(&th[i], NULL, inspect_many, id), 0);
        int bad = 0;
        for (size_t i = 0; i < SK_ARRAY_SIZE(th); i++) {
                void *ret;
                pthread_join(th[i], &ret);
                bad += ret != NULL;
        }
        assert_int_equal(bad, 0);
        destroy(id);
}

static void test_bad_url(void **state)
{
        sk_runtime *rt = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_runtime_docker_new("tcp://127.0.0.1:2375", &rt, &err), -EINVAL);
        assert_non_null(strstr(err->msg, "tcp://127.0.0.1:2375"));
        assert_null(rt);

        /* A socket nobody serves: a clear transport error, not a hang. */
        assert_int_equal(sk_runtime_docker_new("unix:///nonexistent/skerry.sock", &rt, NULL), 0);
        sk_error_free(&err);
        sk_container_info info = {0};
        int r = rt->ops->inspect(rt, "x", &info, &err);
        assert_true(r < 0);
        assert_non_null(strstr(err->msg, "/nonexistent/skerry.sock"));
        rt->ops->free(rt);
}

static void test_parse_time(void **state)
{
        int64_t t = -1;
        assert_int_equal(sk_runtime_parse_time("0001-01-01T00:00:00Z", &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T10:20:30.123456789Z", &t), 0);
        assert_int_equal(t, 1709634030);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T12:20:30.5+02:00", &t), 0);
        assert_int_equal(t, 1709634030);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T05:20:30-05:00", &t), 0);
        assert_int_equal(t, 1709634030);
        assert_int_equal(sk_runtime_parse_time("1970-01-01T00:00:00Z", &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(sk_runtime_parse_time(NULL, &t), 0);
        assert_int_equal(t, 0);
        t = 42;
        assert_int_equal(sk_runtime_parse_time("2024-03-05 10:20", &t), -EINVAL);
        assert_int_equal(sk_runtime_parse_time("2024-13-05T10:20:30Z", &t), -EINVAL);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T10:20:30", &t), -EINVAL);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T10:20:30.Z", &t), -EINVAL);
        assert_int_equal(sk_runtime_parse_time("2024-03-05T10:20:30Zjunk", &t), -EINVAL);
        assert_int_equal(t, 42);
}

static void test_demux(void **state)
{
        static const char framed[] = "\x01\x00\x00\x00\x00\x00\x00\x04out\n"
                                     "\x02\x00\x00\x00\x00\x00\x00\x04"
                                     "err\n";
        _cleanup_free_ char *a = NULL;
        assert_int_equal(sk_runtime_demux_logs(framed, sizeof(framed) - 1, &a, NULL), 0);
        assert_string_equal(a, "out\nerr\n");

        /* A TTY container's stream has no frames. */
        _cleanup_free_ char *b = NULL;
        assert_int_equal(sk_runtime_demux_logs("plain tty\r\n", 11, &b, NULL), 0);
        assert_string_equal(b, "plain tty\r\n");

        /* A truncated frame means it was not a framed stream after all. */
        static const char cut[] = "\x01\x00\x00\x00\x00\x00\x00\x09out\n";
        _cleanup_free_ char *c = NULL;
        assert_int_equal(sk_runtime_demux_logs(cut, sizeof(cut) - 1, &c, NULL), 0);
        assert_int_equal(memcmp(c, cut, sizeof(cut) - 1), 0);

        _cleanup_free_ char *d = NULL;
        assert_int_equal(sk_runtime_demux_logs("", 0, &d, NULL), 0);
        assert_string_equal(d, "");
}

static void test_states(void **state)
{
        assert_int_equal(sk_container_state_parse("running"), SK_CONTAINER_RUNNING);
        assert_int_equal(sk_container_state_parse("exited"), SK_CONTAINER_EXITED);
        assert_int_equal(sk_container_state_parse("stopped"), SK_CONTAINER_EXITED);
        assert_int_equal(sk_container_state_parse("configured"), SK_CONTAINER_CREATED);
        assert_int_equal(sk_container_state_parse("bogus"), SK_CONTAINER_UNKNOWN);
        assert_int_equal(sk_container_state_parse(NULL), SK_CONTAINER_UNKNOWN);
        for (int s = SK_CONTAINER_CREATED; s <= SK_CONTAINER_UNKNOWN; s++)
                assert_int_equal(sk_container_state_parse(sk_container_state_name(s)), s);
        assert_string_equal(sk_container_state_name((sk_container_state)99), "unknown");
}

int main(void)
{
        /* One group, so that tests/run counts every case from cmocka's summary. */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_time),
            cmocka_unit_test(test_demux),
            cmocka_unit_test(test_states),
            cmocka_unit_test(test_run_list_inspect),
            cmocka_unit_test(test_stop_grace_remove),
            cmocka_unit_test(test_start_twice_and_remove_running),
            cmocka_unit_test(test_logs),
            cmocka_unit_test(test_exit_code),
            cmocka_unit_test(test_events),
            cmocka_unit_test(test_events_quiet_stream_stops),
            cmocka_unit_test(test_pull),
            cmocka_unit_test(test_name_conflict),
            cmocka_unit_test(test_missing_image_and_unknown_id),
            cmocka_unit_test(test_stats),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_device),
            cmocka_unit_test(test_threads),
            cmocka_unit_test(test_bad_url),
        };
        /* SK_TEST_FILTER=test_logs runs just the matching cases. */
        const char *filter = getenv("SK_TEST_FILTER");
        if (filter && *filter)
                cmocka_set_test_filter(filter);
        return cmocka_run_group_tests_name("runtime_docker (real podman)", tests, group_setup,
                                           group_teardown);
}
