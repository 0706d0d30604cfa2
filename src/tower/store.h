/* The tower's store seam (DESIGN.md section 6): one interface, backends behind a function
 * table (SQLite and PostgreSQL: one layer over two dialects, store_db.h), so API logic is
 * tested once for both.
 *
 * Every resource row belongs to a tenant. Documents are JSON text as validated by
 * model/spec.c and stored whole; the store indexes only what it must look up by. Names
 * are unique per (tenant, kind, name, version); version is "" for unversioned kinds.
 * All calls are made from one thread at a time (the tower's request thread). */
#ifndef SK_TOWER_STORE_H
#define SK_TOWER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define SK_STORE_ABI 2

typedef struct sk_store sk_store;

typedef struct sk_resource_row {
        int64_t id; /* stable while the row lives; a site's id goes into host certificates */
        const char *tenant;
        const char *kind; /* "site", "application", "deployment", "tenant", "user" */
        const char *name;
        const char *version;      /* "" when the kind has none */
        const char *json;         /* the stored document */
        int64_t created, updated; /* unix milliseconds */
} sk_resource_row;

/* Called per row; return non-zero to stop (that value is returned by the lister). */
typedef int (*sk_resource_fn)(const sk_resource_row *row, void *user);

typedef enum sk_put_result {
        SK_PUT_UNCHANGED = 0,
        SK_PUT_CREATED = 1,
        SK_PUT_UPDATED = 2
} sk_put_result;

typedef struct sk_host_row {
        int64_t id, site_id;
        const char *name;
        const char *labels_json;   /* host labels given at join */
        const char *status_json;   /* the last status report ("{}" before the first) */
        int64_t joined, last_seen; /* unix milliseconds */
} sk_host_row;
typedef int (*sk_host_fn)(const sk_host_row *row, void *user);

typedef struct sk_join_token {
        int64_t site_id;
        int64_t expires; /* unix milliseconds */
        int64_t used;    /* unix milliseconds, 0 when unused */
} sk_join_token;

typedef struct sk_instance_row {
        int64_t site_id, host_id;
        const char *instance; /* "<tenant>/<deployment>/<service>/<replica>" */
        const char *json;     /* status document as the agent reported it */
        int64_t updated;
} sk_instance_row;
typedef int (*sk_instance_fn)(const sk_instance_row *row, void *user);

typedef struct sk_token_row {
        const char *tenant, *user, *role;
        int64_t expires; /* unix milliseconds; 0 never */
        bool revoked;
        const char *hash; /* the SHA-256 hex it is stored by */
        const char *kind; /* "login" (the user's role applies) or "api" (its own role) */
        const char *name; /* what an API token is for; "" */
        int64_t created;  /* unix milliseconds */
} sk_token_row;
typedef int (*sk_token_fn)(const sk_token_row *row, void *user);

/* One audited change (docs/api.md, "Audit"). */
typedef struct sk_event_row {
        int64_t id, time;   /* time: unix milliseconds */
        const char *tenant; /* the tenant the change happened in */
        const char *actor;  /* "tenant/user" or "tenant/user token ID" */
        const char *method, *path;
        const char *resource; /* "kind/name" or "" */
        const char *address;  /* the client's address, or "" */
        int status;
} sk_event_row;
typedef int (*sk_event_fn)(const sk_event_row *row, void *user);

typedef struct sk_store_ops {
        int abi; /* SK_STORE_ABI */
        void (*close)(sk_store *s);

        /* Transactions nest by counting: only the outermost commit writes. */
        int (*begin)(sk_store *s, sk_error **err);
        int (*commit)(sk_store *s, sk_error **err);
        void (*rollback)(sk_store *s);

        /* Returns an sk_put_result (>= 0), or negative. *id gets the row id when id. */
        int (*resource_put)(sk_store *s, const char *tenant, const char *kind, const char *name,
                            const char *version, const char *json, int64_t *id, sk_error **err);
        /* version NULL: every version (the callback sees each). -ENOENT when none. */
        int (*resource_get)(sk_store *s, const char *tenant, const char *kind, const char *name,
                            const char *version, sk_resource_fn fn, void *user, sk_error **err);
        int (*resource_get_by_id)(sk_store *s, int64_t id, sk_resource_fn fn, void *user,
                                  sk_error **err);
        /* tenant NULL: all tenants. Ordered by tenant, name, version. */
        int (*resource_list)(sk_store *s, const char *tenant, const char *kind, sk_resource_fn fn,
                             void *user, sk_error **err);
        /* version NULL: all versions. Returns rows deleted (0: -ENOENT). */
        int (*resource_delete)(sk_store *s, const char *tenant, const char *kind, const char *name,
                               const char *version, sk_error **err);

        /* A monotonically increasing counter bumped by every resource write, so the sync
         * engine can tell that something changed. */
        int (*revision)(sk_store *s, int64_t *rev, sk_error **err);

        /* Per-site sync state: the generation the site's desired document has and the hash
         * of that document. -ENOENT before the first set. */
        int (*site_sync_get)(sk_store *s, int64_t site_id, int64_t *generation, char **hash,
                             sk_error **err);
        int (*site_sync_set)(sk_store *s, int64_t site_id, int64_t generation, const char *hash,
                             sk_error **err);

        /* Join tokens, stored by hash (never in clear). */
        int (*join_token_add)(sk_store *s, const char *token_hash, int64_t site_id, int64_t expires,
                              sk_error **err);
        int (*join_token_get)(sk_store *s, const char *token_hash, sk_join_token *out,
                              sk_error **err);
        /* Marks it used; -EALREADY when it already was. */
        int (*join_token_use)(sk_store *s, const char *token_hash, int64_t now, sk_error **err);

        /* Hosts. host_add returns -EEXIST when the site has a host of that name. */
        int (*host_add)(sk_store *s, int64_t site_id, const char *name, const char *labels_json,
                        int64_t now, int64_t *id, sk_error **err);
        /* A host that joined its site while the tower was unreachable, with the id the site
         * gave it (docs/site-cluster.md: far above the tower's own ids, which it leaves
         * where they were). -EEXIST when the id or the name is taken. */
        int (*host_adopt)(sk_store *s, int64_t site_id, int64_t host_id, const char *name,
                          const char *labels_json, int64_t now, sk_error **err);
        int (*host_get)(sk_store *s, int64_t host_id, sk_host_fn fn, void *user, sk_error **err);
        int (*host_list)(sk_store *s, int64_t site_id, sk_host_fn fn, void *user, sk_error **err);
        int (*host_seen)(sk_store *s, int64_t host_id, int64_t now, const char *status_json,
                         sk_error **err);
        /* Forgets a host (its instance rows go with it) and remembers its id as removed
         * from its site, so the site's desired document can say so; bumps the revision.
         * -ENOENT when unknown. */
        int (*host_delete)(sk_store *s, int64_t host_id, int64_t now, sk_error **err);
        /* The ids removed from a site, ascending (caller frees *ids; NULL when none). */
        int (*host_removed_list)(sk_store *s, int64_t site_id, int64_t **ids, size_t *n,
                                 sk_error **err);

        /* Instance status: a host's report replaces all rows of that host. */
        int (*instances_replace)(sk_store *s, int64_t site_id, int64_t host_id,
                                 const sk_instance_row *rows, size_t n, sk_error **err);
        /* site_id 0: all sites. prefix NULL or e.g. "default/pos-stores/" */
        int (*instances_list)(sk_store *s, int64_t site_id, const char *prefix, sk_instance_fn fn,
                              void *user, sk_error **err);
        int (*instances_delete_site)(sk_store *s, int64_t site_id, sk_error **err);

        /* Users' password hashes (Argon2id strings from libsodium) and API tokens by hash. */
        int (*password_set)(sk_store *s, const char *tenant, const char *user, const char *hash,
                            sk_error **err);
        int (*password_get)(sk_store *s, const char *tenant, const char *user, char **hash,
                            sk_error **err);
        int (*token_add)(sk_store *s, const char *token_hash, const char *tenant, const char *user,
                         const char *role, int64_t expires, sk_error **err);
        /* -ENOENT when unknown. */
        int (*token_get)(sk_store *s, const char *token_hash, sk_token_fn fn, void *user,
                         sk_error **err);
        int (*token_revoke)(sk_store *s, const char *token_hash, sk_error **err);

        /* An API token: kind "api", its own role and a name saying what it is for. */
        int (*api_token_add)(sk_store *s, const char *token_hash, const char *tenant,
                             const char *user, const char *role, int64_t expires, const char *name,
                             sk_error **err);
        /* The tokens of a tenant (user NULL: of every user), oldest first. */
        int (*token_list)(sk_store *s, const char *tenant, const char *user, sk_token_fn fn,
                          void *user_data, sk_error **err);

        /* The audit trail: append one event; list those at or after since, oldest first. */
        int (*event_add)(sk_store *s, const sk_event_row *ev, sk_error **err);
        int (*event_list)(sk_store *s, int64_t since, sk_event_fn fn, void *user, sk_error **err);
        /* Retention: deletes the events older than `before` (unix ms) and all but the
         * newest `keep` (keep < 0: no count limit); returns how many went. */
        int (*event_prune)(sk_store *s, int64_t before, int64_t keep, sk_error **err);

        /* Holds lock `key` until the current transaction ends, so that towers sharing the
         * store (PostgreSQL replicas) take turns: pg_advisory_xact_lock there; on SQLite,
         * where one process owns the file, nothing more is needed. -EINVAL outside a
         * transaction. Keys: SK_STORE_LOCK_*. */
        int (*lock)(sk_store *s, int64_t key, sk_error **err);
        /* Tower-wide settings shared by every replica (the CA when the store is shared).
         * get: -ENOENT when unset (caller frees *value); add: -EEXIST when already set. */
        int (*setting_get)(sk_store *s, const char *key, char **value, sk_error **err);
        int (*setting_add)(sk_store *s, const char *key, const char *value, sk_error **err);
} sk_store_ops;

/* Lock keys for sk_store_ops.lock. */
#define SK_STORE_LOCK_SYNC      1 /* recomputing sites' desired documents (sync.c) */
#define SK_STORE_LOCK_BOOTSTRAP 2 /* first start: CA, default tenant, admin token */

struct sk_store {
        const sk_store_ops *ops;
};

/* SQLite in WAL mode at path (created and migrated to the newest schema). */
int sk_store_sqlite_open(const char *path, sk_store **out, sk_error **err);

/* PostgreSQL through libpq at conninfo (e.g. "host=127.0.0.1 port=5432 dbname=skerry
 * user=skerry"), migrated to the newest schema. Several towers may share one database;
 * every revision bump sends NOTIFY skerry_revision (payload: the new revision) at commit. */
int sk_store_pg_open(const char *conninfo, sk_store **out, sk_error **err);

#endif
