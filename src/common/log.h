/* Logging to stderr with a level and the component name. Never log secrets. */
#ifndef SK_COMMON_LOG_H
#define SK_COMMON_LOG_H

enum sk_log_level { SK_LOG_DEBUG, SK_LOG_INFO, SK_LOG_WARN, SK_LOG_ERROR };

/* component: "tower", "agent", ... shown on every line. Level from SKERRY_LOG
 * (debug|info|warn|error), default info. */
void sk_log_init(const char *component);
void sk_log(enum sk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sk_debug(...)  sk_log(SK_LOG_DEBUG, __VA_ARGS__)
#define sk_info(...)   sk_log(SK_LOG_INFO, __VA_ARGS__)
#define sk_warn(...)   sk_log(SK_LOG_WARN, __VA_ARGS__)
#define sk_errorf(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)

#endif
