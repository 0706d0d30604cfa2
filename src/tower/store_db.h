/* The store layer under store.h (docs/store.md): the calls of sk_store_ops are written once
 * (store_ops.c: row mapping and transaction shapes) over this small SQL engine
 * (store_db.c: statements, parameters, rows, nested transactions, migrations), and each
 * backend supplies only its dialect (store_sqlite.c, store_pg.c): how a statement runs and
 * its rows are read, transaction control, the schema, the statements its SQL writes
 * differently. Internal to src/tower: callers use store.h. */
#ifndef SK_TOWER_STORE_DB_H
#define SK_TOWER_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tower/store.h"

/* Every statement the layer runs. Its SQL is the common one (store_db.c, placeholders
 * $1..$n) unless the dialect gives its own; a statement neither gives is skipped (runs and
 * returns no rows): e.g. the advisory lock, which only PostgreSQL has. */
enum sk_stmt {
        SK_ST_RES_FIND,
        SK_ST_RES_INSERT,
        SK_ST_RES_UPDATE,
        SK_ST_RES_GET,
        SK_ST_RES_GET_ALL,
        SK_ST_RES_GET_ID,
        SK_ST_RES_LIST,
        SK_ST_RES_LIST_TENANT,
        SK_ST_RES_DELETE,
        SK_ST_RES_DELETE_ALL,
        SK_ST_REV_BUMP,
        SK_ST_REV_GET,
        SK_ST_SYNC_GET,
        SK_ST_SYNC_SET,
        SK_ST_JOIN_ADD,
        SK_ST_JOIN_GET,
        SK_ST_JOIN_USE,
        SK_ST_HOST_ADD,
        SK_ST_HOST_ADOPT,
        SK_ST_HOST_SEQ_GET, /* SQLite: an adopted id must not move the id sequence */
        SK_ST_HOST_SEQ_SET,
        SK_ST_HOST_GET,
        SK_ST_HOST_LIST,
        SK_ST_HOST_SEEN,
        SK_ST_HOST_REMOVE_MARK,
        SK_ST_HOST_DELETE,
        SK_ST_HOST_REMOVED_LIST,
        SK_ST_INST_DELETE_HOST,
        SK_ST_INST_INSERT,
        SK_ST_INST_LIST,
        SK_ST_INST_LIST_SITE,
        SK_ST_INST_DELETE_SITE,
        SK_ST_PW_SET,
        SK_ST_PW_GET,
        SK_ST_TOKEN_ADD,
        SK_ST_TOKEN_GET,
        SK_ST_TOKEN_REVOKE,
        SK_ST_TOKEN_ADD_API,
        SK_ST_TOKEN_LIST,
        SK_ST_EVENT_ADD,
        SK_ST_EVENT_LIST,
        SK_ST_EVENT_PRUNE_AGE,
        SK_ST_EVENT_PRUNE_COUNT,
        SK_ST_LOCK,
        SK_ST_SETTING_GET,
        SK_ST_SETTING_ADD,
        SK_ST__MAX,
};

/* Common statements a dialect extends (PostgreSQL locks the row it finds, names the id it
 * gives explicitly). */
#define SK_SQL_RES_FIND                                                                            \
        "SELECT id, json FROM resources"                                                           \
        " WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4"
#define SK_SQL_HOST_ADOPT(overriding)                                                              \
        "INSERT INTO hosts (id, site_id, name, labels_json, joined, last_seen)" overriding         \
        " VALUES ($1, $2, $3, $4, $5, $5)"

/* One parameter: text (NULL is SQL NULL) or an integer. */
typedef struct sk_param {
        const char *text;
        int64_t num;
        bool is_num;
} sk_param;

#define SK_TEXT(v) ((sk_param){.text = (v)})
#define SK_NUM(v)  ((sk_param){.num = (v), .is_num = true})

/* What a run ended with besides success (0) and errors (negative): a constraint failure
 * the caller turns into its own error. */
enum { SK_DB_FOREIGN_KEY = 1, SK_DB_UNIQUE = 2 };

typedef struct sk_store_db sk_store_db;

/* One run of a statement; its rows are read with sk_db_next, then released. */
typedef struct sk_query {
        sk_store_db *db;
        void *handle;    /* the dialect's statement or result */
        int id;          /* enum sk_stmt */
        int row;         /* the row read last, for a dialect that holds whole results */
        bool pending;    /* the run stepped onto the first row already */
        bool own;        /* the handle was made for this run only (the cached one was busy) */
        int64_t changes; /* rows a write changed */
} sk_query;

enum sk_tx_op {
        SK_TX_BEGIN,
        SK_TX_COMMIT,
        SK_TX_ROLLBACK,
        SK_TX_SAVEPOINT,
        SK_TX_RELEASE,
        SK_TX_ROLLBACK_TO,
};

/* The transaction the database holds for this connection. */
enum sk_tx_state { SK_TX_NONE, SK_TX_OPEN, SK_TX_FAILED };

typedef struct sk_store_dialect {
        const char *const *sql; /* [SK_ST__MAX]: the dialect's own statements, NULL: common */
        const char *const *migrations; /* append-only schema steps */
        size_t n_migrations;
        /* A failed statement fails the whole transaction (PostgreSQL): a call that may fail
         * on a constraint inside the caller's transaction runs under its own savepoint. */
        bool savepoint_per_call;

        /* Runs sql (statement q->id) with n parameters: 0, SK_DB_* (q keeps what errmsg
         * reads), or negative with err set. q->changes after a write. */
        int (*run)(sk_query *q, const char *sql, const sk_param *p, size_t n, sk_error **err);
        int (*next)(sk_query *q, sk_error **err);        /* 1 a row, 0 no more, negative */
        const char *(*text)(const sk_query *q, int col); /* "" for NULL */
        int64_t (*num)(const sk_query *q, int col);
        const char *(*errmsg)(const sk_query *q); /* after SK_DB_* */
        void (*release)(sk_query *q);

        int (*tx)(sk_store_db *db, enum sk_tx_op op, sk_error **err);
        enum sk_tx_state (*tx_state)(sk_store_db *db);

        /* Migrations: runs a schema step's SQL; reads and sets the schema version; lock
         * (optional) serializes towers migrating together, inside the step's transaction. */
        int (*exec)(sk_store_db *db, const char *sql, sk_error **err);
        int (*version_get)(sk_store_db *db, int64_t *version, sk_error **err);
        int (*version_set)(sk_store_db *db, int64_t version, sk_error **err);
        int (*migrate_lock)(sk_store_db *db, sk_error **err);

        void (*close)(sk_store_db *db); /* frees the backend's struct */
} sk_store_dialect;

/* The functions of a dialect: each backend defines them, static, by these names. */
#define SK_DIALECT_FUNCTIONS                                                                       \
        .run = dialect_run, .next = dialect_next, .text = dialect_text, .num = dialect_num,        \
        .errmsg = dialect_errmsg, .release = dialect_release, .tx = dialect_tx,                    \
        .tx_state = dialect_tx_state, .exec = dialect_exec, .version_get = dialect_version_get,    \
        .version_set = dialect_version_set, .close = dialect_close

/* Schema text both dialects write alike (inside their migration 2, which never changes). */
#define SK_SCHEMA_EVENTS_REST                                                                      \
        "  actor TEXT NOT NULL,"                                                                   \
        "  method TEXT NOT NULL,"                                                                  \
        "  path TEXT NOT NULL,"                                                                    \
        "  resource TEXT NOT NULL DEFAULT '',"                                                     \
        "  address TEXT NOT NULL DEFAULT '',"                                                      \
        "  status INTEGER NOT NULL);"                                                              \
        "CREATE INDEX events_time ON events (time);"

/* The head of every backend's struct: an sk_store* is an sk_store_db* is the backend's. */
struct sk_store_db {
        sk_store base;
        const sk_store_dialect *d;
        char *label; /* what errors name: the file, or the database */
        int depth;   /* begin/commit nesting */
};

/* The function table of store.h, written once (store_ops.c). */
extern const sk_store_ops sk_store_db_ops;

/* Sets up the head; label is copied. -ENOMEM. */
int sk_db_init(sk_store_db *db, const sk_store_dialect *d, const char *label, sk_error **err);
/* Migrates db to the dialect's newest schema and hands it to *out; closes it on failure. */
int sk_db_open_done(sk_store_db *db, sk_store **out, sk_error **err);
void sk_db_close(sk_store_db *db);

static inline sk_store_db *sk_db_of(sk_store *s)
{
        return (sk_store_db *)s;
}

/* Statements. */
int sk_db_run(sk_store_db *db, sk_query *q, enum sk_stmt id, const sk_param *p, size_t n,
              sk_error **err);
int sk_db_next(sk_query *q, sk_error **err);
const char *sk_db_text(const sk_query *q, int col);
int64_t sk_db_num(const sk_query *q, int col);
void sk_db_release(sk_query *q);
/* A constraint failure (SK_DB_*) the caller did not expect, as an error. */
int sk_db_fail(const sk_query *q, sk_error **err, const char *what);
/* Runs a write whose constraint failures are all errors: rows changed, or negative. */
int64_t sk_db_write(sk_store_db *db, enum sk_stmt id, const sk_param *p, size_t n, sk_error **err,
                    const char *what);
/* Runs a statement that finds at most one row: 1 on it (read it from q), 0 none. */
int sk_db_find(sk_store_db *db, sk_query *q, enum sk_stmt id, const sk_param *p, size_t n,
               sk_error **err);

#define _cleanup_query_ __attribute__((cleanup(sk_db_release)))

/* Transactions nest: the outermost level is a real transaction, inner levels savepoints. */
int sk_db_begin(sk_store *s, sk_error **err);
int sk_db_commit(sk_store *s, sk_error **err);
void sk_db_rollback(sk_store *s);

/* A call's own transaction, rolled back by the cleanup handler unless committed. */
typedef struct sk_tx {
        sk_store_db *db;
        bool open;
} sk_tx;

int sk_tx_begin(sk_tx *t, sk_store_db *db, sk_error **err);
/* For one statement: none is needed unless a failure would spoil the caller's
 * transaction (savepoint_per_call). */
int sk_tx_begin_call(sk_tx *t, sk_store_db *db, sk_error **err);
int sk_tx_commit(sk_tx *t, sk_error **err);
void sk_tx_cleanup(sk_tx *t);

#define _cleanup_tx_ __attribute__((cleanup(sk_tx_cleanup)))

#endif
