/* Where the CLI finds the tower: address, token and CA, from flags, environment
 * (SKERRY_ADDR, SKERRY_TOKEN, SKERRY_CA) and the config file `skerry login` writes
 * ($XDG_CONFIG_HOME/skerry/config.json or ~/.config/skerry/config.json). Flags win over the
 * environment, which wins over the file; each field is resolved on its own. */
#ifndef SK_CLI_CONFIG_H
#define SK_CLI_CONFIG_H

#include "common/error.h"

typedef struct sk_cli_config {
        char *addr;  /* "https://127.0.0.1:7443" once normalised */
        char *token; /* bearer token */
        char *ca;    /* PEM file to verify the tower with */
} sk_cli_config;

void sk_cli_config_clear(sk_cli_config *c);

/* "127.0.0.1:7443" -> "https://127.0.0.1:7443"; a bare host gets port 7443; "http://" and
 * "https://" are kept; a trailing '/' is dropped. Anything else is -EINVAL. */
int sk_cli_normalize_addr(const char *addr, char **out, sk_error **err);

/* The config file's path: $XDG_CONFIG_HOME/skerry/config.json when that is an absolute
 * path, else $HOME/.config/skerry/config.json. Either argument may be NULL. */
int sk_cli_config_path(const char *xdg_config_home, const char *home, char **out, sk_error **err);

/* Parses the file's JSON text; `name` (the path) prefixes every message. */
int sk_cli_config_parse(const char *text, const char *name, sk_cli_config *out, sk_error **err);
/* Reads and parses path; a missing file leaves *out empty and returns 0. */
int sk_cli_config_load(const char *path, sk_cli_config *out, sk_error **err);
/* Writes c atomically to path with mode 0600, creating missing folders with mode 0700. */
int sk_cli_config_save(const char *path, const sk_cli_config *c, sk_error **err);

/* Field by field: flags, else env, else file (empty strings count as unset). The address
 * is normalised; a bad one is an error naming where it came from. */
int sk_cli_config_resolve(const sk_cli_config *flags, const sk_cli_config *env,
                          const sk_cli_config *file, const char *file_name, sk_cli_config *out,
                          sk_error **err);

static inline void sk_cli_config_clearp(sk_cli_config *c)
{
        sk_cli_config_clear(c);
}
#define _cleanup_cli_config_ __attribute__((cleanup(sk_cli_config_clearp)))

#endif
