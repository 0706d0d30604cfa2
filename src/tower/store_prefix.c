/* The upper bound of a prefix range (store_prefix.h). */
#include "tower/store_prefix.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Decodes the character at s (n bytes left): its length, or 0 when it is not valid UTF-8
 * (overlong, a surrogate, above U+10FFFF, cut short). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        size_t len = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
        if (s[0] >= 0xf5)
                len = 0;
        if (len == 0 || len > n)
                return 0;
        uint32_t c = len == 1 ? s[0] : s[0] & (0x7f >> len);
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
                return 0;
        *cp = c;
        return len;
}

static size_t utf8_encode(uint32_t c, char *out)
{
        if (c < 0x80) {
                out[0] = (char)c;
                return 1;
        }
        size_t len = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        for (size_t i = len - 1; i > 0; i--, c >>= 6)
                out[i] = (char)(0x80 | (c & 0x3f));
        out[0] = (char)(((0xf00 >> len) & 0xff) | c);
        return len;
}

/* Valid UTF-8: the start of the last character whose successor exists and its successor,
 * or -1 when there is none; -2 when s is not valid UTF-8. */
static ptrdiff_t last_char(const char *s, size_t len, uint32_t *next)
{
        ptrdiff_t at = -1;
        for (size_t i = 0; i < len;) {
                uint32_t c;
                size_t n = utf8_decode((const unsigned char *)s + i, len - i, &c);
                if (n == 0)
                        return -2;
                if (c < 0x10ffff) {
                        at = (ptrdiff_t)i;
                        *next = c + 1 == 0xd800 ? 0xe000 : c + 1;
                }
                i += n;
        }
        return at;
}

/* Not valid UTF-8: drops trailing 0xff bytes and increments the last byte left. */
static ptrdiff_t last_byte(const char *s, size_t len)
{
        while (len > 0 && (unsigned char)s[len - 1] == 0xff)
                len--;
        return (ptrdiff_t)len - 1;
}

int sk_store_prefix_end(const char *prefix, char **end, sk_error **err)
{
        size_t len = strlen(prefix);
        *end = NULL;
        uint32_t next = 0;
        ptrdiff_t at = last_char(prefix, len, &next);
        bool bytes = at == -2;
        if (bytes)
                at = last_byte(prefix, len);
        if (at < 0)
                return 0;
        char *e = malloc((size_t)at + 5);
        if (!e)
                return sk_error_set(err, ENOMEM, "store: out of memory");
        memcpy(e, prefix, (size_t)at);
        if (bytes) {
                e[at] = (char)((unsigned char)prefix[at] + 1);
                at++;
        } else {
                at += (ptrdiff_t)utf8_encode(next, e + at);
        }
        e[at] = '\0';
        *end = e;
        return 0;
}
