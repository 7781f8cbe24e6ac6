/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_entry.c - libFuzzer harness for the registry value codec
 * (cs_entry_decode / cs_entry_encode / cs_entry_etag), the bytes that come
 * back from memcached and must be treated as hostile.
 *
 * Invariants checked on every input:
 *  - decode never reads outside [data, data+size) (ASan);
 *  - if decode accepts, the entry obeys the consistency rules codec.h
 *    states, encode reproduces exactly the input bytes (the format is
 *    canonical: one spelling per entry), and decoding that again gives an
 *    identical struct;
 *  - encode never writes past the buffer it was given, whatever its size;
 *  - any entry built from the raw bytes (second mode) that encode accepts
 *    and that is consistent decodes back to itself.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

/* Field by field: struct padding is not part of the value. */
static int entry_eq(const cs_entry_t *a, const cs_entry_t *b)
{
    return a->version == b->version && a->size == b->size
           && a->mtime == b->mtime && a->deleted == b->deleted
           && strcmp(a->sha256, b->sha256) == 0;
}

static void check_consistent(const cs_entry_t *e)
{
    FUZZ_CHECK(e->deleted == 0 || e->deleted == 1, "deleted is 0/1");
    FUZZ_CHECK(e->mtime >= 0, "mtime not negative");
    FUZZ_CHECK(e->size <= (uint64_t)INT64_MAX, "size fits off_t");
    FUZZ_CHECK(e->sha256[0] == '\0'
               || cs_is_sha256_hex(e->sha256, strlen(e->sha256)),
               "sha256 empty or 64 lowercase hex");
    if (e->version == 0) {
        FUZZ_CHECK(!e->size && !e->deleted && !e->sha256[0] && !e->mtime,
                   "never-stored entry is all zeroes");
    }
    else if (e->deleted) {
        FUZZ_CHECK(!e->size && !e->sha256[0], "tombstone has no content");
    }
    else {
        FUZZ_CHECK(e->sha256[0], "live version has a checksum");
    }
}

/* Encode into exactly sized heap buffers around the needed size: only the
 * big enough ones may succeed, none may overflow. */
static void check_encode_bounds(const cs_entry_t *e, int need)
{
    const size_t sizes[] = { 0, 1, (size_t)need / 2, (size_t)need - 1,
                             (size_t)need, (size_t)need + 1 };
    size_t i;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t outlen = sizes[i];
        char *buf = malloc(outlen ? outlen : 1);
        int n = cs_entry_encode(e, outlen ? buf : NULL, outlen);
        if (outlen <= (size_t)need) {
            FUZZ_CHECK(n == -1, "encode into a too small buffer fails");
        }
        else {
            FUZZ_CHECK(n == need, "encode into a big enough buffer works");
            FUZZ_CHECK(strlen(buf) == outlen - 1, "encode NUL-terminates");
        }
        free(buf);
    }
}

static void check_etag(const cs_entry_t *e)
{
    char *etag = malloc(48);
    size_t n;

    cs_entry_etag(e, etag, 48);
    n = strnlen(etag, 48);
    FUZZ_CHECK(n < 48, "etag is NUL-terminated within 48 bytes");
    FUZZ_CHECK(n >= 4 && etag[0] == '"' && etag[n - 1] == '"',
               "etag is quoted");
    free(etag);
}

/* Second mode: an arbitrary entry from the raw bytes. */
static void fuzz_encode(const uint8_t *data, size_t size)
{
    cs_entry_t e, d;
    char out[CS_ENTRY_MAX_LEN + 1];
    int n;

    if (size < 8 + 8 + 8 + 1 + 1) {
        return;
    }
    memset(&e, 0, sizeof(e));
    memcpy(&e.version, data, 8);
    memcpy(&e.size, data + 8, 8);
    memcpy(&e.mtime, data + 16, 8);
    e.deleted = data[24] & 1;
    if (data[25] & 1) {
        size_t i;
        for (i = 0; i < CS_SHA256_HEX_LEN; i++) {
            uint8_t b = (26 + i / 2 < size) ? data[26 + i / 2] : 0;
            e.sha256[i] = "0123456789abcdef"[(i & 1) ? (b & 15) : (b >> 4)];
        }
        e.sha256[CS_SHA256_HEX_LEN] = '\0';
    }
    /* Any entry with mtime >= 0 must fit in CS_ENTRY_MAX_LEN. */
    n = cs_entry_encode(&e, out, sizeof(out));
    FUZZ_CHECK((n > 0) == (e.mtime >= 0), "encode fails only for mtime < 0");
    if (n < 0) {
        return;
    }
    FUZZ_CHECK((size_t)n <= CS_ENTRY_MAX_LEN, "encoded length bounded");
    FUZZ_CHECK(strlen(out) == (size_t)n, "encode length matches");
    check_encode_bounds(&e, n);
    check_etag(&e);
    if (cs_entry_decode(out, (size_t)n, &d) == 0) {
        check_consistent(&d);
        FUZZ_CHECK(entry_eq(&e, &d),
                   "encode -> decode gives the same entry");
    }
    else {
        /* Decode may only refuse what the consistency rules forbid. */
        int consistent = e.size <= (uint64_t)INT64_MAX
            && (e.version == 0
                ? !e.size && !e.deleted && !e.sha256[0] && !e.mtime
                : e.deleted ? !e.size && !e.sha256[0] : e.sha256[0] != 0);
        FUZZ_CHECK(!consistent, "decode refuses a consistent entry");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_entry_t e, e2;
    char out[CS_ENTRY_MAX_LEN + 1];
    int n;

    memset(&e, 0xa5, sizeof(e));
    if (cs_entry_decode((const char *)data, size, &e) == 0) {
        FUZZ_CHECK(size > 0 && size <= CS_ENTRY_MAX_LEN, "accepted length");
        check_consistent(&e);
        n = cs_entry_encode(&e, out, sizeof(out));
        FUZZ_CHECK(n > 0, "a decoded entry encodes");
        FUZZ_CHECK((size_t)n == size && memcmp(out, data, size) == 0,
                   "encode(decode(x)) == x (canonical format)");
        memset(&e2, 0x5a, sizeof(e2));
        FUZZ_CHECK(cs_entry_decode(out, (size_t)n, &e2) == 0,
                   "re-encoded value decodes");
        FUZZ_CHECK(entry_eq(&e, &e2),
                   "decode(encode(decode(x))) == decode(x)");
        check_encode_bounds(&e, n);
        check_etag(&e);
    }
    fuzz_encode(data, size);
    return 0;
}
