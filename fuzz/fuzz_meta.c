/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_meta.c - libFuzzer harness for cs_meta_decode(), the parser of the
 * attribute every local copy carries ("VERSION SHA256 KEY"), read from
 * disk on every hit that the local cache does not vouch for.
 *
 * Invariants: no read outside the input; on success the checksum is 64
 * lowercase hex digits, the key lies inside the input and holds no NUL,
 * and printing the three back gives exactly the input.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

#include <inttypes.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size), *again;
    char sha[CS_SHA256_HEX_LEN + 1];
    const char *key;
    size_t klen;
    uint64_t version;
    int n;

    if (cs_meta_decode(in, size, &version, sha, &key, &klen) != 0) {
        free(in);
        return 0;
    }
    FUZZ_CHECK(cs_is_sha256_hex(sha, strlen(sha)), "checksum is hex");
    FUZZ_CHECK(key >= in && key + klen == in + size, "key ends the input");
    FUZZ_CHECK(memchr(key, '\0', klen) == NULL, "no NUL in the key");
    again = malloc(size + 64);
    n = snprintf(again, size + 64, "%" PRIu64 " %s ", version, sha);
    FUZZ_CHECK(n >= 0 && (size_t)n + klen == size, "length");
    memcpy(again + n, key, klen);
    FUZZ_CHECK(memcmp(again, in, size) == 0, "one spelling per attribute");
    free(again);
    free(in);
    return 0;
}
