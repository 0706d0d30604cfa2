/* Start-up of a tower whose store is shared with other replicas (PostgreSQL): one CA for
 * all, kept in the store with its private key sealed by DATA/store.key. */
#ifndef SK_TOWER_REPLICA_H
#define SK_TOWER_REPLICA_H

#include "common/error.h"
#include "common/pki.h"
#include "tower/store.h"

/* Call inside a transaction holding SK_STORE_LOCK_BOOTSTRAP. When the store has no CA yet,
 * stores this replica's (DIR/ca.pem and ca.key, created when missing), sealing the key with
 * DIR/store.key (created when missing). Otherwise opens the stored key with DIR/store.key,
 * writes DIR/ca.key and DIR/ca.pem when they differ, and loads them. */
int sk_tower_replica_ca(sk_store *s, const char *dir, sk_ca **ca, sk_error **err);

#endif
