/* Quantities, durations and version order (model/spec.h). Decimal text is parsed with
 * integers only, so "1.5Gi" and "0.1s" are exact and overflow is caught. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "model/spec.h"

#define MAX_MILLICORES (1000LL * 1000 * 1000) /* a million cores */

/* Parses "12", "1.5", ".5" at *s and returns value * mult in *out, which must be whole. */
static int parse_decimal(const char **s, int64_t mult, int64_t *out)
{
        const char *p = *s;
        int64_t whole = 0, frac = 0, scale = 1;
        bool digits = false;
        for (; isdigit((unsigned char)*p); p++) {
                digits = true;
                if (__builtin_mul_overflow(whole, 10, &whole) ||
                    __builtin_add_overflow(whole, *p - '0', &whole))
                        return -EINVAL;
        }
        if (*p == '.') {
                p++;
                for (; isdigit((unsigned char)*p); p++) {
                        digits = true;
                        if (scale >= 1000000000LL)
                                return -EINVAL; /* more precision than anything here needs */
                        frac = frac * 10 + (*p - '0');
                        scale *= 10;
                }
        }
        if (!digits)
                return -EINVAL;
        int64_t w, f;
        if (__builtin_mul_overflow(whole, mult, &w) || __builtin_mul_overflow(frac, mult, &f))
                return -EINVAL;
        if (f % scale != 0)
                return -EINVAL;
        if (__builtin_add_overflow(w, f / scale, out))
                return -EINVAL;
        *s = p;
        return 0;
}

static int from_number(const json_t *v, int64_t mult, int64_t *out)
{
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i < 0 || __builtin_mul_overflow((int64_t)i, mult, out))
                        return -EINVAL;
                return 0;
        }
        double d = json_real_value(v) * (double)mult;
        if (!isfinite(d) || d < 0 || d > 9.0e18)
                return -EINVAL;
        double r = (double)(int64_t)(d + 0.5); /* no libm: d is non-negative */
        double diff = d > r ? d - r : r - d;
        if (diff > 1e-6 * (r > 1 ? r : 1))
                return -EINVAL;
        *out = (int64_t)r;
        return 0;
}

int sk_quantity_cpu(const json_t *v, int64_t *millicores)
{
        int64_t m;
        if (json_is_number(v)) {
                if (from_number(v, 1000, &m) < 0)
                        return -EINVAL;
        } else if (json_is_string(v)) {
                const char *s = json_string_value(v);
                size_t n = strlen(s);
                bool milli = n > 0 && s[n - 1] == 'm';
                if (parse_decimal(&s, milli ? 1 : 1000, &m) < 0 || strcmp(s, milli ? "m" : ""))
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (m > MAX_MILLICORES)
                return -EINVAL;
        *millicores = m;
        return 0;
}

int sk_quantity_memory(const json_t *v, int64_t *bytes)
{
        if (json_is_number(v))
                return from_number(v, 1, bytes);
        if (!json_is_string(v))
                return -EINVAL;
        static const struct {
                const char *suffix;
                int64_t mult;
        } units[] = {
            {"", 1},
            {"k", 1000LL},
            {"M", 1000LL * 1000},
            {"G", 1000LL * 1000 * 1000},
            {"T", 1000LL * 1000 * 1000 * 1000},
            {"P", 1000LL * 1000 * 1000 * 1000 * 1000},
            {"E", 1000LL * 1000 * 1000 * 1000 * 1000 * 1000},
            {"Ki", 1LL << 10},
            {"Mi", 1LL << 20},
            {"Gi", 1LL << 30},
            {"Ti", 1LL << 40},
            {"Pi", 1LL << 50},
            {"Ei", 1LL << 60},
        };
        const char *s = json_string_value(v);
        const char *p = s;
        while (isdigit((unsigned char)*p) || *p == '.')
                p++;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcmp(p, units[i].suffix))
                        continue;
                const char *q = s;
                if (parse_decimal(&q, units[i].mult, bytes) < 0 || q != p)
                        return -EINVAL;
                return 0;
        }
        return -EINVAL;
}

int sk_duration_ms(const char *text, int64_t *ms)
{
        if (!text || !*text)
                return -EINVAL;
        if (!strcmp(text, "0")) {
                *ms = 0;
                return 0;
        }
        static const struct {
                const char *unit;
                int64_t mult;
        } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
        int64_t total = 0;
        const char *s = text;
        while (*s) {
                const char *num = s;
                while (isdigit((unsigned char)*s) || *s == '.')
                        s++;
                const char *unit = s;
                while (isalpha((unsigned char)*s))
                        s++;
                size_t ulen = (size_t)(s - unit);
                bool found = false;
                for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !found; i++) {
                        if (strlen(units[i].unit) != ulen || strncmp(unit, units[i].unit, ulen))
                                continue;
                        found = true;
                        const char *q = num;
                        int64_t part;
                        if (parse_decimal(&q, units[i].mult, &part) < 0 || q != unit ||
                            __builtin_add_overflow(total, part, &total))
                                return -EINVAL;
                }
                if (!found)
                        return -EINVAL;
        }
        *ms = total;
        return 0;
}

static bool numeric(const char *s, size_t n)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char)s[i]))
                        return false;
        return true;
}

static int cmp_part(const char *a, size_t an, const char *b, size_t bn)
{
        if (numeric(a, an) && numeric(b, bn)) {
                while (an > 1 && *a == '0') {
                        a++;
                        an--;
                }
                while (bn > 1 && *b == '0') {
                        b++;
                        bn--;
                }
                if (an != bn)
                        return an < bn ? -1 : 1;
                return memcmp(a, b, an);
        }
        int r = memcmp(a, b, an < bn ? an : bn);
        if (r)
                return r;
        return an == bn ? 0 : an < bn ? -1 : 1;
}

int sk_version_compare(const char *a, const char *b)
{
        for (;;) {
                size_t an = strcspn(a, "."), bn = strcspn(b, ".");
                int r = cmp_part(a, an, b, bn);
                if (r)
                        return r < 0 ? -1 : 1;
                a += an;
                b += bn;
                if (!*a || !*b)
                        return !*a && !*b ? 0 : !*a ? -1 : 1;
                a++;
                b++;
        }
}
