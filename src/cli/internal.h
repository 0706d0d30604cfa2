/* Shared between the CLI's verb implementations; not for other modules. */
#ifndef SK_CLI_INTERNAL_H
#define SK_CLI_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/api.h"
#include "cli/config.h"
#include "common/error.h"
#include "model/spec.h"

/* Exit codes (DESIGN.md section 3). */
enum { SK_EXIT_OK = 0, SK_EXIT_ERROR = 1, SK_EXIT_USAGE = 2 };

/* Flags a verb may take besides the global ones (--addr, --token, --ca, --tenant, --help). */
enum {
        SK_OPT_OUTPUT = 1 << 0,
        SK_OPT_SITE = 1 << 1,
        SK_OPT_VERSION = 1 << 2,
        SK_OPT_TTL = 1 << 3,
        SK_OPT_PRINT = 1 << 4,
        SK_OPT_WATCH = 1 << 5,
        SK_OPT_FILE = 1 << 6,
        SK_OPT_ROLE = 1 << 7,
        SK_OPT_NAME = 1 << 8,
        SK_OPT_SINCE = 1 << 9,
        SK_OPT_SELECTOR = 1 << 10,
        SK_OPT_DRY_RUN = 1 << 11,
        SK_OPT_TIMEOUT = 1 << 12,
        SK_OPT_MAN = 1 << 13,
};

typedef struct sk_cli_verb sk_cli_verb;

typedef struct sk_cli_ctx {
        const sk_cli_verb *verb;
        /* flags, pointing into argv */
        const char *addr, *token, *ca, *tenant, *output, *site, *version, *ttl;
        const char *role, *token_name, *since; /* token create --role --name; --since */
        /* --site-local ADDR --agent-data DIR: ask an agent's site-local API, not the tower */
        const char *site_local, *agent_data;
        struct sk_site_client *site_client;
        const char *selector, *timeout; /* get -l EXPR; rollout status --timeout */
        bool print, watch, dry_run, man;
        const char **files;
        size_t nfiles;
        /* positional arguments after the verb's words */
        char **args;
        size_t nargs;
        /* set by sk_cli_connect */
        sk_cli_config cfg;
        sk_cli_client client;
} sk_cli_ctx;

/* Prints "skerry: MESSAGE" and returns SK_EXIT_ERROR. */
int sk_cli_fail(const sk_error *err, int r);
/* Prints an API error (with the field path and a hint on 401) and returns SK_EXIT_ERROR. */
int sk_cli_api_fail(const sk_cli_api_err *e);
/* Prints the message and the verb's usage line; returns SK_EXIT_USAGE. */
int sk_cli_usage_error(const sk_cli_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resolves flags/env/config file and opens the client; with_token false leaves the token
 * out (login). Prints the error and returns SK_EXIT_ERROR on failure. */
int sk_cli_connect(sk_cli_ctx *c, bool with_token);
/* One request; prints any error. Returns an exit code. raw may be NULL. */
int sk_cli_request(sk_cli_ctx *c, const char *method, const char *path, const json_t *body,
                   json_t **out, char **raw);

/* The kind named by word, or NULL after printing a usage error. */
const sk_kind_info *sk_cli_kind_arg(const sk_cli_ctx *c, const char *word);

/* Reads a password from the terminal without echo, or one line from stdin when it is not
 * a terminal. confirm asks twice on a terminal. Caller wipes and frees. */
int sk_cli_read_password(const char *prompt, bool confirm, char **out, sk_error **err);

/* The verbs' table, for help, completion and the man page (cli.c). */
struct sk_cli_verb {
        const char *name;
        const char *sub; /* second word ("site token"), or NULL */
        int (*fn)(sk_cli_ctx *c);
        unsigned opts;
        size_t min_args, max_args;
        const char *usage;
        const char *help;
};
const sk_cli_verb *sk_cli_verbs(size_t *n);
extern const char sk_cli_global_help[];
/* The kinds the tower serves, as `get` takes them, and their short names. */
extern const char *const sk_cli_kind_words[];

int sk_cli_cmd_apply(sk_cli_ctx *c);
int sk_cli_cmd_diff(sk_cli_ctx *c);
int sk_cli_cmd_delete_files(sk_cli_ctx *c);
int sk_cli_cmd_completion(sk_cli_ctx *c);
/* The man page (roff) from the same help text; `skerry help --man`. */
int sk_cli_write_man(FILE *f);
int sk_cli_cmd_get(sk_cli_ctx *c);
int sk_cli_cmd_describe(sk_cli_ctx *c);
int sk_cli_cmd_delete(sk_cli_ctx *c);
int sk_cli_cmd_match(sk_cli_ctx *c);
int sk_cli_cmd_rollout_status(sk_cli_ctx *c);
int sk_cli_cmd_whoami(sk_cli_ctx *c);
int sk_cli_cmd_site_token(sk_cli_ctx *c);
int sk_cli_cmd_login(sk_cli_ctx *c);
int sk_cli_cmd_user_password(sk_cli_ctx *c);
int sk_cli_cmd_token_list(sk_cli_ctx *c);
int sk_cli_cmd_token_create(sk_cli_ctx *c);
int sk_cli_cmd_token_revoke(sk_cli_ctx *c);
int sk_cli_cmd_get_events(sk_cli_ctx *c);

#endif
