/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_job.c - libFuzzer harness for cs_job_decode(), the parser of the
 * replication queue's job files (read back from disk after a crash).
 *
 * Invariants: no read outside the input; on success op is P or D, the
 * version is non-zero, key and relpath lie inside the input and pass
 * cs_key_check(), and printing the job back gives exactly the input.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

#include <inttypes.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *key, *rel;
    size_t klen, rlen;
    uint64_t version;
    char op, *again;
    int n;

    if (cs_job_decode(in, size, &op, &version, &key, &klen, &rel, &rlen)
        != 0) {
        return 0;
    }
    FUZZ_CHECK(op == 'P' || op == 'D', "op");
    FUZZ_CHECK(version > 0, "version");
    FUZZ_CHECK(key >= in && key + klen <= in + size, "key inside the input");
    FUZZ_CHECK(rel >= in && rel + rlen <= in + size, "relpath inside the input");
    FUZZ_CHECK(cs_key_check(key, klen) == CS_KEY_OK, "key is valid");
    FUZZ_CHECK(cs_key_check(rel, rlen) == CS_KEY_OK, "relpath is valid");
    again = malloc(size + 64);
    n = snprintf(again, size + 64, "CSJ1 %c %" PRIu64 "\n%.*s\n%.*s", op,
                 version, (int)klen, key, (int)rlen, rel);
    FUZZ_CHECK(n >= 0 && (size_t)n == size && memcmp(again, in, size) == 0,
               "one spelling per job");
    free(again);
    return 0;
}
