/* `skerry <verb>` end to end against a fake tower: a plain-HTTP server on a loopback port
 * in a thread that records every request and answers from a small route table. Checks exit
 * codes, what is sent (and that nothing is sent when input is invalid), and what is
 * printed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "common/cleanup.h"

#define MAX_REQ 32

typedef struct route {
        const char *method, *path; /* path matched exactly, with its query */
        int status;
        const char *body;
} route;

typedef struct request {
        char method[16];
        char path[512];
        char auth[256];
        char *body;
} request;

static struct fake {
        int fd;
        int port;
        pthread_t thread;
        volatile bool stop;
        pthread_mutex_t lock;
        const route *routes;
        request reqs[MAX_REQ];
        size_t nreq;
        char dir[64];
        char addr[64];
} srv;

static void handle(int fd)
{
        char buf[65536];
        size_t len = 0;
        char *end = NULL;
        while (!end && len < sizeof(buf) - 1) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n <= 0)
                        return;
                len += (size_t)n;
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
        }
        if (!end)
                return;
        size_t clen = 0;
        char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < end)
                clen = strtoul(cl + 17, NULL, 10);
        size_t head = (size_t)(end + 4 - buf);
        while (len < head + clen && len < sizeof(buf) - 1) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        request r = {0};
        sscanf(buf, "%15s %511s", r.method, r.path);
        char *auth = strcasestr(buf, "\r\nAuthorization: Bearer ");
        if (auth && auth < end)
                sscanf(auth + 24, "%255s", r.auth);
        r.body = strndup(buf + head, clen);
        const route *hit = NULL;
        for (const route *rt = srv.routes; rt && rt->method; rt++)
                if (strcmp(rt->method, r.method) == 0 && strcmp(rt->path, r.path) == 0) {
                        hit = rt;
                        break;
                }
        pthread_mutex_lock(&srv.lock);
        if (srv.nreq < MAX_REQ)
                srv.reqs[srv.nreq++] = r;
        else
                free(r.body);
        pthread_mutex_unlock(&srv.lock);
        const char *body =
            hit ? hit->body : "{\"error\": {\"code\": \"not-found\", \"message\": \"no route\"}}";
        char resp[70000];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
                         "%zu\r\nConnection: close\r\n\r\n%s",
                         hit ? hit->status : 404, strlen(body), body);
        if (write(fd, resp, (size_t)n) < 0)
                return;
}

static void *serve(void *arg)
{
        while (!srv.stop) {
                struct pollfd p = {srv.fd, POLLIN, 0};
                if (poll(&p, 1, 50) <= 0)
                        continue;
                int c = accept(srv.fd, NULL, NULL);
                if (c < 0)
                        continue;
                handle(c);
                close(c);
        }
        return NULL;
}

static void reset_requests(void)
{
        pthread_mutex_lock(&srv.lock);
        for (size_t i = 0; i < srv.nreq; i++)
                free(srv.reqs[i].body);
        srv.nreq = 0;
        pthread_mutex_unlock(&srv.lock);
}

static int setup(void **state)
{
        srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            listen(srv.fd, 16) < 0 || getsockname(srv.fd, (struct sockaddr *)&a, &alen) < 0)
                return -1;
        srv.port = ntohs(a.sin_port);
        snprintf(srv.addr, sizeof(srv.addr), "http://127.0.0.1:%d", srv.port);
        pthread_mutex_init(&srv.lock, NULL);
        strcpy(srv.dir, "/tmp/sk-cli-main-XXXXXX");
        if (!mkdtemp(srv.dir))
                return -1;
        /* No config file, token or address from the person running the tests. */
        setenv("HOME", srv.dir, 1);
        unsetenv("XDG_CONFIG_HOME");
        unsetenv("SKERRY_ADDR");
        unsetenv("SKERRY_TOKEN");
        unsetenv("SKERRY_CA");
        return pthread_create(&srv.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
        srv.stop = true;
        pthread_join(srv.thread, NULL);
        close(srv.fd);
        reset_requests();
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srv.dir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return strdup("");
        char *text = NULL;
        size_t cap = 0;
        if (getdelim(&text, &cap, '\0', f) < 0) {
                free(text);
                text = strdup("");
        }
        fclose(f);
        return text;
}

typedef struct run {
        int rc;
        char *out, *err;
} run;

static void run_free(run *r)
{
        free(r->out);
        free(r->err);
}
#define _cleanup_run_ __attribute__((cleanup(run_free)))

/* Runs sk_cli_main with stdout and stderr captured and stdin from `input` (or /dev/null). */
static run cli(const char *input, const char *const *args)
{
        char *argv[32] = {"skerry"};
        int argc = 1;
        for (; args[argc - 1]; argc++)
                argv[argc] = strdup(args[argc - 1]);
        char out_path[128], err_path[128], in_path[128];
        snprintf(out_path, sizeof(out_path), "%s/stdout", srv.dir);
        snprintf(err_path, sizeof(err_path), "%s/stderr", srv.dir);
        snprintf(in_path, sizeof(in_path), "%s/stdin", srv.dir);
        FILE *in = fopen(in_path, "w");
        fputs(input ? input : "", in);
        fclose(in);
        fflush(stdout);
        fflush(stderr);
        int saved[3] = {dup(0), dup(1), dup(2)};
        int fin = open(in_path, O_RDONLY);
        int fout = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int ferr = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fin, 0), dup2(fout, 1), dup2(ferr, 2);
        close(fin), close(fout), close(ferr);
        clearerr(stdin);
        run r;
        r.rc = sk_cli_main(argc, argv);
        fflush(stdout);
        fflush(stderr);
        dup2(saved[0], 0), dup2(saved[1], 1), dup2(saved[2], 2);
        close(saved[0]), close(saved[1]), close(saved[2]);
        clearerr(stdin);
        for (int i = 1; i < argc; i++)
                free(argv[i]);
        r.out = slurp(out_path);
        r.err = slurp(err_path);
        return r;
}

#define CLI(...) cli(NULL, (const char *const[]){__VA_ARGS__, NULL})

static void expect_contains(const char *text, const char *part)
{
        if (!strstr(text, part))
                fail_msg("'%s' does not contain '%s'", text, part);
}

static char *write_file(const char *name, const char *text)
{
        char *path = NULL;
        assert_true(asprintf(&path, "%s/%s", srv.dir, name) > 0);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static void test_usage_errors(void **state)
{
        struct {
                const char *args[8];
                const char *msg;
        } cases[] = {
            {{NULL}, "usage: skerry"},
            {{"bogus"}, "unknown verb 'bogus'"},
            {{"get"}, "missing argument"},
            {{"get", "gizmos"}, "unknown kind 'gizmos'"},
            {{"get", "sites", "--ttl", "1h"}, "does not take --ttl"},
            {{"get", "sites", "-o", "xml"}, "-o must be table, wide, json, yaml, name or jsonpath"},
            {{"gte", "sites"}, "unknown verb 'gte'; did you mean 'get'?"},
            {{"get", "deplyments"}, "did you mean 'deployments'?"},
            {{"get", "vaults"}, "the tower does not serve vaults yet"},
            {{"get", "sites", "x", "-l", "a=b"}, "give NAME or -l, not both"},
            {{"get", "sites", "-o", "jsonpath={.items[x]}", "--addr", "http://127.0.0.1:1"},
             "jsonpath: expected"},
            {{"describe", "sites", "x", "-l", "a"}, "does not take -l"},
            {{"rollout", "status", "d", "--timeout", "5m"}, "--timeout is for --watch"},
            {{"rollout", "status", "d", "--watch", "--timeout", "soon"}, "not a duration"},
            {{"delete", "site", "x", "-f", "f.yaml"}, "not both"},
            {{"diff"}, "diff needs -f FILE"},
            {{"completion", "fish"}, "bash or zsh"},
            {{"apply", "-f", "x", "--dry-run", "--watch"}, "does not take --watch"},
            {{"get", "hosts"}, "add --site"},
            {{"get", "apps", "--site", "s1"}, "--site is for hosts and instances"},
            {{"get", "a", "b", "c"}, "unexpected argument 'c'"},
            {{"apply"}, "apply needs -f FILE"},
            {{"apply", "-f", "-", "-f", "-"}, "only once"},
            {{"--nope"}, "unknown flag '--nope'"},
            {{"get", "sites", "-o"}, "needs a value"},
            {{"site"}, "'site' needs one of: token"},
            {{"site", "token", "s1", "--ttl", "soon"}, "--ttl"},
            {{"login", "alice"}, "is not TENANT/USER"},
            {{"delete", "site"}, "missing argument"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_run_ run r = cli(NULL, cases[i].args);
                if (r.rc != 2)
                        fail_msg("case %zu: exit %d, stderr %s", i, r.rc, r.err);
                expect_contains(r.err, cases[i].msg);
                assert_string_equal(r.out, "");
        }
        assert_int_equal(srv.nreq, 0);
}

static void test_help_and_version(void **state)
{
        reset_requests();
        _cleanup_run_ run v = CLI("version");
        assert_int_equal(v.rc, 0);
        assert_true(strncmp(v.out, "skerry ", 7) == 0);
        _cleanup_run_ run h = CLI("--help");
        assert_int_equal(h.rc, 0);
        expect_contains(h.out, "skerry apply -f FILE");
        _cleanup_run_ run hg = CLI("help", "get");
        assert_int_equal(hg.rc, 0);
        expect_contains(hg.out, "usage: skerry get KIND");
        _cleanup_run_ run hv = CLI("delete", "--help");
        assert_int_equal(hv.rc, 0);
        expect_contains(hv.out, "usage: skerry delete KIND NAME");
        _cleanup_run_ run hb = CLI("help", "nope");
        assert_int_equal(hb.rc, 2);
        /* every verb, and every first word of a two-word verb, answers --help with 0 */
        const char *const words[][2] = {
            {"apply", NULL},  {"diff", NULL},       {"get", NULL},       {"describe", NULL},
            {"delete", NULL}, {"match", NULL},      {"rollout", NULL},   {"rollout", "status"},
            {"site", NULL},   {"site", "token"},    {"login", NULL},     {"user", "password"},
            {"token", NULL},  {"token", "list"},    {"token", "create"}, {"token", "revoke"},
            {"whoami", NULL}, {"completion", NULL}, {"version", NULL},   {"help", NULL},
        };
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                _cleanup_run_ run r = words[i][1] ? CLI(words[i][0], words[i][1], "--help")
                                                  : CLI(words[i][0], "--help");
                if (r.rc != 0 || !strstr(r.out, "usage: skerry "))
                        fail_msg("%s %s --help: exit %d, %s", words[i][0],
                                 words[i][1] ? words[i][1] : "", r.rc, r.err);
        }
        /* the help names only kinds the tower serves, and says which come later */
        expect_contains(h.out, "deployment (deploy), instance\n(inst)");
        expect_contains(h.out, "Vaults, secrets and alerts come later");
        assert_int_equal(srv.nreq, 0);
}

/* The committed skerry.1 is what `skerry help --man` prints (make man rewrites it). */
static void test_man_page_current(void **state)
{
        _cleanup_run_ run m = CLI("help", "--man");
        assert_int_equal(m.rc, 0);
        expect_contains(m.out, ".TH SKERRY 1");
        expect_contains(m.out, ".B skerry get KIND [NAME]");
        const char *src = getenv("SKERRY_SRC");
        char path[4096];
        snprintf(path, sizeof(path), "%s/skerry.1", src && *src ? src : ".");
        _cleanup_free_ char *committed = slurp(path);
        if (strcmp(committed, m.out) != 0)
                fail_msg("%s is not current: run `make man` and commit it", path);
}

static void test_completion(void **state)
{
        _cleanup_run_ run b = CLI("completion", "bash");
        assert_int_equal(b.rc, 0);
        expect_contains(b.out, "complete -F _skerry skerry\n");
        expect_contains(b.out, "local verbs=\"apply diff get describe delete match rollout site "
                               "login user token whoami completion version help tower agent dev\"");
        expect_contains(b.out, "deployments deploy instances inst");
        expect_contains(b.out, "token) [ \"$COMP_CWORD\" -eq 2 ] && words=\"list create revoke\"");
        expect_contains(b.out, "--dry-run");
        _cleanup_run_ run z = CLI("completion", "zsh");
        assert_int_equal(z.rc, 0);
        assert_true(strncmp(z.out, "#compdef skerry\n", 16) == 0);
        expect_contains(z.out, "compdef _skerry skerry");
        expect_contains(z.out, "site) (( CURRENT == 3 )) && compadd token ;;");
        /* bash itself completes with it: verbs, kinds and second words */
        char *script = NULL;
        assert_true(asprintf(&script, "%s/complete.bash", srv.dir) > 0);
        FILE *f = fopen(script, "w");
        fputs(b.out, f);
        fclose(f);
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "bash -c 'source %s; for w in \"ge\" \"get dep\" \"token c\" \"get -o w\"; do "
                 "COMP_WORDS=(skerry $w); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _skerry; "
                 "echo \"${COMPREPLY[*]}\"; done' > %s/complete.out",
                 script, srv.dir);
        assert_int_equal(system(cmd), 0);
        free(script);
        char out_path[128];
        snprintf(out_path, sizeof(out_path), "%s/complete.out", srv.dir);
        _cleanup_free_ char *got = slurp(out_path);
        assert_string_equal(got, "get\ndeployments deploy\ncreate\nwide\n");
}

static const char app_bad[] = "kind: site\n"
                              "name: store-001\n"
                              "---\n"
                              "kind: application\n"
                              "name: pos\n"
                              "version: \"2.1.0\"\n"
                              "services:\n"
                              "  - name: api\n"
                              "    replicas: many\n"
                              "    containers:\n"
                              "      - {name: api, image: pos/api:2.1}\n";

static const char docs_ok[] = "kind: deployment\n"
                              "name: pos-stores\n"
                              "application: pos\n"
                              "version: \"*\"\n"
                              "sites: chain = acme\n"
                              "---\n"
                              "kind: application\n"
                              "name: pos\n"
                              "version: \"2.1.0\"\n"
                              "services:\n"
                              "  - name: api\n"
                              "    replicas: 2\n"
                              "    containers:\n"
                              "      - {name: api, image: pos/api:2.1}\n"
                              "---\n"
                              "kind: site\n"
                              "name: store-001\n"
                              "labels: {chain: acme}\n"
                              "---\n"
                              "kind: tenant\n"
                              "name: acme\n"
                              "type: application\n";

static void test_apply_invalid_sends_nothing(void **state)
{
        reset_requests();
        _cleanup_free_ char *bad = write_file("bad.yaml", app_bad);
        _cleanup_free_ char *good = write_file("good.yaml", docs_ok);
        _cleanup_run_ run r = CLI("apply", "--addr", srv.addr, "-f", good, "-f", bad);
        assert_int_equal(r.rc, 1);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "%s:9:15: services[0].replicas: ", bad) > 0);
        expect_contains(r.err, want);
        expect_contains(r.err, "nothing applied: 1 error");
        assert_int_equal(srv.nreq, 0);

        /* A YAML syntax error names the file, line and column too. */
        _cleanup_free_ char *broken = write_file("broken.yaml", "kind: site\nname: [a\n");
        _cleanup_run_ run b = CLI("apply", "--addr", srv.addr, "-f", broken);
        assert_int_equal(b.rc, 1);
        _cleanup_free_ char *prefix = NULL;
        assert_true(asprintf(&prefix, "%s:3:", broken) > 0);
        expect_contains(b.err, prefix);
        assert_int_equal(srv.nreq, 0);

        _cleanup_run_ run m = CLI("apply", "--addr", srv.addr, "-f", "/nonexistent/x.yaml");
        assert_int_equal(m.rc, 1);
        expect_contains(m.err, "/nonexistent/x.yaml: No such file or directory");
}

static const route apply_routes[] = {
    {"PUT", "/v1/tenants/acme", 200, "{\"result\": \"created\", \"item\": {}}"},
    {"PUT", "/v1/sites/store-001", 200, "{\"result\": \"unchanged\", \"item\": {}}"},
    {"PUT", "/v1/applications/pos", 200, "{\"result\": \"created\", \"item\": {}}"},
    {"PUT", "/v1/deployments/pos-stores", 400,
     "{\"error\": {\"code\": \"invalid\", \"message\": \"no such version\", \"path\": "
     "\"version\"}}"},
    {NULL, NULL, 0, NULL},
};

static void test_apply_order_and_server_error(void **state)
{
        reset_requests();
        srv.routes = apply_routes;
        /* From stdin, with the token from the environment. */
        setenv("SKERRY_TOKEN", "env-token", 1);
        _cleanup_run_ run r =
            cli(docs_ok, (const char *const[]){"apply", "--addr", srv.addr, "-f", "-", NULL});
        unsetenv("SKERRY_TOKEN");
        assert_int_equal(r.rc, 1);
        assert_string_equal(r.out, "tenant/acme created\n"
                                   "site/store-001 unchanged\n"
                                   "application/pos 2.1.0 created\n");
        expect_contains(r.err, "<stdin>:4:10: version: no such version\n");
        expect_contains(r.err, "1 of 4 documents failed");
        assert_int_equal(srv.nreq, 4);
        const char *order[] = {"/v1/tenants/acme", "/v1/sites/store-001", "/v1/applications/pos",
                               "/v1/deployments/pos-stores"};
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(srv.reqs[i].method, "PUT");
                assert_string_equal(srv.reqs[i].path, order[i]);
                assert_string_equal(srv.reqs[i].auth, "env-token");
        }
        /* The document goes as written (JSON), not the normalised copy. */
        _cleanup_json_ json_t *body = json_loads(srv.reqs[2].body, 0, NULL);
        assert_non_null(body);
        assert_string_equal(json_string_value(json_object_get(body, "version")), "2.1.0");
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(json_object_get(body, "services"), 0), "replicas")),
                         2);
}

static const route get_routes[] = {
    {"GET", "/v1/sites", 200,
     "{\"items\": [{\"name\": \"store-001\", \"labels\": {\"chain\": \"acme\"}}, "
     "{\"name\": \"store-0002\", \"labels\": {}}]}"},
    {"GET", "/v1/sites?match=chain%20%3D%20acme", 200,
     "{\"items\": [{\"name\": \"store-001\", \"labels\": {\"chain\": \"acme\"}}]}"},
    {"GET", "/v1/sites?match=chain%20~%20%28", 400,
     "{\"error\": {\"code\": \"invalid\", \"message\": \"bad regex\", \"path\": \"match\", "
     "\"column\": 9}}"},
    {"GET", "/v1/hosts?site=store-001", 200,
     "{\"items\": [{\"name\": \"h1\", \"site\": \"store-001\", \"labels\": {\"zone\": \"a\"}, "
     "\"role\": \"leader\", \"state\": \"alive\"}, {\"name\": \"h2\", \"site\": "
     "\"store-001\", \"labels\": {\"zone\": \"b\"}}]}"},
    {"GET", "/v1/deployments", 200,
     "{\"items\": [{\"name\": \"pos-stores\", \"application\": \"pos\", \"version\": \"*\", "
     "\"sites\": \"chain = acme\", \"status\": {\"running\": 1, \"desired\": 2}}]}"},
    {"GET", "/v1/deployments/pos-stores", 200,
     "{\"name\": \"pos-stores\", \"application\": \"pos\", \"version\": \"*\", "
     "\"status\": {\"running\": 1, \"desired\": 2, \"sites\": []}}"},
    {"GET", "/v1/deployments/done", 200,
     "{\"name\": \"done\", \"application\": \"pos\", \"version\": \"*\", "
     "\"status\": {\"running\": 2, \"desired\": 2, \"sites\": []}}"},
    {"DELETE", "/v1/applications/pos?version=1.0.0", 200, "{\"result\": \"deleted\"}"},
    {"GET", "/v1/tenants", 401,
     "{\"error\": {\"code\": \"unauthenticated\", \"message\": \"token expired\"}}"},
    {"POST", "/v1/sites/store-001/tokens", 200,
     "{\"token\": \"join-abc\", \"site\": \"store-001\", \"expires\": \"x\"}"},
    {"POST", "/v1/login", 200, "{\"token\": \"tok-123\", \"expires\": \"x\"}"},
    {NULL, NULL, 0, NULL},
};

static void test_get_outputs(void **state)
{
        reset_requests();
        srv.routes = get_routes;
        _cleanup_run_ run t = CLI("get", "site", "--addr", srv.addr, "--token", "flag-token");
        assert_int_equal(t.rc, 0);
        assert_string_equal(t.out, "NAME         LABELS\n"
                                   "store-001    chain=acme\n"
                                   "store-0002   -\n");
        assert_string_equal(srv.reqs[0].auth, "flag-token");

        _cleanup_run_ run j = CLI("get", "sites", "-o", "json", "--addr", srv.addr);
        assert_int_equal(j.rc, 0);
        _cleanup_json_ json_t *got = json_loads(j.out, 0, NULL);
        _cleanup_json_ json_t *want = json_loads(get_routes[0].body, 0, NULL);
        assert_true(json_equal(got, want));

        _cleanup_run_ run y = CLI("get", "sites", "-o", "yaml", "--addr", srv.addr);
        assert_int_equal(y.rc, 0);
        expect_contains(y.out, "store-0002");

        _cleanup_run_ run h =
            CLI("describe", "host", "h2", "--site", "store-001", "--addr", srv.addr);
        assert_int_equal(h.rc, 0);
        expect_contains(h.out, "host h2\n");
        _cleanup_run_ run h3 = CLI("get", "host", "h3", "--site", "store-001", "--addr", srv.addr);
        assert_int_equal(h3.rc, 1);
        expect_contains(h3.err, "no host 'h3' on site store-001");

        _cleanup_run_ run d = CLI("delete", "app", "pos", "--version", "1.0.0", "--addr", srv.addr);
        assert_int_equal(d.rc, 0);
        assert_string_equal(d.out, "application/pos 1.0.0 deleted\n");

        _cleanup_run_ run u = CLI("get", "tenants", "--addr", srv.addr);
        assert_int_equal(u.rc, 1);
        expect_contains(u.err, "skerry: token expired\n");
        expect_contains(u.err, "skerry login");

        _cleanup_run_ run n = CLI("get", "users", "--addr", srv.addr);
        assert_int_equal(n.rc, 1);
        expect_contains(n.err, "no route");
}

/* -l, -o name|wide|jsonpath and short names; the selector is parsed before any request. */
static void test_get_selectors(void **state)
{
        reset_requests();
        srv.routes = get_routes;
        _cleanup_run_ run bad = CLI("get", "sites", "-l", "chain = = acme", "--addr", srv.addr);
        assert_int_equal(bad.rc, 1);
        expect_contains(bad.err, "bad expression");
        assert_int_equal(srv.nreq, 0);
        /* sites: the tower selects (?match=) */
        _cleanup_run_ run s =
            CLI("get", "sites", "-l", "chain = acme", "-o", "name", "--addr", srv.addr);
        assert_int_equal(s.rc, 0);
        assert_string_equal(s.out, "site/store-001\n");
        assert_string_equal(srv.reqs[0].path, "/v1/sites?match=chain%20%3D%20acme");
        /* hosts: filtered here, on the labels the tower reports */
        _cleanup_run_ run h =
            CLI("get", "hosts", "--site", "store-001", "-l", "zone in (b, c)", "--addr", srv.addr);
        assert_int_equal(h.rc, 0);
        assert_string_equal(h.out, "NAME   SITE        ROLE   STATE   LABELS   LAST-SEEN\n"
                                   "h2     store-001   -      -       zone=b   -\n");
        _cleanup_run_ run hj = CLI("get", "hosts", "--site", "store-001", "-l", "zone=a", "-o",
                                   "json", "--addr", srv.addr);
        _cleanup_json_ json_t *got = json_loads(hj.out, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(got, "items")), 1);
        _cleanup_run_ run none =
            CLI("get", "hosts", "--site", "store-001", "-l", "zone=z", "--addr", srv.addr);
        assert_int_equal(none.rc, 0);
        expect_contains(none.err, "no hosts found");
        _cleanup_run_ run jp = CLI("get", "hosts", "--site", "store-001", "-o",
                                   "jsonpath={.items[*].name}", "--addr", srv.addr);
        assert_int_equal(jp.rc, 0);
        assert_string_equal(jp.out, "h1 h2\n");
        _cleanup_run_ run w = CLI("get", "deploy", "-o", "wide", "--addr", srv.addr);
        assert_int_equal(w.rc, 0);
        expect_contains(w.out, "RUNNING/DESIRED   TENANT   AGE\n");
        expect_contains(w.out, "1/2");
        _cleanup_run_ run one =
            CLI("get", "deploy", "pos-stores", "-o", "name", "--addr", srv.addr);
        assert_string_equal(one.out, "deployment/pos-stores\n");
        /* not a terminal: no escape sequences */
        assert_null(strchr(w.out, '\033'));
}

/* rollout status: 1 while instances are missing, 0 when all run; --watch gives up at
 * --timeout. */
static void test_rollout_status(void **state)
{
        reset_requests();
        srv.routes = get_routes;
        _cleanup_run_ run n = CLI("rollout", "status", "pos-stores", "--addr", srv.addr);
        assert_int_equal(n.rc, 1);
        expect_contains(n.out, "1 of 2 instances running");
        expect_contains(n.err, "rollout of pos-stores is not done");
        _cleanup_run_ run d = CLI("rollout", "status", "done", "--addr", srv.addr);
        assert_int_equal(d.rc, 0);
        _cleanup_run_ run t = CLI("rollout", "status", "pos-stores", "--watch", "--timeout", "1s",
                                  "--addr", srv.addr);
        assert_int_equal(t.rc, 1);
        expect_contains(t.err, "(timed out)");
        _cleanup_run_ run j = CLI("rollout", "status", "done", "-o", "json", "--addr", srv.addr);
        assert_int_equal(j.rc, 0);
        _cleanup_json_ json_t *v = json_loads(j.out, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(v, "name")), "done");
}

static const route dry_routes[] = {
    {"PUT", "/v1/tenants/acme?dry-run=1", 200,
     "{\"result\": \"created\", \"dry-run\": true, \"item\": {\"kind\": \"tenant\", \"name\": "
     "\"acme\", \"type\": \"application\", \"parent\": \"default\"}}"},
    {"PUT", "/v1/sites/store-001?dry-run=1", 200,
     "{\"result\": \"updated\", \"dry-run\": true, \"item\": {\"kind\": \"site\", \"name\": "
     "\"store-001\", \"labels\": {\"chain\": \"acme\"}}}"},
    {"PUT", "/v1/applications/pos?dry-run=1", 400,
     "{\"error\": {\"code\": \"invalid\", \"message\": \"taken\", \"path\": \"version\"}}"},
    {"PUT", "/v1/deployments/pos-stores?dry-run=1", 400,
     "{\"error\": {\"code\": \"invalid\", \"message\": \"no such version\", \"path\": "
     "\"version\"}}"},
    {"GET", "/v1/sites/store-001", 200,
     "{\"kind\": \"site\", \"name\": \"store-001\", \"tenant\": \"default\", \"created\": "
     "\"2026-01-01T00:00:00Z\", \"labels\": {\"chain\": \"other\"}}"},
    {"DELETE", "/v1/deployments/pos-stores", 200, "{\"result\": \"deleted\"}"},
    {"DELETE", "/v1/applications/pos?version=2.1.0", 200, "{\"result\": \"deleted\"}"},
    {"DELETE", "/v1/sites/store-001", 409,
     "{\"error\": {\"code\": \"conflict\", \"message\": \"site in use\"}}"},
    {"DELETE", "/v1/tenants/acme", 200, "{\"result\": \"deleted\"}"},
    {NULL, NULL, 0, NULL},
};

/* apply --dry-run asks the tower with ?dry-run=1 and lists every error; diff shows a
 * unified diff; delete -f goes dependents first and goes on after a failure. */
static void test_dry_run_diff_delete(void **state)
{
        reset_requests();
        srv.routes = dry_routes;
        _cleanup_free_ char *path = write_file("all.yaml", docs_ok);
        _cleanup_run_ run a = CLI("apply", "--dry-run", "-f", path, "--addr", srv.addr);
        assert_int_equal(a.rc, 1);
        assert_string_equal(a.out, "tenant/acme created (dry run)\n"
                                   "site/store-001 updated (dry run)\n");
        _cleanup_free_ char *e1 = NULL, *e2 = NULL;
        assert_true(asprintf(&e1, "%s:9:10: version: taken\n", path) > 0);
        assert_true(asprintf(&e2, "%s:4:10: version: no such version\n", path) > 0);
        expect_contains(a.err, e1);
        expect_contains(a.err, e2);
        expect_contains(a.err, "2 of 4 documents failed");
        assert_int_equal(srv.nreq, 4);
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(srv.reqs[i].method, "PUT");
                assert_non_null(strstr(srv.reqs[i].path, "?dry-run=1"));
        }

        reset_requests();
        _cleanup_free_ char *site = write_file("site.yaml", "kind: site\nname: store-001\n"
                                                            "labels: {chain: acme}\n---\n"
                                                            "kind: tenant\nname: acme\n"
                                                            "type: application\n");
        _cleanup_run_ run d = CLI("diff", "-f", site, "--addr", srv.addr);
        assert_int_equal(d.rc, 1); /* something would change */
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want,
                             "--- site/store-001 (tower)\n+++ site/store-001 (%s)\n"
                             "@@ -1,4 +1,4 @@\n kind: site\n labels:\n-  chain: other\n"
                             "+  chain: acme\n name: store-001\n",
                             site) > 0);
        expect_contains(d.out, want);
        expect_contains(d.out, "--- /dev/null\n+++ tenant/acme");
        expect_contains(d.out, "+parent: default\n");
        assert_string_equal(d.err, "");
        for (size_t i = 0; i < srv.nreq; i++)
                if (strcmp(srv.reqs[i].method, "PUT") == 0)
                        assert_non_null(strstr(srv.reqs[i].path, "?dry-run=1"));

        reset_requests();
        _cleanup_run_ run r = CLI("delete", "-f", path, "--addr", srv.addr);
        assert_int_equal(r.rc, 1);
        assert_string_equal(r.out, "deployment/pos-stores deleted\n"
                                   "application/pos 2.1.0 deleted\n"
                                   "tenant/acme deleted\n");
        expect_contains(r.err, "site/store-001: site in use");
        expect_contains(r.err, "1 of 4 documents failed");
        assert_int_equal(srv.nreq, 4);
}

static void test_match(void **state)
{
        reset_requests();
        srv.routes = get_routes;
        _cleanup_run_ run bad = CLI("match", "chain = = acme", "--addr", srv.addr);
        assert_int_equal(bad.rc, 1);
        expect_contains(bad.err, "bad expression");
        expect_contains(bad.err, "chain = = acme\n");
        expect_contains(bad.err, "^\n");
        assert_int_equal(srv.nreq, 0); /* parsed locally first */

        _cleanup_run_ run ok = CLI("match", "chain", "=", "acme", "--addr", srv.addr);
        assert_int_equal(ok.rc, 0);
        assert_string_equal(ok.out, "store-001\n");
        assert_int_equal(srv.nreq, 1);
}

static void test_unreachable(void **state)
{
        _cleanup_run_ run r = CLI("get", "sites", "--addr", "http://127.0.0.1:1");
        assert_int_equal(r.rc, 1);
        expect_contains(r.err, "cannot reach the tower at http://127.0.0.1:1");
        _cleanup_run_ run n = CLI("get", "sites");
        assert_int_equal(n.rc, 1);
        expect_contains(n.err, "no tower address");
}

static void test_login_and_token(void **state)
{
        reset_requests();
        srv.routes = get_routes;
        _cleanup_run_ run r =
            cli("s3cret\n", (const char *const[]){"login", "acme/alice", "--print", "--addr",
                                                  srv.addr, "--token", "old", NULL});
        if (r.rc != 0)
                fail_msg("login: %s", r.err);
        assert_string_equal(r.out, "tok-123\n");
        assert_string_equal(srv.reqs[0].auth, ""); /* no stale token on login */
        _cleanup_json_ json_t *body = json_loads(srv.reqs[0].body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(body, "tenant")), "acme");
        assert_string_equal(json_string_value(json_object_get(body, "user")), "alice");
        assert_string_equal(json_string_value(json_object_get(body, "password")), "s3cret");

        _cleanup_free_ char *cfg = NULL;
        assert_true(asprintf(&cfg, "%s/.config/skerry/config.json", srv.dir) > 0);
        struct stat st;
        assert_int_equal(stat(cfg, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* Later commands find address and token in the file. */
        _cleanup_run_ run t = CLI("site", "token", "store-001", "--ttl", "2h");
        if (t.rc != 0)
                fail_msg("site token: %s", t.err);
        assert_string_equal(t.out, "join-abc\n");
        assert_string_equal(srv.reqs[1].auth, "tok-123");
        assert_string_equal(srv.reqs[1].body, "{\"ttl\":\"2h\"}");

        /* The environment wins over the file, a flag over both. */
        setenv("SKERRY_TOKEN", "env-token", 1);
        _cleanup_run_ run e = CLI("get", "sites");
        _cleanup_run_ run f = CLI("get", "sites", "--token", "flag-token");
        unsetenv("SKERRY_TOKEN");
        assert_int_equal(e.rc, 0);
        assert_int_equal(f.rc, 0);
        assert_string_equal(srv.reqs[2].auth, "env-token");
        assert_string_equal(srv.reqs[3].auth, "flag-token");

        _cleanup_run_ run empty = cli("", (const char *const[]){"login", "acme/alice", NULL});
        assert_int_equal(empty.rc, 1);
        expect_contains(empty.err, "no password given");
        assert_int_equal(unlink(cfg), 0);
}

static const route token_routes[] = {
    {"GET", "/v1/tokens", 200,
     "{\"items\": [{\"id\": \"0123456789ab\", \"user\": \"alice\", \"kind\": \"api\", "
     "\"role\": \"viewer\", \"name\": \"ci\", \"created\": \"2026-11-27T00:00:00Z\", "
     "\"revoked\": false, \"current\": true}]}"},
    {"POST", "/v1/tokens", 200,
     "{\"token\": \"api-xyz\", \"id\": \"0123456789ab\", \"role\": \"viewer\", "
     "\"expires\": \"2026-12-27T00:00:00Z\"}"},
    {"DELETE", "/v1/tokens/0123456789ab", 200, "{\"result\": \"revoked\"}"},
    {"DELETE", "/v1/tokens/ffffffffffff", 404,
     "{\"error\": {\"code\": \"not-found\", \"message\": \"no token with id "
     "ffffffffffff\", \"path\": \"id\"}}"},
    {"GET", "/v1/events?since=1h", 200,
     "{\"items\": [{\"id\": 1, \"time\": \"2026-11-27T00:00:00Z\", \"tenant\": \"acme\", "
     "\"actor\": \"acme/alice\", \"method\": \"PUT\", \"path\": \"/v1/sites/s1\", "
     "\"resource\": \"sites/s1\", \"address\": \"127.0.0.1\", \"status\": 403}]}"},
    {NULL, NULL, 0, NULL},
};

/* token list|create|revoke and get events send what the API documents and show it. */
static void test_tokens_and_events(void **state)
{
        reset_requests();
        srv.routes = token_routes;
        _cleanup_run_ run l = CLI("token", "list", "--addr", srv.addr, "--token", "t");
        if (l.rc != 0)
                fail_msg("token list: %s", l.err);
        expect_contains(l.out, "0123456789ab");
        expect_contains(l.out, "(this one)");
        _cleanup_run_ run c = CLI("token", "create", "--role", "viewer", "--ttl", "30d", "--name",
                                  "ci", "--addr", srv.addr, "--token", "t");
        if (c.rc != 0)
                fail_msg("token create: %s", c.err);
        assert_string_equal(c.out, "api-xyz\n");
        _cleanup_json_ json_t *body = json_loads(srv.reqs[1].body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(body, "role")), "viewer");
        assert_string_equal(json_string_value(json_object_get(body, "ttl")), "30d");
        assert_string_equal(json_string_value(json_object_get(body, "name")), "ci");
        _cleanup_run_ run bad = CLI("token", "create", "--role", "root", "--addr", srv.addr);
        assert_int_equal(bad.rc, 2);
        expect_contains(bad.err, "--role must be");
        _cleanup_run_ run r =
            CLI("token", "revoke", "0123456789ab", "--addr", srv.addr, "--token", "t");
        assert_int_equal(r.rc, 0);
        _cleanup_run_ run r2 =
            CLI("token", "revoke", "ffffffffffff", "--addr", srv.addr, "--token", "t");
        assert_int_equal(r2.rc, 1);
        expect_contains(r2.err, "no token with id ffffffffffff");
        _cleanup_run_ run e =
            CLI("get", "events", "--since", "1h", "--addr", srv.addr, "--token", "t");
        if (e.rc != 0)
                fail_msg("get events: %s", e.err);
        expect_contains(e.out, "acme/alice");
        expect_contains(e.out, "403");
        _cleanup_run_ run e2 = CLI("get", "sites", "--since", "1h", "--addr", srv.addr);
        assert_int_equal(e2.rc, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_usage_errors),
            cmocka_unit_test(test_tokens_and_events),
            cmocka_unit_test(test_help_and_version),
            cmocka_unit_test(test_apply_invalid_sends_nothing),
            cmocka_unit_test(test_apply_order_and_server_error),
            cmocka_unit_test(test_get_outputs),
            cmocka_unit_test(test_match),
            cmocka_unit_test(test_get_selectors),
            cmocka_unit_test(test_rollout_status),
            cmocka_unit_test(test_dry_run_diff_delete),
            cmocka_unit_test(test_man_page_current),
            cmocka_unit_test(test_completion),
            cmocka_unit_test(test_unreachable),
            cmocka_unit_test(test_login_and_token),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
