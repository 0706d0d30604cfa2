/* A small synchronous HTTP/1.1 client over GnuTLS and plain or unix sockets, for the CLI
 * (to the tower), the agent (uplink to the tower and calls between the hosts of a site,
 * with a client certificate) and the runtime driver (Docker Engine API over a unix
 * socket). One sk_httpc per thread; it keeps its connection alive. Its own code rather
 * than libcurl: the agent runs on every edge host and libcurl brings a dozen libraries
 * (Kerberos, LDAP, libcrypto, libssh2...) into its memory (docs/benchmarks.md). */
#ifndef SK_COMMON_HTTPC_H
#define SK_COMMON_HTTPC_H

#include <stddef.h>

#include "common/error.h"

typedef struct sk_httpc sk_httpc;

typedef struct sk_httpc_opts {
        const char *base_url;    /* "https://127.0.0.1:7443" or "http://d" with unix_socket */
        const char *unix_socket; /* path of a unix socket to connect through, or NULL */
        const char *ca_file;     /* PEM bundle to verify the server with, or NULL */
        const char *cert_file;   /* client certificate (PEM), or NULL */
        const char *key_file;    /* client private key (PEM), or NULL */
        const char *token;       /* sent as "Authorization: Bearer TOKEN", or NULL */
        long connect_timeout_ms; /* 0: 10 s */
        /* Checks the server instead of ca_file and the host name (hosts of a site pin their
         * site CA): called with the gnutls_session_t after each handshake, before anything
         * is sent; non-zero refuses, and the request fails with -EACCES and the reason the
         * check wrote into why. */
        int (*verify)(void *tls_session, void *user, char *why, size_t why_len);
        void *verify_user;
        int tls13_only; /* refuse TLS 1.2 (TLS 1.2 and newer otherwise) */
} sk_httpc_opts;

typedef struct sk_http_response {
        long status; /* HTTP status code, 0 when no response came */
        char *body;  /* NUL-terminated, never NULL after a successful request */
        size_t len;
} sk_http_response;

int sk_httpc_new(const sk_httpc_opts *opts, sk_httpc **out, sk_error **err);
void sk_httpc_free(sk_httpc *c);

/* Sends METHOD base_url+path with an optional body (JSON when content_type is NULL).
 * timeout_ms 0 means no overall limit (long-polls, streams). Returns 0 when any HTTP
 * response arrived (whatever its status), negative on transport failure. */
int sk_httpc_request(sk_httpc *c, const char *method, const char *path, const char *body,
                     size_t body_len, const char *content_type, long timeout_ms,
                     sk_http_response *resp, sk_error **err);

/* Streams the response body to on_data until it returns non-zero or the server closes.
 * For Docker's /events and log streams. */
typedef int (*sk_httpc_data_fn)(const char *data, size_t len, void *user);
int sk_httpc_stream(sk_httpc *c, const char *method, const char *path, sk_httpc_data_fn on_data,
                    void *user, long *status, sk_error **err);

/* check is called about once a second while a request or stream of c is under way (also
 * while idle in a long-poll); when it returns non-zero the transfer is aborted and the call
 * returns -ECANCELED. NULL removes it. */
void sk_httpc_set_abort(sk_httpc *c, int (*check)(void *user), void *user);

void sk_http_response_free(sk_http_response *r);

/* Percent-encodes s for use in a URL path segment or query value. Caller frees. */
char *sk_url_escape(const char *s);

#define _cleanup_httpc_ __attribute__((cleanup(sk_httpc_freep)))
static inline void sk_httpc_freep(sk_httpc **c)
{
        if (*c)
                sk_httpc_free(*c);
}
#define _cleanup_response_ __attribute__((cleanup(sk_http_response_free)))

#endif
