/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_key.c - libFuzzer harness for cs_key_check(), the gate between a
 * request path and the file system.
 *
 * Invariants (SPEC: nothing read or written outside the root):
 *  - no read outside [key, key+len) (ASan);
 *  - CS_KEY_TOO_LONG exactly when len > CS_KEY_MAX (2048);
 *  - CS_KEY_OK never for a key that is longer than 2048 bytes, is empty or
 *    relative, contains NUL, another control byte, DEL or a backslash,
 *    contains "/../" or "/./" or ends in "/.." or "/.", has a segment named
 *    ".clusterstorage", or ends in '/';
 *  - CS_KEY_RESERVED only when such a segment exists, CS_KEY_DIRECTORY only
 *    for a trailing '/', CS_KEY_CONFIG only with a segment that starts with
 *    ".ht", and never OK with one (httpd would read it as configuration);
 *  - the answer does not depend on what follows the key in memory.
 * The same bytes are also checked with "/" prepended, so that the fuzzer
 * reaches the segment walk without having to discover the leading slash.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

static int contains(const char *k, size_t len, const char *needle)
{
    size_t n = strlen(needle), i;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(k + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int ends_with(const char *k, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);

    return len >= n && memcmp(k + len - n, suffix, n) == 0;
}

static int has_reserved_segment(const char *k, size_t len)
{
    static const char name[] = "/" CS_STATE_DIRNAME;
    size_t n = sizeof(name) - 1, i;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(k + i, name, n) == 0 && (i + n == len || k[i + n] == '/')) {
            return 1;
        }
    }
    return 0;
}

static int has_ht_segment(const char *k, size_t len)
{
    size_t i;

    for (i = 0; i + 4 <= len; i++) {
        if (memcmp(k + i, "/.ht", 4) == 0) {
            return 1;
        }
    }
    return 0;
}

static void check(const char *key, size_t len)
{
    cs_key_status_t st = cs_key_check(key, len);
    size_t i;

    FUZZ_CHECK(st == CS_KEY_OK || st == CS_KEY_TOO_LONG || st == CS_KEY_BAD
               || st == CS_KEY_RESERVED || st == CS_KEY_DIRECTORY
               || st == CS_KEY_CONFIG,
               "a known status");
    FUZZ_CHECK((st == CS_KEY_TOO_LONG) == (len > CS_KEY_MAX),
               "TOO_LONG exactly above 2048 bytes");
    if (st == CS_KEY_RESERVED) {
        FUZZ_CHECK(has_reserved_segment(key, len), "RESERVED needs the dir");
    }
    if (st == CS_KEY_DIRECTORY) {
        FUZZ_CHECK(len > 0 && key[len - 1] == '/', "DIRECTORY needs a '/'");
    }
    if (st == CS_KEY_CONFIG) {
        FUZZ_CHECK(has_ht_segment(key, len), "CONFIG needs a .ht segment");
    }
    if (st != CS_KEY_OK) {
        return;
    }
    FUZZ_CHECK(len >= 1 && len <= CS_KEY_MAX, "OK key length 1..2048");
    FUZZ_CHECK(key[0] == '/', "OK key is absolute");
    FUZZ_CHECK(!has_ht_segment(key, len), "OK key has no .ht segment");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        FUZZ_CHECK(c != '\0', "OK key has no NUL");
        FUZZ_CHECK(c >= 0x20 && c != 0x7f, "OK key has no control byte");
        FUZZ_CHECK(c != '\\', "OK key has no backslash");
    }
    FUZZ_CHECK(!contains(key, len, "/../"), "OK key has no /../");
    FUZZ_CHECK(!contains(key, len, "/./"), "OK key has no /./");
    FUZZ_CHECK(!ends_with(key, len, "/.."), "OK key does not end in /..");
    FUZZ_CHECK(!ends_with(key, len, "/."), "OK key does not end in /.");
    FUZZ_CHECK(!has_reserved_segment(key, len), "OK key avoids the state dir");
    FUZZ_CHECK(key[len - 1] != '/', "OK key is not a directory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *k;
    char *padded;

    /* As given (exactly sized buffer: ASan catches a read past len). */
    k = fuzz_dup(data, size);
    check(k, size);
    /* Same answer when followed by other bytes. */
    padded = malloc(size + 3);
    memcpy(padded, data, size);
    memcpy(padded + size, "/..", 3);
    FUZZ_CHECK(cs_key_check(padded, size) == cs_key_check(k, size),
               "the answer depends only on key[0..len)");
    free(padded);
    free(k);
    /* With a leading slash. */
    k = malloc(size + 1);
    k[0] = '/';
    memcpy(k + 1, data, size);
    check(k, size + 1);
    free(k);
    return 0;
}
