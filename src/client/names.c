/* Names of the public enums, for messages and the command line. */
#include <string.h>

#include "p11net/client.h"

static const char *const code_names[] = {
    "NONE", "BAD_REQUEST", "UNSUPPORTED", "NO_SUCH_SLOT", "PIN_INCORRECT", "KEY_NOT_FOUND",
    "SIGNATURE_INVALID", "DATA_INVALID", "HSM_ERROR", "BUSY", "TOO_LARGE", "UNAUTHORIZED",
    "THROTTLED", "SHUTTING_DOWN",
};

/* PROTOCOL.md section 6: the Mechanism names in lower case with '-' for '_'. */
static const char *const mech_names[] = {
    "default", "rsa-pkcs", "sha256-rsa-pkcs", "sha256-rsa-pkcs-pss", "rsa-pkcs-oaep-sha256", "ecdsa-sha256", "eddsa",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *p11net_code_name(p11net_code code)
{
    return (unsigned)code < COUNT(code_names) ? code_names[code] : "UNKNOWN";
}

const char *p11net_status_name(p11net_status st)
{
    switch (st) {
    case P11NET_OK: return "OK";
    case P11NET_ERR_SERVER: return "SERVER";
    case P11NET_ERR_TIMEOUT: return "TIMEOUT";
    case P11NET_ERR_CLOSED: return "CLOSED";
    case P11NET_ERR_IO: return "IO";
    case P11NET_ERR_PROTOCOL: return "PROTOCOL";
    case P11NET_ERR_NOMEM: return "NOMEM";
    case P11NET_ERR_USAGE: return "USAGE";
    case P11NET_ERR_TLS: return "TLS";
    }
    return "UNKNOWN";
}

const char *p11net_mech_name(p11net_mech mech)
{
    return (unsigned)mech < COUNT(mech_names) ? mech_names[mech] : "unknown";
}

int p11net_mech_parse(const char *name)
{
    for (size_t i = 0; name && i < COUNT(mech_names); i++)
        if (strcmp(name, mech_names[i]) == 0) return (int)i;
    return -1;
}

const char *p11net_version(void)
{
    return P11N_VERSION;
}
