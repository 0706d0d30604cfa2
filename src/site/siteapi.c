#include "site/siteapi.h"

#include <curl/curl.h>
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
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"

#define PEERS_MAX 256

struct sk_siteapi {
        struct MHD_Daemon *daemon;
        sk_siteapi_fn fn;
        void *user;
        pthread_mutex_t lock;
        struct {
                int fd;
                int64_t host;
        } peers[PEERS_MAX]; /* which host each open connection's certificate named */
};

typedef struct request {
        char *body;
        size_t len;
        bool too_large;
} request;

json_t *sk_siteapi_error(const char *code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg ? msg : code);
}

static int64_t peer_host(sk_siteapi *api, struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int64_t host = 0;
        pthread_mutex_lock(&api->lock);
        for (size_t i = 0; ci && i < PEERS_MAX; i++)
                if (api->peers[i].fd == ci->connect_fd)
                        host = api->peers[i].host;
        pthread_mutex_unlock(&api->lock);
        return host;
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
                if (rq->len + *upload_size > SK_SITEAPI_BODY_MAX) {
                        rq->too_large = true;
                } else {
                        char *b = realloc(rq->body, rq->len + *upload_size + 1);
                        if (!b)
                                return MHD_NO;
                        memcpy(b + rq->len, upload, *upload_size);
                        rq->body = b;
                        rq->len += *upload_size;
                        b[rq->len] = '\0';
                }
                *upload_size = 0;
                return MHD_YES;
        }
        if (rq->too_large)
                return reply(conn, 413, sk_siteapi_error("too-large", "body over 1 MiB"));
        _cleanup_json_ json_t *body = NULL;
        if (rq->len > 0) {
                json_error_t je;
                body = json_loadb(rq->body, rq->len, 0, &je);
                if (!body)
                        return reply(conn, 400,
                                     sk_siteapi_error("bad-json", "line %d, column %d: %s", je.line,
                                                      je.column, je.text));
        }
        char path[256];
        snprintf(path, sizeof(path), "%s", url);
        const char *site = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "site");
        json_t *answer = NULL;
        int status = api->fn(api->user, method, path, site, peer_host(api, conn), body, &answer);
        return reply(conn, status, answer);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
        request *rq = *con_cls;
        if (rq) {
                free(rq->body);
                free(rq);
        }
        *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char buf[512];
        vsnprintf(buf, sizeof(buf), fmt, ap);
        sk_debug("site API: %s", buf);
}

int sk_siteapi_new(sk_siteapi_fn fn, void *user, sk_siteapi **out, sk_error **err)
{
        sk_siteapi *api = calloc(1, sizeof(*api));
        if (!api)
                return sk_error_set(err, ENOMEM, "out of memory");
        api->fn = fn;
        api->user = user;
        pthread_mutex_init(&api->lock, NULL);
        for (size_t i = 0; i < PEERS_MAX; i++)
                api->peers[i].fd = -1;
        api->daemon =
            MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_NO_LISTEN_SOCKET |
                                 MHD_USE_ITC | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, on_request, api, MHD_OPTION_NOTIFY_COMPLETED,
                             on_completed, api, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api, MHD_OPTION_END);
        if (!api->daemon) {
                sk_siteapi_free(api);
                return sk_error_set(err, EIO, "cannot start the site-local API");
        }
        *out = api;
        return 0;
}

void sk_siteapi_add(sk_siteapi *api, int fd, int64_t host_id)
{
        pthread_mutex_lock(&api->lock);
        size_t slot = (size_t)fd % PEERS_MAX;
        api->peers[slot].fd = fd;
        api->peers[slot].host = host_id;
        pthread_mutex_unlock(&api->lock);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (MHD_add_connection(api->daemon, fd, (struct sockaddr *)&sin, sizeof(sin)) != MHD_YES)
                sk_warn("site API: cannot take a connection from host %lld", (long long)host_id);
}

void sk_siteapi_free(sk_siteapi *api)
{
        if (!api)
                return;
        if (api->daemon)
                MHD_stop_daemon(api->daemon);
        pthread_mutex_destroy(&api->lock);
        free(api);
}

/* ---- client ---- */

struct sk_site_client {
        CURL *curl;
        char *ca_file, *cert_file, *key_file, *ca_pem;
        int64_t site_id;
        char refusal[256];
};

void sk_site_client_free(sk_site_client *c)
{
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
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
        if (r >= 0 && !(c->curl = curl_easy_init()))
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
                sk_site_client_free(c);
                return r;
        }
        *out = c;
        return 0;
}

/* Before the request goes out: the server must be a host of our site. */
static int check_server(void *user, char *primary_ip, char *local_ip, int primary_port,
                        int local_port)
{
        sk_site_client *c = user;
        struct curl_tlssessioninfo *info = NULL;
        c->refusal[0] = '\0';
        if (curl_easy_getinfo(c->curl, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
            info->backend != CURLSSLBACKEND_GNUTLS) {
                snprintf(c->refusal, sizeof(c->refusal), "no TLS session to check");
                return CURL_PREREQFUNC_ABORT;
        }
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *uri = NULL;
        int r = sk_pki_verify_peer(info->internals, c->ca_pem, &uri, &err);
        int64_t site = 0, host = 0;
        if (r < 0) {
                snprintf(c->refusal, sizeof(c->refusal), "%s", sk_error_msg(err, r));
                return CURL_PREREQFUNC_ABORT;
        }
        if (sk_pki_parse_host_uri(uri, &site, &host) < 0 || site != c->site_id) {
                snprintf(c->refusal, sizeof(c->refusal), "%s is not a host of site %lld", uri,
                         (long long)c->site_id);
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
        FILE *f = user;
        return fwrite(data, size, n, f);
}

int sk_site_client_call(sk_site_client *c, const char *addr, const char *method, const char *path,
                        const json_t *body, long timeout_ms, long *status, json_t **answer,
                        sk_error **err)
{
        *status = 0;
        *answer = NULL;
        _cleanup_free_ char *url = NULL, *text = NULL, *buf = NULL;
        if (asprintf(&url, "https://%s%s", addr, path) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (body && !(text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15))))
                return sk_error_set(err, ENOMEM, "out of memory");
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return sk_error_set(err, ENOMEM, "out of memory");
        CURL *h = c->curl;
        curl_easy_reset(h);
        struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (text)
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        else if (strcmp(method, "GET") == 0)
                curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        /* Hosts' certificates name a host, not an address; check_server checks the site. */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
        curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, check_server);
        curl_easy_setopt(h, CURLOPT_PREREQDATA, c);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 3000 ? timeout_ms : 3000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        CURLcode cr = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        fclose(f);
        if (cr != CURLE_OK)
                return sk_error_set(
                    err, cr == CURLE_ABORTED_BY_CALLBACK ? EACCES : ECONNREFUSED, "%s: %s", addr,
                    cr == CURLE_ABORTED_BY_CALLBACK && c->refusal[0] ? c->refusal
                                                                     : curl_easy_strerror(cr));
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        if (len > 0)
                *answer = json_loadb(buf, len, 0, NULL);
        return 0;
}
