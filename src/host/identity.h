/* Who this agent is, as the join made it: DIR/identity.json beside DIR/key.pem (0600),
 * DIR/cert.pem, DIR/ca.pem and the site's CA (DIR/site-ca.pem, DIR/site-ca.key 0600). The identity
 * file is written last, so its presence means the join completed. */
#ifndef SK_HOST_IDENTITY_H
#define SK_HOST_IDENTITY_H

#include <jansson.h>
#include <stdint.h>

#include "common/error.h"

typedef struct sk_identity {
        char *tower;  /* URL */
        char *site;   /* site name */
        char *tenant; /* the site's tenant */
        char *host;   /* this host's name on the site */
        int64_t site_id, host_id;
        char *runtime;  /* runtime URL */
        char *listen;   /* ADDR:PORT for peers (site clustering, next) */
        char *dev_dir;  /* where device nodes are looked for */
        json_t *labels; /* host labels, object */
} sk_identity;

/* -ENOENT when DIR holds no identity (not joined yet). */
int sk_identity_load(const char *dir, sk_identity *id, sk_error **err);
int sk_identity_save(const char *dir, const sk_identity *id, sk_error **err);
void sk_identity_clear(sk_identity *id);

/* DIR/<name>; caller frees. */
char *sk_identity_path(const char *dir, const char *name);

typedef struct sk_join_request {
        const char *tower;   /* URL */
        const char *ca_file; /* verifies the tower */
        const char *token;
        const char *name;     /* host name */
        const json_t *labels; /* host labels */
        const char *address;  /* --listen: where the site's other hosts reach this one */
} sk_join_request;

/* Makes a key and CSR, POSTs /v1/join and stores the key, certificate, CA, the site's
 * other hosts as the tower named them (DIR/peers.json, an array; empty for the first host
 * of a site, which then starts the site cluster) and the identity
 * (with tower, name and labels; the caller sets runtime/listen/dev-dir and saves again
 * as needed). A refusal is -EACCES (401), -EEXIST (409) or -EPROTO with the tower's
 * message. */
int sk_agent_join(const char *dir, const sk_join_request *req, sk_identity *out, sk_error **err);

/* What a join answered (the tower's or a site peer's), into DIR: key.pem (0600), cert.pem,
 * ca (the CA the join was checked against), the site CA when the answer has one, the
 * site's other hosts (peers.json); *out filled (tower: the given URL, or the answer's
 * "tower" when NULL). The caller saves the identity file last. */
int sk_identity_store_join(const char *dir, const char *key, const char *ca, const json_t *ans,
                           const char *tower, const json_t *labels, sk_identity *out,
                           sk_error **err);

/* Host labels from "k=v,k=v" into an object; -EINVAL naming the bad item. */
int sk_parse_labels(const char *text, json_t **out, sk_error **err);

#endif
