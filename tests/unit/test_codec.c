/* Unit tests of codec.c (pure parsers/encoders).  Built with ASan/UBSan by
 * `make -f Makefile.apxs unit`; prints "N passed, N failed". */
#include "codec.h"

#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, what) do {                                   \
        if (cond) { passed++; }                                  \
        else { failed++; fprintf(stderr, "FAIL %s:%d: %s\n",     \
                                 __FILE__, __LINE__, what); }    \
    } while (0)

static const char SHA[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

static void test_keys(void)
{
    char big[CS_KEY_MAX + 2];

    CHECK(cs_key_check("/a/b.txt", 8) == CS_KEY_OK, "plain key");
    CHECK(cs_key_check("a", 1) == CS_KEY_BAD, "relative key");
    CHECK(cs_key_check("", 0) == CS_KEY_BAD, "empty key");
    CHECK(cs_key_check("/a/../b", 7) == CS_KEY_BAD, "dot-dot segment");
    CHECK(cs_key_check("/a/./b", 6) == CS_KEY_BAD, "dot segment");
    CHECK(cs_key_check("/..", 3) == CS_KEY_BAD, "trailing dot-dot");
    CHECK(cs_key_check("/a..b", 5) == CS_KEY_OK, "dots inside a name");
    CHECK(cs_key_check("/a\nb", 4) == CS_KEY_BAD, "control byte");
    CHECK(cs_key_check("/a\x7f", 3) == CS_KEY_BAD, "DEL byte");
    CHECK(cs_key_check("/a\0b", 4) == CS_KEY_BAD, "NUL byte");
    CHECK(cs_key_check("/a\\b", 4) == CS_KEY_BAD, "backslash");
    CHECK(cs_key_check("/x/.clusterstorage/tmp/f", 24) == CS_KEY_RESERVED,
          "state dir");
    CHECK(cs_key_check("/a/.htaccess", 12) == CS_KEY_CONFIG, ".htaccess");
    CHECK(cs_key_check("/.htpasswd", 10) == CS_KEY_CONFIG, ".htpasswd");
    CHECK(cs_key_check("/.ht/x", 6) == CS_KEY_CONFIG, ".ht directory");
    CHECK(cs_key_check("/a/x.htaccess", 13) == CS_KEY_OK, "x.htaccess");
    CHECK(cs_key_check("/a/.h", 5) == CS_KEY_OK, ".h");
    CHECK(cs_key_check("/.clusterstorage", 16) == CS_KEY_RESERVED,
          "state dir at the end");
    CHECK(cs_key_check("/.clusterstoragex", 17) == CS_KEY_OK,
          "longer name is fine");
    CHECK(cs_key_check("/dir/", 5) == CS_KEY_DIRECTORY, "directory");
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    CHECK(cs_key_check(big, CS_KEY_MAX) == CS_KEY_OK, "2048 bytes is ok");
    CHECK(cs_key_check(big, CS_KEY_MAX + 1) == CS_KEY_TOO_LONG, "2049 bytes");
}

static void test_u64(void)
{
    uint64_t v;

    CHECK(cs_parse_u64("0", 1, &v) == 0 && v == 0, "zero");
    CHECK(cs_parse_u64("18446744073709551615", 20, &v) == 0
          && v == UINT64_MAX, "max");
    CHECK(cs_parse_u64("18446744073709551616", 20, &v) != 0, "overflow");
    CHECK(cs_parse_u64("01", 2, &v) != 0, "leading zero");
    CHECK(cs_parse_u64("-1", 2, &v) != 0, "sign");
    CHECK(cs_parse_u64("1a", 2, &v) != 0, "garbage");
    CHECK(cs_parse_u64("", 0, &v) != 0, "empty");
}

static void test_entry(void)
{
    cs_entry_t e, d;
    char buf[CS_ENTRY_MAX_LEN + 1], etag[64];
    int n;

    memset(&e, 0, sizeof(e));
    e.version = 7;
    e.size = 12345;
    e.mtime = 1700000000123456LL;
    strcpy(e.sha256, SHA);
    n = cs_entry_encode(&e, buf, sizeof(buf));
    CHECK(n > 0, "encode live");
    CHECK(cs_entry_decode(buf, (size_t)n, &d) == 0
          && memcmp(&e, &d, sizeof(e)) == 0, "round trip live");

    memset(&e, 0, sizeof(e));
    n = cs_entry_encode(&e, buf, sizeof(buf));
    CHECK(cs_entry_decode(buf, (size_t)n, &d) == 0 && d.version == 0,
          "round trip never-stored");

    e.version = 9;
    e.deleted = 1;
    e.mtime = 5;
    n = cs_entry_encode(&e, buf, sizeof(buf));
    CHECK(cs_entry_decode(buf, (size_t)n, &d) == 0 && d.deleted
          && d.version == 9, "round trip tombstone");

    CHECK(cs_entry_decode("", 0, &d) != 0, "empty value");
    CHECK(cs_entry_decode("garbage", 7, &d) != 0, "garbage value");
    CHECK(cs_entry_decode("CS1 1 2 - 3 0", 13, &d) != 0,
          "live version without checksum");
    CHECK(cs_entry_decode("CS1 1 2 abc 3 0", 15, &d) != 0, "short checksum");
    CHECK(cs_entry_decode("CS1  1 2 - 3 1", 14, &d) != 0, "double space");
    CHECK(cs_entry_decode("CS1 1 0 - 3 1 ", 14, &d) != 0, "trailing space");
    CHECK(cs_entry_decode("CS1 1 0 - 3 1 x", 15, &d) != 0, "extra token");
    CHECK(cs_entry_decode("CS1 1 0 - 3 2", 13, &d) != 0, "bad deleted");
    CHECK(cs_entry_decode("CS2 1 0 - 3 1", 13, &d) != 0, "bad magic");
    CHECK(cs_entry_decode("CS1 0 1 - 0 0", 13, &d) != 0,
          "never-stored with a size");
    CHECK(cs_entry_decode("CS1 1 0 - 3 1", 12, &d) != 0, "truncated");

    memset(&e, 0, sizeof(e));
    e.version = 3;
    strcpy(e.sha256, SHA);
    cs_entry_etag(&e, etag, sizeof(etag));
    CHECK(strcmp(etag, "\"3-9f86d081884c7d65\"") == 0, "etag format");
    e.version = 18446744073709551615ULL;
    cs_entry_etag(&e, etag, sizeof(etag));
    CHECK(strcmp(etag, "\"18446744073709551615-9f86d081884c7d65\"") == 0,
          "etag of the largest version");
    e.version = 0;
    e.sha256[0] = '\0';
    cs_entry_etag(&e, etag, sizeof(etag));
    CHECK(strcmp(etag, "\"0-0\"") == 0, "etag without a checksum");
    e.version = 12;
    strcpy(e.sha256, SHA);
    cs_entry_etag(&e, etag, 10);
    CHECK(etag[0] == '\0', "etag that does not fit");
}

static void test_hex(void)
{
    char out[9];
    const unsigned char in[4] = { 0x00, 0x9f, 0xa0, 0xff };

    cs_hex_encode(in, 4, out);
    CHECK(strcmp(out, "009fa0ff") == 0, "hex encode");
    CHECK(cs_is_sha256_hex(SHA, 64), "sha hex");
    CHECK(!cs_is_sha256_hex("9F86", 4), "short hex");
}

static void test_auth(void)
{
    char node[65], mac[65];
    uint64_t ts;
    char ok[200];

    snprintf(ok, sizeof(ok), "n1 1700000000 %s", SHA);
    CHECK(cs_auth_parse(ok, strlen(ok), node, &ts, mac) == 0
          && strcmp(node, "n1") == 0 && ts == 1700000000ULL
          && strcmp(mac, SHA) == 0, "auth parse");
    CHECK(cs_auth_parse("n1 1700000000", 13, node, &ts, mac) != 0,
          "auth without mac");
    snprintf(ok, sizeof(ok), "n/1 1 %s", SHA);
    CHECK(cs_auth_parse(ok, strlen(ok), node, &ts, mac) != 0, "bad name");
    snprintf(ok, sizeof(ok), "n1 -1 %s", SHA);
    CHECK(cs_auth_parse(ok, strlen(ok), node, &ts, mac) != 0, "bad ts");
    snprintf(ok, sizeof(ok), "n1 1 %s ", SHA);
    CHECK(cs_auth_parse(ok, strlen(ok), node, &ts, mac) != 0, "trailing");
}

static int cs_count_hdr(void *b, const char *n, size_t nl, const char *v,
                        size_t vl)
{
    (void)n; (void)nl; (void)v; (void)vl;
    (*(int *)b)++;
    return 0;
}

static void test_http(void)
{
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                     "X-ClusterStorage-Version: 3\r\n\r\nhello";
    int status = 0, n = 0;
    long len = cs_http_parse_head(ok, strlen(ok), &status, cs_count_hdr, &n);

    CHECK(len == (long)strlen(ok) - 5 && status == 200 && n == 2,
          "http head");
    CHECK(cs_http_parse_head(ok, 20, &status, NULL, NULL) == 0, "partial");
    CHECK(cs_http_parse_head("HTTP/1.1 20 OK\r\n\r\n", 19, &status, NULL,
                             NULL) == -1, "short status");
    CHECK(cs_http_parse_head("HTTX/1.1 200 OK\r\n\r\n", 19, &status,
                             NULL, NULL) == -1, "bad protocol");
    CHECK(cs_http_parse_head("HTTP/1.1 200 OK\r\n folded\r\n\r\n", 29,
                             &status, NULL, NULL) == -1, "obs-fold");
    CHECK(cs_http_parse_head("HTTP/1.1 200 OK\r\nA\x01: b\r\n\r\n", 26,
                             &status, NULL, NULL) == -1, "bad name");
}

/* The reference vectors of the SipHash paper (key 00..0f, message
 * 00..len-1). */
static void test_siphash(void)
{
    unsigned char k[16], m[64];
    int i;

    for (i = 0; i < 16; i++) {
        k[i] = (unsigned char)i;
    }
    for (i = 0; i < 64; i++) {
        m[i] = (unsigned char)i;
    }
    CHECK(cs_siphash24(k, m, 0) == 0x726fdb47dd0e0e31ULL, "siphash empty");
    CHECK(cs_siphash24(k, m, 7) == 0xab0200f58b01d137ULL, "siphash 7");
    CHECK(cs_siphash24(k, m, 8) == 0x93f5f5799a932462ULL, "siphash 8");
    CHECK(cs_siphash24(k, m, 15) == 0xa129ca6149be45e5ULL, "siphash 15");
    CHECK(cs_siphash24(k, m, 63) == 0x958a324ceb064572ULL, "siphash 63");
    k[0] ^= 1;
    CHECK(cs_siphash24(k, m, 15) != 0xa129ca6149be45e5ULL, "siphash key");
}

/* The attribute of a local copy, "VERSION SHA256 KEY". */
static void test_meta(void)
{
    char buf[200], sha[65];
    const char *key;
    size_t klen;
    uint64_t v = 0;

    snprintf(buf, sizeof(buf), "7 %s /a b", SHA);
    CHECK(cs_meta_decode(buf, strlen(buf), &v, sha, &key, &klen) == 0
          && v == 7 && strcmp(sha, SHA) == 0 && klen == 4
          && memcmp(key, "/a b", 4) == 0, "meta parse (key with a space)");
    snprintf(buf, sizeof(buf), "7 %s ", SHA);
    CHECK(cs_meta_decode(buf, strlen(buf), &v, sha, &key, &klen) == 0
          && klen == 0, "meta with an empty key");
    snprintf(buf, sizeof(buf), "7 %s", SHA);
    CHECK(cs_meta_decode(buf, strlen(buf), &v, sha, &key, &klen) != 0,
          "meta without a key");
    snprintf(buf, sizeof(buf), "07 %s /a", SHA);
    CHECK(cs_meta_decode(buf, strlen(buf), &v, sha, &key, &klen) != 0,
          "meta with a leading zero");
    snprintf(buf, sizeof(buf), "7 %.63s /a", SHA);
    CHECK(cs_meta_decode(buf, strlen(buf), &v, sha, &key, &klen) != 0,
          "meta with a short checksum");
    snprintf(buf, sizeof(buf), "7 %s /a", SHA);
    buf[strlen(buf) - 1] = '\0';
    CHECK(cs_meta_decode(buf, strlen(SHA) + 5, &v, sha, &key, &klen) != 0,
          "meta with a NUL in the key");
    CHECK(cs_meta_decode("7", 1, &v, sha, &key, &klen) != 0, "meta 7");
    CHECK(cs_meta_decode("", 0, &v, sha, &key, &klen) != 0, "meta empty");
}

/* Placement: deterministic, and even over the nodes. */
static void test_place(void)
{
    static const char *nodes[] = { "n1", "n2", "n3", "n4" };
    int first[4] = { 0, 0, 0, 0 }, i, j;
    char key[32];

    CHECK(cs_place_score("/a", "n1") == cs_place_score("/a", "n1"),
          "same score each time");
    CHECK(cs_place_score("/a", "n1") != cs_place_score("/a", "n2"),
          "a score per node");
    CHECK(cs_place_score("/ab", "n1") != cs_place_score("/a", "bn1"),
          "key and node are kept apart");
    for (i = 0; i < 10000; i++) {
        int best = 0;
        snprintf(key, sizeof(key), "/files/k%d", i);
        for (j = 1; j < 4; j++) {
            if (cs_place_score(key, nodes[j])
                > cs_place_score(key, nodes[best])) {
                best = j;
            }
        }
        first[best]++;
    }
    for (j = 0; j < 4; j++) {
        CHECK(first[j] > 2300 && first[j] < 2700,
              "each of 4 nodes comes first for about a quarter of keys");
    }
}

int main(void)
{
    test_place();
    test_meta();
    test_siphash();
    test_auth();
    test_http();
    test_keys();
    test_u64();
    test_entry();
    test_hex();
    printf("codec: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
