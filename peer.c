/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer.c - node-to-node requests; see peer.h.
 */
#include "peer.h"

#include "apr_strings.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

void cs_hmac_hex(const char *secret, const void *data, apr_size_t len,
                 char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)data, len, md, &mdlen);
    cs_hex_encode(md, 32, out);
}

void cs_peer_mac(const char *secret, const char *method, const char *key,
                 apr_uint64_t version, apr_int64_t timestamp, char *out)
{
    char msg[CS_KEY_MAX + 128];
    int n = apr_snprintf(msg, sizeof(msg), "%s\n%s\n%" APR_UINT64_T_FMT
                         "\n%" APR_INT64_T_FMT, method, key, version,
                         timestamp);

    cs_hmac_hex(secret, msg, (apr_size_t)n, out);
}

const char *cs_peer_auth_value(apr_pool_t *p, const cs_server_conf *sc,
                               const char *method, const char *key,
                               apr_uint64_t version)
{
    char mac[CS_SHA256_HEX_LEN + 1];
    apr_int64_t now = apr_time_sec(apr_time_now());

    cs_peer_mac(sc->secret, method, key, version, now, mac);
    return apr_psprintf(p, "%s %" APR_INT64_T_FMT " %s", sc->node_name, now,
                        mac);
}

int cs_peer_auth_check(request_rec *r, const cs_server_conf *sc,
                       const char *key, apr_uint64_t version,
                       const char **node)
{
    const char *h = apr_table_get(r->headers_in, CS_AUTH_HEADER);
    char name[65], ts[24], mac[CS_SHA256_HEX_LEN + 2];
    char want[CS_SHA256_HEX_LEN + 1];
    uint64_t t;
    apr_int64_t now = apr_time_sec(apr_time_now());

    *node = NULL;
    if (!h) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(301)
                      "peer request without " CS_AUTH_HEADER);
        return HTTP_FORBIDDEN;
    }
    if (strlen(h) > 200
        || sscanf(h, "%64[A-Za-z0-9._-] %23[0-9] %65[0-9a-f]", name, ts,
                  mac) != 3
        || strlen(mac) != CS_SHA256_HEX_LEN
        || cs_parse_u64(ts, strlen(ts), &t) != 0
        || t > (uint64_t)APR_INT64_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(302)
                      "malformed " CS_AUTH_HEADER " header");
        return HTTP_FORBIDDEN;
    }
    if ((apr_int64_t)t < now - CS_AUTH_WINDOW
        || (apr_int64_t)t > now + CS_AUTH_WINDOW) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(303)
                      "peer request from %s with timestamp %s outside "
                      "+-%d s of this node's clock", name, ts,
                      CS_AUTH_WINDOW);
        return HTTP_FORBIDDEN;
    }
    cs_peer_mac(sc->secret, r->method, key, version, (apr_int64_t)t, want);
    if (CRYPTO_memcmp(want, mac, CS_SHA256_HEX_LEN) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(304)
                      "peer request claiming to be %s has a wrong MAC", name);
        return HTTP_FORBIDDEN;
    }
    *node = apr_pstrdup(r->pool, name);
    return OK;
}
