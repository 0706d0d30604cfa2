/* Request target decoding (target.h). Strict on purpose: a parameter whose bytes are lost
 * or cut short changes what a request means (a DELETE of one version that deleted them
 * all), so anything doubtful is a 400 naming the parameter, never silently dropped. */
#include "tower/target.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

bool sk_utf8_valid(const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s, *end = p + len;
        while (p < end) {
                unsigned c = *p++;
                if (c < 0x80)
                        continue;
                int n;
                unsigned cp, min;
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1, cp = c & 0x1f, min = 0x80;
                else if (c >= 0xe0 && c <= 0xef)
                        n = 2, cp = c & 0x0f, min = 0x800;
                else if (c >= 0xf0 && c <= 0xf4)
                        n = 3, cp = c & 0x07, min = 0x10000;
                else
                        return false;
                if (end - p < n)
                        return false;
                for (int i = 0; i < n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                p += n;
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
        }
        return true;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

typedef enum { D_OK, D_ESCAPE, D_NUL, D_UTF8, D_SLASH, D_CONTROL } decode_status;

/* Decodes s[0..len) into a new string; in_path: '+' stays, '/' and controls are refused. */
static decode_status decode(const char *s, size_t len, bool in_path, char **out)
{
        *out = NULL;
        char *o = malloc(len + 1);
        if (!o)
                return D_ESCAPE; /* reported as malformed; only under memory exhaustion */
        size_t n = 0;
        decode_status st = D_OK;
        for (size_t i = 0; i < len && st == D_OK; i++) {
                unsigned char c = (unsigned char)s[i];
                bool escaped = false;
                if (c == '%') {
                        int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
                        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
                        if (hi < 0 || lo < 0) {
                                st = D_ESCAPE;
                                break;
                        }
                        c = (unsigned char)(hi << 4 | lo);
                        i += 2;
                        escaped = true;
                } else if (c == '+' && !in_path) {
                        c = ' ';
                }
                if (c == 0)
                        st = D_NUL;
                else if (in_path && escaped && c == '/')
                        st = D_SLASH;
                else if (in_path && (c < 0x20 || c == 0x7f))
                        st = D_CONTROL;
                else
                        o[n++] = (char)c;
        }
        o[n] = '\0';
        if (st == D_OK && !sk_utf8_valid(o, n))
                st = D_UTF8;
        if (st != D_OK) {
                free(o);
                return st;
        }
        *out = o;
        return D_OK;
}

static const char *why(decode_status st)
{
        switch (st) {
        case D_ESCAPE:
                return "has a malformed %-escape (% must be followed by two hex digits)";
        case D_NUL:
                return "holds a NUL byte (%00)";
        case D_UTF8:
                return "decodes to bytes that are not UTF-8";
        case D_SLASH:
                return "holds an encoded '/' (%2F) in a segment";
        case D_CONTROL:
                return "holds a control character";
        default:
                return "is invalid";
        }
}

/* One key=value pair of the query. */
static int add_param(json_t *query, const char *s, size_t len, sk_error **err)
{
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        _cleanup_free_ char *key = NULL, *val = NULL;
        decode_status st = decode(s, klen, false, &key);
        if (st != D_OK)
                return sk_error_set_path(err, EINVAL, "query", "a query parameter name %s",
                                         why(st));
        if (!*key)
                return sk_error_set_path(err, EINVAL, "query",
                                         "a query parameter has no name ('=' first)");
        st = eq ? decode(eq + 1, len - klen - 1, false, &val) : decode("", 0, false, &val);
        if (st != D_OK)
                return sk_error_set_path(err, EINVAL, key, "query parameter %s %s", key, why(st));
        if (json_object_get(query, key))
                return sk_error_set_path(err, EINVAL, key, "query parameter %s is given twice",
                                         key);
        json_t *v = json_string(val);
        if (!v || json_object_set_new(query, key, v) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int sk_tower_target_parse(const char *raw, size_t len, char **path, json_t **query, sk_error **err)
{
        *path = NULL;
        *query = NULL;
        if (len > SK_TOWER_TARGET_MAX)
                return sk_error_set(err, E2BIG, "the request target is over %d bytes",
                                    SK_TOWER_TARGET_MAX);
        const char *q = memchr(raw, '?', len);
        size_t plen = q ? (size_t)(q - raw) : len;
        if (plen == 0 || raw[0] != '/')
                return sk_error_set_path(err, EINVAL, "path", "the path must start with '/'");
        /* a fragment never belongs on the request line */
        if (memchr(raw, '#', len))
                return sk_error_set_path(err, EINVAL, "path", "the request target holds a '#'");
        _cleanup_free_ char *p = NULL;
        decode_status st = decode(raw, plen, true, &p);
        if (st != D_OK)
                return sk_error_set_path(err, EINVAL, "path", "the path %s", why(st));
        _cleanup_json_ json_t *qo = json_object();
        if (!qo)
                return sk_error_set(err, ENOMEM, "out of memory");
        const char *s = q ? q + 1 : raw + len, *end = raw + len;
        while (s < end) {
                const char *amp = memchr(s, '&', (size_t)(end - s));
                size_t n = amp ? (size_t)(amp - s) : (size_t)(end - s);
                if (n > 0) {
                        int r = add_param(qo, s, n, err);
                        if (r < 0)
                                return r;
                }
                s += n + 1;
        }
        *path = take_ptr(&p);
        *query = take_ptr(&qo);
        return 0;
}
