/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * crypto.h - the module's two primitives, SHA-256 and HMAC-SHA256, as
 * lowercase hex, over OpenSSL.
 *
 * Promises: no httpd header and no module state (unit-testable on its
 * own); every function is thread-safe; a streaming context belongs to the
 * pool it was made from and is freed with it.
 */
#ifndef CS_CRYPTO_H
#define CS_CRYPTO_H

#include "apr_pools.h"

#include <stddef.h>

/* out: 65 bytes (64 hex digits and a NUL). */
void cs_sha256_hex(const void *data, size_t len, char *out);
void cs_hmac_hex(const char *secret, const void *data, size_t len,
                 char *out);

/* 1 if a[0..n) == b[0..n), in time that does not depend on where they
 * differ (MACs). */
int cs_mem_equal(const void *a, const void *b, size_t n);

/* A SHA-256 computed piece by piece (a body being received). */
typedef struct cs_sha256_t cs_sha256_t;

apr_status_t cs_sha256_start(apr_pool_t *p, cs_sha256_t **h);
void cs_sha256_update(cs_sha256_t *h, const void *data, size_t len);
/* Once, at the end. */
void cs_sha256_final_hex(cs_sha256_t *h, char *out);

#endif /* CS_CRYPTO_H */
