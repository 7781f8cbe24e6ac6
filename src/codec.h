/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * codec.h - pure, allocation-free parsers and encoders.
 *
 * Everything here works on plain memory, touches no global state and calls
 * no httpd or APR function, so it can be unit tested and fuzzed on its own
 * (tests/unit, fuzz/).  Every decoder treats its input as hostile: it never
 * reads past the length it was given, never writes past the buffer it was
 * given, and answers "invalid" rather than guessing.
 */
#ifndef CS_CODEC_H
#define CS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CS_KEY_MAX          2048    /* SPEC: longer keys get 414 */
#define CS_SHA256_HEX_LEN   64
#define CS_ENTRY_MAX_LEN    160     /* longest encoded registry value */
#define CS_STATE_DIRNAME    ".clusterstorage"

/* One registry entry: the current version of a key. */
typedef struct {
    uint64_t version;   /* 0: the key was never stored */
    uint64_t size;      /* bytes of this version (0 for a tombstone) */
    int64_t  mtime;     /* time of the PUT/DELETE, microseconds */
    int      deleted;   /* 1: this version is a tombstone */
    char     sha256[CS_SHA256_HEX_LEN + 1]; /* lowercase hex, "" if none */
} cs_entry_t;

/* Result of cs_key_check(). */
typedef enum {
    CS_KEY_OK = 0,
    CS_KEY_TOO_LONG,    /* > CS_KEY_MAX bytes: 414 */
    CS_KEY_BAD,         /* not absolute, control bytes, dot segments: 400 */
    CS_KEY_RESERVED,    /* names the module's own working directory: 404 */
    CS_KEY_CONFIG,      /* a segment starts with ".ht": httpd would read it
                           as configuration or credentials (.htaccess,
                           .htpasswd): 403 */
    CS_KEY_DIRECTORY    /* ends in '/': not a file key */
} cs_key_status_t;

/* Validate a cluster key (the decoded, normalised URL path). */
cs_key_status_t cs_key_check(const char *key, size_t len);

/* Strict unsigned decimal: digits only, no sign, no leading zeros (except
 * "0"), no overflow.  Returns 0 on success, -1 otherwise. */
int cs_parse_u64(const char *s, size_t len, uint64_t *out);

/* Lowercase hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void cs_hex_encode(const unsigned char *in, size_t len, char *out);

/* 1 if s is exactly CS_SHA256_HEX_LEN lowercase hex digits. */
int cs_is_sha256_hex(const char *s, size_t len);

/* Encode e as the compact text stored in memcached (without MAC).  Returns
 * the length written (excluding NUL), or -1 if out is too small. */
int cs_entry_encode(const cs_entry_t *e, char *out, size_t outlen);

/* Decode a value produced by cs_entry_encode().  Returns 0 and fills e on
 * success; -1 for anything else (the caller treats it as a cache miss). */
int cs_entry_decode(const char *in, size_t len, cs_entry_t *e);

/* The strong ETag of a version, identical on every node:
 * "<version>-<first 16 hex digits of the SHA-256>".  out >= 48 bytes. */
void cs_entry_etag(const cs_entry_t *e, char *out, size_t outlen);

/* Called for every header of a response head; return 0 to go on, -1 to
 * reject the response. */
typedef int (*cs_header_cb)(void *baton, const char *name, size_t nlen,
                            const char *value, size_t vlen);

#define CS_HTTP_HEAD_MAX 16384

/* Parse an HTTP/1.x response head at the start of buf[0..len).  Returns the
 * length of the head including the empty line when it is complete and
 * well-formed, 0 when more bytes are needed, -1 when it is malformed (or
 * longer than CS_HTTP_HEAD_MAX).  *status gets the status code. */
long cs_http_parse_head(const char *buf, size_t len, int *status,
                        cs_header_cb cb, void *baton);

/* Parse an X-ClusterStorage-Auth value "NODE TIMESTAMP MAC": NODE as in
 * ClusterStorageNode (1-64 of [A-Za-z0-9._-]), TIMESTAMP decimal seconds,
 * MAC 64 lowercase hex digits, single spaces.  node needs 65 bytes, mac 65.
 * Returns 0 or -1. */
int cs_auth_parse(const char *in, size_t len, char *node, uint64_t *ts,
                  char *mac);

/* Decode a replication queue job file (format in queue.h):
 * "CSJ1 <P|D> <version>\n<key>\n<relpath>".  key and rel point into buf.
 * Returns 0 or -1. */
int cs_job_decode(const char *buf, size_t len, char *op, uint64_t *version,
                  const char **key, size_t *klen, const char **rel,
                  size_t *rlen);

/* Decode the attribute a local copy carries (store.h), "VERSION SHA256
 * KEY": VERSION as cs_parse_u64(), SHA256 64 lowercase hex digits, KEY the
 * rest (may be empty, never holds a NUL; it points into in).  sha256
 * needs 65 bytes.  Returns 0 or -1. */
int cs_meta_decode(const char *in, size_t len, uint64_t *version,
                   char *sha256, const char **key, size_t *klen);

/* SipHash-2-4 (Aumasson & Bernstein) of data[0..len) under the 16-byte
 * key k: a fast keyed hash for tables whose keys come from clients (the
 * node-local cache); not a MAC and not a checksum. */
uint64_t cs_siphash24(const unsigned char k[16], const void *data,
                      size_t len);

/* Where copies of a key go (rendezvous hashing): the score of node for
 * key; a key's copies go to the nodes with the highest scores, so the
 * choice is the same on every node, spreads keys evenly, and moves only
 * the keys of a node that joins or leaves. */
uint64_t cs_place_score(const char *key, const char *node);

#endif /* CS_CODEC_H */
