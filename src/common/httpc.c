#include "common/httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/pki.h"

struct sk_httpc {
        CURL *curl;
        char *base_url;
        char *auth_header;
        char errbuf[CURL_ERROR_SIZE]; /* libcurl's detailed reason for the last failure */
        int (*abort_check)(void *user);
        void *abort_user;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sk_httpc_new(const sk_httpc_opts *opts, sk_httpc **out, sk_error **err)
{
        pthread_once(&curl_once, curl_init_once);
        sk_httpc *c = calloc(1, sizeof(*c));
        if (!c)
                return sk_error_set(err, ENOMEM, "out of memory");
        c->curl = curl_easy_init();
        c->base_url = strdup(opts->base_url);
        if (!c->curl || !c->base_url) {
                sk_httpc_free(c);
                return sk_error_set(err, ENOMEM, "cannot initialise HTTP client");
        }
        CURL *h = c->curl;
        if (opts->unix_socket)
                curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, opts->unix_socket);
        if (opts->ca_file) {
                curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
                curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
                curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, SK_TLS_PRIORITY);
                /* Trust that file alone; loading the system's CA folder as well costs
                 * megabytes per connection and trusts far more than the tower's CA. */
                curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        if (opts->cert_file)
                curl_easy_setopt(h, CURLOPT_SSLCERT, opts->cert_file);
        if (opts->key_file)
                curl_easy_setopt(h, CURLOPT_SSLKEY, opts->key_file);
        if (opts->token && asprintf(&c->auth_header, "Authorization: Bearer %s", opts->token) < 0)
                c->auth_header = NULL;
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        *out = c;
        return 0;
}

void sk_httpc_free(sk_httpc *c)
{
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->base_url);
        free(c->auth_header);
        free(c);
}

static int progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
        sk_httpc *c = user;
        return c->abort_check && c->abort_check(c->abort_user) ? 1 : 0;
}

void sk_httpc_set_abort(sk_httpc *c, int (*check)(void *user), void *user)
{
        c->abort_check = check;
        c->abort_user = user;
        curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, check ? 0L : 1L);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, check ? progress : NULL);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
}

static int transfer_error(CURLcode rc)
{
        switch (rc) {
        case CURLE_ABORTED_BY_CALLBACK:
                return ECANCELED;
        case CURLE_OPERATION_TIMEDOUT:
                return ETIMEDOUT;
        default:
                return ECONNREFUSED;
        }
}

static const char *failure_reason(const sk_httpc *c, CURLcode rc)
{
        return c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
}

struct growbuf {
        char *data;
        size_t len, cap;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *user)
{
        struct growbuf *b = user;
        size_t n = size * nmemb;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 1024;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->data, cap);
                if (!p)
                        return 0;
                b->data = p;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static struct curl_slist *prepare(sk_httpc *c, const char *method, const char *path,
                                  const char *body, size_t body_len, const char *content_type)
{
        CURL *h = c->curl;
        c->errbuf[0] = '\0';
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s%s", c->base_url, path) < 0)
                return NULL;
        curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl copies the string */
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
        if (body) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        } else {
                /* Forget an earlier request's body: a DELETE after a POST must not wait
                 * to send the old size. HTTPGET resets the handle to a body-less request;
                 * CUSTOMREQUEST then names the method. */
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
                curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        }
        struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
        if (c->auth_header)
                headers = curl_slist_append(headers, c->auth_header);
        if (body) {
                _cleanup_free_ char *ct = NULL;
                if (asprintf(&ct, "Content-Type: %s",
                             content_type ? content_type : "application/json") >= 0)
                        headers = curl_slist_append(headers, ct);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        return headers;
}

int sk_httpc_request(sk_httpc *c, const char *method, const char *path, const char *body,
                     size_t body_len, const char *content_type, long timeout_ms,
                     sk_http_response *resp, sk_error **err)
{
        memset(resp, 0, sizeof(*resp));
        struct growbuf b = {0};
        struct curl_slist *headers = prepare(c, method, path, body, body_len, content_type);
        if (!headers)
                return sk_error_set(err, ENOMEM, "out of memory");
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(c->curl);
        curl_slist_free_all(headers);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        if (rc != CURLE_OK) {
                free(b.data);
                return sk_error_set(err, transfer_error(rc), "%s %s%s: %s", method, c->base_url,
                                    path, failure_reason(c, rc));
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->body = b.data ? b.data : strdup("");
        resp->len = b.len;
        return 0;
}

struct stream_ctx {
        sk_httpc_data_fn fn;
        void *user;
};

static size_t stream_cb(char *ptr, size_t size, size_t nmemb, void *user)
{
        struct stream_ctx *s = user;
        size_t n = size * nmemb;
        return s->fn(ptr, n, s->user) == 0 ? n : 0;
}

int sk_httpc_stream(sk_httpc *c, const char *method, const char *path, sk_httpc_data_fn on_data,
                    void *user, long *status, sk_error **err)
{
        struct stream_ctx s = {on_data, user};
        struct curl_slist *headers = prepare(c, method, path, NULL, 0, NULL);
        if (!headers)
                return sk_error_set(err, ENOMEM, "out of memory");
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, stream_cb);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
        CURLcode rc = curl_easy_perform(c->curl);
        curl_slist_free_all(headers);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        if (status)
                curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
        if (rc == CURLE_ABORTED_BY_CALLBACK)
                return sk_error_set(err, ECANCELED, "%s %s%s: stopped", method, c->base_url, path);
        if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR)
                return sk_error_set(err, ECONNRESET, "%s %s%s: %s", method, c->base_url, path,
                                    failure_reason(c, rc));
        return 0;
}

void sk_http_response_free(sk_http_response *r)
{
        free(r->body);
        r->body = NULL;
        r->len = 0;
}

char *sk_url_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out = malloc(n * 3 + 1), *o = out;
        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
                        *o++ = (char)*p;
                } else {
                        *o++ = '%';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 15];
                }
        }
        *o = '\0';
        return out;
}
