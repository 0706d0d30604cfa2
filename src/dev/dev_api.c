/* The few tower calls `skerry dev` makes, as any API client would (docs/api.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "dev/dev-internal.h"

static int client(const char *base_url, const char *ca_file, const char *token, sk_httpc **c,
                  sk_error **err)
{
        sk_httpc_opts o = {
            .base_url = base_url, .ca_file = ca_file, .token = token, .connect_timeout_ms = 2000};
        return sk_httpc_new(&o, c, err);
}

/* The message of an API error body, or the body itself. */
static const char *api_message(const sk_http_response *resp, json_t **parsed)
{
        *parsed = json_loads(resp->body, 0, NULL);
        const char *m =
            json_string_value(json_object_get(json_object_get(*parsed, "error"), "message"));
        return m ? m : resp->body;
}

static char *read_token(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char buf[512];
        if (!f || !fgets(buf, sizeof(buf), f))
                return NULL;
        buf[strcspn(buf, "\r\n")] = '\0';
        return buf[0] ? strdup(buf) : NULL;
}

int sk_dev_tower_wait(const char *base_url, const char *ca_file, const char *token_file,
                      int timeout_ms, pid_t watch, char **token, sk_error **err)
{
        _cleanup_free_ char *tok = NULL;
        for (int waited = 0;; waited += 100) {
                if (!tok)
                        tok = read_token(token_file);
                if (tok && (!ca_file || access(ca_file, R_OK) == 0)) {
                        _cleanup_httpc_ sk_httpc *c = NULL;
                        _cleanup_response_ sk_http_response resp = {0};
                        if (client(base_url, ca_file, tok, &c, NULL) == 0 &&
                            sk_httpc_request(c, "GET", "/v1/whoami", NULL, 0, NULL, 2000, &resp,
                                             NULL) == 0 &&
                            resp.status == 200) {
                                *token = take_ptr(&tok);
                                return 0;
                        }
                }
                if (sk_dev_interrupted)
                        return sk_error_set(err, EINTR, "interrupted");
                int st;
                char how[64];
                if (watch > 0 && sk_dev_child_exited(watch, &st))
                        return sk_error_set(err, ECHILD, "the tower %s",
                                            sk_dev_describe_status(st, how, sizeof(how)));
                if (waited >= timeout_ms)
                        return sk_error_set(err, ETIMEDOUT,
                                            "the tower did not answer GET %s/v1/whoami within "
                                            "%d s%s",
                                            base_url, timeout_ms / 1000,
                                            tok ? "" : " (and wrote no admin token)");
                usleep(100000);
        }
}

int sk_dev_put_site(const char *base_url, const char *ca_file, const char *token, const char *site,
                    sk_error **err)
{
        _cleanup_httpc_ sk_httpc *c = NULL;
        int r = client(base_url, ca_file, token, &c, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *doc =
            json_pack("{s:s, s:s, s:{s:s}}", "kind", "site", "name", site, "labels", "env", "dev");
        _cleanup_free_ char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        _cleanup_free_ char *esc = sk_url_escape(site);
        _cleanup_free_ char *path = NULL;
        if (!body || !esc || asprintf(&path, "/v1/sites/%s", esc) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        r = sk_httpc_request(c, "PUT", path, body, strlen(body), NULL, 30000, &resp, err);
        if (r < 0)
                return sk_error_prefix(err, "creating site %s", site), r;
        if (resp.status != 200 && resp.status != 201) {
                _cleanup_json_ json_t *parsed = NULL;
                return sk_error_set(err, EIO, "creating site %s: HTTP %ld: %s", site, resp.status,
                                    api_message(&resp, &parsed));
        }
        return 0;
}

int sk_dev_join_token(const char *base_url, const char *ca_file, const char *token,
                      const char *site, char **join, sk_error **err)
{
        _cleanup_httpc_ sk_httpc *c = NULL;
        int r = client(base_url, ca_file, token, &c, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *esc = sk_url_escape(site);
        _cleanup_free_ char *path = NULL;
        if (!esc || asprintf(&path, "/v1/sites/%s/tokens", esc) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_response_ sk_http_response resp = {0};
        r = sk_httpc_request(c, "POST", path, "{}", 2, NULL, 30000, &resp, err);
        if (r < 0)
                return sk_error_prefix(err, "join token for site %s", site), r;
        _cleanup_json_ json_t *parsed = NULL;
        const char *msg = api_message(&resp, &parsed);
        const char *t = json_string_value(json_object_get(parsed, "token"));
        if ((resp.status != 200 && resp.status != 201) || !t)
                return sk_error_set(err, EIO, "join token for site %s: HTTP %ld: %s", site,
                                    resp.status, msg);
        *join = strdup(t);
        return *join ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}
