/* The HTTP client's response parser (common/httpparse.h) on whatever a server or a
 * man in the middle of a plain connection sends. Fed whole and fed in pieces, it must come
 * to the same end: the same status, the same body bytes, the same completeness, the same
 * verdict on malformed input; it never takes more than it is given, and a complete
 * response with a Content-Length has exactly that many body bytes.
 *
 * Input: one byte of flags (bit 0: the request was HEAD), one byte for the size of the
 * pieces (1..256), then the bytes the server sent. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct body {
        char *data;
        size_t len;
};

static int collect(const char *d, size_t n, void *user)
{
        struct body *b = user;
        char *p = realloc(b->data, b->len + n);
        if (!p)
                abort();
        memcpy(p + b->len, d, n);
        b->data = p;
        b->len += n;
        return 0;
}

struct outcome {
        int error; /* 0, or the negative errno of the feed or the end */
        bool done;
        long status;
        bool length_known;
        uint64_t length_left;
        struct body body;
};

static void run(const char *in, size_t n, size_t piece, bool head, struct outcome *o)
{
        static sk_http_parser p; /* large: not on the stack */
        memset(o, 0, sizeof(*o));
        sk_http_parser_init(&p, head, collect, &o->body);
        size_t off = 0;
        while (off < n && !sk_http_parser_done(&p)) {
                size_t k = n - off < piece ? n - off : piece;
                ssize_t used = sk_http_parser_feed(&p, in + off, k);
                if (used < 0) {
                        o->error = (int)used;
                        break;
                }
                if ((size_t)used > k || ((size_t)used < k && !sk_http_parser_done(&p)))
                        abort();
                off += (size_t)used;
                if ((size_t)used < k)
                        break;
        }
        if (!o->error && !sk_http_parser_done(&p))
                o->error = sk_http_parser_eof(&p);
        o->done = sk_http_parser_done(&p);
        o->status = p.status;
        o->length_known = p.has_length && !p.chunked && !head;
        o->length_left = p.remaining;
        if (o->done && (o->status < 200 || o->status > 599))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        bool head = data[0] & 1;
        size_t piece = (size_t)data[1] + 1;
        const char *in = (const char *)data + 2;
        size_t n = size - 2;
        struct outcome whole, parts;
        run(in, n, n ? n : 1, head, &whole);
        run(in, n, piece, head, &parts);
        if (whole.error != parts.error || whole.done != parts.done ||
            whole.status != parts.status || whole.body.len != parts.body.len ||
            (whole.body.len && memcmp(whole.body.data, parts.body.data, whole.body.len) != 0))
                abort();
        if (whole.done && whole.length_known && whole.length_left != 0)
                abort();
        free(whole.body.data);
        free(parts.body.data);
        return 0;
}
