/* Prefix matching as a range, the same on both store backends (store_ops.c). */
#ifndef SK_TOWER_STORE_PREFIX_H
#define SK_TOWER_STORE_PREFIX_H

#include "common/error.h"

/* *end (caller frees): the least string greater than every string that starts with prefix,
 * so that "starts with prefix" is prefix <= s < *end in byte order; NULL when there is none
 * (prefix empty, or only U+10FFFF). A valid UTF-8 prefix gives valid UTF-8 (PostgreSQL
 * refuses anything else): its last character becomes the next one, dropping trailing
 * characters that have none; the bound is then exact for every valid UTF-8 string. Any
 * other prefix: its last byte below 0xff is incremented (exact for any bytes). */
int sk_store_prefix_end(const char *prefix, char **end, sk_error **err);

#endif
