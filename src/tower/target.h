/* The one decoder of a request target ("/v1/users?tenant=payco"): the path and the query
 * parameters, percent-decoded and checked, for every request the tower answers. */
#ifndef SK_TOWER_TARGET_H
#define SK_TOWER_TARGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* The longest request target the tower reads; longer is a 414. */
#define SK_TOWER_TARGET_MAX 8192

/* Splits raw (len bytes, as it came on the request line) into the decoded path and an
 * object of decoded query parameters ('+' is a space there). -EINVAL with err naming the
 * parameter ("path", or the key) when an escape is malformed, a value decodes to %00 or
 * to bytes that are not UTF-8, the path holds an encoded '/' or a control character, a
 * key is empty or given twice. Caller frees *path and *query. */
int sk_tower_target_parse(const char *raw, size_t len, char **path, json_t **query, sk_error **err);

/* Whether s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * over U+10FFFF). */
bool sk_utf8_valid(const char *s, size_t len);

#endif
