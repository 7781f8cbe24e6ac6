/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mcache.c - the registry's memcached front: signed entries; see mcache.h.
 */
#include "mcache.h"
#include "crypto.h"

#include "ap_mpm.h"
#include "apr_strings.h"

#define CS_MC_MAC_LEN   32

void cs_mc_key(const char *key, char out[CS_MC_KEY_LEN + 1])
{
    memcpy(out, "cs1:", 4);
    cs_sha256_hex(key, strlen(key), out + 4);
}

/* Hex HMAC-SHA256 (first CS_MC_MAC_LEN digits) binding value to key. */
static void cs_mc_mac(const cs_server_conf *sc, const char *key,
                      const char *val, apr_size_t vlen,
                      char out[CS_MC_MAC_LEN + 1])
{
    apr_size_t klen = strlen(key);
    char buf[CS_KEY_MAX + 1 + CS_ENTRY_MAX_LEN + 1];
    char hex[CS_SHA256_HEX_LEN + 1];

    if (klen > CS_KEY_MAX || vlen > CS_ENTRY_MAX_LEN) {
        memset(out, 'x', CS_MC_MAC_LEN);    /* never matches a hex MAC */
        out[CS_MC_MAC_LEN] = '\0';
        return;
    }
    memcpy(buf, key, klen);
    buf[klen] = '\n';
    memcpy(buf + klen + 1, val, vlen);
    cs_hmac_hex(sc->secret, buf, klen + 1 + vlen, hex);
    memcpy(out, hex, CS_MC_MAC_LEN);
    out[CS_MC_MAC_LEN] = '\0';
}

static int cs_mc_value(const cs_server_conf *sc, const char *key,
                       const cs_entry_t *e, char *out, apr_size_t outlen)
{
    int n = cs_entry_encode(e, out, outlen);

    if (n < 0 || (apr_size_t)n + 2 + CS_MC_MAC_LEN > outlen) {
        return -1;
    }
    out[n] = ' ';
    cs_mc_mac(sc, key, out, (apr_size_t)n, out + n + 1);
    return n + 1 + CS_MC_MAC_LEN;
}

/* 0 and *e on a valid, authentic value; -1 otherwise. */
static int cs_mc_decode(const cs_server_conf *sc, const char *key,
                        const char *val, apr_size_t len, cs_entry_t *e)
{
    char mac[CS_MC_MAC_LEN + 1];
    apr_size_t body;

    if (len < CS_MC_MAC_LEN + 2 || len > CS_ENTRY_MAX_LEN + 1 + CS_MC_MAC_LEN
        || val[len - CS_MC_MAC_LEN - 1] != ' ') {
        return -1;
    }
    body = len - CS_MC_MAC_LEN - 1;
    cs_mc_mac(sc, key, val, body, mac);
    if (!cs_mem_equal(mac, val + body + 1, CS_MC_MAC_LEN)) {
        return -1;
    }
    return cs_entry_decode(val, body, e);
}

/* Reader: populate without overwriting what a writer may have set. */
void cs_mc_add(request_rec *r, const cs_server_conf *sc,
                      const char *key, const char *mckey,
                      const cs_entry_t *e)
{
    char val[CS_ENTRY_MAX_LEN + CS_MC_MAC_LEN + 2];
    int n;
    apr_status_t rv;

    if (!sc->mc || (n = cs_mc_value(sc, key, e, val, sizeof(val))) < 0) {
        return;
    }
    rv = apr_memcache_add(sc->mc, mckey, val, (apr_size_t)n,
                          (apr_uint32_t)sc->cache_ttl, 0);
    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, CSLOG(110)
                      "memcached add failed for %s", key);
    }
}

/* Writer, after the commit: overwrite; if that fails, drop the entry. */
#define CS_MC_WRITE_TRIES 4

/* Mark every server live again: the next call tries it at once. */
static void cs_mc_revive(apr_memcache_t *mc)
{
    int i;

    for (i = 0; i < mc->ntotal; i++) {
        apr_memcache_enable_server(mc, mc->live_servers[i]);
    }
}

static int cs_mc_any_live(apr_memcache_t *mc)
{
    int i;

    for (i = 0; i < mc->ntotal; i++) {
        if (mc->live_servers[i]->status == APR_MC_SERVER_LIVE) {
            return 1;
        }
    }
    return 0;
}

void cs_mc_set(request_rec *r, const cs_server_conf *sc,
               const char *key, const cs_entry_t *e)
{
    char mckey[CS_MC_KEY_LEN + 1];
    char val[CS_ENTRY_MAX_LEN + CS_MC_MAC_LEN + 2];
    int n, attempt;
    apr_status_t rv;

    if (!sc->mc) {
        return;
    }
    cs_mc_key(key, mckey);
    n = cs_mc_value(sc, key, e, val, sizeof(val));
    if (n < 0) {
        return;                 /* cannot happen: entries are short */
    }
    /* A pooled connection from before a memcached restart fails once, and
     * apr_memcache then skips the server for 5 s: a writer must not leave
     * the old entry behind for that, so it asks again at once (each
     * failure drops one stale connection; a server that is really down
     * refuses quickly). */
    for (attempt = 0; ; attempt++) {
        rv = apr_memcache_set(sc->mc, mckey, val, (apr_size_t)n,
                              (apr_uint32_t)sc->cache_ttl, 0);
        if (rv == APR_SUCCESS || attempt >= CS_MC_WRITE_TRIES - 1) {
            break;
        }
        cs_mc_revive(sc->mc);
    }
    if (rv != APR_SUCCESS) {
        apr_status_t rv2;
        cs_mc_revive(sc->mc);
        rv2 = apr_memcache_delete(sc->mc, mckey, 0);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(111)
                      "memcached set failed for %s (delete: %s)", key,
                      rv2 == APR_SUCCESS ? "done"
                      : rv2 == APR_NOTFOUND && cs_mc_any_live(sc->mc)
                      ? "not there" : "failed too");
    }
}

apr_status_t cs_mc_child_init(apr_pool_t *p, server_rec *s)
{
    server_rec *vs;
    int threads = 1;

    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (threads < 1) {
        threads = 1;
    }
    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        cs_server_conf *mainc = cs_sconf(s);
        int i;

        if (!sc->memcache || sc->memcache->nelts == 0) {
            continue;
        }
        if (vs != s && sc->memcache == mainc->memcache && mainc->mc) {
            sc->mc = mainc->mc;     /* inherited: share the client */
            continue;
        }
        if (apr_memcache_create(p, (apr_uint16_t)sc->memcache->nelts, 0,
                                &sc->mc) != APR_SUCCESS) {
            sc->mc = NULL;
            continue;
        }
        for (i = 0; i < sc->memcache->nelts; i++) {
            const char *spec = APR_ARRAY_IDX(sc->memcache, i, const char *);
            char *host = NULL, *scope = NULL;
            apr_port_t port = 0;
            apr_memcache_server_t *ms;
            apr_status_t rv;

            /* Validated in the directive handler already. */
            apr_parse_addr_port(&host, &scope, &port, spec, p);
            rv = apr_memcache_server_create(p, host, port ? port : 11211, 0,
                                            1, (apr_uint32_t)threads,
                                            (apr_uint32_t)apr_time_from_sec(60),
                                            &ms);
            if (rv == APR_SUCCESS) {
                rv = apr_memcache_add_server(sc->mc, ms);
            }
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_ERR, rv, vs, CSLOG(112)
                             "cannot set up memcached server %s", spec);
            }
        }
    }
    return APR_SUCCESS;
}

apr_status_t cs_mc_get(request_rec *r, const cs_server_conf *sc,
                       const char *key, char mckey[CS_MC_KEY_LEN + 1],
                       cs_entry_t *e)
{
    char *val = NULL;
    apr_size_t len = 0;
    apr_uint16_t flags = 0;
    apr_status_t rv;

    cs_mc_key(key, mckey);
    rv = apr_memcache_getp(sc->mc, r->pool, mckey, &val, &len, &flags);
    if (rv == APR_SUCCESS) {
        if (cs_mc_decode(sc, key, val, len, e) == 0) {
            return APR_SUCCESS;
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(113)
                      "ignoring malformed memcached entry for %s", key);
        apr_memcache_delete(sc->mc, mckey, 0);
        return APR_NOTFOUND;
    }
    if (rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, CSLOG(114)
                      "memcached get failed for %s; using the database",
                      key);
    }
    return rv;
}
