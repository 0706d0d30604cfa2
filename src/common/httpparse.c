#include "common/httpparse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum {
        ST_STATUS,
        ST_HEADER,
        ST_BODY_LEN,   /* Content-Length bytes */
        ST_BODY_CLOSE, /* everything until the connection ends */
        ST_CHUNK_SIZE,
        ST_CHUNK_DATA,
        ST_CHUNK_END, /* the CRLF after a chunk's data */
        ST_TRAILER,
        ST_DONE,
};

/* A chunk or body larger than this is not something we ever ask for. */
#define BODY_MAX ((uint64_t)1 << 60)

void sk_http_parser_init(sk_http_parser *p, bool head, sk_http_body_fn on_body, void *user)
{
        memset(p, 0, sizeof(*p));
        p->state = ST_STATUS;
        p->head = head;
        p->on_body = on_body;
        p->user = user;
}

bool sk_http_parser_done(const sk_http_parser *p)
{
        return p->state == ST_DONE;
}

bool sk_http_parser_has_status(const sk_http_parser *p)
{
        return p->status >= 200;
}

static int parse_status(sk_http_parser *p, const char *s)
{
        if (strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
                return -EPROTO;
        const char *c = s + 9;
        if (c[0] < '1' || c[0] > '5' || c[1] < '0' || c[1] > '9' || c[2] < '0' || c[2] > '9' ||
            (c[3] != '\0' && c[3] != ' '))
                return -EPROTO;
        p->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
        /* HTTP/1.0 closes unless it says keep-alive (seen in the headers). */
        p->close = s[7] == '0';
        p->chunked = p->has_length = false;
        p->remaining = 0;
        p->header_bytes = 0;
        p->state = ST_HEADER;
        return 0;
}

/* Whether the comma-separated list value holds token (case-insensitive). */
static bool has_token(const char *value, const char *token, bool last_only)
{
        size_t tl = strlen(token);
        bool found = false;
        for (const char *s = value; *s;) {
                while (*s == ' ' || *s == '\t' || *s == ',')
                        s++;
                const char *e = s;
                while (*e && *e != ',')
                        e++;
                const char *t = e;
                while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                        t--;
                if (t > s)
                        found = (size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0;
                if (found && !last_only)
                        return true;
                s = e;
        }
        return found;
}

static int parse_length(sk_http_parser *p, const char *v)
{
        uint64_t len = 0;
        if (!*v)
                return -EPROTO;
        for (; *v; v++) {
                if (*v < '0' || *v > '9' || len > BODY_MAX / 10)
                        return -EPROTO;
                len = len * 10 + (uint64_t)(*v - '0');
        }
        if (len > BODY_MAX || (p->has_length && p->remaining != len))
                return -EPROTO;
        p->has_length = true;
        p->remaining = len;
        return 0;
}

static int parse_header(sk_http_parser *p, char *s)
{
        if (*s == ' ' || *s == '\t') /* obsolete line folding */
                return -EPROTO;
        char *colon = strchr(s, ':');
        if (!colon || colon == s)
                return -EPROTO;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
                v++;
        char *end = v + strlen(v);
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = '\0';
        if (strcasecmp(s, "Content-Length") == 0)
                return parse_length(p, v);
        if (strcasecmp(s, "Transfer-Encoding") == 0) {
                /* Anything but chunked last leaves the body to the end of the connection. */
                p->chunked = has_token(v, "chunked", true);
                if (!p->chunked)
                        p->close = true;
        } else if (strcasecmp(s, "Connection") == 0) {
                if (has_token(v, "close", false))
                        p->close = true;
                else if (has_token(v, "keep-alive", false))
                        p->close = false;
        }
        return 0;
}

static void end_of_headers(sk_http_parser *p)
{
        if (p->status < 200) { /* an interim response: the real one follows */
                p->status = 0;
                p->state = ST_STATUS;
        } else if (p->head || p->status == 204 || p->status == 304) {
                /* no body follows, whatever Content-Length says it would be */
                p->remaining = 0;
                p->state = ST_DONE;
        } else if (p->chunked) {
                p->state = ST_CHUNK_SIZE;
        } else if (p->has_length) {
                p->state = p->remaining ? ST_BODY_LEN : ST_DONE;
        } else {
                p->close = true;
                p->state = ST_BODY_CLOSE;
        }
}

static int parse_chunk_size(sk_http_parser *p, const char *s)
{
        uint64_t size = 0;
        const char *c = s;
        for (;; c++) {
                int d;
                if (*c >= '0' && *c <= '9')
                        d = *c - '0';
                else if (*c >= 'a' && *c <= 'f')
                        d = *c - 'a' + 10;
                else if (*c >= 'A' && *c <= 'F')
                        d = *c - 'A' + 10;
                else
                        break;
                if (size > BODY_MAX / 16)
                        return -EPROTO;
                size = size * 16 + (uint64_t)d;
        }
        if (c == s || (*c && *c != ';' && *c != ' ' && *c != '\t'))
                return -EPROTO;
        p->remaining = size;
        p->state = size ? ST_CHUNK_DATA : ST_TRAILER;
        return 0;
}

/* One complete line (CR LF or LF stripped) in the state that expects a line. */
static int on_line(sk_http_parser *p, char *s, size_t len)
{
        if (p->state == ST_HEADER || p->state == ST_TRAILER) {
                p->header_bytes += len + 2;
                if (p->header_bytes > SK_HTTP_HEADERS_MAX)
                        return -EPROTO;
        }
        switch (p->state) {
        case ST_STATUS:
                return parse_status(p, s);
        case ST_HEADER:
                if (len == 0) {
                        end_of_headers(p);
                        return 0;
                }
                return parse_header(p, s);
        case ST_CHUNK_SIZE:
                return parse_chunk_size(p, s);
        case ST_CHUNK_END:
                if (len != 0)
                        return -EPROTO;
                p->state = ST_CHUNK_SIZE;
                return 0;
        case ST_TRAILER:
                if (len == 0)
                        p->state = ST_DONE;
                return 0; /* trailer fields are not used */
        default:
                return -EPROTO;
        }
}

/* Takes bytes of a line; returns how many, or negative. */
static ssize_t feed_line(sk_http_parser *p, const char *data, size_t n)
{
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) + 1 : n;
        size_t keep = nl ? take - 1 : take;
        if (p->line_len + keep >= sizeof(p->line))
                return -EPROTO;
        memcpy(p->line + p->line_len, data, keep);
        p->line_len += keep;
        if (!nl)
                return (ssize_t)take;
        size_t len = p->line_len;
        if (len > 0 && p->line[len - 1] == '\r')
                len--;
        p->line[len] = '\0';
        p->line_len = 0;
        if (memchr(p->line, '\0', len)) /* a NUL inside a line */
                return -EPROTO;
        int r = on_line(p, p->line, len);
        return r < 0 ? r : (ssize_t)take;
}

static ssize_t feed_body(sk_http_parser *p, const char *data, size_t n)
{
        size_t take = n;
        if (p->state != ST_BODY_CLOSE && (uint64_t)take > p->remaining)
                take = (size_t)p->remaining;
        if (take && p->on_body && p->on_body(data, take, p->user) != 0)
                return -ECANCELED;
        if (p->state != ST_BODY_CLOSE) {
                p->remaining -= take;
                if (!p->remaining)
                        p->state = p->state == ST_CHUNK_DATA ? ST_CHUNK_END : ST_DONE;
        }
        return (ssize_t)take;
}

ssize_t sk_http_parser_feed(sk_http_parser *p, const char *data, size_t n)
{
        size_t used = 0;
        while (used < n && p->state != ST_DONE) {
                bool body = p->state == ST_BODY_LEN || p->state == ST_BODY_CLOSE ||
                            p->state == ST_CHUNK_DATA;
                ssize_t k = body ? feed_body(p, data + used, n - used)
                                 : feed_line(p, data + used, n - used);
                if (k < 0)
                        return k;
                used += (size_t)k;
        }
        return (ssize_t)used;
}

int sk_http_parser_eof(sk_http_parser *p)
{
        if (p->state == ST_BODY_CLOSE)
                p->state = ST_DONE;
        return p->state == ST_DONE ? 0 : -EPROTO;
}
