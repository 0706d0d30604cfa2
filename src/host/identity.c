#include "host/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/pki.h"

char *sk_identity_path(const char *dir, const char *name)
{
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, name) < 0)
                return NULL;
        return p;
}

void sk_identity_clear(sk_identity *id)
{
        free(id->tower);
        free(id->site);
        free(id->tenant);
        free(id->host);
        free(id->runtime);
        free(id->listen);
        free(id->dev_dir);
        json_decref(id->labels);
        memset(id, 0, sizeof(*id));
}

static char *dup_field(const json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

int sk_identity_load(const char *dir, sk_identity *id, sk_error **err)
{
        memset(id, 0, sizeof(*id));
        _cleanup_free_ char *path = sk_identity_path(dir, "identity.json");
        if (!path)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (access(path, F_OK) < 0)
                return sk_error_set(err, ENOENT, "%s: not joined yet", path);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = sk_file_read(path, &text, &len, err);
        if (r < 0)
                return r;
        json_error_t je;
        _cleanup_json_ json_t *o = json_loadb(text, len, 0, &je);
        if (!json_is_object(o))
                return sk_error_set_pos(err, EINVAL, je.line, je.column, "%s: %s", path,
                                        o ? "must be a JSON object" : je.text);
        static const char *const required[] = {"tower", "site", "tenant", "host"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(required); i++)
                if (!json_is_string(json_object_get(o, required[i])))
                        return sk_error_set_path(err, EINVAL, required[i],
                                                 "%s: field \"%s\" must be a string", path,
                                                 required[i]);
        id->tower = dup_field(o, "tower");
        id->site = dup_field(o, "site");
        id->tenant = dup_field(o, "tenant");
        id->host = dup_field(o, "host");
        id->runtime = dup_field(o, "runtime");
        id->listen = dup_field(o, "listen");
        id->dev_dir = dup_field(o, "dev-dir");
        id->site_id = json_integer_value(json_object_get(o, "site-id"));
        id->host_id = json_integer_value(json_object_get(o, "host-id"));
        json_t *labels = json_object_get(o, "labels");
        id->labels = json_is_object(labels) ? json_incref(labels) : json_object();
        return 0;
}

int sk_identity_save(const char *dir, const sk_identity *id, sk_error **err)
{
        _cleanup_json_ json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:I, s:s?, s:s?, s:s?, s:o}", "tower", id->tower, "site",
            id->site, "tenant", id->tenant, "host", id->host, "site-id", (json_int_t)id->site_id,
            "host-id", (json_int_t)id->host_id, "runtime", id->runtime, "listen", id->listen,
            "dev-dir", id->dev_dir, "labels", id->labels ? json_incref(id->labels) : json_object());
        _cleanup_free_ char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        _cleanup_free_ char *path = sk_identity_path(dir, "identity.json");
        if (!text || !path)
                return sk_error_set(err, ENOMEM, "out of memory");
        return sk_file_write(path, text, strlen(text), 0644, err);
}

int sk_parse_labels(const char *text, json_t **out, sk_error **err)
{
        _cleanup_json_ json_t *o = json_object();
        _cleanup_free_ char *copy = strdup(text ? text : "");
        if (!o || !copy)
                return sk_error_set(err, ENOMEM, "out of memory");
        char *save = NULL;
        int n = 0;
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                n++;
                char *eq = strchr(item, '=');
                if (!eq || eq == item)
                        return sk_error_set(err, EINVAL,
                                            "--labels: item %d \"%s\" is not key=value", n, item);
                *eq = '\0';
                if (json_object_set_new(o, item, json_string(eq + 1)) < 0)
                        return sk_error_set(err, EINVAL, "--labels: item %d is not UTF-8", n);
        }
        *out = take_ptr(&o);
        return 0;
}

/* The message of a tower error body, or the raw body. */
static const char *tower_message(const json_t *body, const char *raw)
{
        const char *m =
            json_string_value(json_object_get(json_object_get(body, "error"), "message"));
        return m ? m : raw;
}

static int write_file(const char *dir, const char *name, const char *data, unsigned mode,
                      sk_error **err)
{
        _cleanup_free_ char *path = sk_identity_path(dir, name);
        if (!path)
                return sk_error_set(err, ENOMEM, "out of memory");
        return sk_file_write(path, data, strlen(data), mode, err);
}

static const char *ca_of(const json_t *ans)
{
        return json_string_value(json_object_get(ans, "ca"));
}

int sk_identity_store_join(const char *dir, const char *key, const char *ca, const json_t *ans,
                           const char *tower, const json_t *labels, sk_identity *out,
                           sk_error **err)
{
        memset(out, 0, sizeof(*out));
        if (!tower)
                tower = json_string_value(json_object_get(ans, "tower"));
        const char *fields[] = {"site", "tenant", "host", "certificate"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(fields); i++)
                if (!json_is_string(json_object_get(ans, fields[i])))
                        return sk_error_set_path(err, EPROTO, fields[i],
                                                 "the join answer lacks \"%s\"", fields[i]);
        if (!ca || !tower)
                return sk_error_set(err, EPROTO, "the join answer lacks %s", ca ? "tower" : "ca");
        const char *cert = json_string_value(json_object_get(ans, "certificate"));
        int r;
        if ((r = write_file(dir, "key.pem", key, 0600, err)) < 0 ||
            (r = write_file(dir, "cert.pem", cert, 0644, err)) < 0 ||
            (r = write_file(dir, "ca.pem", ca, 0644, err)) < 0)
                return r;
        /* The site's CA (every host holds it: whichever leads signs hosts that join while
         * the tower is unreachable). A tower without site CAs sends none. */
        const json_t *site_ca = json_object_get(ans, "site-ca");
        if (site_ca) {
                const char *sc = json_string_value(json_object_get(site_ca, "certificate"));
                const char *sk = json_string_value(json_object_get(site_ca, "key"));
                if (!sc || !sk)
                        return sk_error_set_path(err, EPROTO, "site-ca",
                                                 "the join answer's site CA lacks certificate "
                                                 "or key");
                if ((r = write_file(dir, "site-ca.key", sk, 0600, err)) < 0 ||
                    (r = write_file(dir, "site-ca.pem", sc, 0644, err)) < 0)
                        return r;
        }
        const json_t *peers = json_object_get(ans, "peers");
        _cleanup_free_ char *peers_text =
            json_is_array(peers) ? json_dumps(peers, JSON_COMPACT) : strdup("[]");
        if (!peers_text)
                return sk_error_set(err, ENOMEM, "out of memory");
        if ((r = write_file(dir, "peers.json", peers_text, 0644, err)) < 0)
                return r;
        out->tower = strdup(tower);
        out->site = dup_field(ans, "site");
        out->tenant = dup_field(ans, "tenant");
        out->host = dup_field(ans, "host");
        out->site_id = json_integer_value(json_object_get(ans, "site-id"));
        out->host_id = json_integer_value(json_object_get(ans, "host-id"));
        out->labels = labels ? json_deep_copy(labels) : json_object();
        if (!out->tower || !out->site || !out->tenant || !out->host || !out->labels) {
                sk_identity_clear(out);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

int sk_agent_join(const char *dir, const sk_join_request *req, sk_identity *out, sk_error **err)
{
        memset(out, 0, sizeof(*out));
        _cleanup_free_ char *key = NULL, *csr = NULL;
        int r = sk_pki_make_key_and_csr(req->name, &key, &csr, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *body =
            json_pack("{s:s, s:s, s:s, s:o}", "token", req->token, "csr", csr, "name", req->name,
                      "labels", req->labels ? json_incref((json_t *)req->labels) : json_object());
        if (body && req->address)
                json_object_set_new(body, "address", json_string(req->address));
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (!text)
                return sk_error_set(err, ENOMEM, "out of memory");
        sk_httpc_opts opts = {.base_url = req->tower, .ca_file = req->ca_file};
        _cleanup_httpc_ sk_httpc *c = NULL;
        r = sk_httpc_new(&opts, &c, err);
        if (r < 0)
                return r;
        _cleanup_response_ sk_http_response resp = {0};
        r = sk_httpc_request(c, "POST", "/v1/join", text, strlen(text), NULL, 30000, &resp, err);
        if (r < 0)
                return sk_error_prefix(err, "joining"), r;
        _cleanup_json_ json_t *ans = json_loadb(resp.body, resp.len, 0, NULL);
        if (resp.status != 200 && resp.status != 201) {
                int code = resp.status == 401 ? EACCES : resp.status == 409 ? EEXIST : EPROTO;
                return sk_error_set(err, code, "the tower refused the join (HTTP %ld): %s",
                                    resp.status, tower_message(ans, resp.body));
        }
        return sk_identity_store_join(dir, key, ca_of(ans), ans, req->tower, req->labels, out, err);
}
