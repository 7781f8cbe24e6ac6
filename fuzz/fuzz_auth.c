/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_auth.c - libFuzzer harness for cs_auth_parse(), the parser of the
 * X-ClusterStorage-Auth request header ("NODE TIMESTAMP MAC") that every
 * peer request carries and that comes straight off the network.
 *
 * Invariants checked on every input:
 *  - no read outside the input and no write past the 65-byte node and mac
 *    buffers codec.h asks for (both are exactly sized heap blocks, so ASan
 *    sees a one-byte overflow);
 *  - on success: node is 1-64 of [A-Za-z0-9._-], the timestamp fits an
 *    int64, mac is 64 lowercase hex digits, and "node ts mac" printed back
 *    is exactly the input (one spelling per value: nothing else accepted).
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

#include <inttypes.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *node = malloc(65);
    char *mac = malloc(65);
    char again[256];
    uint64_t ts = 0;
    size_t i, nlen;
    int n;

    memset(node, 'N', 65);
    memset(mac, 'M', 65);
    if (cs_auth_parse((const char *)data, size, node, &ts, mac) == 0) {
        FUZZ_CHECK(size <= 200, "accepted length");
        nlen = strnlen(node, 65);
        FUZZ_CHECK(nlen >= 1 && nlen <= 64, "node is 1-64 bytes, terminated");
        for (i = 0; i < nlen; i++) {
            char c = node[i];
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                       || (c >= '0' && c <= '9') || c == '.' || c == '_'
                       || c == '-', "node characters");
        }
        FUZZ_CHECK(ts <= (uint64_t)INT64_MAX, "timestamp fits int64");
        FUZZ_CHECK(strnlen(mac, 65) == 64 && cs_is_sha256_hex(mac, 64),
                   "mac is 64 lowercase hex digits");
        n = snprintf(again, sizeof(again), "%s %" PRIu64 " %s", node, ts, mac);
        FUZZ_CHECK(n > 0 && (size_t)n == size
                   && memcmp(again, data, size) == 0,
                   "the parsed value prints back as the input");
    }
    free(node);
    free(mac);
    return 0;
}
