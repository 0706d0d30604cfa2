/* Joining a site through one of its hosts while the tower is unreachable
 * (docs/site-cluster.md): `skerry agent --join TOKEN --peer ADDR:PORT`. */
#ifndef SK_SITE_SITEJOIN_H
#define SK_SITE_SITEJOIN_H

#include <jansson.h>

#include "common/error.h"
#include "host/identity.h"

typedef struct sk_site_join_request {
        const char *peer;     /* ADDR:PORT of a host of the site (its --listen) */
        const char *token;    /* "SECRET.FINGERPRINT" from `skerry --site-local ... site token` */
        const char *name;     /* host name */
        const json_t *labels; /* host labels */
        const char *address;  /* --listen: where the site's other hosts reach this one */
} sk_site_join_request;

/* Splits a site-local token into its secret and the SHA-256 fingerprint (hex) of the CA it
 * pins; -EINVAL naming what is wrong. */
int sk_site_token_parse(const char *token, char secret[65], char fingerprint[65], sk_error **err);

/* Reads the CA from the peer (GET /v1/site/ca, no certificate on either side trusted yet)
 * and keeps it only if its SHA-256 is the token's fingerprint; then, verifying the peer
 * against it, POSTs /v1/site/join with a fresh key's CSR and stores what sk_agent_join
 * stores (cert.pem holds the host certificate followed by the site CA's). */
int sk_agent_join_site(const char *dir, const sk_site_join_request *req, sk_identity *out,
                       sk_error **err);

#endif
