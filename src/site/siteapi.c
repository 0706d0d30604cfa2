#include "site/siteapi.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"

#define PEERS_MAX    256
#define WORKER_STACK (256 * 1024)

/* One request: its body as it arrives, then (when it goes to a worker) the answer. */
typedef struct request {
        char *body;
        size_t len;
        bool too_large;
        /* A worker's, under the API's lock once queued. */
        struct MHD_Connection *conn;
        char *method, *path, *site;
        int64_t peer;
        bool queued, done;
        int status;
        json_t *answer;
        struct request *next;
} request;

struct sk_siteapi {
        struct MHD_Daemon *daemon;
        sk_site_routes routes;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct {
                int fd;
                int64_t host;
        } pending[PEERS_MAX]; /* connections handed over, not yet started by the daemon */
        request *head, *tail; /* waiting for a worker */
        size_t queued;
        bool stop;
        pthread_t workers[SK_SITEAPI_WORKERS];
        size_t n_workers;
};

json_t *sk_siteapi_error(const char *code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg ? msg : code);
        if (e || !msg)
                return e;
        /* The message quotes what the caller sent, which need not be UTF-8. */
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80)
                        *p = '?';
        return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

/* The host the connection's certificate named (kept with the connection from its start),
 * 0 for none. */
static int64_t peer_host(struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        const int64_t *host = ci ? ci->socket_context : NULL;
        return host ? *host : 0;
}

/* A handed-over fd's host, taken out of the pending table; 0 when unknown. */
static int64_t take_pending(sk_siteapi *api, int fd)
{
        int64_t host = 0;
        pthread_mutex_lock(&api->lock);
        for (size_t i = 0; i < PEERS_MAX; i++) {
                if (api->pending[i].fd == fd) {
                        host = api->pending[i].host;
                        api->pending[i].fd = -1;
                }
        }
        pthread_mutex_unlock(&api->lock);
        return host;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
        sk_siteapi *api = cls;
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                free(*socket_context);
                *socket_context = NULL;
                return;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int64_t *host = malloc(sizeof(*host));
        if (host)
                *host = ci ? take_pending(api, ci->connect_fd) : 0;
        *socket_context = host; /* without it the connection counts as no host's */
}

static enum MHD_Result reply(struct MHD_Connection *conn, int status, json_t *answer)
{
        char *text = answer ? json_dumps(answer, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(answer);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
                                            text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        if (text)
                MHD_add_response_header(resp, "Content-Type", "application/json");
        enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
        MHD_destroy_response(resp);
        return r;
}

static sk_site_request view(const request *rq)
{
        return (sk_site_request){.method = rq->method,
                                 .path = rq->path,
                                 .site = rq->site,
                                 .peer = rq->peer,
                                 .body = rq->body,
                                 .len = rq->len};
}

static void *worker(void *arg)
{
        sk_siteapi *api = arg;
        pthread_mutex_lock(&api->lock);
        for (;;) {
                while (!api->stop && !api->head)
                        pthread_cond_wait(&api->cond, &api->lock);
                request *rq = api->head;
                if (!rq)
                        break; /* stopping, nothing left */
                api->head = rq->next;
                if (!api->head)
                        api->tail = NULL;
                api->queued--;
                pthread_mutex_unlock(&api->lock);
                json_t *answer = NULL;
                sk_site_request v = view(rq);
                int status = api->stop ? 503 : sk_site_route(&api->routes, &v, &answer);
                if (status == 503 && !answer)
                        answer = sk_siteapi_error("unavailable", "this host is stopping");
                struct MHD_Connection *conn = rq->conn;
                pthread_mutex_lock(&api->lock);
                rq->status = status;
                rq->answer = answer;
                rq->done = true;
                pthread_mutex_unlock(&api->lock);
                /* rq is the daemon's again from here */
                MHD_resume_connection(conn);
                pthread_mutex_lock(&api->lock);
        }
        pthread_mutex_unlock(&api->lock);
        return NULL;
}

/* Suspends the connection and hands its request to a worker; false when too many wait. */
static bool enqueue(sk_siteapi *api, struct MHD_Connection *conn, request *rq, const char *method,
                    const char *url, const char *site)
{
        rq->method = strdup(method);
        rq->path = strdup(url);
        rq->site = site ? strdup(site) : NULL;
        if (!rq->method || !rq->path || (site && !rq->site))
                return false;
        rq->conn = conn;
        pthread_mutex_lock(&api->lock);
        bool room = !api->stop && api->queued < SK_SITEAPI_QUEUE_MAX;
        if (room) {
                MHD_suspend_connection(conn);
                rq->queued = true;
                if (api->tail)
                        api->tail->next = rq;
                else
                        api->head = rq;
                api->tail = rq;
                api->queued++;
                pthread_cond_signal(&api->cond);
        }
        pthread_mutex_unlock(&api->lock);
        return room;
}

/* Appends an upload chunk; the body is kept NUL-terminated. */
static bool take_upload(request *rq, const char *upload, size_t n)
{
        if (rq->len + n > SK_SITEAPI_BODY_MAX) {
                rq->too_large = true;
                return true;
        }
        char *b = realloc(rq->body, rq->len + n + 1);
        if (!b)
                return false;
        memcpy(b + rq->len, upload, n);
        rq->body = b;
        rq->len += n;
        b[rq->len] = '\0';
        return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
        sk_siteapi *api = cls;
        request *rq = *con_cls;
        if (!rq) {
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                return MHD_YES;
        }
        if (*upload_size > 0) {
                bool ok = take_upload(rq, upload, *upload_size);
                *upload_size = 0;
                return ok ? MHD_YES : MHD_NO;
        }
        pthread_mutex_lock(&api->lock);
        bool done = rq->done;
        json_t *answer = take_ptr(&rq->answer);
        pthread_mutex_unlock(&api->lock);
        if (done)
                return reply(conn, rq->status, answer);
        if (rq->too_large)
                return reply(conn, 413, sk_siteapi_error("too-large", "body over 1 MiB"));
        const char *site = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "site");
        sk_site_request v = {.method = method,
                             .path = url,
                             .site = site,
                             .peer = peer_host(conn),
                             .body = rq->body,
                             .len = rq->len};
        if (sk_site_route_quick(&v)) {
                int status = sk_site_route(&api->routes, &v, &answer);
                return reply(conn, status, answer);
        }
        rq->peer = v.peer;
        if (!enqueue(api, conn, rq, method, url, site))
                return reply(conn, 503,
                             sk_siteapi_error("unavailable", "too many requests in progress"));
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
        request *rq = *con_cls;
        if (rq) {
                free(rq->body);
                free(rq->method);
                free(rq->path);
                free(rq->site);
                json_decref(rq->answer);
                free(rq);
        }
        *con_cls = NULL;
}

/* libmicrohttpd's own messages; its format strings are its own. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char buf[512];
        vsnprintf(buf, sizeof(buf), fmt, ap);
        sk_debug("site API: %s", buf);
}

static int start_workers(sk_siteapi *api, sk_error **err)
{
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, WORKER_STACK);
        for (size_t i = 0; i < SK_SITEAPI_WORKERS; i++) {
                if (pthread_create(&api->workers[i], &attr, worker, api) != 0)
                        break;
                api->n_workers++;
        }
        pthread_attr_destroy(&attr);
        if (api->n_workers == 0)
                return sk_error_set(err, EAGAIN, "cannot start the site-local API's workers");
        return 0;
}

int sk_siteapi_new(const sk_site_routes *routes, sk_siteapi **out, sk_error **err)
{
        sk_siteapi *api = calloc(1, sizeof(*api));
        if (!api)
                return sk_error_set(err, ENOMEM, "out of memory");
        api->routes = *routes;
        pthread_mutex_init(&api->lock, NULL);
        pthread_cond_init(&api->cond, NULL);
        for (size_t i = 0; i < PEERS_MAX; i++)
                api->pending[i].fd = -1;
        api->daemon = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
                MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
            0, NULL, NULL, on_request, api, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, api, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)30, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api, MHD_OPTION_END);
        int r = api->daemon ? start_workers(api, err)
                            : sk_error_set(err, EIO, "cannot start the site-local API");
        if (r < 0) {
                sk_siteapi_free(api);
                return r;
        }
        *out = api;
        return 0;
}

void sk_siteapi_add(sk_siteapi *api, int fd, int64_t host_id)
{
        bool room = false;
        pthread_mutex_lock(&api->lock);
        for (size_t i = 0; i < PEERS_MAX && !room; i++) {
                if (api->pending[i].fd < 0) {
                        api->pending[i].fd = fd;
                        api->pending[i].host = host_id;
                        room = true;
                }
        }
        pthread_mutex_unlock(&api->lock);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (!room ||
            MHD_add_connection(api->daemon, fd, (struct sockaddr *)&sin, sizeof(sin)) != MHD_YES) {
                sk_warn("site API: cannot take a connection from host %lld", (long long)host_id);
                take_pending(api, fd);
                if (!room)
                        close(fd);
        }
}

/* Workers answer what waits with 503 and end; then no connection stays suspended when the
 * daemon stops. */
void sk_siteapi_free(sk_siteapi *api)
{
        if (!api)
                return;
        pthread_mutex_lock(&api->lock);
        api->stop = true;
        pthread_cond_broadcast(&api->cond);
        pthread_mutex_unlock(&api->lock);
        for (size_t i = 0; i < api->n_workers; i++)
                pthread_join(api->workers[i], NULL);
        if (api->daemon)
                MHD_stop_daemon(api->daemon);
        pthread_mutex_destroy(&api->lock);
        pthread_cond_destroy(&api->cond);
        free(api);
}

/* ---- client ---- */

struct sk_site_client {
        sk_httpc *http; /* to addr, kept alive between calls */
        char *addr;
        char *ca_file, *cert_file, *key_file, *ca_pem;
        int64_t site_id;
        bool (*is_retired_ca)(const char *fp, const char *leaf_fp, void *user);
        void *pin_user;
        char file_fp[SK_PKI_FP_LEN]; /* DIR/site-ca.pem's, the pin by default ("": none) */
};

void sk_site_client_pin(sk_site_client *c,
                        bool (*is_retired_ca)(const char *fp, const char *leaf_fp, void *user),
                        void *user)
{
        c->is_retired_ca = is_retired_ca;
        c->pin_user = user;
}

void sk_site_client_free(sk_site_client *c)
{
        if (!c)
                return;
        sk_httpc_free(c->http);
        free(c->addr);
        free(c->ca_file);
        free(c->cert_file);
        free(c->key_file);
        free(c->ca_pem);
        free(c);
}

/* Our own site, from our certificate's URI. */
static int own_site(const char *cert_file, int64_t *site, sk_error **err)
{
        _cleanup_free_ char *pem = NULL;
        size_t len;
        int r = sk_file_read(cert_file, &pem, &len, err);
        if (r < 0)
                return r;
        gnutls_x509_crt_t crt;
        if (gnutls_x509_crt_init(&crt) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
        r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        char uri[512];
        int found = -1;
        for (unsigned i = 0; r >= 0 && found < 0; i++) {
                size_t n = sizeof(uri) - 1;
                unsigned type = 0;
                int t = gnutls_x509_crt_get_subject_alt_name2(crt, i, uri, &n, &type, NULL);
                if (t < 0)
                        break;
                uri[n] = '\0';
                int64_t host;
                if (type == GNUTLS_SAN_URI && sk_pki_parse_host_uri(uri, site, &host) == 0)
                        found = 0;
        }
        gnutls_x509_crt_deinit(crt);
        if (found < 0)
                return sk_error_set(err, EINVAL, "%s: not a skerry host certificate", cert_file);
        return 0;
}

int sk_site_client_new(const char *dir, sk_site_client **out, sk_error **err)
{
        sk_site_client *c = calloc(1, sizeof(*c));
        if (!c)
                return sk_error_set(err, ENOMEM, "out of memory");
        c->ca_file = sk_identity_path(dir, "ca.pem");
        c->cert_file = sk_identity_path(dir, "cert.pem");
        c->key_file = sk_identity_path(dir, "key.pem");
        size_t len;
        int r = c->ca_file && c->cert_file && c->key_file ? 0 : -ENOMEM;
        if (r < 0)
                sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0)
                r = sk_file_read(c->ca_file, &c->ca_pem, &len, err);
        if (r >= 0)
                r = own_site(c->cert_file, &c->site_id, err);
        if (r >= 0 && access(c->key_file, R_OK) < 0)
                r = sk_error_set(err, errno, "%s: %s", c->key_file, strerror(errno));
        /* The agent keeps DIR/site-ca.pem current (docs/security.md): a server whose chain
         * goes through another site CA is refused, unless a pin says better. */
        _cleanup_free_ char *sc_path = r >= 0 ? sk_identity_path(dir, "site-ca.pem") : NULL;
        _cleanup_free_ char *sc = NULL;
        if (sc_path && sk_file_read(sc_path, &sc, &len, NULL) >= 0 &&
            sk_pki_fingerprint(sc, c->file_fp, NULL) < 0)
                c->file_fp[0] = '\0';
        if (r < 0) {
                sk_site_client_free(c);
                return r;
        }
        *out = c;
        return 0;
}

/* Before the request goes out: the server must be a host of our site. */
static int check_server(void *session, void *user, char *why, size_t why_len)
{
        sk_site_client *c = user;
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *uri = NULL;
        char site_ca[SK_PKI_FP_LEN] = "";
        int r = sk_pki_verify_peer_ca(session, c->ca_pem, &uri, site_ca, &err);
        int64_t site = 0, host = 0;
        if (r < 0) {
                snprintf(why, why_len, "%s", sk_error_msg(err, r));
                return -1;
        }
        char leaf[SK_PKI_FP_LEN] = "";
        if (site_ca[0])
                sk_pki_peer_leaf_fp(session, leaf);
        bool retired = c->is_retired_ca ? c->is_retired_ca(site_ca, leaf, c->pin_user)
                                        : sk_pki_check_site_ca(site_ca, c->file_fp, NULL) < 0;
        if (site_ca[0] && retired) {
                snprintf(why, why_len, "the server's certificate is signed by a retired site CA");
                return -1;
        }
        if (sk_pki_parse_host_uri(uri, &site, &host) < 0 || site != c->site_id) {
                snprintf(why, why_len, "%s is not a host of site %lld", uri, (long long)c->site_id);
                return -1;
        }
        return 0;
}

/* The connection to addr, the one of the last call when it is the same host. */
static int connect_to(sk_site_client *c, const char *addr, long timeout_ms, sk_error **err)
{
        if (c->http && strcmp(c->addr, addr) == 0)
                return 0;
        sk_httpc_free(c->http);
        c->http = NULL;
        free(c->addr);
        _cleanup_free_ char *url = NULL;
        if (!(c->addr = strdup(addr)) || asprintf(&url, "https://%s", addr) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        /* Hosts' certificates name a host, not an address; check_server checks the site. */
        sk_httpc_opts o = {.base_url = url,
                           .cert_file = c->cert_file,
                           .key_file = c->key_file,
                           .connect_timeout_ms = timeout_ms < 3000 ? timeout_ms : 3000L,
                           .verify = check_server,
                           .verify_user = c,
                           .tls13_only = 1};
        return sk_httpc_new(&o, &c->http, err);
}

int sk_site_client_call(sk_site_client *c, const char *addr, const char *method, const char *path,
                        const json_t *body, long timeout_ms, long *status, json_t **answer,
                        sk_error **err)
{
        *status = 0;
        *answer = NULL;
        _cleanup_free_ char *text = NULL;
        if (body && !(text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15))))
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = connect_to(c, addr, timeout_ms, err);
        if (r < 0)
                return r;
        _cleanup_response_ sk_http_response resp = {0};
        _cleanup_error_ sk_error *terr = NULL;
        r = sk_httpc_request(c->http, method, path, text, text ? strlen(text) : 0, NULL, timeout_ms,
                             &resp, &terr);
        if (r < 0)
                return sk_error_set(err, r == -EACCES ? EACCES : ECONNREFUSED, "%s: %s", addr,
                                    sk_error_msg(terr, r));
        *status = resp.status;
        if (resp.len > 0)
                *answer = json_loadb(resp.body, resp.len, 0, NULL);
        return 0;
}
