/* An incremental parser of HTTP/1.1 responses (status line, headers, a body framed by
 * Content-Length, chunked transfer coding or the end of the connection), apart from any
 * socket so that it can be fuzzed. The body goes to a callback as it arrives. */
#ifndef SK_COMMON_HTTPPARSE_H
#define SK_COMMON_HTTPPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SK_HTTP_LINE_MAX    8192  /* longest status, header or chunk-size line */
#define SK_HTTP_HEADERS_MAX 65536 /* all header lines of one response together */

/* Returns 0 to go on, non-zero to stop the response (the feed then returns -ECANCELED). */
typedef int (*sk_http_body_fn)(const char *data, size_t len, void *user);

typedef struct sk_http_parser {
        int state;
        long status;
        bool head;       /* the request was HEAD: no body whatever the headers say */
        bool chunked;    /* Transfer-Encoding: chunked */
        bool has_length; /* Content-Length seen */
        bool close;      /* the server closes the connection after this response */
        uint64_t remaining;
        size_t header_bytes;
        size_t line_len;
        char line[SK_HTTP_LINE_MAX];
        sk_http_body_fn on_body;
        void *user;
} sk_http_parser;

void sk_http_parser_init(sk_http_parser *p, bool head, sk_http_body_fn on_body, void *user);

/* Feeds the next n bytes of the connection. Returns how many were used (fewer than n only
 * once the response is complete: the rest belongs to no response), -EPROTO on a malformed
 * response, -ECANCELED when on_body asked to stop. */
ssize_t sk_http_parser_feed(sk_http_parser *p, const char *data, size_t n);

/* The connection ended: 0 when that completes the response (a body read until the end),
 * -EPROTO when the response was cut short. */
int sk_http_parser_eof(sk_http_parser *p);

bool sk_http_parser_done(const sk_http_parser *p);

/* The status line has been read (p->status is set); the body may still be coming. */
bool sk_http_parser_has_status(const sk_http_parser *p);

#endif
