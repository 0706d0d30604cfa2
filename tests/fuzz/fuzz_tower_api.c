/* The tower's request handling (router, authentication, every handler) on arbitrary
 * requests against a real SQLite store: every answer has a status in 200..599 and a JSON
 * object body (errors as {"error": {"code", "message"}}), or is one of the two body-less
 * shapes (text for /metrics, 204 for a long-poll with nothing new).
 *
 * Input: up to MAX_REQUESTS requests separated by lines "%%", each a first line
 * "METHOD TARGET [AS]" and the body after it. TARGET is the path with
 * an optional query, decoded by the server's own decoder (src/tower/target.c: a target it
 * refuses is skipped); AS is who asks: admin (the
 * default, a bearer token of the bootstrap admin), host (the client certificate of a host
 * joined at setup), session (the admin's token from a login), none, bad (an unknown
 * bearer token) or both (token and certificate).
 *
 * The store lives in a temporary folder made once per process and is re-created every
 * STORE_RUNS inputs so it stays small. SK_FUZZ_STRICT=1 also fails on 500 answers;
 * SK_FUZZ_VERBOSE=1 prints each answer (to check seeds). */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/pki.h"
#include "tower/api.h"
#include "tower/store.h"
#include "tower/target.h"

#define STORE_RUNS   500
#define MAX_REQUESTS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static sk_ca *ca;
static sk_store *store;
static sk_tower_api *api;
static char *admin_token;
static char *session_token; /* from a login: API tokens may not make tokens */
static char *host_uri;
static unsigned runs;
static bool strict, verbose;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

/* A failed check: remove the temporary folder first (an abort skips atexit), then crash
 * for libFuzzer to keep the input. */
static void fail(void)
{
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        abort();
}

static void die(const char *what, sk_error *err)
{
        fprintf(stderr, "fuzz_tower_api setup: %s: %s\n", what, sk_error_msg(err, EIO));
        fail();
}

/* Runs one request to its end as the server does: slow jobs between two rounds. */
static void handle(sk_tower_request *req, sk_tower_response *resp)
{
        sk_tower_job *job = NULL;
        for (;;) {
                req->job = job;
                sk_tower_api_handle(api, req, resp);
                if (!resp->job)
                        break;
                if (job)
                        fail(); /* a second job for the same request */
                job = resp->job;
                resp->job = NULL;
                sk_tower_response_clear(resp);
                job->run(job);
        }
        if (job)
                job->free(job);
        req->job = NULL;
}

static json_t *setup_call(const char *method, const char *path, const char *body)
{
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", admin_token);
        sk_tower_request req = {.method = method,
                                .path = path,
                                .authorization = auth,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
        sk_tower_response resp;
        handle(&req, &resp);
        if (resp.status != 200 && resp.status != 201) {
                char *text = resp.body ? json_dumps(resp.body, 0) : NULL;
                fprintf(stderr, "fuzz_tower_api setup: %s %s: %d %s\n", method, path, resp.status,
                        text ? text : "");
                fail();
        }
        json_t *out = json_incref(resp.body);
        sk_tower_response_clear(&resp);
        return out;
}

/* One site with one joined host, so the host routes (sync) get past authentication. */
static void join_host(void)
{
        json_decref(setup_call("PUT", "/v1/sites/store-001",
                               "{\"kind\":\"site\",\"name\":\"store-001\","
                               "\"labels\":{\"region\":\"eu\"}}"));
        _cleanup_json_ json_t *tok = setup_call("POST", "/v1/sites/store-001/tokens", NULL);
        _cleanup_free_ char *key = NULL, *csr = NULL;
        sk_error *err = NULL;
        if (sk_pki_make_key_and_csr("h1", &key, &csr, &err) < 0)
                die("csr", err);
        _cleanup_json_ json_t *b =
            json_pack("{s:O, s:s, s:s, s:{s:s}}", "token", json_object_get(tok, "token"), "csr",
                      csr, "name", "h1", "labels", "role", "till");
        _cleanup_free_ char *body = json_dumps(b, 0);
        sk_tower_request req = {
            .method = "POST", .path = "/v1/join", .body = body, .body_len = strlen(body)};
        sk_tower_response resp;
        handle(&req, &resp);
        if (resp.status != 200)
                die("join", NULL);
        free(host_uri);
        if (asprintf(&host_uri, "skerry://site/%lld/host/%lld",
                     (long long)json_integer_value(json_object_get(resp.body, "site-id")),
                     (long long)json_integer_value(json_object_get(resp.body, "host-id"))) < 0)
                fail();
        sk_tower_response_clear(&resp);
}

static void close_store(void)
{
        sk_tower_api_free(api);
        api = NULL;
        if (store)
                store->ops->close(store);
        store = NULL;
        free(admin_token);
        admin_token = NULL;
        free(session_token);
        session_token = NULL;
        static const char *const files[] = {"tower.db", "tower.db-wal", "tower.db-shm",
                                            "tower.db-journal"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                char p[128];
                snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
                unlink(p);
        }
}

static void open_store(void)
{
        char db[128];
        snprintf(db, sizeof(db), "%s/tower.db", dir);
        sk_error *err = NULL;
        if (sk_store_sqlite_open(db, &store, &err) < 0)
                die("store", err);
        if (sk_tower_api_new(store, ca, &api, &err) < 0)
                die("api", err);
        if (sk_tower_bootstrap(api, &admin_token, &err) < 0)
                die("bootstrap", err);
        join_host();
        json_decref(
            setup_call("PUT", "/v1/users/admin/password", "{\"password\":\"fuzz-admin-pw\"}"));
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", admin_token);
        const char *login =
            "{\"tenant\":\"default\",\"user\":\"admin\",\"password\":\"fuzz-admin-pw\"}";
        _cleanup_json_ json_t *tok = setup_call("POST", "/v1/login", login);
        session_token = strdup(json_string_value(json_object_get(tok, "token")));
        if (!session_token)
                fail();
}

static void cleanup(void)
{
        close_store();
        sk_ca_free(ca);
        free(host_uri);
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int fake_peer(void *ctx, char **uri, sk_pki_chain *chain, sk_error **err)
{
        chain->site_ca[0] = chain->leaf[0] = '\0';
        *uri = strdup(host_uri);
        return *uri ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        strcpy(dir, "/tmp/sk-fuzz-tower-XXXXXX");
        if (!mkdtemp(dir))
                fail();
        sk_error *err = NULL;
        if (sk_ca_open(dir, &ca, &err) < 0)
                die("ca", err);
        open_store();
        atexit(cleanup);
        const char *s = getenv("SK_FUZZ_STRICT");
        strict = s && strcmp(s, "1") == 0;
        verbose = getenv("SK_FUZZ_VERBOSE") != NULL;
        return 0;
}

static bool is_text(const json_t *v)
{
        return json_is_string(v) && json_string_length(v) > 0;
}

static void check(const sk_tower_request *req, const sk_tower_response *resp)
{
        if (resp->status < 200 || resp->status > 599 || !resp->route)
                fail();
        if (resp->text) {
                if (resp->body || resp->status != 200)
                        fail();
                return;
        }
        if (!resp->body) {
                /* only a long-poll with nothing new has no body */
                if (resp->status != 204 || !resp->wait_site)
                        fail();
                return;
        }
        if (!json_is_object(resp->body))
                fail();
        _cleanup_free_ char *text = json_dumps(resp->body, JSON_COMPACT);
        if (!text)
                fail();
        if (resp->status >= 400) {
                json_t *e = json_object_get(resp->body, "error");
                if (!json_is_object(e) || !is_text(json_object_get(e, "code")) ||
                    !is_text(json_object_get(e, "message")))
                        fail();
        }
        if (strict && resp->status == 500) {
                fprintf(stderr, "500 for %s %s: %s\n", req->method, req->path, text);
                fail();
        }
}

static void one_request(const uint8_t *data, size_t size)
{
        const uint8_t *nl = memchr(data, '\n', size);
        size_t line_len = nl ? (size_t)(nl - data) : size;
        _cleanup_free_ char *line = strndup((const char *)data, line_len);
        /* the server's body buffer ends in a NUL past its length */
        size_t body_len = nl ? size - line_len - 1 : 0;
        _cleanup_free_ char *body = malloc(body_len + 1);
        if (!line || !body)
                return;
        if (body_len)
                memcpy(body, nl + 1, body_len);
        body[body_len] = '\0';

        char *save = NULL;
        char *method = strtok_r(line, " ", &save);
        char *target = strtok_r(NULL, " ", &save);
        char *as = strtok_r(NULL, " ", &save);
        if (!method)
                method = line;
        char root[] = "/";
        if (!target)
                target = root;
        if (!as)
                as = "admin";
        /* the server's one decoder; what it refuses never reaches the API */
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *query = NULL;
        if (sk_tower_target_parse(target, strlen(target), &path, &query, NULL) < 0)
                return;

        char auth[128] = "";
        bool peer = false;
        if (strcmp(as, "host") == 0) {
                peer = true;
        } else if (strcmp(as, "both") == 0) {
                peer = true;
                snprintf(auth, sizeof(auth), "Bearer %s", admin_token);
        } else if (strcmp(as, "session") == 0) {
                snprintf(auth, sizeof(auth), "Bearer %s", session_token);
        } else if (strcmp(as, "bad") == 0) {
                snprintf(auth, sizeof(auth), "Bearer not-a-token");
        } else if (strcmp(as, "none") != 0) {
                snprintf(auth, sizeof(auth), "Bearer %s", admin_token);
        }
        sk_tower_request req = {.method = method,
                                .path = path,
                                .query = query,
                                .authorization = auth[0] ? auth : NULL,
                                .body = body,
                                .body_len = body_len,
                                .has_peer_cert = peer,
                                .verify_peer = fake_peer};
        sk_tower_response resp;
        handle(&req, &resp);
        if (verbose) {
                char *text = resp.body ? json_dumps(resp.body, JSON_COMPACT) : NULL;
                fprintf(stderr, "%s %s -> %d %.300s\n", method, path, resp.status,
                        text ? text : "");
                free(text);
        }
        check(&req, &resp);
        sk_tower_api_count(api, resp.route, resp.status);
        sk_tower_response_clear(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (++runs % STORE_RUNS == 0) {
                close_store();
                open_store();
        }
        static const char sep[] = "\n%%\n";
        for (int n = 0; n < MAX_REQUESTS; n++) {
                const uint8_t *end = memmem(data, size, sep, sizeof(sep) - 1);
                size_t len = end ? (size_t)(end - data) : size;
                one_request(data, len);
                if (!end)
                        break;
                data += len + sizeof(sep) - 1;
                size -= len + sizeof(sep) - 1;
        }
        return 0;
}
