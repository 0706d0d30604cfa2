/* Talking to the tower's API (docs/api.md): request paths, error bodies, and the client the
 * verbs share. The path and error functions are pure; sk_cli_call does the HTTP. */
#ifndef SK_CLI_API_H
#define SK_CLI_API_H

#include <jansson.h>

#include "cli/config.h"
#include "common/error.h"
#include "common/httpc.h"

/* "/v1/KINDS[/NAME[/SUB]][?k=v&...]": name and values percent-encoded; query is a
 * NULL-terminated list of key, value pairs whose NULL or empty values are left out. name,
 * sub and query may be NULL. */
char *sk_cli_resource_path(const char *plural, const char *name, const char *sub,
                           const char *const *query);

typedef struct sk_cli_api_err {
        long status;
        char *code;    /* "invalid", "not-found", ...; NULL when the body was not an API error */
        char *message; /* never NULL after sk_cli_api_err_parse */
        char *path;    /* JSON path of the field at fault, or NULL */
        int column;    /* 1-based column in a label expression, or 0 */
} sk_cli_api_err;

/* Reads an error answer; a body that is not the API's error JSON gives "HTTP STATUS: first
 * line of the body". Returns 0 or -ENOMEM. */
int sk_cli_api_err_parse(long status, const char *body, sk_cli_api_err *out);
void sk_cli_api_err_clear(sk_cli_api_err *e);

/* The connection to the tower for one command. */
typedef struct sk_cli_client {
        sk_httpc *http;
        char *addr;
} sk_cli_client;

/* Needs cfg->addr (else an error saying how to give one). */
int sk_cli_client_open(const sk_cli_config *cfg, sk_cli_client *c, sk_error **err);
void sk_cli_client_close(sk_cli_client *c);

/* METHOD path with an optional JSON body. On a 2xx answer *out holds the parsed body (NULL
 * for an empty one) and 0 is returned. On an API error *api_err is filled (caller clears)
 * and -EPROTO returned; on a transport failure the error says which address was tried and
 * why, and another negative code is returned. */
int sk_cli_call(sk_cli_client *c, const char *method, const char *path, const json_t *body,
                json_t **out, sk_cli_api_err *api_err, sk_error **err);
/* Same, with the raw body of a 2xx answer kept too (for `-o json`); caller frees *raw. */
int sk_cli_call_raw(sk_cli_client *c, const char *method, const char *path, const json_t *body,
                    json_t **out, char **raw, sk_cli_api_err *api_err, sk_error **err);

#endif
