/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_http_head.c - libFuzzer harness for cs_http_parse_head(), the parser
 * of a peer's HTTP response head (peer.c feeds it whatever the socket gave
 * so far, up to CS_HTTP_HEAD_MAX bytes, and calls it again after every
 * read).
 *
 * Invariants checked on every input:
 *  - no read outside [buf, buf+len) (ASan; the buffer is exactly sized);
 *  - the result is -1, 0 or a head length in [14, len];
 *  - on success the status is 100..599 and every header the callback saw
 *    lies inside the head, has a non-empty token name followed by ':',
 *    and a value without CTLs or surrounding blanks;
 *  - a complete answer is final: feeding a prefix of the input gives 0 or
 *    the same answer (so reading the socket in pieces cannot change the
 *    outcome), the exact head alone parses the same, and one byte less
 *    than the head needs more;
 *  - a callback that rejects makes the whole parse fail.
 */
#include "codec.h"
#include "fuzz/fuzz_common.h"

typedef struct {
    const char *buf;
    size_t len;
    unsigned calls;
    unsigned reject_at;     /* 1-based call to reject, 0: never */
    size_t last_end;        /* headers come in order, without overlap */
} baton_t;

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int on_header(void *v, const char *name, size_t nlen,
                     const char *value, size_t vlen)
{
    baton_t *b = v;
    size_t i, noff, voff;

    FUZZ_CHECK(name >= b->buf && name + nlen <= b->buf + b->len,
               "header name inside the buffer");
    FUZZ_CHECK(value >= b->buf && value + vlen <= b->buf + b->len,
               "header value inside the buffer");
    noff = (size_t)(name - b->buf);
    voff = (size_t)(value - b->buf);
    FUZZ_CHECK(noff >= b->last_end, "headers in order, no overlap");
    FUZZ_CHECK(nlen > 0, "header name not empty");
    for (i = 0; i < nlen; i++) {
        FUZZ_CHECK(is_tchar((unsigned char)name[i]), "header name is a token");
    }
    FUZZ_CHECK(noff + nlen < b->len && name[nlen] == ':', "name ends at ':'");
    FUZZ_CHECK(voff > noff + nlen, "value after the colon");
    for (i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];
        FUZZ_CHECK(!((c < 0x20 && c != '\t') || c == 0x7f),
                   "no CTL in a header value");
    }
    if (vlen) {
        FUZZ_CHECK(value[0] != ' ' && value[0] != '\t'
                   && value[vlen - 1] != ' ' && value[vlen - 1] != '\t',
                   "header value trimmed");
    }
    b->last_end = voff + vlen;
    b->calls++;
    return (b->reject_at && b->calls == b->reject_at) ? -1 : 0;
}

static long parse(const uint8_t *data, size_t len, int *status,
                  baton_t *b, unsigned reject_at)
{
    char *buf = fuzz_dup(data, len);
    long r;

    memset(b, 0, sizeof(*b));
    b->buf = buf;
    b->len = len;
    b->reject_at = reject_at;
    *status = -12345;
    r = cs_http_parse_head(buf, len, status, on_header, b);
    free(buf);
    b->buf = NULL;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    baton_t b, b2;
    int status, status2;
    long r, r2;
    size_t cut;

    r = parse(data, size, &status, &b, 0);
    FUZZ_CHECK(r == -1 || r == 0 || (r >= 14 && (size_t)r <= size),
               "result is -1, 0 or a head length within the input");
    if (r == 0) {
        FUZZ_CHECK(size < CS_HTTP_HEAD_MAX, "need more only below the cap");
        FUZZ_CHECK(b.calls == 0, "no callbacks for an incomplete head");
    }
    if (r > 0) {
        FUZZ_CHECK(status >= 100 && status <= 599, "status 1xx..5xx");
        FUZZ_CHECK((size_t)r <= CS_HTTP_HEAD_MAX,
                   "a head longer than CS_HTTP_HEAD_MAX is refused (codec.h)");
        FUZZ_CHECK(data[r - 1] == '\n', "head ends with a newline");

        /* The head alone parses the same, with the same headers. */
        r2 = parse(data, (size_t)r, &status2, &b2, 0);
        FUZZ_CHECK(r2 == r && status2 == status && b2.calls == b.calls,
                   "the head alone parses the same");
        /* One byte short: need more. */
        r2 = parse(data, (size_t)r - 1, &status2, &b2, 0);
        FUZZ_CHECK(r2 == 0, "a truncated head needs more bytes");

        /* A callback that refuses fails the parse. */
        if (b.calls) {
            unsigned at = 1 + (unsigned)(data[0] % b.calls);
            r2 = parse(data, size, &status2, &b2, at);
            FUZZ_CHECK(r2 == -1 && b2.calls == at,
                       "a rejecting callback stops the parse");
        }
    }
    /* Reading in pieces cannot change the answer: a prefix (cut taken
     * from the input so the fuzzer can steer it) gives 0 or the answer. */
    if (size > 1) {
        cut = ((size_t)data[size - 1] * 131u + size / 2) % size;
        r2 = parse(data, cut, &status2, &b2, 0);
        FUZZ_CHECK(r2 == 0 || r2 == r, "a prefix answers 0 or the same");
        if (r2 > 0) {
            FUZZ_CHECK(status2 == status, "a prefix gives the same status");
        }
    }
    /* Without a callback the answer is the same. */
    if (r != 0) {
        char *buf = fuzz_dup(data, size);
        r2 = cs_http_parse_head(buf, size, &status2, NULL, NULL);
        free(buf);
        FUZZ_CHECK(r2 == r, "the callback does not change the answer");
    }
    return 0;
}
