/* Helpers shared by every runtime driver and its callers. */
#include "host/runtime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sk_container_info_clear(sk_container_info *c)
{
        if (!c)
                return;
        free(c->id);
        free(c->name);
        free(c->image);
        json_decref(c->labels);
        memset(c, 0, sizeof(*c));
}

void sk_container_list_clear(sk_container_list *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                sk_container_info_clear(&l->items[i]);
        free(l->items);
        l->items = NULL;
        l->n = 0;
}

static const char *const state_names[] = {
    [SK_CONTAINER_CREATED] = "created", [SK_CONTAINER_RUNNING] = "running",
    [SK_CONTAINER_PAUSED] = "paused",   [SK_CONTAINER_RESTARTING] = "restarting",
    [SK_CONTAINER_EXITED] = "exited",   [SK_CONTAINER_DEAD] = "dead",
    [SK_CONTAINER_UNKNOWN] = "unknown",
};

const char *sk_container_state_name(sk_container_state s)
{
        if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
                return "unknown";
        return state_names[s];
}

sk_container_state sk_container_state_parse(const char *s)
{
        if (!s)
                return SK_CONTAINER_UNKNOWN;
        for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
                if (strcasecmp(s, state_names[i]) == 0)
                        return (sk_container_state)i;
        /* Podman's own words for the same states. */
        if (strcasecmp(s, "configured") == 0 || strcasecmp(s, "initialized") == 0)
                return SK_CONTAINER_CREATED;
        if (strcasecmp(s, "stopped") == 0 || strcasecmp(s, "stopping") == 0)
                return SK_CONTAINER_EXITED;
        if (strcasecmp(s, "removing") == 0)
                return SK_CONTAINER_DEAD;
        return SK_CONTAINER_UNKNOWN;
}

static int digits(const char **p, int n, int *out)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char)**p))
                        return -EINVAL;
                v = v * 10 + (**p - '0');
                (*p)++;
        }
        *out = v;
        return 0;
}

static int expect(const char **p, const char *chars)
{
        if (!**p || !strchr(chars, **p))
                return -EINVAL;
        (*p)++;
        return 0;
}

int sk_runtime_parse_time(const char *s, int64_t *out)
{
        if (!s || !*s) {
                *out = 0;
                return 0;
        }
        const char *p = s;
        int year, mon, day, hour, min, sec;
        if (digits(&p, 4, &year) < 0 || expect(&p, "-") < 0 || digits(&p, 2, &mon) < 0 ||
            expect(&p, "-") < 0 || digits(&p, 2, &day) < 0 || expect(&p, "Tt ") < 0 ||
            digits(&p, 2, &hour) < 0 || expect(&p, ":") < 0 || digits(&p, 2, &min) < 0 ||
            expect(&p, ":") < 0 || digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        int offset = 0;
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (digits(&p, 2, &oh) < 0 || expect(&p, ":") < 0 || digits(&p, 2, &om) < 0 ||
                    oh > 23 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600 + om * 60);
        } else {
                return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        /* Go's zero time: the runtime's way of saying "never". */
        if (year <= 1) {
                *out = 0;
                return 0;
        }
        struct tm tm = {.tm_year = year - 1900,
                        .tm_mon = mon - 1,
                        .tm_mday = day,
                        .tm_hour = hour,
                        .tm_min = min,
                        .tm_sec = sec};
        *out = (int64_t)timegm(&tm) - offset;
        return 0;
}

/* True when the whole body is a well-formed sequence of Docker stream frames. */
static bool is_multiplexed(const unsigned char *d, size_t len)
{
        if (len == 0)
                return false;
        size_t off = 0;
        while (off < len) {
                if (len - off < 8)
                        return false;
                const unsigned char *h = d + off;
                if (h[0] > 2 || h[1] || h[2] || h[3])
                        return false;
                size_t n = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) |
                           (size_t)h[7];
                if (n > len - off - 8)
                        return false;
                off += 8 + n;
        }
        return true;
}

int sk_runtime_demux_logs(const char *data, size_t len, char **text, sk_error **err)
{
        const unsigned char *d = (const unsigned char *)data;
        char *out = malloc(len + 1);
        if (!out)
                return sk_error_set(err, ENOMEM, "out of memory");
        size_t o = 0;
        if (is_multiplexed(d, len)) {
                for (size_t off = 0; off < len;) {
                        size_t n = ((size_t)d[off + 4] << 24) | ((size_t)d[off + 5] << 16) |
                                   ((size_t)d[off + 6] << 8) | (size_t)d[off + 7];
                        memcpy(out + o, data + off + 8, n);
                        o += n;
                        off += 8 + n;
                }
        } else if (len) {
                memcpy(out, data, len);
                o = len;
        }
        out[o] = '\0';
        *text = out;
        return 0;
}
