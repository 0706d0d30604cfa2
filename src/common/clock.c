#include "common/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t read_ms(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sk_monotonic_ms(void)
{
        return read_ms(CLOCK_MONOTONIC);
}

int64_t sk_wall_ms(void)
{
        return read_ms(CLOCK_REALTIME);
}

static int64_t system_mono(void *user)
{
        return sk_monotonic_ms();
}

static int64_t system_wall(void *user)
{
        return sk_wall_ms();
}

const sk_clock *sk_clock_system(void)
{
        static const sk_clock system = {system_mono, system_wall, NULL};
        return &system;
}

char *sk_rfc3339(int64_t wall_ms)
{
        char buf[32];
        time_t t = (time_t)(wall_ms / 1000);
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return NULL;
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}
