/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_u64.c - libFuzzer harness for cs_parse_u64(), the strict decimal
 * parser under every number the module reads from the network, memcached
 * or a queue file (versions, sizes, timestamps).
 *
 * Differential check against a simple reference: accept exactly 1-20
 * ASCII digits without a leading zero (except "0") whose value fits in
 * uint64_t, and return that value; never read past len.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

static int ref_parse(const uint8_t *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (__builtin_mul_overflow(v, 10, &v)
            || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v)) {
            return -1;
        }
    }
    *out = v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    uint64_t got = 0x0123456789abcdefULL, want = 0;
    int rc = cs_parse_u64(s, size, &got);
    int ref = ref_parse(data, size, &want);

    FUZZ_CHECK(rc == 0 || rc == -1, "returns 0 or -1");
    FUZZ_CHECK(rc == ref, "accepts exactly what the reference accepts");
    if (rc == 0) {
        FUZZ_CHECK(got == want, "same value as the reference");
    }
    free(s);
    return 0;
}
