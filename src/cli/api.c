#include "cli/api.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

char *sk_cli_resource_path(const char *plural, const char *name, const char *sub,
                           const char *const *query)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        fprintf(f, "/v1/%s", plural);
        if (name) {
                _cleanup_free_ char *e = sk_url_escape(name);
                fprintf(f, "/%s", e ? e : "");
                if (sub)
                        fprintf(f, "/%s", sub);
        }
        char sep = '?';
        for (; query && query[0]; query += 2) {
                if (!query[1] || !*query[1])
                        continue;
                _cleanup_free_ char *e = sk_url_escape(query[1]);
                fprintf(f, "%c%s=%s", sep, query[0], e ? e : "");
                sep = '&';
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* The tower's words go to a terminal: no control characters (escape sequences) get through. */
static char *mask_controls(char *s)
{
        for (char *p = s; p && *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return s;
}

static char *dup_string(const json_t *v)
{
        return json_is_string(v) ? mask_controls(strdup(json_string_value(v))) : NULL;
}

int sk_cli_api_err_parse(long status, const char *body, sk_cli_api_err *out)
{
        memset(out, 0, sizeof(*out));
        out->status = status;
        _cleanup_json_ json_t *root = body ? json_loads(body, 0, NULL) : NULL;
        json_t *e = json_object_get(root, "error");
        if (json_is_object(e) && json_is_string(json_object_get(e, "message"))) {
                out->code = dup_string(json_object_get(e, "code"));
                out->message = dup_string(json_object_get(e, "message"));
                out->path = dup_string(json_object_get(e, "path"));
                json_t *col = json_object_get(e, "column");
                if (json_is_integer(col) && json_integer_value(col) > 0 &&
                    json_integer_value(col) < 1000000)
                        out->column = (int)json_integer_value(col);
                return out->message ? 0 : -ENOMEM;
        }
        /* Not the API's error shape (a proxy, a crash): show what came, briefly. */
        const char *text = body ? body : "";
        size_t n = strcspn(text, "\r\n");
        if (n > 200)
                n = 200;
        int r = n ? asprintf(&out->message, "HTTP %ld: %.*s", status, (int)n, text)
                  : asprintf(&out->message, "HTTP %ld with no error message", status);
        if (r < 0) {
                out->message = NULL;
                return -ENOMEM;
        }
        mask_controls(out->message);
        return 0;
}

void sk_cli_api_err_clear(sk_cli_api_err *e)
{
        free(e->code);
        free(e->message);
        free(e->path);
        memset(e, 0, sizeof(*e));
}

int sk_cli_client_open(const sk_cli_config *cfg, sk_cli_client *c, sk_error **err)
{
        memset(c, 0, sizeof(*c));
        if (!cfg->addr)
                return sk_error_set(err, EINVAL,
                                    "no tower address: give --addr HOST:PORT, set SKERRY_ADDR, "
                                    "or run `skerry login` with one");
        sk_httpc_opts opts = {
            .base_url = cfg->addr,
            .ca_file = cfg->ca,
            .token = cfg->token,
        };
        c->addr = strdup(cfg->addr);
        if (!c->addr)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = sk_httpc_new(&opts, &c->http, err);
        if (r < 0)
                sk_cli_client_close(c);
        return r;
}

void sk_cli_client_close(sk_cli_client *c)
{
        if (c->http)
                sk_httpc_free(c->http);
        free(c->addr);
        memset(c, 0, sizeof(*c));
}

int sk_cli_call_raw(sk_cli_client *c, const char *method, const char *path, const json_t *body,
                    json_t **out, char **raw, sk_cli_api_err *api_err, sk_error **err)
{
        *out = NULL;
        if (raw)
                *raw = NULL;
        _cleanup_free_ char *text = NULL;
        if (body) {
                text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
                if (!text)
                        return sk_error_set(err, ENOMEM, "out of memory");
        }
        _cleanup_response_ sk_http_response resp = {0};
        _cleanup_error_ sk_error *terr = NULL;
        int r = sk_httpc_request(c->http, method, path, text, text ? strlen(text) : 0, NULL, 60000,
                                 &resp, &terr);
        if (text) /* may hold a password */
                explicit_bzero(text, strlen(text));
        if (r < 0) {
                const char *why = sk_error_msg(terr, r);
                /* libcurl's TLS message is generic; say what usually causes it. */
                bool tls = strstr(why, "SSL") || strstr(why, "certificate");
                return sk_error_set(err, r, "cannot reach the tower at %s: %s%s", c->addr, why,
                                    tls ? " (is --ca or SKERRY_CA the tower's ca.pem?)" : "");
        }
        if (resp.status < 200 || resp.status > 299) {
                if (sk_cli_api_err_parse(resp.status, resp.body, api_err) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                return -EPROTO;
        }
        if (resp.len > 0) {
                json_error_t jerr;
                *out = json_loadb(resp.body, resp.len, JSON_DECODE_ANY, &jerr);
                if (!*out)
                        return sk_error_set(err, EPROTO,
                                            "the tower at %s answered %s %s with bad JSON: %s",
                                            c->addr, method, path, jerr.text);
        }
        if (raw)
                *raw = take_ptr(&resp.body);
        return 0;
}

int sk_cli_call(sk_cli_client *c, const char *method, const char *path, const json_t *body,
                json_t **out, sk_cli_api_err *api_err, sk_error **err)
{
        return sk_cli_call_raw(c, method, path, body, out, NULL, api_err, err);
}
