/* Cleanup helpers: declare a variable with one of these and it is released when it goes
 * out of scope, so error paths need no goto ladders. Use take_ptr() to hand ownership on. */
#ifndef SK_COMMON_CLEANUP_H
#define SK_COMMON_CLEANUP_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void sk_freep(void *p)
{
        free(*(void **)p);
}
static inline void sk_closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}
static inline void sk_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
static inline void sk_json_decrefp(json_t **j)
{
        json_decref(*j);
}
/* For strings holding keys or secrets: zeroed before they are freed. */
static inline void sk_wipe_freep(char **p)
{
        if (*p) {
                explicit_bzero(*p, strlen(*p));
                free(*p);
        }
}

#define _cleanup_free_   __attribute__((cleanup(sk_freep)))
#define _cleanup_close_  __attribute__((cleanup(sk_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(sk_fclosep)))
#define _cleanup_json_   __attribute__((cleanup(sk_json_decrefp)))
#define _cleanup_wipe_   __attribute__((cleanup(sk_wipe_freep)))

/* Returns *pp and sets it to NULL, so the cleanup handler does not release it. */
#define take_ptr(pp)                                                                               \
        ({                                                                                         \
                __typeof__(*(pp)) _tmp = *(pp);                                                    \
                *(pp) = NULL;                                                                      \
                _tmp;                                                                              \
        })
#define take_fd(fdp)                                                                               \
        ({                                                                                         \
                int _fd = *(fdp);                                                                  \
                *(fdp) = -1;                                                                       \
                _fd;                                                                               \
        })

#define SK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
