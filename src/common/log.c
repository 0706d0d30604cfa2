#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_component = "skerry";
static enum sk_log_level log_min = SK_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void sk_log_init(const char *component)
{
        log_component = component;
        const char *lvl = getenv("SKERRY_LOG");
        if (!lvl)
                return;
        if (strcmp(lvl, "debug") == 0)
                log_min = SK_LOG_DEBUG;
        else if (strcmp(lvl, "warn") == 0)
                log_min = SK_LOG_WARN;
        else if (strcmp(lvl, "error") == 0)
                log_min = SK_LOG_ERROR;
}

void sk_log(enum sk_log_level level, const char *fmt, ...)
{
        static const char *names[] = {"debug", "info", "warn", "error"};
        if (level < log_min)
                return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char stamp[32];
        strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);

        va_list ap;
        va_start(ap, fmt);
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "%s.%03ld %s %s: ", stamp, ts.tv_nsec / 1000000, log_component,
                names[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        pthread_mutex_unlock(&log_lock);
        va_end(ap);
}
