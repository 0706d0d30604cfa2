/* The store's prefix range (tower/store_prefix.h): for a prefix and a name (the input split
 * at its first NUL), "name starts with prefix" is exactly prefix <= name < end in byte
 * order, for every name when the prefix is not valid UTF-8 and for every valid UTF-8 name
 * when it is; a valid prefix gives a valid end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tower/store_prefix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 as PostgreSQL takes it (no surrogates, nothing above U+10FFFF), checked by
 * jansson's own decoder rather than the one under test. */
static bool valid_utf8(const char *s)
{
        json_t *j = json_string(s);
        json_decref(j);
        return j != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 2);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = text[size + 1] = '\0';
        const char *prefix = text, *name = text + strlen(text) + 1;
        if (name > text + size)
                name = "";
        char *end = NULL;
        if (sk_store_prefix_end(prefix, &end, NULL) < 0)
                abort();
        bool valid = valid_utf8(prefix);
        if (end && valid && !valid_utf8(end))
                abort();
        if (end && strcmp(end, prefix) <= 0)
                abort();
        if (!valid || valid_utf8(name)) {
                bool starts = strncmp(name, prefix, strlen(prefix)) == 0;
                bool in = strcmp(name, prefix) >= 0 && (!end || strcmp(name, end) < 0);
                if (starts != in)
                        abort();
        }
        free(end);
        free(text);
        return 0;
}
