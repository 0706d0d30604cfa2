/* Each site's CA, kept by the tower so that every host of the site can hold it and a leader
 * can sign a new host while the tower is unreachable (docs/site-cluster.md). */
#ifndef SK_TOWER_SITECA_H
#define SK_TOWER_SITECA_H

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

#endif
