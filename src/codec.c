/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * codec.c - pure parsers and encoders; see codec.h for the promises.
 */
#include "codec.h"

#include <stdio.h>
#include <string.h>

static const char cs_hexdigits[] = "0123456789abcdef";

void cs_hex_encode(const unsigned char *in, size_t len, char *out)
{
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = cs_hexdigits[in[i] >> 4];
        out[2 * i + 1] = cs_hexdigits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

int cs_is_sha256_hex(const char *s, size_t len)
{
    size_t i;

    if (len != CS_SHA256_HEX_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int cs_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

cs_key_status_t cs_key_check(const char *key, size_t len)
{
    size_t i, seg;

    if (len > CS_KEY_MAX) {
        return CS_KEY_TOO_LONG;
    }
    if (len == 0 || key[0] != '/') {
        return CS_KEY_BAD;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            return CS_KEY_BAD;
        }
    }
    /* Walk the segments: no "." or "..", none named like our state dir. */
    for (seg = 1; seg <= len; ) {
        size_t end = seg;
        while (end < len && key[end] != '/') {
            end++;
        }
        if ((end - seg == 1 && key[seg] == '.')
            || (end - seg == 2 && key[seg] == '.' && key[seg + 1] == '.')) {
            return CS_KEY_BAD;
        }
        if (end - seg == sizeof(CS_STATE_DIRNAME) - 1
            && memcmp(key + seg, CS_STATE_DIRNAME, end - seg) == 0) {
            return CS_KEY_RESERVED;
        }
        if (end - seg >= 3 && memcmp(key + seg, ".ht", 3) == 0) {
            return CS_KEY_CONFIG;
        }
        seg = end + 1;
    }
    if (key[len - 1] == '/') {
        return CS_KEY_DIRECTORY;
    }
    return CS_KEY_OK;
}

int cs_entry_encode(const cs_entry_t *e, char *out, size_t outlen)
{
    int n;

    if (e->mtime < 0 || (e->sha256[0] && !cs_is_sha256_hex(
                             e->sha256, strlen(e->sha256)))) {
        return -1;
    }
    n = snprintf(out, outlen, "CS1 %llu %llu %s %lld %d",
                 (unsigned long long)e->version,
                 (unsigned long long)e->size,
                 e->sha256[0] ? e->sha256 : "-",
                 (long long)e->mtime, e->deleted ? 1 : 0);
    if (n < 0 || (size_t)n >= outlen) {
        return -1;
    }
    return n;
}

/* Next space-separated token of [*p, end); -1 if none. */
static int cs_next_token(const char **p, const char *end,
                         const char **tok, size_t *toklen)
{
    const char *s = *p;
    const char *t;

    if (s >= end) {
        return -1;
    }
    t = s;
    while (t < end && *t != ' ') {
        t++;
    }
    if (t == s) {
        return -1;      /* empty token: double space or leading space */
    }
    *tok = s;
    *toklen = (size_t)(t - s);
    *p = (t < end) ? t + 1 : t;
    if (t < end && *p >= end) {
        return -1;      /* trailing space */
    }
    return 0;
}

int cs_entry_decode(const char *in, size_t len, cs_entry_t *e)
{
    const char *p = in, *end = in + len, *tok;
    size_t toklen;
    uint64_t v, mtime, del;
    cs_entry_t out;

    if (in == NULL || len == 0 || len > CS_ENTRY_MAX_LEN) {
        return -1;
    }
    memset(&out, 0, sizeof(out));
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || toklen != 3 || memcmp(tok, "CS1", 3) != 0) {
        return -1;
    }
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || cs_parse_u64(tok, toklen, &out.version) != 0) {
        return -1;
    }
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || cs_parse_u64(tok, toklen, &v) != 0 || v > (uint64_t)INT64_MAX) {
        return -1;
    }
    out.size = v;
    if (cs_next_token(&p, end, &tok, &toklen) != 0) {
        return -1;
    }
    if (toklen == 1 && tok[0] == '-') {
        out.sha256[0] = '\0';
    }
    else if (cs_is_sha256_hex(tok, toklen)) {
        memcpy(out.sha256, tok, toklen);
        out.sha256[toklen] = '\0';
    }
    else {
        return -1;
    }
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || cs_parse_u64(tok, toklen, &mtime) != 0
        || mtime > (uint64_t)INT64_MAX) {
        return -1;
    }
    out.mtime = (int64_t)mtime;
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || cs_parse_u64(tok, toklen, &del) != 0 || del > 1) {
        return -1;
    }
    out.deleted = (int)del;
    if (p != end) {
        return -1;      /* trailing garbage */
    }
    /* Consistency: a live version has a checksum; "never stored" is all
     * zeroes; a tombstone has neither size nor checksum. */
    if (out.version == 0) {
        if (out.size || out.deleted || out.sha256[0] || out.mtime) {
            return -1;
        }
    }
    else if (out.deleted) {
        if (out.size || out.sha256[0]) {
            return -1;
        }
    }
    else if (!out.sha256[0]) {
        return -1;
    }
    *e = out;
    return 0;
}

void cs_entry_etag(const cs_entry_t *e, char *out, size_t outlen)
{
    char digits[24];
    size_t n = 0, i, o = 0;
    uint64_t v = e->version;
    const char *hex = e->sha256[0] ? e->sha256 : "0";
    size_t hlen = strnlen(hex, 16);

    /* On every hit: formatted by hand rather than by snprintf. */
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (outlen < n + hlen + 4) {
        if (outlen) {
            out[0] = '\0';
        }
        return;
    }
    out[o++] = '"';
    for (i = n; i > 0; i--) {
        out[o++] = digits[i - 1];
    }
    out[o++] = '-';
    memcpy(out + o, hex, hlen);
    o += hlen;
    out[o++] = '"';
    out[o] = '\0';
}

static int cs_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

long cs_http_parse_head(const char *buf, size_t len, int *status,
                        cs_header_cb cb, void *baton)
{
    size_t end = 0, i, line, next;
    int found = 0;

    /* Find the empty line that ends the head (CRLF CRLF or LF LF). */
    for (i = 0; i < len && i < CS_HTTP_HEAD_MAX; i++) {
        if (buf[i] == '\n') {
            if (i + 1 < len && buf[i + 1] == '\n') {
                end = i + 2;
                found = 1;
                break;
            }
            if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
                end = i + 3;
                found = 1;
                break;
            }
        }
    }
    if (!found) {
        return (len >= CS_HTTP_HEAD_MAX) ? -1 : 0;
    }
    if (end > CS_HTTP_HEAD_MAX) {
        return -1;      /* the limit holds however much was read */
    }
    /* Status line: HTTP/1.x SP DDD [SP reason] */
    if (end < 14 || memcmp(buf, "HTTP/1.", 7) != 0
        || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' '
        || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9'
        || buf[11] < '0' || buf[11] > '9'
        || (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')) {
        return -1;
    }
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    for (line = 12; line < end && buf[line] != '\n'; line++) {
        if (buf[line] == '\0') {
            return -1;
        }
    }
    line++;
    /* Header lines until the empty one. */
    while (line < end) {
        size_t eol = line, colon, vs, ve;

        while (eol < end && buf[eol] != '\n') {
            eol++;
        }
        next = eol + 1;
        ve = (eol > line && buf[eol - 1] == '\r') ? eol - 1 : eol;
        if (ve == line) {
            break;                          /* the empty line */
        }
        for (colon = line; colon < ve && cs_is_tchar(
                 (unsigned char)buf[colon]); colon++) {
        }
        if (colon == line || colon >= ve || buf[colon] != ':') {
            return -1;                      /* no name, or obs-fold */
        }
        for (vs = colon + 1; vs < ve && (buf[vs] == ' ' || buf[vs] == '\t');
             vs++) {
        }
        while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) {
            ve--;
        }
        for (i = vs; i < ve; i++) {
            unsigned char c = (unsigned char)buf[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return -1;
            }
        }
        if (cb && cb(baton, buf + line, colon - line, buf + vs, ve - vs)) {
            return -1;
        }
        line = next;
    }
    return (long)end;
}

int cs_auth_parse(const char *in, size_t len, char *node, uint64_t *ts,
                  char *mac)
{
    const char *p = in, *end = in + len, *tok;
    size_t toklen, i;

    if (len > 200 || cs_next_token(&p, end, &tok, &toklen) != 0
        || toklen > 64) {
        return -1;
    }
    for (i = 0; i < toklen; i++) {
        char c = tok[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_'
              || c == '-')) {
            return -1;
        }
    }
    memcpy(node, tok, toklen);
    node[toklen] = '\0';
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || cs_parse_u64(tok, toklen, ts) != 0 || *ts > (uint64_t)INT64_MAX) {
        return -1;
    }
    if (cs_next_token(&p, end, &tok, &toklen) != 0
        || !cs_is_sha256_hex(tok, toklen) || p != end) {
        return -1;
    }
    memcpy(mac, tok, toklen);
    mac[toklen] = '\0';
    return 0;
}

int cs_job_decode(const char *buf, size_t len, char *op, uint64_t *version,
                  const char **key, size_t *klen, const char **rel,
                  size_t *rlen)
{
    const char *end = buf + len, *nl, *nl2, *k;

    if (len < 9 || memcmp(buf, "CSJ1 ", 5) != 0
        || (buf[5] != 'P' && buf[5] != 'D') || buf[6] != ' '
        || memchr(buf, '\0', len)) {
        return -1;
    }
    nl = memchr(buf + 7, '\n', (size_t)(end - buf - 7));
    if (!nl || cs_parse_u64(buf + 7, (size_t)(nl - buf - 7), version) != 0
        || *version == 0) {
        return -1;
    }
    k = nl + 1;
    nl2 = memchr(k, '\n', (size_t)(end - k));
    if (!nl2) {
        return -1;
    }
    *klen = (size_t)(nl2 - k);
    *rlen = (size_t)(end - nl2 - 1);
    if (cs_key_check(k, *klen) != CS_KEY_OK
        || cs_key_check(nl2 + 1, *rlen) != CS_KEY_OK) {
        return -1;
    }
    *op = buf[5];
    *key = k;
    *rel = nl2 + 1;
    return 0;
}

int cs_meta_decode(const char *in, size_t len, uint64_t *version,
                   char *sha256, const char **key, size_t *klen)
{
    const char *sp1 = memchr(in, ' ', len), *sp2;

    if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(in + len - sp1 - 1)))
        || cs_parse_u64(in, (size_t)(sp1 - in), version) != 0
        || !cs_is_sha256_hex(sp1 + 1, (size_t)(sp2 - sp1 - 1))
        || memchr(sp2 + 1, '\0', (size_t)(in + len - sp2 - 1))) {
        return -1;
    }
    memcpy(sha256, sp1 + 1, CS_SHA256_HEX_LEN);
    sha256[CS_SHA256_HEX_LEN] = '\0';
    *key = sp2 + 1;
    *klen = (size_t)(in + len - sp2 - 1);
    return 0;
}

static uint64_t cs_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16
           | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32
           | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48
           | (uint64_t)p[7] << 56;
}

#define CS_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define CS_SIPROUND                                                     \
    do {                                                                \
        v0 += v1; v1 = CS_ROTL(v1, 13); v1 ^= v0; v0 = CS_ROTL(v0, 32); \
        v2 += v3; v3 = CS_ROTL(v3, 16); v3 ^= v2;                       \
        v0 += v3; v3 = CS_ROTL(v3, 21); v3 ^= v0;                       \
        v2 += v1; v1 = CS_ROTL(v1, 17); v1 ^= v2; v2 = CS_ROTL(v2, 32); \
    } while (0)

uint64_t cs_siphash24(const unsigned char k[16], const void *data,
                      size_t len)
{
    const unsigned char *p = data, *end = p + (len & ~(size_t)7);
    uint64_t k0 = cs_le64(k), k1 = cs_le64(k + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i;

    for (; p < end; p += 8) {
        m = cs_le64(p);
        v3 ^= m;
        CS_SIPROUND;
        CS_SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < (len & 7); i++) {
        b |= (uint64_t)p[i] << (8 * i);
    }
    v3 ^= b;
    CS_SIPROUND;
    CS_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    CS_SIPROUND;
    CS_SIPROUND;
    CS_SIPROUND;
    CS_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t cs_place_score(const char *key, const char *node)
{
    /* A fixed SipHash key: placement must be the same on every node, and
     * a client choosing keys can at worst put its own keys together. */
    static const unsigned char k[16] = "cs-placement-v1";
    unsigned char buf[CS_KEY_MAX + 1 + 65];
    size_t kl = strlen(key), nl = strlen(node);

    if (kl > CS_KEY_MAX) {
        kl = CS_KEY_MAX;
    }
    if (nl > 64) {
        nl = 64;
    }
    memcpy(buf, key, kl);
    buf[kl] = '\0';
    memcpy(buf + kl + 1, node, nl);
    return cs_siphash24(k, buf, kl + 1 + nl);
}
