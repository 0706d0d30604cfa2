/* Each site's CA, kept by the tower so that every host of the site can hold it and a leader
 * can sign a new host while the tower is unreachable (docs/site-cluster.md). */
#ifndef SK_TOWER_SITECA_H
#define SK_TOWER_SITECA_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/pki.h"
#include "tower/store.h"

/* The CA of site_id, issued by ca on first use and kept in the store's settings as
 * "site-ca/<id>" with its key sealed (libsodium secretbox) by a secret derived from the
 * tower CA's key, so the store alone does not reveal it. Replicas racing to create it
 * agree on the first. Both PEM; caller frees (and wipes the key). */
int sk_tower_site_ca(sk_store *s, sk_ca *ca, int64_t site_id, char **cert_pem, char **key_pem,
                     sk_error **err);

/* Generations (docs/security.md, "Host removal and the site CA"): removing a host re-keys
 * its site's CA, and only the newest generation signs hosts the tower accepts. */
#define SK_SITE_CA_GENERATIONS_MAX 100000

typedef struct sk_tower_site_ca_info {
        int generation; /* 1, 2, ... */
        char *cert_pem, *key_pem;
        char sha256[SK_PKI_FP_LEN]; /* of the certificate */
} sk_tower_site_ca_info;

/* The current generation of site_id's CA; issued (generation 1) when create and there is
 * none, else -ENOENT. Free with sk_tower_site_ca_info_wipe. */
int sk_tower_site_ca_get(sk_store *s, sk_ca *ca, int64_t site_id, bool create,
                         sk_tower_site_ca_info *out, sk_error **err);
void sk_tower_site_ca_info_wipe(sk_tower_site_ca_info *i);

/* Issues the next generation (a new key) and so retires the current one; *generation is
 * the new one, or 0 when the site has no site CA (then no host holds a key to retire). */
int sk_tower_site_ca_rekey(sk_store *s, sk_ca *ca, int64_t site_id, int *generation,
                           sk_error **err);

/* The current generation (0: none) and its certificate's SHA-256, without unsealing. */
int sk_tower_site_ca_current(sk_store *s, int64_t site_id, int *generation,
                             char sha256[SK_PKI_FP_LEN], sk_error **err);

/* 0 when a host's chain goes through no site CA, through site_id's current one, or is the
 * very certificate the tower adopted host_id with (a retired key cannot make that one
 * again); -EACCES otherwise. */
int sk_tower_site_ca_check(sk_store *s, int64_t site_id, int64_t host_id, const sk_pki_chain *chain,
                           sk_error **err);

/* Adopted hosts' certificates: kept by SHA-256 as the setting "site-leaf/<host-id>", and
 * listed for a site's desired document (those of its current hosts; NULL on failure). */
int sk_tower_site_leaf_keep(sk_store *s, int64_t host_id, const char *leaf_fp, sk_error **err);
json_t *sk_tower_site_leaves(sk_store *s, int64_t site_id);

#endif
