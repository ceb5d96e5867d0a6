/* The ACL (who may use which token) and PIN throttling (how fast a client may
 * guess a token's PIN). See access.h for the threading model. */
#include "access.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- ACL -------------------------------------------------------------------- */

/* PKCS#11 labels are 32 bytes; identities are certificate names (RFC 5280 caps a
 * CN at 64, DNS names are at most 253, emails 254). Longer is a typo or an attack. */
#define ACL_IDENTITY_MAX 255
#define ACL_LABEL_MAX 32
/* A line longer than this cannot be a rule we would write by hand. */
#define ACL_LINE_MAX 8192
/* Rules are matched by a linear scan once per connection; this keeps it cheap. */
#define ACL_RULES_MAX 10000

struct p11n_grant {
    char *identity;
    char **tokens;
    size_t n_tokens;
    int all; /* '*' */
};

/* Without an ACL every client gets this. */
static const struct p11n_grant allow_all = {.identity = (char *)"*", .all = 1};

/* ---- throttle table ----------------------------------------------------------- */

/* With a period of P seconds one token is P * UNIT_PER_SECOND units, so a refill
 * of `rate` tokens per period is `rate` units per nanosecond: integer arithmetic,
 * no rounding drift. P is at most P11N_THROTTLE_MAX_PERIOD, so 2 * burst * unit
 * stays inside int64. */
#define UNIT_PER_SECOND 1000000000LL
/* Shards cut lock contention: pool threads working for different clients rarely
 * meet on one mutex. A power of two. */
#define SHARDS 16

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t units;    /* allowance left, in units (acc->unit a token); negative: debt */
    uint64_t last_ns; /* when units was last brought up to date */
    char key[];       /* client_id, NUL, token label, NUL */
};

struct shard {
    pthread_mutex_t lock;
    struct entry **buckets; /* guarded by lock */
    size_t n_buckets;       /* power of two */
    size_t n, cap;          /* guarded by lock */
};

struct p11n_access {
    struct p11n_grant *rules; /* immutable after p11n_access_new */
    size_t n_rules;
    int have_acl;
    int64_t unit;             /* units in one token (one wrong PIN) */
    int64_t burst_units;
    int64_t rate;             /* units per ns */
    uint64_t full_ns;         /* time that refills from the deepest debt to full */
    uint64_t (*now_ns)(void *);
    void *now_arg;
    uint64_t seed;            /* hash seed: entries cannot be aimed at one chain */
    size_t n_entries;         /* atomic (__atomic builtins): lets checks skip the lock */
    struct shard shards[SHARDS];
};

static uint64_t monotonic_ns(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void grant_cleanup(struct p11n_grant *g)
{
    for (size_t i = 0; i < g->n_tokens; i++) free(g->tokens[i]);
    free(g->tokens);
    free(g->identity);
}

static char *trim(char *s)
{
    char *end;
    while (*s && isspace((unsigned char)*s)) s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = 0;
    return s;
}

static struct p11n_grant *find_rule(const struct p11n_access *acc, const char *identity)
{
    for (size_t i = 0; i < acc->n_rules; i++)
        if (strcasecmp(acc->rules[i].identity, identity) == 0) return &acc->rules[i];
    return NULL;
}

/* Parses one rule line (comment already cut, trimmed, non-empty) into acc. Lines
 * naming an identity again add tokens to its rule. Returns a reason or NULL. */
static const char *parse_rule(struct p11n_access *acc, char *line)
{
    /* The last '=': identities may hold one ("unix:uid=1000"), labels in an ACL not. */
    char *eq = strrchr(line, '='), *identity, *rest, *tok, *save = NULL;
    struct p11n_grant *g;
    size_t n_seen = 0;

    if (!eq) return "expected IDENTITY = TOKEN[, TOKEN...]";
    *eq = 0;
    identity = trim(line);
    rest = eq + 1;
    if (!*identity) return "empty identity";
    if (strlen(identity) > ACL_IDENTITY_MAX) return "identity too long";
    if (strcmp(identity, "*") == 0) return "'*' is not an identity (it is allowed only as a token)";
    if (!(g = find_rule(acc, identity))) {
        struct p11n_grant *more;
        if (acc->n_rules == ACL_RULES_MAX) return "too many rules";
        more = realloc(acc->rules, (acc->n_rules + 1) * sizeof(*more));
        if (!more) return "out of memory";
        acc->rules = more;
        g = &acc->rules[acc->n_rules];
        memset(g, 0, sizeof(*g));
        if (!(g->identity = strdup(identity))) return "out of memory";
        acc->n_rules++;
    }
    for (tok = strtok_r(rest, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char **more;
        tok = trim(tok);
        n_seen++;
        if (!*tok) return "empty token label";
        if (strlen(tok) > ACL_LABEL_MAX) return "token label longer than 32 bytes";
        if (strcmp(tok, "*") == 0) {
            g->all = 1;
            continue;
        }
        more = realloc(g->tokens, (g->n_tokens + 1) * sizeof(*more));
        if (!more) return "out of memory";
        g->tokens = more;
        if (!(g->tokens[g->n_tokens] = strdup(tok))) return "out of memory";
        g->n_tokens++;
    }
    if (n_seen == 0) return "no token after '='";
    return NULL;
}

/* Reads the ACL file into acc. P11N_E_USAGE with "path:line: why" in err. */
static p11n_rc load_acl(struct p11n_access *acc, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    char line[ACL_LINE_MAX + 2];
    unsigned lineno = 0;

    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return P11N_E_USAGE;
    }
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        const char *why;
        char *hash, *s, *comma_end;
        lineno++;
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(err, err_len, "%s:%u: line longer than %d bytes", path, lineno, ACL_LINE_MAX);
            fclose(f);
            return P11N_E_USAGE;
        }
        if ((hash = strchr(line, '#'))) *hash = 0;
        s = trim(line);
        if (!*s) continue;
        /* strtok would skip an empty label after a trailing or doubled comma. */
        comma_end = s + strlen(s) - 1;
        if (*comma_end == ',' || strstr(s, ",,") || strstr(s, "=,")) {
            snprintf(err, err_len, "%s:%u: empty token label", path, lineno);
            fclose(f);
            return P11N_E_USAGE;
        }
        if ((why = parse_rule(acc, s))) {
            snprintf(err, err_len, "%s:%u: %s", path, lineno, why);
            fclose(f);
            return P11N_E_USAGE;
        }
    }
    if (ferror(f)) {
        snprintf(err, err_len, "%s: read error", path);
        fclose(f);
        return P11N_E_USAGE;
    }
    fclose(f);
    return P11N_OK;
}

p11n_rc p11n_access_new(struct p11n_access **out, const struct p11n_access_config *cfg, char *err, size_t err_len)
{
    struct p11n_access *acc = calloc(1, sizeof(*acc));
    size_t cap = cfg->max_entries ? cfg->max_entries : P11N_THROTTLE_MAX_ENTRIES;
    size_t per_shard = (cap + SHARDS - 1) / SHARDS, nb = 1;

    *out = NULL;
    if (!acc) {
        snprintf(err, err_len, "out of memory");
        return P11N_E_NOMEM;
    }
    if (cfg->burst < 1 || cfg->rate < 1 || cfg->burst > 1000000 || cfg->rate > 1000000 ||
        cfg->period_s > P11N_THROTTLE_MAX_PERIOD) {
        snprintf(err, err_len, "throttle burst and rate must be in [1, 1000000], period in [1, %d]",
                 P11N_THROTTLE_MAX_PERIOD);
        free(acc);
        return P11N_E_USAGE;
    }
    acc->unit = (int64_t)(cfg->period_s ? cfg->period_s : 1) * UNIT_PER_SECOND;
    acc->burst_units = (int64_t)cfg->burst * acc->unit;
    acc->rate = (int64_t)cfg->rate;
    /* From the deepest debt (-burst) to full (+burst), rounded up. */
    acc->full_ns = (uint64_t)((2 * acc->burst_units + acc->rate - 1) / acc->rate);
    acc->now_ns = cfg->now_ns ? cfg->now_ns : monotonic_ns;
    acc->now_arg = cfg->now_arg;
    if (RAND_bytes((unsigned char *)&acc->seed, sizeof(acc->seed)) != 1) acc->seed = monotonic_ns(NULL);
    while (nb < per_shard) nb <<= 1;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &acc->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->cap = per_shard;
        s->n_buckets = nb;
        s->buckets = calloc(nb, sizeof(*s->buckets));
        if (!s->buckets) {
            snprintf(err, err_len, "out of memory");
            p11n_access_free(acc);
            return P11N_E_NOMEM;
        }
    }
    if (cfg->acl_path) {
        p11n_rc rc;
        acc->have_acl = 1;
        if ((rc = load_acl(acc, cfg->acl_path, err, err_len)) != P11N_OK) {
            p11n_access_free(acc);
            return rc;
        }
    }
    *out = acc;
    return P11N_OK;
}

void p11n_access_free(struct p11n_access *acc)
{
    if (!acc) return;
    for (size_t i = 0; i < acc->n_rules; i++) grant_cleanup(&acc->rules[i]);
    free(acc->rules);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &acc->shards[i];
        if (!s->buckets) continue;
        for (size_t b = 0; b < s->n_buckets; b++) {
            struct entry *e = s->buckets[b], *next;
            for (; e; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(acc);
}

const struct p11n_grant *p11n_access_grant(const struct p11n_access *acc, const struct p11n_strvec *names,
                                           const char *fallback)
{
    if (!acc || !acc->have_acl) return &allow_all; /* no access layer (tests) or no ACL */
    /* The certificate's own order decides: CN first, then the SANs. */
    for (size_t i = 0; names && i < names->len; i++) {
        const struct p11n_grant *g = find_rule(acc, names->items[i]);
        if (g) return g;
    }
    /* A Unix socket's peer uid is vouched for by the kernel, like a certificate
     * by its CA; a TCP address is not, so only "unix:uid=N" identities match. */
    if ((!names || names->len == 0) && fallback && strncmp(fallback, "unix:uid=", 9) == 0)
        return find_rule(acc, fallback);
    return NULL;
}

int p11n_access_grant_allows(const struct p11n_grant *grant, const char *token_label)
{
    if (!grant) return 0;
    if (grant->all) return 1;
    for (size_t i = 0; i < grant->n_tokens; i++)
        if (strcmp(grant->tokens[i], token_label) == 0) return 1;
    return 0;
}

void p11n_access_filter_tokens(const struct p11n_grant *grant, struct p11n_strvec *list)
{
    static const char marker[] = ", Token: ";
    size_t keep = 0;

    if (grant && grant->all) return;
    for (size_t i = 0; i < list->len; i++) {
        const char *at = strstr(list->items[i], marker);
        if (at && p11n_access_grant_allows(grant, at + sizeof(marker) - 1)) {
            list->items[keep++] = list->items[i];
        } else {
            OPENSSL_cleanse(list->items[i], strlen(list->items[i]));
            free(list->items[i]);
        }
    }
    list->len = keep;
}

/* ---- throttling --------------------------------------------------------------- */

static uint64_t key_hash(const struct p11n_access *acc, const char *client, const char *label)
{
    uint64_t h = 0xcbf29ce484222325ull ^ acc->seed; /* FNV-1a, seeded */
    for (const unsigned char *p = (const unsigned char *)client; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; /* separator: ("ab","c") != ("a","bc") */
    for (const unsigned char *p = (const unsigned char *)label; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static int key_equal(const struct entry *e, const char *client, const char *label)
{
    size_t cl = strlen(client);
    return memcmp(e->key, client, cl + 1) == 0 && strcmp(e->key + cl + 1, label) == 0;
}

/* Brings e's allowance up to now. Called with the shard's lock held. */
static void refill(const struct p11n_access *acc, struct entry *e, uint64_t now)
{
    uint64_t elapsed = now > e->last_ns ? now - e->last_ns : 0;

    e->last_ns = now;
    if (e->units >= acc->burst_units) return;
    if (elapsed >= acc->full_ns) {
        e->units = acc->burst_units;
        return;
    }
    /* elapsed < full_ns, so elapsed * rate < 2 * burst_units + rate: no overflow. */
    e->units += (int64_t)elapsed * acc->rate;
    if (e->units > acc->burst_units) e->units = acc->burst_units;
}

static struct shard *shard_of(struct p11n_access *acc, uint64_t h)
{
    return &acc->shards[(h >> 56) & (SHARDS - 1)];
}

static struct entry **slot_of(struct shard *s, struct p11n_access *acc, const char *client, const char *label,
                              uint64_t h)
{
    struct entry **pp = &s->buckets[h & (s->n_buckets - 1)];
    (void)acc;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && key_equal(*pp, client, label)) return pp;
    return pp; /* the empty tail: where an insert goes */
}

static void unlink_entry(struct p11n_access *acc, struct shard *s, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    s->n--;
    __atomic_fetch_sub(&acc->n_entries, 1, __ATOMIC_RELAXED);
    free(e);
}

/* Makes room in a full shard: drops every entry that has refilled completely
 * (it means the same as no entry); when none has, drops the one closest to full,
 * which is the least valuable state to forget. Lock held. O(cap / SHARDS), and
 * only when the shard is full. */
static void evict(struct p11n_access *acc, struct shard *s, uint64_t now)
{
    struct entry **best = NULL;
    int64_t best_units = INT64_MIN;
    size_t dropped = 0;

    for (size_t b = 0; b < s->n_buckets; b++) {
        struct entry **pp = &s->buckets[b];
        while (*pp) {
            refill(acc, *pp, now);
            if ((*pp)->units >= acc->burst_units) {
                unlink_entry(acc, s, pp);
                dropped++;
                continue;
            }
            pp = &(*pp)->next;
        }
    }
    if (dropped) return;
    for (size_t b = 0; b < s->n_buckets; b++)
        for (struct entry **pp = &s->buckets[b]; *pp; pp = &(*pp)->next)
            if ((*pp)->units > best_units) best_units = (*pp)->units, best = pp;
    if (best) unlink_entry(acc, s, best);
}

p11n_rc p11n_access_check(struct p11n_access *acc, const struct p11n_grant *grant, const char *client_id,
                          const char *token_label)
{
    struct shard *s;
    struct entry **pp;
    uint64_t h;
    p11n_rc rc = P11N_OK;

    /* No access layer (unit fixtures) means no control; without an ACL the grant
     * is the allow-all one, but a request built outside dispatch may carry none. */
    if (!acc) return P11N_OK;
    if (acc->have_acl && !p11n_access_grant_allows(grant, token_label)) return P11N_E_UNAUTHORIZED;
    /* The common case, nobody has mistyped a PIN lately: no lock at all. */
    if (__atomic_load_n(&acc->n_entries, __ATOMIC_RELAXED) == 0) return P11N_OK;
    h = key_hash(acc, client_id, token_label);
    s = shard_of(acc, h);
    pthread_mutex_lock(&s->lock);
    pp = slot_of(s, acc, client_id, token_label, h);
    if (*pp) {
        refill(acc, *pp, acc->now_ns(acc->now_arg));
        if ((*pp)->units < acc->unit)
            rc = P11N_E_THROTTLED;
        else if ((*pp)->units >= acc->burst_units)
            unlink_entry(acc, s, pp); /* full again: forget it */
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void p11n_access_pin_result(struct p11n_access *acc, const char *client_id, const char *token_label, int pin_ok)
{
    struct shard *s;
    struct entry **pp, *e;
    uint64_t h, now;

    if (pin_ok || !acc) return; /* the allowance is for guesses; a right PIN is not one */
    h = key_hash(acc, client_id, token_label);
    s = shard_of(acc, h);
    pthread_mutex_lock(&s->lock);
    now = acc->now_ns(acc->now_arg);
    pp = slot_of(s, acc, client_id, token_label, h);
    if (!*pp) {
        size_t cl = strlen(client_id), ll = strlen(token_label);
        if (s->n >= s->cap) {
            evict(acc, s, now);
            pp = slot_of(s, acc, client_id, token_label, h); /* eviction may have moved the tail */
        }
        e = malloc(sizeof(*e) + cl + ll + 2);
        if (!e) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        e->next = NULL;
        e->hash = h;
        e->units = acc->burst_units;
        e->last_ns = now;
        memcpy(e->key, client_id, cl + 1);
        memcpy(e->key + cl + 1, token_label, ll + 1);
        *pp = e;
        s->n++;
        __atomic_fetch_add(&acc->n_entries, 1, __ATOMIC_RELAXED);
    }
    e = *pp;
    refill(acc, e, now);
    /* Requests of one client run in parallel, so several guesses can pass the
     * check before any is counted. Each is still charged, into debt if need be
     * (bounded at -burst), so the long-run rate stays at most `rate` a second. */
    e->units -= acc->unit;
    if (e->units < -acc->burst_units) e->units = -acc->burst_units;
    pthread_mutex_unlock(&s->lock);
}

size_t p11n_access_throttle_entries(struct p11n_access *acc)
{
    return __atomic_load_n(&acc->n_entries, __ATOMIC_RELAXED);
}
