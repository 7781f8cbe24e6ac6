/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * crypto.c - SHA-256 and HMAC-SHA256 over OpenSSL; see crypto.h.
 */
#include "crypto.h"
#include "codec.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct cs_sha256_t {
    EVP_MD_CTX *md;
};

void cs_sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    cs_hex_encode(md, 32, out);
}

void cs_hmac_hex(const char *secret, const void *data, size_t len,
                 char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)data, len, md, &mdlen);
    cs_hex_encode(md, 32, out);
}

int cs_mem_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static apr_status_t cs_sha256_cleanup(void *data)
{
    cs_sha256_t *h = data;

    EVP_MD_CTX_free(h->md);
    h->md = NULL;
    return APR_SUCCESS;
}

apr_status_t cs_sha256_start(apr_pool_t *p, cs_sha256_t **hp)
{
    cs_sha256_t *h = apr_pcalloc(p, sizeof(*h));

    h->md = EVP_MD_CTX_new();
    if (!h->md) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, h, cs_sha256_cleanup, apr_pool_cleanup_null);
    if (!EVP_DigestInit_ex(h->md, EVP_sha256(), NULL)) {
        return APR_ENOMEM;
    }
    *hp = h;
    return APR_SUCCESS;
}

void cs_sha256_update(cs_sha256_t *h, const void *data, size_t len)
{
    EVP_DigestUpdate(h->md, data, len);
}

void cs_sha256_final_hex(cs_sha256_t *h, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    EVP_DigestFinal_ex(h->md, md, &mdlen);
    cs_hex_encode(md, 32, out);
}
