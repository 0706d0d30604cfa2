#include "site/sitejoin.h"

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"

#define JOIN_TIMEOUT_MS 15000

static bool is_hex64(const char *s, size_t n)
{
        if (n != 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int sk_site_token_parse(const char *token, char secret[65], char fingerprint[65], sk_error **err)
{
        const char *dot = token ? strchr(token, '.') : NULL;
        if (!dot || !is_hex64(token, (size_t)(dot - token)) || !is_hex64(dot + 1, strlen(dot + 1)))
                return sk_error_set(err, EINVAL,
                                    "--join: not a site-local token (64 hex digits, a dot, 64 hex "
                                    "digits, as `skerry --site-local ADDR site token` prints)");
        memcpy(secret, token, 64);
        secret[64] = '\0';
        memcpy(fingerprint, dot + 1, 64);
        fingerprint[64] = '\0';
        return 0;
}

typedef struct call {
        CURL *curl;
        const char *ca_pem; /* NULL: the server is not checked yet (reading the CA) */
        char refusal[256];
} call;

/* Before the request goes out: once the CA is pinned, the server must be a host it signed. */
static int check_server(void *user, char *primary_ip, char *local_ip, int primary_port,
                        int local_port)
{
        call *c = user;
        if (!c->ca_pem)
                return CURL_PREREQFUNC_OK;
        struct curl_tlssessioninfo *info = NULL;
        if (curl_easy_getinfo(c->curl, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
            info->backend != CURLSSLBACKEND_GNUTLS) {
                snprintf(c->refusal, sizeof(c->refusal), "no TLS session to check");
                return CURL_PREREQFUNC_ABORT;
        }
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *uri = NULL;
        int r = sk_pki_verify_peer(info->internals, c->ca_pem, &uri, &err);
        if (r < 0 || sk_pki_parse_host_uri(uri, NULL, NULL) < 0) {
                snprintf(c->refusal, sizeof(c->refusal), "the peer is not a skerry host: %s",
                         r < 0 ? sk_error_msg(err, r) : uri);
                return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
        return fwrite(data, size, n, (FILE *)user);
}

static void curl_freep(CURL **c)
{
        if (*c)
                curl_easy_cleanup(*c);
}

/* One request to the peer without a client certificate. */
static int request(const char *peer, const char *method, const char *path, const json_t *body,
                   const char *ca_pem, long *status, json_t **answer, sk_error **err)
{
        _cleanup_free_ char *url = NULL, *text = NULL, *buf = NULL;
        if (asprintf(&url, "https://%s%s", peer, path) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (body && !(text = json_dumps(body, JSON_COMPACT)))
                return sk_error_set(err, ENOMEM, "out of memory");
        __attribute__((cleanup(curl_freep))) CURL *h = curl_easy_init();
        size_t len = 0;
        FILE *f = h ? open_memstream(&buf, &len) : NULL;
        if (!f)
                return sk_error_set(err, ENOMEM, "out of memory");
        call c = {.curl = h, .ca_pem = ca_pem};
        struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (text)
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        else
                curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        /* curl checks nothing: reading the CA there is nothing to check against yet (the
         * token's fingerprint checks the answer, and nothing secret goes out); joining,
         * check_server verifies the peer against the pinned CA before the request is sent. */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
        curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, check_server);
        curl_easy_setopt(h, CURLOPT_PREREQDATA, &c);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)JOIN_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        CURLcode cr = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        fclose(f);
        if (cr != CURLE_OK)
                return sk_error_set(err, cr == CURLE_ABORTED_BY_CALLBACK ? EACCES : ECONNREFUSED,
                                    "--peer %s: %s", peer,
                                    cr == CURLE_ABORTED_BY_CALLBACK && c.refusal[0]
                                        ? c.refusal
                                        : curl_easy_strerror(cr));
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        *answer = len > 0 ? json_loadb(buf, len, 0, NULL) : NULL;
        return 0;
}

static const char *error_message(const json_t *ans)
{
        const char *m =
            json_string_value(json_object_get(json_object_get(ans, "error"), "message"));
        return m ? m : "no message";
}

static int write_file(const char *dir, const char *name, const char *data, unsigned mode,
                      sk_error **err)
{
        _cleanup_free_ char *path = sk_identity_path(dir, name);
        if (!path)
                return sk_error_set(err, ENOMEM, "out of memory");
        return sk_file_write(path, data, strlen(data), mode, err);
}

static char *dup_field(const json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

int sk_agent_join_site(const char *dir, const sk_site_join_request *req, sk_identity *out,
                       sk_error **err)
{
        memset(out, 0, sizeof(*out));
        char secret[65], want[65], have[65];
        int r = sk_site_token_parse(req->token, secret, want, err);
        if (r < 0)
                return r;
        if (!req->address)
                return sk_error_set(err, EINVAL, "--listen: required to join through --peer");

        long status = 0;
        _cleanup_json_ json_t *ca_ans = NULL;
        r = request(req->peer, "GET", "/v1/site/ca", NULL, NULL, &status, &ca_ans, err);
        if (r < 0)
                return r;
        const char *ca = json_string_value(json_object_get(ca_ans, "ca"));
        if (status != 200 || !ca)
                return sk_error_set(err, EPROTO, "--peer %s: no CA (HTTP %ld): %s", req->peer,
                                    status, error_message(ca_ans));
        r = sk_pki_fingerprint(ca, have, err);
        if (r < 0)
                return r;
        if (strcmp(have, want) != 0)
                return sk_error_set(err, EACCES,
                                    "--peer %s: its CA is not the one the token names "
                                    "(SHA-256 %s, the token pins %s)",
                                    req->peer, have, want);

        _cleanup_free_ char *key = NULL, *csr = NULL;
        r = sk_pki_make_key_and_csr(req->name, &key, &csr, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *body =
            json_pack("{s:s, s:s, s:s, s:o, s:s}", "token", secret, "csr", csr, "name", req->name,
                      "labels", req->labels ? json_incref((json_t *)req->labels) : json_object(),
                      "address", req->address);
        if (!body)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_json_ json_t *ans = NULL;
        r = request(req->peer, "POST", "/v1/site/join", body, ca, &status, &ans, err);
        if (r < 0)
                return r;
        if (status != 200) {
                int code = status == 401 ? EACCES : status == 409 ? EEXIST : EPROTO;
                return sk_error_set(err, code, "the site refused the join (HTTP %ld): %s", status,
                                    error_message(ans));
        }
        static const char *const fields[] = {"tower", "site", "tenant", "host", "certificate"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(fields); i++)
                if (!json_is_string(json_object_get(ans, fields[i])))
                        return sk_error_set_path(err, EPROTO, fields[i],
                                                 "the join answer lacks \"%s\"", fields[i]);
        const json_t *site_ca = json_object_get(ans, "site-ca");
        const char *sc = json_string_value(json_object_get(site_ca, "certificate"));
        const char *sk = json_string_value(json_object_get(site_ca, "key"));
        if (!sc || !sk)
                return sk_error_set_path(err, EPROTO, "site-ca",
                                         "the join answer lacks the site CA");
        const json_t *peers = json_object_get(ans, "peers");
        _cleanup_free_ char *peers_text =
            json_is_array(peers) ? json_dumps(peers, JSON_COMPACT) : strdup("[]");
        if (!peers_text)
                return sk_error_set(err, ENOMEM, "out of memory");
        if ((r = write_file(dir, "key.pem", key, 0600, err)) < 0 ||
            (r = write_file(dir, "cert.pem", json_string_value(json_object_get(ans, "certificate")),
                            0644, err)) < 0 ||
            (r = write_file(dir, "ca.pem", ca, 0644, err)) < 0 ||
            (r = write_file(dir, "site-ca.key", sk, 0600, err)) < 0 ||
            (r = write_file(dir, "site-ca.pem", sc, 0644, err)) < 0 ||
            (r = write_file(dir, "peers.json", peers_text, 0644, err)) < 0)
                return r;
        out->tower = dup_field(ans, "tower");
        out->site = dup_field(ans, "site");
        out->tenant = dup_field(ans, "tenant");
        out->host = dup_field(ans, "host");
        out->site_id = json_integer_value(json_object_get(ans, "site-id"));
        out->host_id = json_integer_value(json_object_get(ans, "host-id"));
        out->labels = req->labels ? json_deep_copy(req->labels) : json_object();
        if (!out->tower || !out->site || !out->tenant || !out->host || !out->labels) {
                sk_identity_clear(out);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}
