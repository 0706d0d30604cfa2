/* The tower's request target decoder (src/tower/target.c) on arbitrary bytes: it never
 * crashes, and what it accepts is clean and stable: the path starts with '/', holds no
 * NUL or control byte and is UTF-8, every query value is a string (so UTF-8 without NUL),
 * and encoding the result again and decoding that gives the same path and parameters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "tower/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_escaped(FILE *f, const char *s, bool path)
{
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || strchr("-._~", c) || (path && c == '/');
                if (plain)
                        fputc(c, f);
                else
                        fprintf(f, "%%%02X", c);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *query = NULL;
        sk_error *err = NULL;
        int r = sk_tower_target_parse((const char *)data, size, &path, &query, &err);
        if (r < 0) {
                if (!err || !sk_error_msg(err, -r)[0])
                        abort(); /* every refusal says why */
                sk_error_free(&err);
                return 0;
        }
        size_t n = strlen(path);
        if (path[0] != '/' || !sk_utf8_valid(path, n))
                abort();
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
                        abort();
        char *again = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&again, &len);
        put_escaped(f, path, true);
        const char *key;
        json_t *val;
        char sep = '?';
        json_object_foreach(query, key, val)
        {
                if (!json_is_string(val))
                        abort();
                fputc(sep, f);
                sep = '&';
                put_escaped(f, key, false);
                fputc('=', f);
                put_escaped(f, json_string_value(val), false);
        }
        fclose(f);
        _cleanup_free_ char *path2 = NULL;
        _cleanup_json_ json_t *query2 = NULL;
        r = sk_tower_target_parse(again, len, &path2, &query2, NULL);
        /* an encoded '/' never comes out of a path, so re-encoding cannot add one */
        if (len <= SK_TOWER_TARGET_MAX &&
            (r < 0 || strcmp(path, path2) != 0 || !json_equal(query, query2)))
                abort();
        free(again);
        return 0;
}
