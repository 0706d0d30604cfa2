/* The site-local API's request handler (siteroutes.h) on any request the site LAN can
 * send: method, path, ?site=, caller and body from the input, against an in-memory node
 * (leader or follower). Every answer is a status from 200 to 599 with a JSON object body;
 * every error carries {"error": {"code", "message"}}; nothing unauthenticated reaches the
 * node beyond reading the CA and joining; what the node is handed was checked. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/spec.h"
#include "site/heartbeat.h"
#include "site/siteapi.h"
#include "site/siteroutes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct node {
        bool leader;
        int64_t peer; /* the caller, for the checks below */
        int calls;    /* of anything beyond reading */
} node;

static bool is_leader(void *ctx)
{
        return ((node *)ctx)->leader;
}

static char *leader_address(void *ctx)
{
        return ((node *)ctx)->leader ? NULL : strdup("10.0.0.1:7443");
}

static bool is_removed(void *ctx, int64_t host)
{
        return host == 3;
}

static int heartbeat(void *ctx, int64_t host, json_t *report)
{
        node *n = ctx;
        n->calls++;
        _cleanup_json_ json_t *again = NULL;
        if (host != n->peer || host == 0 || sk_heartbeat_parse(report, host, &again, NULL) < 0)
                abort(); /* only a checked report from the caller itself */
        json_decref(report);
        return n->leader ? 0 : -EAGAIN;
}

static json_t *view(void *ctx)
{
        return json_array();
}

static int forward(void *ctx, const char *method, const char *path, const json_t *body,
                   json_t **answer)
{
        node *n = ctx;
        if (n->leader)
                abort(); /* a leader answers itself */
        *answer = sk_siteapi_error("unavailable", "the leader does not answer");
        return 503;
}

static int make_token(void *ctx, int64_t ttl_s, json_t **answer)
{
        node *n = ctx;
        n->calls++;
        if (!n->leader || n->peer == 0 || ttl_s < 60 || ttl_s > 7 * 86400)
                abort();
        *answer = json_pack("{s:s}", "token", "t");
        return 200;
}

static int join(void *ctx, const sk_site_join *j, json_t **answer)
{
        node *n = ctx;
        n->calls++;
        if (!n->leader || !j->token || strlen(j->token) != 64 || !j->name ||
            !sk_spec_valid_name(j->name) || !j->csr || !*j->csr || !j->address ||
            !strchr(j->address, ':') || (j->labels && !json_is_object(j->labels)))
                abort();
        *answer = json_pack("{s:s}", "host", j->name);
        return 200;
}

static const sk_site_ops ops = {
    .is_leader = is_leader,
    .leader_address = leader_address,
    .is_removed = is_removed,
    .heartbeat = heartbeat,
    .hosts_view = view,
    .instances_view = view,
    .forward = forward,
    .make_token = make_token,
    .join = join,
};

static const char *const PATHS[] = {
    "/v1/site/heartbeat", "/v1/site/ca",    "/v1/site/join", "/v1/site/tokens",
    "/v1/hosts",          "/v1/site/hosts", "/v1/instances", "/v1/site/instances",
};
static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE"};

static void check_answer(int status, const json_t *answer)
{
        if (status < 200 || status > 599 || !json_is_object(answer))
                abort();
        if (status >= 400 && status != 421) {
                const json_t *e = json_object_get(answer, "error");
                if (!json_is_string(json_object_get(e, "code")) ||
                    !json_is_string(json_object_get(e, "message")))
                        abort();
        }
}

/* Input: flags, path index (past the table: the path is the text up to a newline), body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        uint8_t flags = data[0], pick = data[1];
        data += 2;
        size -= 2;
        _cleanup_free_ char *path = NULL;
        if (pick < SK_ARRAY_SIZE(PATHS)) {
                path = strdup(PATHS[pick]);
        } else {
                const uint8_t *nl = memchr(data, '\n', size);
                size_t n = nl ? (size_t)(nl - data) : size;
                path = strndup((const char *)data, n);
                data += nl ? n + 1 : n;
                size -= nl ? n + 1 : n;
        }
        node n = {.leader = flags & 1, .peer = (flags >> 1) & 3};
        sk_site_request rq = {.method = METHODS[(flags >> 3) & 3],
                              .path = path,
                              .site = flags & 0x20   ? "s1"
                                      : flags & 0x40 ? "other"
                                                     : NULL,
                              .peer = n.peer,
                              .body = (const char *)data,
                              .len = size};
        sk_site_routes routes = {.ops = &ops, .ctx = &n, .site = "s1", .ca_pem = "PEM"};
        json_t *answer = NULL;
        int status = sk_site_route(&routes, &rq, &answer);
        check_answer(status, answer);
        if (n.peer == 0 && n.calls > 0 && strcmp(path, "/v1/site/join") != 0)
                abort(); /* without a certificate: the CA and joining only */
        bool ca = strcmp(rq.method, "GET") == 0 && strcmp(path, "/v1/site/ca") == 0;
        if (n.peer == 3 && (n.calls > 0 || (status != 403 && !ca)))
                abort(); /* a removed host is refused all but the public CA */
        json_decref(answer);
        return 0;
}
