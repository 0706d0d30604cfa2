/* The Docker Engine API runtime driver (DESIGN.md section 8): Podman's and Docker's
 * compatible REST API over a unix socket, through the shared HTTP client (common/httpc.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "host/runtime.h"

#define API "/v1.41"

/* Plain calls; stop and pull get their own limits. */
#define CALL_TIMEOUT_MS  (120 * 1000L)
#define PULL_TIMEOUT_MS  (30 * 60 * 1000L)
#define ERROR_TEXT_LIMIT 4096

typedef struct docker_conn docker_conn;
typedef struct docker_rt docker_rt;

struct docker_conn {
        docker_conn *prev, *next;
        docker_rt *rt;
        sk_httpc *http;
};

struct docker_rt {
        sk_runtime base;
        char *socket_path;
        pthread_key_t key;
        pthread_mutex_t lock; /* guards conns */
        docker_conn *conns;   /* every thread's connection, freed with the runtime */
};

static void conn_unlink_locked(docker_rt *rt, docker_conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                rt->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
}

/* Thread exit: the thread's connection goes with it. */
static void conn_destroy(void *p)
{
        docker_conn *c = p;
        pthread_mutex_lock(&c->rt->lock);
        conn_unlink_locked(c->rt, c);
        pthread_mutex_unlock(&c->rt->lock);
        sk_httpc_free(c->http);
        free(c);
}

static int new_httpc(docker_rt *rt, sk_httpc **out, sk_error **err)
{
        sk_httpc_opts opts = {.base_url = "http://d", .unix_socket = rt->socket_path};
        return sk_httpc_new(&opts, out, err);
}

static int get_conn(docker_rt *rt, sk_httpc **out, sk_error **err)
{
        docker_conn *c = pthread_getspecific(rt->key);
        if (c) {
                *out = c->http;
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return sk_error_set(err, ENOMEM, "out of memory");
        c->rt = rt;
        int r = new_httpc(rt, &c->http, err);
        if (r < 0) {
                free(c);
                return r;
        }
        pthread_mutex_lock(&rt->lock);
        c->next = rt->conns;
        if (rt->conns)
                rt->conns->prev = c;
        rt->conns = c;
        pthread_mutex_unlock(&rt->lock);
        pthread_setspecific(rt->key, c);
        *out = c->http;
        return 0;
}

static int request(docker_rt *rt, const char *method, const char *path, const json_t *body,
                   long timeout_ms, sk_http_response *resp, sk_error **err)
{
        sk_httpc *h = NULL;
        int r = get_conn(rt, &h, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *text = NULL;
        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return sk_error_set(err, ENOMEM, "cannot encode request to the runtime");
        }
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, API "%s", path) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = sk_httpc_request(h, method, url, text, text ? strlen(text) : 0, NULL, timeout_ms, resp,
                             err);
        if (r < 0) {
                sk_error_prefix(err, "container runtime at %s", rt->socket_path);
                return r;
        }
        return 0;
}

/* The runtime's own explanation: the "message" of its JSON error body, else the text. */
static char *runtime_message(const char *body)
{
        if (!body || !*body)
                return strdup("no message");
        _cleanup_json_ json_t *j = json_loads(body, JSON_DECODE_ANY, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        if (!m)
                m = json_string_value(json_object_get(j, "error"));
        if (m)
                return strdup(m);
        size_t n = strcspn(body, "\n");
        return strndup(body, n < ERROR_TEXT_LIMIT ? n : ERROR_TEXT_LIMIT);
}

/* Maps a failed status to an errno; conflict is what a 409 means for this call. */
static int status_error(long status, const char *body, int conflict, sk_error **err,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int status_error(long status, const char *body, int conflict, sk_error **err,
                        const char *fmt, ...)
{
        int code;
        switch (status) {
        case 400:
                code = EINVAL;
                break;
        case 401:
        case 403:
                code = EACCES;
                break;
        case 404:
                code = ENOENT;
                break;
        case 409:
                code = conflict;
                break;
        case 0:
                code = ECONNRESET;
                break;
        default:
                code = EIO;
        }
        _cleanup_free_ char *what = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&what, fmt, ap);
        va_end(ap);
        _cleanup_free_ char *msg = runtime_message(body);
        /* Podman answers some conflicts with a 500: recognise them by its words. */
        if (code == EIO && msg && conflict == EEXIST && strstr(msg, "already in use"))
                code = EEXIST;
        else if (code == EIO && msg && strstr(msg, "state improper"))
                code = EBUSY;
        return sk_error_set(err, code, "%s: %s (HTTP %ld)", n >= 0 ? what : "runtime call",
                            msg ? msg : "no message", status);
}

static char *escape(const char *s)
{
        return sk_url_escape(s ? s : "");
}

static docker_rt *to_docker(sk_runtime *rt)
{
        return (docker_rt *)rt;
}

static int check_id(const char *id, sk_error **err)
{
        if (!id || !*id)
                return sk_error_set(err, EINVAL, "container id is empty");
        return 0;
}

static int add_strings(json_t *obj, const char *key, const char *const *v, sk_error **err)
{
        if (!v)
                return 0;
        json_t *a = json_array();
        if (!a || json_object_set_new(obj, key, a) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (; *v; v++)
                if (json_array_append_new(a, json_string(*v)) < 0)
                        return sk_error_set(err, EINVAL, "%s: not valid UTF-8: %s", key, *v);
        return 0;
}

static json_t *ulimit(const char *name, json_int_t v)
{
        return json_pack("{s:s, s:I, s:I}", "Name", name, "Soft", v, "Hard", v);
}

static int host_config(const sk_container_spec *spec, json_t **out, sk_error **err)
{
        /* The hard nofile limit on the edge hosts can be far below the runtime's default,
         * which makes every start fail: always ask for limits they can grant. */
        _cleanup_json_ json_t *hc =
            json_pack("{s:[o,o]}", "Ulimits", ulimit("nofile", 1024), ulimit("nproc", 1024));
        if (!hc)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (spec->cpu_millicores < 0)
                return sk_error_set_path(err, EINVAL, "cpu_millicores",
                                         "cpu_millicores must not be negative");
        if (spec->memory_bytes < 0)
                return sk_error_set_path(err, EINVAL, "memory_bytes",
                                         "memory_bytes must not be negative");
        if (spec->cpu_millicores)
                json_object_set_new(hc, "NanoCpus",
                                    json_integer((json_int_t)spec->cpu_millicores * 1000000));
        if (spec->memory_bytes)
                json_object_set_new(hc, "Memory", json_integer((json_int_t)spec->memory_bytes));
        if (spec->devices) {
                json_t *devs = json_array();
                json_object_set_new(hc, "Devices", devs);
                for (size_t i = 0; spec->devices[i]; i++) {
                        const char *host = spec->devices[i];
                        const char *inside = spec->device_targets && spec->device_targets[i]
                                                 ? spec->device_targets[i]
                                                 : host;
                        if (*host != '/' || *inside != '/')
                                return sk_error_set_path(err, EINVAL, "devices",
                                                         "device %s: not an absolute path",
                                                         *host != '/' ? host : inside);
                        json_array_append_new(devs, json_pack("{s:s, s:s, s:s}", "PathOnHost", host,
                                                              "PathInContainer", inside,
                                                              "CgroupPermissions", "rwm"));
                }
        }
        *out = take_ptr(&hc);
        return 0;
}

static int docker_create(sk_runtime *rt, const sk_container_spec *spec, char **id, sk_error **err)
{
        if (!spec->image || !*spec->image)
                return sk_error_set_path(err, EINVAL, "image", "image is empty");
        if (spec->labels && !json_is_object(spec->labels))
                return sk_error_set_path(err, EINVAL, "labels", "labels must be an object");
        _cleanup_json_ json_t *body = json_pack("{s:s}", "Image", spec->image);
        if (!body)
                return sk_error_set_path(err, EINVAL, "image", "image is not valid UTF-8");
        int r;
        if ((r = add_strings(body, "Cmd", spec->cmd, err)) < 0 ||
            (r = add_strings(body, "Env", spec->env, err)) < 0)
                return r;
        json_object_set_new(body, "Labels",
                            spec->labels ? json_deep_copy(spec->labels) : json_object());
        json_t *hc = NULL;
        if ((r = host_config(spec, &hc, err)) < 0)
                return r;
        json_object_set_new(body, "HostConfig", hc);

        _cleanup_free_ char *path = NULL;
        if (spec->name && *spec->name) {
                _cleanup_free_ char *n = escape(spec->name);
                if (!n || asprintf(&path, "/containers/create?name=%s", n) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
        } else if (!(path = strdup("/containers/create"))) {
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(to_docker(rt), "POST", path, body, CALL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status != 201 && resp.status != 200)
                return status_error(resp.status, resp.body, EEXIST, err,
                                    "cannot create container %s from %s",
                                    spec->name ? spec->name : "", spec->image);
        _cleanup_json_ json_t *j = json_loads(resp.body, 0, NULL);
        const char *cid = json_string_value(json_object_get(j, "Id"));
        if (!cid)
                return sk_error_set(err, EIO, "create container %s: no Id in the runtime's answer",
                                    spec->name ? spec->name : "");
        if (!(*id = strdup(cid)))
                return sk_error_set(err, ENOMEM, "out of memory");
        return 0;
}

/* start and stop: 304 means the container already was in the wanted state. */
static int post_action(sk_runtime *rt, const char *id, const char *action, const char *query,
                       long timeout_ms, sk_error **err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *eid = escape(id);
        _cleanup_free_ char *path = NULL;
        if (!eid || asprintf(&path, "/containers/%s/%s%s", eid, action, query) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(to_docker(rt), "POST", path, NULL, timeout_ms, &resp, err)) < 0)
                return r;
        if (resp.status == 204 || resp.status == 200 || resp.status == 304)
                return 0;
        return status_error(resp.status, resp.body, EBUSY, err, "cannot %s container %s", action,
                            id);
}

static int docker_start(sk_runtime *rt, const char *id, sk_error **err)
{
        return post_action(rt, id, "start", "", CALL_TIMEOUT_MS, err);
}

static int docker_stop(sk_runtime *rt, const char *id, int grace_seconds, sk_error **err)
{
        if (grace_seconds < 0)
                grace_seconds = 0;
        char query[32];
        snprintf(query, sizeof(query), "?t=%d", grace_seconds);
        return post_action(rt, id, "stop", query, CALL_TIMEOUT_MS + grace_seconds * 1000L, err);
}

static int docker_remove(sk_runtime *rt, const char *id, bool force, sk_error **err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *eid = escape(id);
        _cleanup_free_ char *path = NULL;
        /* v=1: anonymous volumes go with the container instead of piling up. */
        if (!eid || asprintf(&path, "/containers/%s?force=%d&v=1", eid, force ? 1 : 0) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(to_docker(rt), "DELETE", path, NULL, CALL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status == 204 || resp.status == 200)
                return 0;
        return status_error(resp.status, resp.body, EBUSY, err, "cannot remove container %s", id);
}

/* filters={"label":["k=v",...]} (and "type":[type]), URL-escaped for a query. */
static int label_filters(const json_t *label_filter, const char *type, char **out, sk_error **err)
{
        _cleanup_json_ json_t *f = json_object();
        json_t *labels = json_array();
        if (!f || !labels || json_object_set_new(f, "label", labels) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (label_filter && !json_is_object(label_filter))
                return sk_error_set_path(err, EINVAL, "labels", "label filter must be an object");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)label_filter, k, v)
        {
                const char *s = json_string_value(v);
                if (!s)
                        return sk_error_set_path(err, EINVAL, k,
                                                 "label filter %s: value must be a string", k);
                _cleanup_free_ char *kv = NULL;
                if (asprintf(&kv, "%s=%s", k, s) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                json_array_append_new(labels, json_string(kv));
        }
        if (type)
                json_object_set_new(f, "type", json_pack("[s]", type));
        _cleanup_free_ char *text = json_dumps(f, JSON_COMPACT);
        if (!text || !(*out = sk_url_escape(text)))
                return sk_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static char *dup_string(const json_t *j)
{
        const char *s = json_string_value(j);
        return strdup(s ? s : "");
}

static json_t *labels_of(json_t *j)
{
        return json_is_object(j) ? json_deep_copy(j) : json_object();
}

static int fill_from_list(json_t *c, sk_container_info *out)
{
        json_t *names = json_object_get(c, "Names");
        const char *name = json_string_value(json_array_get(names, 0));
        if (name && *name == '/')
                name++;
        out->id = dup_string(json_object_get(c, "Id"));
        out->name = strdup(name ? name : "");
        out->image = dup_string(json_object_get(c, "Image"));
        out->state = sk_container_state_parse(json_string_value(json_object_get(c, "State")));
        out->labels = labels_of(json_object_get(c, "Labels"));
        /* The list has no exit code field; Docker and Podman both say "Exited (N) ...". */
        const char *status = json_string_value(json_object_get(c, "Status"));
        int code;
        if (status && sscanf(status, "Exited (%d)", &code) == 1)
                out->exit_code = code;
        json_t *started = json_object_get(c, "StartedAt"); /* Podman only */
        if (json_is_integer(started))
                out->started_at = json_integer_value(started);
        if (!out->id || !out->name || !out->image || !out->labels)
                return -ENOMEM;
        return 0;
}

static int docker_list(sk_runtime *rt, const json_t *label_filter, sk_container_list *out,
                       sk_error **err)
{
        memset(out, 0, sizeof(*out));
        _cleanup_free_ char *filters = NULL;
        int r = label_filters(label_filter, NULL, &filters, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "/containers/json?all=1&filters=%s", filters) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(to_docker(rt), "GET", path, NULL, CALL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status != 200)
                return status_error(resp.status, resp.body, EBUSY, err, "cannot list containers");
        _cleanup_json_ json_t *j = json_loads(resp.body, 0, NULL);
        if (!json_is_array(j))
                return sk_error_set(err, EIO, "list containers: the runtime did not answer a list");
        size_t n = json_array_size(j);
        if (n == 0)
                return 0;
        out->items = calloc(n, sizeof(*out->items));
        if (!out->items)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                out->n = i + 1;
                if (fill_from_list(json_array_get(j, i), &out->items[i]) < 0) {
                        sk_container_list_clear(out);
                        return sk_error_set(err, ENOMEM, "out of memory");
                }
        }
        return 0;
}

static int64_t time_field(json_t *state, const char *key)
{
        int64_t t = 0;
        if (sk_runtime_parse_time(json_string_value(json_object_get(state, key)), &t) < 0)
                return 0;
        return t;
}

/* GET /containers/ID/WHAT: the runtime's JSON object about one container. */
static int container_get(docker_rt *rt, const char *id, const char *what, const char *verb,
                         json_t **out, sk_error **err)
{
        *out = NULL;
        int r = check_id(id, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *eid = escape(id);
        _cleanup_free_ char *path = NULL;
        if (!eid || asprintf(&path, "/containers/%s/%s", eid, what) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(rt, "GET", path, NULL, CALL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status != 200)
                return status_error(resp.status, resp.body, EBUSY, err, "cannot %s container %s",
                                    verb, id);
        json_t *j = json_loads(resp.body, 0, NULL);
        if (!json_is_object(j)) {
                json_decref(j);
                return sk_error_set(err, EIO, "%s %s: the runtime did not answer an object", verb,
                                    id);
        }
        *out = j;
        return 0;
}

static int docker_inspect(sk_runtime *rt, const char *id, sk_container_info *out, sk_error **err)
{
        memset(out, 0, sizeof(*out));
        _cleanup_json_ json_t *j = NULL;
        int r = container_get(to_docker(rt), id, "json", "inspect", &j, err);
        if (r < 0)
                return r;
        json_t *config = json_object_get(j, "Config");
        json_t *state = json_object_get(j, "State");
        const char *name = json_string_value(json_object_get(j, "Name"));
        if (name && *name == '/')
                name++;
        /* Config.Image is the name it was created from; top-level Image is the image id. */
        json_t *image = json_object_get(config, "Image");
        out->id = dup_string(json_object_get(j, "Id"));
        out->name = strdup(name ? name : "");
        out->image = dup_string(image ? image : json_object_get(j, "Image"));
        out->labels = labels_of(json_object_get(config, "Labels"));
        out->state = sk_container_state_parse(json_string_value(json_object_get(state, "Status")));
        out->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
        out->started_at = time_field(state, "StartedAt");
        out->finished_at = time_field(state, "FinishedAt");
        if (!out->id || !out->name || !out->image || !out->labels) {
                sk_container_info_clear(out);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int docker_logs(sk_runtime *rt, const char *id, int64_t since, int tail, char **text,
                       sk_error **err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        char tail_s[24] = "all";
        if (tail > 0)
                snprintf(tail_s, sizeof(tail_s), "%d", tail);
        _cleanup_free_ char *eid = escape(id);
        _cleanup_free_ char *path = NULL;
        if (!eid || asprintf(&path, "/containers/%s/logs?stdout=1&stderr=1&since=%lld&tail=%s", eid,
                             (long long)(since > 0 ? since : 0), tail_s) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(to_docker(rt), "GET", path, NULL, CALL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status != 200)
                return status_error(resp.status, resp.body, EBUSY, err,
                                    "cannot read logs of container %s", id);
        return sk_runtime_demux_logs(resp.body, resp.len, text, err);
}

/* Events arrive as one JSON object per line, split anywhere by the transport. */
struct event_stream {
        sk_runtime_event_fn fn;
        void *user;
        char *buf;
        size_t len, cap;
        char *other; /* the last line that was not an event: an error body, say */
        bool stopped;
};

static const char *normalise_action(const char *a)
{
        /* Podman's words for Docker's. */
        if (strcmp(a, "died") == 0)
                return "die";
        if (strcmp(a, "remove") == 0)
                return "destroy";
        return a;
}

static int event_line(struct event_stream *s, const char *line, size_t n)
{
        if (n == 0)
                return 0;
        _cleanup_json_ json_t *j = json_loadb(line, n, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "Type"));
        const char *action = json_string_value(json_object_get(j, "Action"));
        if (!action)
                action = json_string_value(json_object_get(j, "status"));
        json_t *actor = json_object_get(j, "Actor");
        const char *cid = json_string_value(json_object_get(actor, "ID"));
        if (!cid)
                cid = json_string_value(json_object_get(j, "id"));
        if (!j || !action || !cid) {
                free(s->other);
                s->other = strndup(line, n < ERROR_TEXT_LIMIT ? n : ERROR_TEXT_LIMIT);
                return 0;
        }
        if (type && strcmp(type, "container") != 0)
                return 0;
        sk_runtime_event ev = {.container_id = cid, .action = normalise_action(action)};
        if (s->fn(&ev, s->user) != 0) {
                s->stopped = true;
                return 1;
        }
        return 0;
}

static int event_data(const char *data, size_t len, void *user)
{
        struct event_stream *s = user;
        if (s->len + len > s->cap) {
                size_t cap = s->cap ? s->cap : 4096;
                while (cap < s->len + len)
                        cap *= 2;
                char *p = realloc(s->buf, cap);
                if (!p)
                        return 1;
                s->buf = p;
                s->cap = cap;
        }
        memcpy(s->buf + s->len, data, len);
        s->len += len;
        size_t start = 0;
        for (size_t i = 0; i < s->len; i++) {
                if (s->buf[i] != '\n')
                        continue;
                int stop = event_line(s, s->buf + start, i - start);
                start = i + 1;
                if (stop)
                        break;
        }
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
        return s->stopped ? 1 : 0;
}

/* The idle tick of docker_events: lets the caller stop a stream that carries no events. */
static int event_tick(void *user)
{
        struct event_stream *s = user;
        if (!s->stopped && s->fn(NULL, s->user) != 0)
                s->stopped = true;
        return s->stopped;
}

static int docker_events(sk_runtime *rt, const json_t *label_filter, sk_runtime_event_fn fn,
                         void *user, sk_error **err)
{
        _cleanup_free_ char *filters = NULL;
        int r = label_filters(label_filter, "container", &filters, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, API "/events?filters=%s", filters) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        /* A stream holds its connection for as long as it runs: never the thread's own. */
        _cleanup_httpc_ sk_httpc *h = NULL;
        if ((r = new_httpc(to_docker(rt), &h, err)) < 0)
                return r;
        struct event_stream s = {.fn = fn, .user = user};
        sk_httpc_set_abort(h, event_tick, &s);
        long status = 0;
        r = sk_httpc_stream(h, "GET", path, event_data, &s, &status, err);
        if (r == -ECANCELED && s.stopped)
                r = 0; /* the caller asked to stop */
        if (r == 0 && !s.stopped && s.len)
                event_line(&s, s.buf, s.len);
        if (r == 0 && !s.stopped && status != 200)
                r = status_error(status, s.other, EBUSY, err, "cannot watch container events");
        free(s.buf);
        free(s.other);
        return r;
}

static int docker_stats(sk_runtime *rt, const char *id, int64_t *cpu_ns, int64_t *mem_bytes,
                        sk_error **err)
{
        _cleanup_json_ json_t *j = NULL;
        int r = container_get(to_docker(rt), id, "stats?stream=false", "read stats of", &j, err);
        if (r < 0)
                return r;
        json_t *cpu = json_object_get(json_object_get(json_object_get(j, "cpu_stats"), "cpu_usage"),
                                      "total_usage");
        json_t *mem = json_object_get(json_object_get(j, "memory_stats"), "usage");
        if (!json_is_integer(cpu) || !json_is_integer(mem))
                return sk_error_set(err, EIO,
                                    "stats of container %s: no cpu_stats.cpu_usage.total_usage or "
                                    "memory_stats.usage in the runtime's answer",
                                    id);
        *cpu_ns = json_integer_value(cpu);
        *mem_bytes = json_integer_value(mem);
        return 0;
}

static int image_present(docker_rt *rt, const char *image, sk_error **err)
{
        _cleanup_free_ char *eimg = escape(image);
        _cleanup_free_ char *path = NULL;
        if (!eimg || asprintf(&path, "/images/%s/json", eimg) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        int r = request(rt, "GET", path, NULL, CALL_TIMEOUT_MS, &resp, err);
        if (r < 0)
                return r;
        if (resp.status == 200)
                return 1;
        if (resp.status == 404)
                return 0;
        return status_error(resp.status, resp.body, EBUSY, err, "cannot look up image %s", image);
}

/* A pull answers 200 and then reports failure inside its progress stream. */
static char *pull_failure(const char *body)
{
        for (const char *line = body; line && *line;) {
                size_t n = strcspn(line, "\n");
                _cleanup_json_ json_t *j = json_loadb(line, n, 0, NULL);
                const char *e = json_string_value(json_object_get(j, "error"));
                if (!e)
                        e = json_string_value(
                            json_object_get(json_object_get(j, "errorDetail"), "message"));
                if (e)
                        return strdup(e);
                line += n;
                if (*line)
                        line++;
        }
        return NULL;
}

static int docker_pull(sk_runtime *rt, const char *image, sk_error **err)
{
        if (!image || !*image)
                return sk_error_set_path(err, EINVAL, "image", "image is empty");
        docker_rt *d = to_docker(rt);
        int r = image_present(d, image, err);
        if (r != 0)
                return r < 0 ? r : 0;
        _cleanup_free_ char *eimg = escape(image);
        _cleanup_free_ char *path = NULL;
        if (!eimg || asprintf(&path, "/images/create?fromImage=%s", eimg) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        if ((r = request(d, "POST", path, NULL, PULL_TIMEOUT_MS, &resp, err)) < 0)
                return r;
        if (resp.status != 200) {
                _cleanup_free_ char *msg = runtime_message(resp.body);
                return sk_error_set(err, ENOENT, "cannot pull image %s: %s (HTTP %ld)", image,
                                    msg ? msg : "no message", resp.status);
        }
        _cleanup_free_ char *failure = pull_failure(resp.body);
        if (failure)
                return sk_error_set(err, ENOENT, "cannot pull image %s: %s", image, failure);
        /* Trust the store, not the progress stream. */
        if ((r = image_present(d, image, err)) < 0)
                return r;
        if (r == 0)
                return sk_error_set(err, ENOENT,
                                    "cannot pull image %s: not in the store after the pull", image);
        return 0;
}

static void docker_free(sk_runtime *rt)
{
        docker_rt *d = to_docker(rt);
        if (!d)
                return;
        pthread_key_delete(d->key);
        pthread_mutex_lock(&d->lock);
        for (docker_conn *c = d->conns, *next; c; c = next) {
                next = c->next;
                sk_httpc_free(c->http);
                free(c);
        }
        d->conns = NULL;
        pthread_mutex_unlock(&d->lock);
        pthread_mutex_destroy(&d->lock);
        free(d->socket_path);
        free(d);
}

static const sk_runtime_ops docker_ops = {
    .abi = SK_RUNTIME_ABI,
    .create = docker_create,
    .start = docker_start,
    .stop = docker_stop,
    .remove = docker_remove,
    .list = docker_list,
    .inspect = docker_inspect,
    .logs = docker_logs,
    .events = docker_events,
    .stats = docker_stats,
    .pull = docker_pull,
    .free = docker_free,
};

int sk_runtime_docker_new(const char *url, sk_runtime **out, sk_error **err)
{
        static const char prefix[] = "unix://";
        if (!url || strncmp(url, prefix, sizeof(prefix) - 1) != 0 || url[sizeof(prefix) - 1] != '/')
                return sk_error_set_path(err, EINVAL, "runtime",
                                         "runtime URL %s: expected unix:///path/to/socket",
                                         url ? url : "(none)");
        docker_rt *d = calloc(1, sizeof(*d));
        if (!d)
                return sk_error_set(err, ENOMEM, "out of memory");
        d->base.ops = &docker_ops;
        d->socket_path = strdup(url + sizeof(prefix) - 1);
        if (!d->socket_path) {
                free(d);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        if (pthread_key_create(&d->key, conn_destroy) != 0) {
                free(d->socket_path);
                free(d);
                return sk_error_set(err, EAGAIN, "cannot create a thread key for the runtime");
        }
        pthread_mutex_init(&d->lock, NULL);
        *out = &d->base;
        return 0;
}
