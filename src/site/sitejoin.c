#include "site/sitejoin.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/httpc.h"
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

/* Once the CA is pinned (ca_pem), the server must be a host it signed; reading the CA
 * there is nothing to check against yet (the token's fingerprint checks the answer, and
 * nothing secret goes out). */
static int check_server(void *session, void *user, char *why, size_t why_len)
{
        const char *ca_pem = user;
        if (!ca_pem)
                return 0;
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *uri = NULL;
        int r = sk_pki_verify_peer(session, ca_pem, &uri, &err);
        if (r < 0 || sk_pki_parse_host_uri(uri, NULL, NULL) < 0) {
                snprintf(why, why_len, "the peer is not a skerry host: %s",
                         r < 0 ? sk_error_msg(err, r) : uri);
                return -1;
        }
        return 0;
}

/* One request to the peer without a client certificate. */
static int request(const char *peer, const char *method, const char *path, const json_t *body,
                   const char *ca_pem, long *status, json_t **answer, sk_error **err)
{
        _cleanup_free_ char *url = NULL, *text = NULL;
        if (asprintf(&url, "https://%s", peer) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (body && !(text = json_dumps(body, JSON_COMPACT)))
                return sk_error_set(err, ENOMEM, "out of memory");
        sk_httpc_opts o = {.base_url = url,
                           .connect_timeout_ms = 5000,
                           .verify = check_server,
                           .verify_user = (void *)ca_pem,
                           .tls13_only = 1};
        _cleanup_httpc_ sk_httpc *h = NULL;
        int r = sk_httpc_new(&o, &h, err);
        if (r < 0)
                return r;
        _cleanup_response_ sk_http_response resp = {0};
        _cleanup_error_ sk_error *terr = NULL;
        r = sk_httpc_request(h, method, path, text, text ? strlen(text) : 0, NULL, JOIN_TIMEOUT_MS,
                             &resp, &terr);
        if (r < 0)
                return sk_error_set(err, r == -EACCES ? EACCES : ECONNREFUSED, "--peer %s: %s",
                                    peer, sk_error_msg(terr, r));
        *status = resp.status;
        *answer = resp.len > 0 ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
        return 0;
}

static const char *error_message(const json_t *ans)
{
        const char *m =
            json_string_value(json_object_get(json_object_get(ans, "error"), "message"));
        return m ? m : "no message";
}

/* GET /v1/site/ca from the peer, kept (*ca) only when it is the CA the token pins. */
static int pinned_ca(const char *peer, const char *want, char **ca, sk_error **err)
{
        long status = 0;
        _cleanup_json_ json_t *ans = NULL;
        int r = request(peer, "GET", "/v1/site/ca", NULL, NULL, &status, &ans, err);
        if (r < 0)
                return r;
        const char *pem = json_string_value(json_object_get(ans, "ca"));
        if (status != 200 || !pem)
                return sk_error_set(err, EPROTO, "--peer %s: no CA (HTTP %ld): %s", peer, status,
                                    error_message(ans));
        char have[SK_PKI_FP_LEN];
        r = sk_pki_fingerprint(pem, have, err);
        if (r < 0)
                return r;
        if (strcmp(have, want) != 0)
                return sk_error_set(err, EACCES,
                                    "--peer %s: its CA is not the one the token names "
                                    "(SHA-256 %s, the token pins %s)",
                                    peer, have, want);
        *ca = strdup(pem);
        return *ca ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

/* POST /v1/site/join with the secret and a CSR of key; *ans the checked answer. */
static int ask_join(const sk_site_join_request *req, const char *ca, const char *secret,
                    const char *csr, json_t **ans, sk_error **err)
{
        _cleanup_json_ json_t *body =
            json_pack("{s:s, s:s, s:s, s:o, s:s}", "token", secret, "csr", csr, "name", req->name,
                      "labels", req->labels ? json_incref((json_t *)req->labels) : json_object(),
                      "address", req->address);
        if (!body)
                return sk_error_set(err, ENOMEM, "out of memory");
        long status = 0;
        int r = request(req->peer, "POST", "/v1/site/join", body, ca, &status, ans, err);
        if (r < 0)
                return r;
        if (status != 200) {
                int code = status == 401 ? EACCES : status == 409 ? EEXIST : EPROTO;
                return sk_error_set(err, code, "the site refused the join (HTTP %ld): %s", status,
                                    error_message(*ans));
        }
        static const char *const fields[] = {"tower", "site", "tenant", "host", "certificate"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(fields); i++)
                if (!json_is_string(json_object_get(*ans, fields[i])))
                        return sk_error_set_path(err, EPROTO, fields[i],
                                                 "the join answer lacks \"%s\"", fields[i]);
        const json_t *site_ca = json_object_get(*ans, "site-ca");
        if (!json_is_string(json_object_get(site_ca, "certificate")) ||
            !json_is_string(json_object_get(site_ca, "key")))
                return sk_error_set_path(err, EPROTO, "site-ca",
                                         "the join answer lacks the site CA");
        return 0;
}

int sk_agent_join_site(const char *dir, const sk_site_join_request *req, sk_identity *out,
                       sk_error **err)
{
        memset(out, 0, sizeof(*out));
        char secret[65], want[65];
        int r = sk_site_token_parse(req->token, secret, want, err);
        if (r < 0)
                return r;
        if (!req->address)
                return sk_error_set(err, EINVAL, "--listen: required to join through --peer");
        _cleanup_free_ char *ca = NULL, *key = NULL, *csr = NULL;
        _cleanup_json_ json_t *ans = NULL;
        r = pinned_ca(req->peer, want, &ca, err);
        if (r >= 0)
                r = sk_pki_make_key_and_csr(req->name, &key, &csr, err);
        if (r >= 0)
                r = ask_join(req, ca, secret, csr, &ans, err);
        if (r >= 0)
                r = sk_identity_store_join(dir, key, ca, ans, NULL, req->labels, out, err);
        return r;
}
