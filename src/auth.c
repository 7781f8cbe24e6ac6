/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * auth.c - MACs of node-to-node requests; see auth.h.
 */
#include "auth.h"
#include "codec.h"
#include "crypto.h"
#include "cs_private.h"

#include "apr_strings.h"

void cs_auth_mac(const char *secret, const char *method, const char *key,
                 apr_uint64_t version, apr_int64_t timestamp, char *out)
{
    char msg[CS_KEY_MAX + 128];
    int n = apr_snprintf(msg, sizeof(msg), "%s\n%s\n%" APR_UINT64_T_FMT
                         "\n%" APR_INT64_T_FMT, method, key, version,
                         timestamp);

    cs_hmac_hex(secret, msg, (apr_size_t)n, out);
}

const char *cs_auth_value(apr_pool_t *p, const char *node,
                          const char *secret, const char *method,
                          const char *key, apr_uint64_t version,
                          apr_time_t now)
{
    char mac[CS_SHA256_HEX_LEN + 1];
    apr_int64_t ts = apr_time_sec(now);

    cs_auth_mac(secret, method, key, version, ts, mac);
    return apr_psprintf(p, "%s %" APR_INT64_T_FMT " %s", node, ts, mac);
}

int cs_auth_check(request_rec *r, const char *secret, const char *key,
                  apr_uint64_t version, apr_time_t at, const char **node)
{
    const char *h = apr_table_get(r->headers_in, CS_AUTH_HEADER);
    char name[65], ts[24], mac[CS_SHA256_HEX_LEN + 2];
    char want[CS_SHA256_HEX_LEN + 1];
    uint64_t t;
    apr_int64_t now = apr_time_sec(at);

    *node = NULL;
    if (!h) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(301)
                      "peer request without " CS_AUTH_HEADER);
        return HTTP_FORBIDDEN;
    }
    if (cs_auth_parse(h, strlen(h), name, &t, mac) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(302)
                      "malformed " CS_AUTH_HEADER " header");
        return HTTP_FORBIDDEN;
    }
    apr_snprintf(ts, sizeof(ts), "%" APR_UINT64_T_FMT, (apr_uint64_t)t);
    if ((apr_int64_t)t < now - CS_AUTH_WINDOW
        || (apr_int64_t)t > now + CS_AUTH_WINDOW) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(303)
                      "peer request from %s with timestamp %s outside "
                      "+-%d s of this node's clock", name, ts,
                      CS_AUTH_WINDOW);
        return HTTP_FORBIDDEN;
    }
    cs_auth_mac(secret, r->method, key, version, (apr_int64_t)t, want);
    if (!cs_mem_equal(want, mac, CS_SHA256_HEX_LEN)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(304)
                      "peer request claiming to be %s has a wrong MAC", name);
        return HTTP_FORBIDDEN;
    }
    *node = apr_pstrdup(r->pool, name);
    return OK;
}

apr_uint64_t cs_auth_body_digest(const char *body, apr_size_t len)
{
    char hex[CS_SHA256_HEX_LEN + 1];
    apr_uint64_t v = 0;
    int i;

    cs_sha256_hex(body, len, hex);
    for (i = 0; i < 16; i++) {
        int c = hex[i];
        v = (v << 4) | (apr_uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v ? v : 1;
}
