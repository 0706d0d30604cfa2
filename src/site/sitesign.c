/* The site CA's side of site-local joins (docs/site-cluster.md, cluster_int.h): the
 * leader makes one-time join tokens and, for a host that shows one, signs its CSR with
 * the site CA. Runs on the site-local API's workers: it waits for raft entries. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"
#include "site/cluster_int.h"
#include "site/sitejoin.h"

/* How long a request waits for its raft entry to apply. */
#define JOIN_WAIT_MS        4000
#define SITE_HOST_CERT_DAYS 365

static void sha256_hex(const char *text, char hex[SK_PKI_FP_LEN])
{
        if (sk_sha256_hex(text, strlen(text), hex) < 0)
                hex[0] = '\0'; /* matches no stored hash */
}

/* Queues cmd for the leader (only while leading) and waits up to JOIN_WAIT_MS for done()
 * to hold after an applied entry. */
static int submit_and_wait(sk_cluster *cl, json_t *cmd, bool (*done)(const sk_fsm *, void *),
                           void *arg)
{
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += JOIN_WAIT_MS / 1000;
        pthread_mutex_lock(&cl->lock);
        int r = cl->leader_ready ? 0 : -EAGAIN;
        if (r == 0)
                json_array_append(cl->queue, cmd);
        while (r == 0 && !done(&cl->f, arg))
                if (pthread_cond_timedwait(&cl->cond, &cl->lock, &until) != 0)
                        r = done(&cl->f, arg) ? 0 : -ETIMEDOUT;
        pthread_mutex_unlock(&cl->lock);
        return r;
}

typedef struct token_wait {
        const char *hash;
        int64_t now;
} token_wait;

static bool token_known(const sk_fsm *f, void *arg)
{
        token_wait *w = arg;
        return sk_fsm_join_token_valid(f, w->hash, w->now);
}

static bool token_done(const sk_fsm *f, void *arg)
{
        token_wait *w = arg;
        return sk_fsm_join_result(f, w->hash) != 0 || !sk_fsm_join_token_valid(f, w->hash, w->now);
}

/* POST /v1/site/tokens {"ttl": seconds}: a one-time site-local join token, replicated as
 * its hash. The token is "SECRET.FINGERPRINT": the tower CA's SHA-256, which the joining
 * host pins before it sends the secret anywhere. */
int sk_cluster_make_token(void *ctx, int64_t ttl_s, json_t **answer)
{
        sk_cluster *cl = ctx;
        unsigned char raw[32];
        randombytes_buf(raw, sizeof(raw));
        char secret[65], hash[65], fp[65];
        sodium_bin2hex(secret, sizeof(secret), raw, sizeof(raw));
        sodium_memzero(raw, sizeof(raw));
        sha256_hex(secret, hash);
        if (sk_pki_fingerprint(cl->ca_pem, fp, NULL) < 0) {
                *answer = sk_siteapi_error("internal", "this host's CA certificate is unreadable");
                return 500;
        }
        int64_t now = sk_clock_wall(cl->clock), expires = now + ttl_s * 1000;
        _cleanup_json_ json_t *cmd =
            json_pack("{s:s, s:s, s:I, s:I}", "op", "join-token", "hash", hash, "expires",
                      (json_int_t)expires, "now", (json_int_t)now);
        token_wait w = {hash, now};
        int r = cmd ? submit_and_wait(cl, cmd, token_known, &w) : -ENOMEM;
        if (r < 0) {
                *answer = sk_siteapi_error("unavailable", "the site did not record the token: %s",
                                           strerror(-r));
                return 503;
        }
        char token[140];
        snprintf(token, sizeof(token), "%s.%s", secret, fp);
        _cleanup_free_ char *until = sk_rfc3339(expires);
        *answer = json_pack("{s:s, s:s?}", "token", token, "expires", until);
        sk_info("cluster: made a site-local join token (expires %s)", until ? until : "?");
        return 200;
}

static bool name_taken(const sk_fsm *f, const char *name)
{
        const char *k;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(f), k, h)
        {
                if (json_is_string(json_object_get(h, "name")) &&
                    strcmp(json_string_value(json_object_get(h, "name")), name) == 0)
                        return true;
        }
        return false;
}

static json_t *peers_of(sk_cluster *cl)
{
        json_t *out = json_array();
        pthread_mutex_lock(&cl->lock);
        const char *k;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&cl->f), k, h)
        {
                const json_t *addr = json_object_get(h, "address");
                if (json_is_string(addr))
                        json_array_append_new(out, json_pack("{s:O, s:I, s:O}", "host",
                                                             json_object_get(h, "name"), "host-id",
                                                             (json_int_t)strtoll(k, NULL, 10),
                                                             "address", addr));
        }
        pthread_mutex_unlock(&cl->lock);
        return out;
}

static char *read_dir_file(sk_cluster *cl, const char *name)
{
        _cleanup_free_ char *path = sk_identity_path(cl->dir, name);
        char *text = NULL;
        if (!path || sk_file_read(path, &text, NULL, NULL) < 0)
                return NULL;
        return text;
}

/* Claims the token for this request: 0, or an HTTP status with *answer. */
static int claim_token(sk_cluster *cl, const char *hash, const char *name, int64_t now,
                       json_t **answer)
{
        pthread_mutex_lock(&cl->lock);
        bool valid = sk_fsm_join_token_valid(&cl->f, hash, now);
        bool used = sk_fsm_join_result(&cl->f, hash) != 0;
        bool taken = name_taken(&cl->f, name);
        /* one request per token at a time: a second one would read the first's result */
        bool busy = json_object_get(cl->joining, hash) != NULL;
        if (valid && !taken && !busy)
                json_object_set_new(cl->joining, hash, json_true());
        pthread_mutex_unlock(&cl->lock);
        if (used || busy) {
                *answer = sk_siteapi_error("unauthenticated", "join token already used");
                return 401;
        }
        if (!valid) {
                *answer = sk_siteapi_error("unauthenticated", "unknown or expired join token");
                return 401;
        }
        if (taken) {
                *answer = sk_siteapi_error("conflict", "name: the site already has a host named %s",
                                           name);
                return 409;
        }
        return 0;
}

/* Spends the token (a raft entry): the new host's id, or an HTTP status (negative). */
static int64_t spend_token(sk_cluster *cl, const char *hash, int64_t now, int64_t site_id,
                           json_t **answer)
{
        _cleanup_json_ json_t *cmd =
            json_pack("{s:s, s:s, s:I, s:I}", "op", "join-use", "hash", hash, "now",
                      (json_int_t)now, "site-id", (json_int_t)site_id);
        token_wait w = {hash, now};
        int r = cmd ? submit_and_wait(cl, cmd, token_done, &w) : -ENOMEM;
        pthread_mutex_lock(&cl->lock);
        int64_t host_id = sk_fsm_join_result(&cl->f, hash);
        json_object_del(cl->joining, hash);
        pthread_mutex_unlock(&cl->lock);
        if (r < 0) {
                *answer = sk_siteapi_error("unavailable", "the site did not record the join: %s",
                                           strerror(-r));
                return -503;
        }
        if (host_id == 0) {
                *answer = sk_siteapi_error("unauthenticated", "unknown or expired join token");
                return -401;
        }
        return host_id;
}

/* The new host's certificate chain (leaf, then the site CA), or NULL with *answer. */
static char *sign(const char *site_ca, const char *site_key, const sk_site_join *j, int64_t site_id,
                  int64_t host_id, int *status, json_t **answer)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_ca_ sk_ca *ca = NULL;
        _cleanup_free_ char *uri = NULL, *leaf = NULL;
        if (asprintf(&uri, "skerry://site/%lld/host/%lld", (long long)site_id, (long long)host_id) <
            0)
                uri = NULL;
        int r = uri ? sk_ca_load_site(site_ca, site_key, &ca, &err) : -ENOMEM;
        if (r >= 0)
                r = sk_ca_sign_client(ca, j->csr, j->name, uri, SITE_HOST_CERT_DAYS, &leaf, &err);
        char *chain = NULL;
        if (r >= 0 && asprintf(&chain, "%s%s", leaf, site_ca) < 0)
                r = -ENOMEM;
        if (r < 0) {
                /* the token is spent: a bad CSR needs a new one, as at the tower */
                *answer = sk_siteapi_error(r == -EINVAL ? "invalid" : "internal", "csr: %s",
                                           sk_error_msg(err, r));
                *status = r == -EINVAL ? 400 : 500;
                return NULL;
        }
        return chain;
}

/* POST /v1/site/join from a host without a certificate yet (fields checked by
 * siteroutes.c): the leader spends the token (a raft entry), signs the CSR with the site
 * CA for the next site-local host id and answers as the tower's join does. */
int sk_cluster_sign_join(void *ctx, const sk_site_join *j, json_t **answer)
{
        sk_cluster *cl = ctx;
        _cleanup_free_ char *site_ca = read_dir_file(cl, "site-ca.pem");
        _cleanup_wipe_ char *site_key = read_dir_file(cl, "site-ca.key");
        if (!site_ca || !site_key) {
                *answer = sk_siteapi_error("unavailable",
                                           "the leader holds no site CA (%s/site-ca.pem): "
                                           "its host joined before site CAs existed",
                                           cl->dir);
                return 503;
        }
        sk_identity id;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_identity_load(cl->dir, &id, &err);
        if (r < 0) {
                *answer = sk_siteapi_error("internal", "%s", sk_error_msg(err, r));
                return 500;
        }
        char hash[65];
        sha256_hex(j->token, hash);
        int64_t now = sk_clock_wall(cl->clock);
        int status = claim_token(cl, hash, j->name, now, answer);
        int64_t host_id = status ? 0 : spend_token(cl, hash, now, id.site_id, answer);
        _cleanup_free_ char *chain =
            host_id > 0 ? sign(site_ca, site_key, j, id.site_id, host_id, &status, answer) : NULL;
        if (host_id < 0)
                status = (int)-host_id;
        if (chain) {
                *answer =
                    json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:o, s:{s:s, s:s}}",
                              "tower", id.tower, "site", id.site, "tenant", id.tenant, "host",
                              j->name, "site-id", (json_int_t)id.site_id, "host-id",
                              (json_int_t)host_id, "certificate", chain, "ca", cl->ca_pem, "peers",
                              peers_of(cl), "site-ca", "certificate", site_ca, "key", site_key);
                status = *answer ? 200 : 500;
                sk_info("cluster: host %s joined site %s locally (host-id %lld)", j->name, id.site,
                        (long long)host_id);
        }
        sk_identity_clear(&id);
        return status;
}
