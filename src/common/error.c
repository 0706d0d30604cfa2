#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 6, 0))) static int set_va(sk_error **err, int code, const char *path,
                                                        int line, int column, const char *fmt,
                                                        va_list ap)
{
        if (code < 0)
                code = -code;
        if (code == 0)
                code = EINVAL;
        if (!err || *err)
                return -code;
        sk_error *e = calloc(1, sizeof(*e));
        if (!e)
                return -code;
        e->code = code;
        e->line = line;
        e->column = column;
        if (vasprintf(&e->msg, fmt, ap) < 0)
                e->msg = NULL;
        e->path = path ? strdup(path) : NULL;
        *err = e;
        return -code;
}

int sk_error_set(sk_error **err, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = set_va(err, code, NULL, 0, 0, fmt, ap);
        va_end(ap);
        return r;
}

int sk_error_set_path(sk_error **err, int code, const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = set_va(err, code, path, 0, 0, fmt, ap);
        va_end(ap);
        return r;
}

int sk_error_set_pos(sk_error **err, int code, int line, int column, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = set_va(err, code, NULL, line, column, fmt, ap);
        va_end(ap);
        return r;
}

int sk_error_prefix(sk_error **err, const char *fmt, ...)
{
        if (!err || !*err)
                return 0;
        char *prefix = NULL, *joined = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&prefix, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if (asprintf(&joined, "%s: %s", prefix, (*err)->msg ? (*err)->msg : "") < 0) {
                free(prefix);
                return -ENOMEM;
        }
        free(prefix);
        free((*err)->msg);
        (*err)->msg = joined;
        return 0;
}

void sk_error_free(sk_error **err)
{
        if (!err || !*err)
                return;
        free((*err)->msg);
        free((*err)->path);
        free(*err);
        *err = NULL;
}

const char *sk_error_msg(const sk_error *err, int code)
{
        if (err && err->msg)
                return err->msg;
        return strerror(code < 0 ? -code : code);
}
