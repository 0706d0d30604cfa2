/* One error convention for all of skerry.
 *
 * A fallible function returns 0 (or a non-negative count) on success and a negative
 * errno-style code on failure. When the caller passes a non-NULL `sk_error **`, the
 * function also leaves a message there; the first error set wins, so a low-level cause is
 * not overwritten by a generic one further up. The caller frees it with sk_error_free()
 * (or declares it with `_cleanup_error_`). */
#ifndef SK_COMMON_ERROR_H
#define SK_COMMON_ERROR_H

#include <errno.h>
#include <stdarg.h>

typedef struct sk_error {
        int code;   /* positive errno value, e.g. EINVAL */
        char *msg;  /* human-readable, complete sentence fragment without trailing newline */
        char *path; /* optional: JSON path of the offending field, e.g. "services[0].replicas" */
        int line;   /* optional: 1-based line in the input, 0 when unknown */
        int column; /* optional: 1-based column in the input, 0 when unknown */
} sk_error;

/* Sets *err (when err and not already set) and returns -code. */
int sk_error_set(sk_error **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like sk_error_set, and records the JSON path of the field at fault. */
int sk_error_set_path(sk_error **err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Like sk_error_set, with a line and column in some text input. */
int sk_error_set_pos(sk_error **err, int code, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Adds "PREFIX: " in front of an existing message (context on the way up). */
int sk_error_prefix(sk_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sk_error_free(sk_error **err);

/* The message of err, or strerror(-code) when no message was left. */
const char *sk_error_msg(const sk_error *err, int code);

#define _cleanup_error_ __attribute__((cleanup(sk_error_free)))

#endif
