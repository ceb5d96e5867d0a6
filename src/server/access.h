/* Who may use which token (PROTOCOL.md section 7): the ACL and PIN throttling.
 *
 * The ACL is loaded once at startup and immutable afterwards, so a connection
 * resolves its grant (the rule that applies to it, or none) once, when its first
 * request arrives after the handshake, and every request carries a pointer to that
 * grant: the per-request check reads only immutable memory and takes no lock.
 *
 * Throttling is a token bucket per (client identity, token label), kept in a
 * bounded, sharded, mutex-protected hash table. Only wrong PINs create entries, so
 * legitimate traffic never grows it. p11n_access_check and p11n_access_pin_result
 * are called by the op handlers on pool threads, after the token is resolved and
 * before the PIN is checked, so an unauthorized client learns nothing about PINs.
 * Thread-safe once created. */
#ifndef P11N_ACCESS_H
#define P11N_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "strvec.h"

struct p11n_access;
struct p11n_grant; /* one ACL rule (or "everything" without an ACL); immutable */

/* Throttle table bound: entries across all shards. An entry is ~200 bytes, so
 * this caps the table near 13 MiB whatever an attacker does. */
#define P11N_THROTTLE_MAX_ENTRIES 65536
/* Longest refill period, seconds (an hour), which keeps the bucket arithmetic in int64. */
#define P11N_THROTTLE_MAX_PERIOD 3600

struct p11n_access_config {
    const char *acl_path;     /* NULL: no ACL, every client may use every token */
    uint64_t burst;           /* wrong PINs a pair may make at once (>= 1) */
    uint64_t rate;            /* wrong PINs a pair regains per period (>= 1) */
    uint64_t period_s;        /* the period, seconds; 0 means 1 */
    size_t max_entries;       /* 0: P11N_THROTTLE_MAX_ENTRIES */
    /* Monotonic clock in nanoseconds; NULL: CLOCK_MONOTONIC. Tests inject one. */
    uint64_t (*now_ns)(void *arg);
    void *now_arg;
};

/* Loads the ACL (when acl_path is set) and sets up the throttle table. On a bad
 * ACL file returns P11N_E_USAGE with "FILE:LINE: why" in err. Thread: main. */
P11N_MUST_USE p11n_rc p11n_access_new(struct p11n_access **out, const struct p11n_access_config *cfg, char *err,
                                      size_t err_len);
void p11n_access_free(struct p11n_access *acc);

/* The grant of a client with these verified names (CN, then DNS and email SANs,
 * as conn.c collects them; `fallback` is its transport identity, e.g.
 * "unix:uid=1000", matched only when names is empty). NULL: the client may use no
 * token. Without an ACL every client gets the allow-all grant. The result lives
 * as long as acc. Thread: any. */
const struct p11n_grant *p11n_access_grant(const struct p11n_access *acc, const struct p11n_strvec *names,
                                           const char *fallback);
/* Whether grant covers token_label (no lock, no allocation). */
int p11n_access_grant_allows(const struct p11n_grant *grant, const char *token_label);

/* The order of checks for a request that needs the token's PIN: UNAUTHORIZED when
 * there is an ACL and the grant does not cover the token, THROTTLED when client_id has no wrong-PIN
 * allowance left for it, else P11N_OK. Thread: any. */
P11N_MUST_USE p11n_rc p11n_access_check(struct p11n_access *acc, const struct p11n_grant *grant,
                                        const char *client_id, const char *token_label);
/* Records the outcome of a PIN check (pin_ok = 0 for a wrong PIN). A correct PIN
 * costs nothing (no lock). Thread: any. */
void p11n_access_pin_result(struct p11n_access *acc, const char *client_id, const char *token_label, int pin_ok);

/* LIST without a PIN: removes from a token list ("SlotID:<n>, Token: <label>"
 * entries) those the grant does not cover, wiping and freeing them. */
void p11n_access_filter_tokens(const struct p11n_grant *grant, struct p11n_strvec *list);

/* Entries in the throttle table (tests, stats). Thread: any. */
size_t p11n_access_throttle_entries(struct p11n_access *acc);

#endif
