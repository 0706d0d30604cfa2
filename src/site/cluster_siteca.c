/* The site CA's generations on the site (docs/security.md, "Host removal and the site
 * CA"): which site CA peers' chains must go through, the key files every host keeps, and
 * the leader bringing in a generation the tower announced once no removed host can
 * receive it. */
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "host/identity.h"
#include "site/cluster_int.h"

/* The announced generation's fingerprint, else the state's, else DIR/site-ca.pem's. */
static const char *pin_locked(sk_cluster *cl)
{
        const char *pin = sk_fsm_site_ca_pin(&cl->f);
        return pin ? pin : cl->site_ca_file_fp;
}

bool sk_cluster_site_ca_retired(const char *fp, const char *leaf_fp, void *user)
{
        sk_cluster *cl = user;
        pthread_mutex_lock(&cl->lock);
        bool r = sk_pki_check_site_ca(fp, pin_locked(cl), NULL) < 0 &&
                 !sk_fsm_site_ca_allows_leaf(&cl->f, leaf_fp);
        pthread_mutex_unlock(&cl->lock);
        return r;
}

void sk_cluster_site_ca_load(sk_cluster *cl)
{
        _cleanup_free_ char *path = sk_identity_path(cl->dir, "site-ca.pem");
        _cleanup_free_ char *pem = NULL;
        size_t len = 0;
        cl->site_ca_file_fp[0] = '\0';
        if (path && sk_file_read(path, &pem, &len, NULL) >= 0 &&
            sk_pki_fingerprint(pem, cl->site_ca_file_fp, NULL) < 0)
                cl->site_ca_file_fp[0] = '\0';
}

static int write_one(sk_cluster *cl, const char *name, const char *text, unsigned mode)
{
        _cleanup_free_ char *path = sk_identity_path(cl->dir, name);
        _cleanup_error_ sk_error *err = NULL;
        int r = path ? sk_file_write(path, text, strlen(text), mode, &err) : -ENOMEM;
        if (r < 0)
                sk_warn("cluster: keeping the new site CA: %s", sk_error_msg(err, r));
        return r;
}

void sk_cluster_site_ca_save(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        const json_t *ca = sk_fsm_site_ca(&cl->f);
        const char *sha = json_string_value(json_object_get(ca, "sha256"));
        bool newer = sha && strcmp(sha, cl->site_ca_file_fp) != 0;
        _cleanup_free_ char *cert =
            newer ? strdup(json_string_value(json_object_get(ca, "certificate"))) : NULL;
        _cleanup_wipe_ char *key =
            newer ? strdup(json_string_value(json_object_get(ca, "key"))) : NULL;
        int64_t gen = json_integer_value(json_object_get(ca, "generation"));
        pthread_mutex_unlock(&cl->lock);
        if (!newer || !cert || !key)
                return;
        /* The key first: the certificate's fingerprint is what says the pair is current. */
        if (write_one(cl, "site-ca.key", key, 0600) < 0 ||
            write_one(cl, "site-ca.pem", cert, 0644) < 0)
                return;
        pthread_mutex_lock(&cl->lock);
        snprintf(cl->site_ca_file_fp, sizeof(cl->site_ca_file_fp), "%s", sha);
        pthread_mutex_unlock(&cl->lock);
        sk_info("cluster: site CA generation %lld kept in %s/site-ca.pem", (long long)gen, cl->dir);
}

int64_t sk_cluster_site_ca_held(sk_cluster *cl)
{
        pthread_mutex_lock(&cl->lock);
        int64_t gen = sk_fsm_site_ca_generation(&cl->f);
        pthread_mutex_unlock(&cl->lock);
        return gen;
}

int sk_cluster_submit_site_ca(sk_cluster *cl, const json_t *ans)
{
        json_t *cmd = json_pack(
            "{s:s, s:O?, s:O?, s:O?, s:O?}", "op", "site-ca", "generation",
            json_object_get(ans, "generation"), "certificate", json_object_get(ans, "certificate"),
            "key", json_object_get(ans, "key"), "sha256", json_object_get(ans, "sha256"));
        if (!cmd)
                return -ENOMEM;
        pthread_mutex_lock(&cl->lock);
        int r = cl->leader_ready ? 0 : -EAGAIN;
        if (r == 0) {
                json_decref(cl->site_ca_pending);
                cl->site_ca_pending = cmd;
        } else {
                json_decref(cmd);
        }
        pthread_mutex_unlock(&cl->lock);
        return r;
}

/* A removed host still in the raft configuration would receive the entry, key and all:
 * wait until the configuration no longer names one (remove_members works on that). */
void sk_cluster_site_ca_propose(sk_cluster *cl)
{
        if (cl->change_inflight)
                return;
        const struct raft_configuration *c = &cl->raft.configuration;
        pthread_mutex_lock(&cl->lock);
        json_t *cmd = cl->site_ca_pending;
        /* The document announcing it lists the host whose removal made it: once that
         * document is applied, the deny list names every host that must not get it. */
        bool wait = cmd && sk_fsm_site_ca_announced(&cl->f) <
                               json_integer_value(json_object_get(cmd, "generation"));
        for (unsigned i = 0; cmd && i < c->n && !wait; i++)
                wait = sk_fsm_is_removed(&cl->f, (int64_t)c->servers[i].id);
        if (cmd && !wait)
                cl->site_ca_pending = NULL;
        pthread_mutex_unlock(&cl->lock);
        if (!cmd || wait)
                return;
        if (sk_cluster_propose(cl, cmd, false, NULL) == 0) {
                sk_info("cluster: proposing site CA generation %lld",
                        (long long)json_integer_value(json_object_get(cmd, "generation")));
                json_decref(cmd);
                return;
        }
        /* raft refused it for now: the next tick tries again, unless a newer one came. */
        pthread_mutex_lock(&cl->lock);
        if (!cl->site_ca_pending)
                cl->site_ca_pending = take_ptr(&cmd);
        pthread_mutex_unlock(&cl->lock);
        json_decref(cmd);
}
