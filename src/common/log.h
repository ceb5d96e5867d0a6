/* One line per event on stderr, key=value fields:
 *   2026-12-03T16:50:01.123Z info conn_close conn=17 reason=eof inflight=0
 * The level is checked before the arguments are evaluated. Callers log sizes,
 * names and codes, never payload bytes, PINs or key material. */
#ifndef P11N_LOG_H
#define P11N_LOG_H

enum p11n_log_level { P11N_LOG_ERROR, P11N_LOG_WARN, P11N_LOG_INFO, P11N_LOG_DEBUG };

extern enum p11n_log_level p11n_log_threshold;

/* Parses "error", "warn", "info" or "debug"; -1 when unknown. */
int p11n_log_level_parse(const char *name);

void p11n_log_write(enum p11n_log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define p11n_log(level, ...)                                                   \
    do {                                                                       \
        if ((level) <= p11n_log_threshold) p11n_log_write((level), __func__, __VA_ARGS__); \
    } while (0)

#endif
