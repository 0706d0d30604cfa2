#include "site/siteroutes.h"

#include <errno.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/spec.h"
#include "site/heartbeat.h"
#include "site/siteapi.h"

#define TTL_DEFAULT_S 3600
#define TTL_MIN_S     60
#define TTL_MAX_S     (7 * 86400)

static bool is(const sk_site_request *rq, const char *method, const char *path)
{
        return strcmp(rq->method, method) == 0 && strcmp(rq->path, path) == 0;
}

bool sk_site_route_quick(const sk_site_request *rq)
{
        return is(rq, "POST", "/v1/site/heartbeat") || is(rq, "GET", "/v1/site/ca");
}

static int fail(json_t **answer, int status, const char *code, const char *msg)
{
        *answer = sk_siteapi_error(code, "%s", msg);
        return status;
}

static int heartbeat(const sk_site_routes *r, const sk_site_request *rq, const json_t *body,
                     json_t **answer)
{
        json_t *report = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int rc = sk_heartbeat_parse(body, rq->peer, &report, &err);
        if (rc < 0) {
                *answer = sk_siteapi_error("invalid", "%s%s%s", err && err->path ? err->path : "",
                                           err && err->path ? ": " : "", sk_error_msg(err, rc));
                return 400;
        }
        if (r->ops->heartbeat(r->ctx, rq->peer, report) == 0) {
                *answer = json_pack("{s:s}", "result", "ok");
                return 200;
        }
        _cleanup_free_ char *leader = r->ops->leader_address(r->ctx);
        *answer = json_pack("{s:s, s:s?}", "result", "not-leader", "leader", leader);
        return 421;
}

static int make_token(const sk_site_routes *r, const json_t *body, json_t **answer)
{
        const json_t *ttl = json_object_get(body, "ttl");
        json_int_t seconds = ttl ? json_integer_value(ttl) : TTL_DEFAULT_S;
        if ((ttl && !json_is_integer(ttl)) || seconds < TTL_MIN_S || seconds > TTL_MAX_S)
                return fail(answer, 400, "invalid", "ttl: must be seconds between 60 and 604800");
        return r->ops->make_token(r->ctx, seconds, answer);
}

static int join(const sk_site_routes *r, const json_t *body, json_t **answer)
{
        sk_site_join j = {
            .token = json_string_value(json_object_get(body, "token")),
            .csr = json_string_value(json_object_get(body, "csr")),
            .name = json_string_value(json_object_get(body, "name")),
            .labels = json_object_get(body, "labels"),
            .address = json_string_value(json_object_get(body, "address")),
        };
        if (!j.token || strlen(j.token) != 64)
                return fail(answer, 400, "invalid", "token: must be the token's secret part");
        if (!j.name || !sk_spec_valid_name(j.name))
                return fail(answer, 400, "invalid", "name: must be a DNS label ([a-z0-9-], 1..63)");
        if (!j.csr || !*j.csr)
                return fail(answer, 400, "invalid", "csr: must be a PEM certificate request");
        if (j.labels && !json_is_object(j.labels))
                return fail(answer, 400, "invalid", "labels: must be an object of strings");
        if (!j.address || !strchr(j.address, ':'))
                return fail(answer, 400, "invalid", "address: must be \"ADDR:PORT\"");
        return r->ops->join(r->ctx, &j, answer);
}

/* POST /v1/site/join and /v1/site/tokens: the leader's (the site CA signs there). */
static int site_ca(const sk_site_routes *r, const sk_site_request *rq, const json_t *body,
                   json_t **answer)
{
        bool joining = strcmp(rq->path, "/v1/site/join") == 0;
        if (!json_is_object(body) && (joining || body))
                return fail(answer, 400, "invalid", "the body must be a JSON object");
        if (!r->ops->is_leader(r->ctx))
                return r->ops->forward(r->ctx, "POST", rq->path, body, answer);
        return joining ? join(r, body, answer) : make_token(r, body, answer);
}

/* GET /v1/hosts and /v1/instances (and the leader-only /v1/site/ forms a follower asks). */
static int views(const sk_site_routes *r, const sk_site_request *rq, bool hosts, json_t **answer)
{
        if (rq->site && strcmp(rq->site, r->site) != 0) {
                *answer =
                    sk_siteapi_error("not-found", "this is site %s, not %.64s", r->site, rq->site);
                return 404;
        }
        if (r->ops->is_leader(r->ctx)) {
                json_t *items = hosts ? r->ops->hosts_view(r->ctx) : r->ops->instances_view(r->ctx);
                *answer = json_pack("{s:o}", "items", items);
                return *answer ? 200 : 500;
        }
        if (strncmp(rq->path, "/v1/site/", 9) == 0)
                return fail(answer, 503, "unavailable", "not the leader");
        return r->ops->forward(r->ctx, "GET", hosts ? "/v1/site/hosts" : "/v1/site/instances", NULL,
                               answer);
}

static int parse_body(const sk_site_request *rq, json_t **body, json_t **answer)
{
        *body = NULL;
        if (!rq->body || rq->len == 0)
                return 0;
        json_error_t je;
        *body = json_loadb(rq->body, rq->len, 0, &je);
        if (*body)
                return 0;
        *answer =
            sk_siteapi_error("bad-json", "line %d, column %d: %s", je.line, je.column, je.text);
        return 400;
}

/* Authenticated requests (a certificate of a host of this site, not removed). */
static int route_host(const sk_site_routes *r, const sk_site_request *rq, const json_t *body,
                      json_t **answer)
{
        if (is(rq, "POST", "/v1/site/heartbeat"))
                return heartbeat(r, rq, body, answer);
        bool hosts = strcmp(rq->path, "/v1/hosts") == 0 || strcmp(rq->path, "/v1/site/hosts") == 0;
        bool insts =
            strcmp(rq->path, "/v1/instances") == 0 || strcmp(rq->path, "/v1/site/instances") == 0;
        if (strcmp(rq->method, "GET") == 0 && (hosts || insts))
                return views(r, rq, hosts, answer);
        if (hosts || insts || strcmp(rq->path, "/v1/site/heartbeat") == 0) {
                *answer =
                    sk_siteapi_error("method-not-allowed", "%.16s %.128s", rq->method, rq->path);
                return 405;
        }
        *answer = sk_siteapi_error("not-found", "no such path %.128s", rq->path);
        return 404;
}

int sk_site_route(const sk_site_routes *r, const sk_site_request *rq, json_t **answer)
{
        *answer = NULL;
        bool ca = is(rq, "GET", "/v1/site/ca");
        bool joining = is(rq, "POST", "/v1/site/join");
        /* A caller without a certificate (host id 0, raft_tls lets it through for these two
         * requests only) may read the CA it pins and join; nothing else. */
        if (rq->peer == 0 && !ca && !joining)
                return fail(answer, 401, "unauthenticated", "a host certificate is required");
        if (ca) {
                *answer = json_pack("{s:s}", "ca", r->ca_pem);
                return *answer ? 200 : 500;
        }
        /* raft_tls refuses a removed host's new connections; this covers one opened
         * before the removal reached this host */
        if (rq->peer != 0 && r->ops->is_removed(r->ctx, rq->peer)) {
                *answer = sk_siteapi_error("forbidden", "host %lld was removed from the site",
                                           (long long)rq->peer);
                return 403;
        }
        _cleanup_json_ json_t *body = NULL;
        int status = parse_body(rq, &body, answer);
        if (status)
                return status;
        if (joining || is(rq, "POST", "/v1/site/tokens"))
                return site_ca(r, rq, body, answer);
        return route_host(r, rq, body, answer);
}
