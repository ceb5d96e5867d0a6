/* p11_inproc: the ceiling. Signs in a closed loop straight through a PKCS#11
 * module, with no network and no server in between, so the table can show what
 * the token itself can do and how close p11net comes to it.
 *
 *   p11_inproc --module PATH --token LABEL --pin PIN --mech rsa|ecdsa
 *              [--threads T] [--procs P] [--seconds D]
 *
 * Each of P processes (default 1) loads the module, logs in once and runs T
 * threads (default 1), each on its own session, each signing in a loop for D
 * seconds: CKM_RSA_PKCS over a 12-byte message with the private key of CKA_ID 01,
 * or CKM_ECDSA over a 32-byte digest with the key of CKA_ID 11 (the keys of
 * scripts/mktokens.sh). Processes matter for p11-kit's RPC client, where every
 * process is one connection to `p11-kit server`: --procs 16 is 16 connections.
 *
 * The last stdout line has the shape of `p11net bench`'s:
 *   ops=<n> errors=<n> rate=<ops/s> p50_ms=<x> p90_ms=<x> p99_ms=<x> p999_ms=<x>
 * Exit status 0 when at least one signature was made and none failed. */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"

/* Latency histogram: 64 octaves of 64 linear sub-buckets (within ~1.6 %). */
#define SUB 64
#define NBUCKETS (64 * SUB)

struct hist {
    uint64_t n[NBUCKETS];
};

static unsigned bucket_of(uint64_t ns)
{
    unsigned oct;
    if (ns < SUB) return (unsigned)ns;
    oct = 63u - (unsigned)__builtin_clzll(ns); /* >= 6 */
    return (oct - 5) * SUB + (unsigned)((ns >> (oct - 6)) & (SUB - 1));
}

static uint64_t bucket_value(unsigned b)
{
    unsigned oct = b / SUB, sub = b % SUB;
    if (oct == 0) return sub;
    return ((uint64_t)(SUB + sub) << (oct - 1)) + ((uint64_t)1 << (oct - 1)) / 2;
}

static double quantile_ms(const struct hist *h, double q)
{
    uint64_t total = 0, seen = 0, want;
    for (unsigned i = 0; i < NBUCKETS; i++) total += h->n[i];
    if (!total) return 0;
    want = (uint64_t)(q * (double)total);
    if (want >= total) want = total - 1;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h->n[i];
        if (seen > want) return (double)bucket_value(i) / 1e6;
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct opts {
    const char *module, *token, *pin, *mech;
    long threads, procs;
    double seconds;
};

struct worker {
    pthread_t tid;
    CK_FUNCTION_LIST *f;
    CK_SLOT_ID slot;
    const struct opts *o;
    uint64_t deadline;
    uint64_t ops, errors;
    CK_RV first_rv;
    struct hist hist;
};

static CK_RV find_key(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_BYTE id, CK_OBJECT_HANDLE *key)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, &id, 1}};
    CK_ULONG n = 0;
    CK_RV rv = f->C_FindObjectsInit(s, tmpl, 2);
    if (rv != CKR_OK) return rv;
    rv = f->C_FindObjects(s, key, 1, &n);
    f->C_FindObjectsFinal(s);
    if (rv == CKR_OK && n != 1) rv = CKR_KEY_HANDLE_INVALID;
    return rv;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    CK_FUNCTION_LIST *f = w->f;
    int ec = strcmp(w->o->mech, "ecdsa") == 0;
    CK_MECHANISM mech = {ec ? CKM_ECDSA : CKM_RSA_PKCS, NULL, 0};
    CK_BYTE msg[32];
    CK_ULONG msg_len = ec ? 32 : 12;
    CK_BYTE sig[512];
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    CK_RV rv;

    memcpy(msg, "p11net bench", 12);
    for (unsigned i = 12; i < sizeof(msg); i++) msg[i] = (CK_BYTE)(i * 7);
    rv = f->C_OpenSession(w->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    if (rv == CKR_OK) rv = find_key(f, s, ec ? 0x11 : 0x01, &key);
    if (rv != CKR_OK) {
        w->first_rv = rv;
        w->errors++;
        return NULL;
    }
    while (now_ns() < w->deadline) {
        CK_ULONG sig_len = sizeof(sig);
        uint64_t t0 = now_ns();
        rv = f->C_SignInit(s, &mech, key);
        if (rv == CKR_OK) rv = f->C_Sign(s, msg, msg_len, sig, &sig_len);
        if (rv != CKR_OK) {
            if (!w->first_rv) w->first_rv = rv;
            w->errors++;
            continue;
        }
        w->hist.n[bucket_of(now_ns() - t0)]++;
        w->ops++;
    }
    f->C_CloseSession(s);
    return NULL;
}

/* One process's module: loaded, initialized, logged in once. */
struct proc {
    CK_FUNCTION_LIST *f;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE login_s;
};

static int find_slot(CK_FUNCTION_LIST *f, const char *token, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    size_t len = strlen(token);

    if (len > 32 || f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) return -1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        if (memcmp(ti.label, token, len) == 0 && (len == 32 || ti.label[len] == ' ')) return *out = slots[i], 0;
    }
    return -1;
}

static int proc_init(const struct opts *o, struct proc *p)
{
    CK_C_GetFunctionList get_list;
    CK_C_INITIALIZE_ARGS args;
    CK_RV rv;
    void *dl = dlopen(o->module, RTLD_NOW | RTLD_LOCAL);

    if (!dl || !(get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList")) || get_list(&p->f) != CKR_OK) {
        fprintf(stderr, "p11_inproc: cannot load %s: %s\n", o->module, dl ? "no C_GetFunctionList" : dlerror());
        return -1;
    }
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    if ((rv = p->f->C_Initialize(&args)) != CKR_OK) {
        fprintf(stderr, "p11_inproc: C_Initialize: 0x%lx\n", (unsigned long)rv);
        return -1;
    }
    /* SoftHSM reads its token directory at C_Initialize and can miss a token whose
     * files another process is rewriting at that moment: try again a few times. */
    for (int attempt = 0; find_slot(p->f, o->token, &p->slot) != 0; attempt++) {
        p->f->C_Finalize(NULL);
        if (attempt == 4) {
            fprintf(stderr, "p11_inproc: no token labelled '%s'\n", o->token);
            return -1;
        }
        usleep(100000);
        if ((rv = p->f->C_Initialize(&args)) != CKR_OK) {
            fprintf(stderr, "p11_inproc: C_Initialize: 0x%lx\n", (unsigned long)rv);
            return -1;
        }
    }
    /* One login for the application: the login state is shared by its sessions.
     * login_s stays open so that the token stays logged in. */
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, &p->login_s);
    if (rv == CKR_OK) rv = p->f->C_Login(p->login_s, CKU_USER, (CK_UTF8CHAR_PTR)o->pin, strlen(o->pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        fprintf(stderr, "p11_inproc: C_Login: 0x%lx\n", (unsigned long)rv);
        p->f->C_Finalize(NULL);
        return -1;
    }
    return 0;
}

/* Runs the threads for o->seconds, adds their counts to *total, then logs out and
 * finalizes. */
static int proc_run(const struct opts *o, struct proc *p, struct worker *total, double *elapsed)
{
    struct worker *w = calloc((size_t)o->threads, sizeof(*w));
    uint64_t t0;

    if (!w) return -1;
    t0 = now_ns();
    for (long i = 0; i < o->threads; i++) {
        w[i].f = p->f;
        w[i].slot = p->slot;
        w[i].o = o;
        w[i].deadline = t0 + (uint64_t)(o->seconds * 1e9);
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "p11_inproc: pthread_create failed\n");
            exit(1);
        }
    }
    for (long i = 0; i < o->threads; i++) {
        pthread_join(w[i].tid, NULL);
        if (w[i].first_rv && !total->first_rv) total->first_rv = w[i].first_rv;
        total->ops += w[i].ops;
        total->errors += w[i].errors;
        for (unsigned b = 0; b < NBUCKETS; b++) total->hist.n[b] += w[i].hist.n[b];
    }
    *elapsed = (double)(now_ns() - t0) / 1e9;
    free(w);
    p->f->C_Logout(p->login_s);
    p->f->C_CloseSession(p->login_s);
    p->f->C_Finalize(NULL);
    return 0;
}

/* What a child process sends back through its pipe. */
struct child_report {
    int ok;
    double elapsed;
    uint64_t ops, errors, first_rv;
    struct hist hist;
};

static void usage(void)
{
    fprintf(stderr, "usage: p11_inproc --module PATH --token LABEL --pin PIN --mech rsa|ecdsa "
                    "[--threads T] [--procs P] [--seconds D]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"module", required_argument, NULL, 'm'}, {"token", required_argument, NULL, 't'},
        {"pin", required_argument, NULL, 'p'},    {"mech", required_argument, NULL, 'M'},
        {"threads", required_argument, NULL, 'T'}, {"procs", required_argument, NULL, 'P'},
        {"seconds", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0},
    };
    struct opts o = {"/usr/lib/softhsm/libsofthsm2.so", "MyToken", "1234", "rsa", 1, 1, 3.0};
    struct child_report *rep;
    struct worker total;
    double elapsed = 0;
    int c, fails = 0;

    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'm': o.module = optarg; break;
        case 't': o.token = optarg; break;
        case 'p': o.pin = optarg; break;
        case 'M': o.mech = optarg; break;
        case 'T': o.threads = strtol(optarg, NULL, 10); break;
        case 'P': o.procs = strtol(optarg, NULL, 10); break;
        case 'd': o.seconds = strtod(optarg, NULL); break;
        default: usage();
        }
    }
    if (optind != argc || o.threads < 1 || o.threads > 1024 || o.procs < 1 || o.procs > 1024 ||
        !(o.seconds > 0 && o.seconds <= 3600) || (strcmp(o.mech, "rsa") != 0 && strcmp(o.mech, "ecdsa") != 0))
        usage();

    signal(SIGPIPE, SIG_IGN); /* a child that failed to start closed its go pipe */
    memset(&total, 0, sizeof(total));
    if (o.procs == 1) {
        struct proc p;
        if (proc_init(&o, &p) != 0 || proc_run(&o, &p, &total, &elapsed) != 0) return 1;
    } else {
        /* One child per connection, each loading the module itself. They start one
         * after the other (SoftHSM's file store and p11-kit's server do not like
         * many simultaneous C_Initialize/C_Login) and sign together once all are
         * ready: each child writes one byte when logged in and waits for one on
         * its go pipe. */
        pid_t *pids = calloc((size_t)o.procs, sizeof(*pids));
        int *fds = calloc((size_t)o.procs, sizeof(*fds)), *go = calloc((size_t)o.procs, sizeof(*go));
        rep = calloc(1, sizeof(*rep));
        if (!pids || !fds || !go || !rep) return 1;
        fflush(NULL);
        for (long i = 0; i < o.procs; i++) {
            int pfd[2], gfd[2];
            char byte = 0;
            if (pipe(pfd) != 0 || pipe(gfd) != 0 || (pids[i] = fork()) < 0) {
                perror("p11_inproc: fork");
                return 1;
            }
            if (pids[i] == 0) {
                struct proc p;
                close(pfd[0]);
                close(gfd[1]);
                for (long j = 0; j < i; j++) close(fds[j]), close(go[j]);
                memset(&total, 0, sizeof(total));
                if (proc_init(&o, &p) != 0) _exit(1);
                if (write_all(pfd[1], &byte, 1) != 0 || read_all(gfd[0], &byte, 1) != 0) _exit(1);
                rep->ok = proc_run(&o, &p, &total, &rep->elapsed) == 0;
                rep->ops = total.ops, rep->errors = total.errors, rep->first_rv = total.first_rv;
                rep->hist = total.hist;
                _exit(write_all(pfd[1], rep, sizeof(*rep)) == 0 ? 0 : 1);
            }
            close(pfd[1]);
            close(gfd[0]);
            fds[i] = pfd[0];
            go[i] = gfd[1];
            if (read_all(fds[i], &byte, 1) != 0) fails++; /* it failed to start; it has exited */
        }
        for (long i = 0; i < o.procs; i++) {
            char byte = 1;
            if (write_all(go[i], &byte, 1) != 0) {
                /* counted above */
            }
            close(go[i]);
        }
        for (long i = 0; i < o.procs; i++) {
            int st;
            if (read_all(fds[i], rep, sizeof(*rep)) == 0 && rep->ok) {
                total.ops += rep->ops;
                total.errors += rep->errors;
                if (!total.first_rv) total.first_rv = (CK_RV)rep->first_rv;
                if (rep->elapsed > elapsed) elapsed = rep->elapsed;
                for (unsigned b = 0; b < NBUCKETS; b++) total.hist.n[b] += rep->hist.n[b];
            }
            close(fds[i]);
            waitpid(pids[i], &st, 0);
        }
        free(pids), free(fds), free(go), free(rep);
    }
    if (total.first_rv) fprintf(stderr, "p11_inproc: first error: CK_RV 0x%lx\n", (unsigned long)total.first_rv);
    if (fails) fprintf(stderr, "p11_inproc: %d process(es) failed\n", fails);
    printf("ops=%" PRIu64 " errors=%" PRIu64 " rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n", total.ops,
           total.errors, elapsed > 0 ? (double)total.ops / elapsed : 0.0, quantile_ms(&total.hist, 0.50),
           quantile_ms(&total.hist, 0.90), quantile_ms(&total.hist, 0.99), quantile_ms(&total.hist, 0.999));
    return total.ops > 0 && total.errors == 0 && !fails ? 0 : 1;
}
