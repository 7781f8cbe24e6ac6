/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_common.h - shared bits of the libFuzzer harnesses (see fuzz/run.sh).
 *
 * FUZZ_CHECK(cond, msg) turns a violated invariant into a crash that
 * libFuzzer reports and saves as a reproducer, just like an ASan report.
 */
#ifndef CS_FUZZ_COMMON_H
#define CS_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#define FUZZ_CHECK(cond, msg)                                             \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "INVARIANT VIOLATED %s:%d: %s [%s]\n",        \
                    __FILE__, __LINE__, (msg), #cond);                    \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* An exactly sized heap copy, so ASan catches a read one byte past the end
 * (libFuzzer's own buffer is exact too; the copy is for the NUL-free and
 * prefix variants the harnesses build). */
static inline char *fuzz_dup(const uint8_t *data, size_t len)
{
    char *p = malloc(len ? len : 1);

    if (!p) {
        abort();
    }
    if (len) {
        memcpy(p, data, len);
    }
    return p;
}

#endif /* CS_FUZZ_COMMON_H */
