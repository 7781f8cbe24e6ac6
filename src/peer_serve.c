/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer_serve.c - the answers to other nodes' requests; see peer_serve.h.
 *
 * A request with X-ClusterStorage-Auth proves itself in the access phase
 * (cs_check_peer(), MAC of auth.h) instead of passing the Require rules
 * meant for clients; the handler then gives it to cs_handle_peer():
 *   GET     a copy of the asked version, from the local store only;
 *   PUT     a replica: verified against the registry, stored atomically,
 *           registered as held by this node;
 *   DELETE  delete propagation: drop copies older than the tombstone;
 *   PURGE   forget the key in this node's registry cache;
 *   PURGEKEYS  the same for every key its body lists.
 */
#include "peer_serve.h"
#include "move.h"
#include "auth.h"
#include "cache.h"
#include "registry.h"
#include "request.h"
#include "store.h"

#include "http_core.h"
#include "http_protocol.h"
#include "apr_strings.h"

/* A peer fetch: answered from the local copy only, never by fetching. */
static int cs_answer_peer_get(request_rec *r, const cs_server_conf *sc,
                              const char *key, const char *path,
                              apr_uint64_t version)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    cs_entry_t local;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_uint64_t v = 0;

    memset(&local, 0, sizeof(local));
    if (cs_store_open(r->pool, path, key, AP_SENDFILE_ENABLED(cd->enable_sendfile),
                      &f, &fi, &v, local.sha256) != APR_SUCCESS
        || v < version) {
        /* A writer on this node may be between its commit and its rename
         * (it holds the key lock meanwhile): wait for it, then look again. */
        apr_file_t *lock = NULL;
        if (cs_lock_key(r, sc, key, &lock) == OK) {
            cs_store_open(r->pool, path, key,
                          AP_SENDFILE_ENABLED(cd->enable_sendfile), &f, &fi,
                          &v, local.sha256);
            cs_store_unlock_key(lock);
        }
    }
    if (v != version || !local.sha256[0]) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(041)
                      "peer %s asked for %s v%" APR_UINT64_T_FMT "; this "
                      "node holds v%" APR_UINT64_T_FMT,
                      apr_table_get(r->notes, CS_NOTE_PEER), key, version,
                      v);
        return HTTP_NOT_FOUND;
    }
    /* A copy changed on disk is never sent (SPEC promise 10).  The
     * fetcher says which size and mtime it expects; only a copy that does
     * not match that (or a fetcher that says nothing) costs a registry
     * lookup, and only the registry's entry condemns a copy.  The fetcher
     * checks the bytes' SHA-256 in any case. */
    {
        cs_entry_t e;
        cs_local_t known;
        const char *why, *hint = apr_table_get(r->headers_in,
                                               CS_EXPECT_HEADER);
        const char *sp = hint ? strchr(hint, ' ') : NULL;
        uint64_t hsize, hmtime;
        int hinted = sp && cs_parse_u64(hint, (size_t)(sp - hint), &hsize) == 0
                     && cs_parse_u64(sp + 1, strlen(sp + 1), &hmtime) == 0
                     && hmtime <= (uint64_t)APR_INT64_MAX;

        memset(&e, 0, sizeof(e));
        if (hinted) {
            e.version = v;
            e.size = hsize;
            e.mtime = (int64_t)hmtime;
            memcpy(e.sha256, local.sha256, sizeof(e.sha256));
        }
        if ((!hinted || cs_copy_damage(r, &fi, local.sha256, &e))
            && cs_registry_get(r, key, &e, &known) == APR_SUCCESS
            && e.version == v && !e.deleted
            && (why = cs_copy_damage(r, &fi, local.sha256, &e)) != NULL) {
            apr_file_t *lock = NULL;
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(049)
                          "not sending %s v%" APR_UINT64_T_FMT " to peer %s: "
                          "the local copy is damaged (%s)", key, v,
                          apr_table_get(r->notes, CS_NOTE_PEER), why);
            if (cs_lock_key(r, sc, key, &lock) == OK) {
                cs_quarantine(r, sc, key, path, &e, why);
                cs_store_unlock_key(lock);
            }
            return HTTP_NOT_FOUND;
        }
    }
    local.version = v;
    local.size = (apr_uint64_t)fi.size;
    local.mtime = fi.mtime;
    apr_table_setn(r->headers_out, CS_SHA256_HEADER,
                   apr_pstrdup(r->pool, local.sha256));
    CS_COUNT(sc, peer_served, 1);
    return cs_serve(r, f, &fi, &local, 0);
}

/* A replication PUT: verify, store atomically, register; never pass on. */
static int cs_store_replica(request_rec *r, const cs_server_conf *sc,
                            const char *key, const char *path,
                            apr_uint64_t version)
{
    const char *sha_h = apr_table_get(r->headers_in, CS_SHA256_HEADER);
    const char *peer = apr_table_get(r->notes, CS_NOTE_PEER);
    cs_tmp_t *tmp;
    cs_entry_t e;
    cs_local_t known;
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v, size;
    char sha[CS_SHA256_HEX_LEN + 1];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int status, added = 0, installed = 0;

    if (!sha_h || !cs_is_sha256_hex(sha_h, strlen(sha_h))) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(042)
                      "replica of %s from %s without a valid "
                      CS_SHA256_HEADER, key, peer);
        return HTTP_BAD_REQUEST;
    }
    /* The entry as a read finds it (memcached, mostly) when it names this
     * version and SHA-256: a version's SHA-256 never changes, and one
     * superseded meanwhile is not registered below.  Anything else is
     * settled by the database. */
    if (cs_registry_get(r, key, &e, &known) != APR_SUCCESS
        || e.deleted || e.version != version || strcmp(e.sha256, sha_h) != 0) {
        if (cs_registry_get_db(r, key, &e) != APR_SUCCESS) {
            CS_COUNT(sc, registry_errors, 1);
            return cs_unavailable(r);
        }
    }
    if (e.deleted || e.version != version) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(043)
                      "refusing replica of %s v%" APR_UINT64_T_FMT " from %s:"
                      " the current version is %" APR_UINT64_T_FMT "%s", key,
                      version, peer, e.version, e.deleted ? " (deleted)" : "");
        return HTTP_CONFLICT;
    }
    if (strcmp(e.sha256, sha_h) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(044)
                      "replica of %s v%" APR_UINT64_T_FMT " from %s announces"
                      " a SHA-256 the registry does not have", key, version,
                      peer);
        return HTTP_BAD_REQUEST;
    }
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v == version && cs_copy_damage(r, &fi, sha, &e)) {
        /* This node's copy of the version is damaged: the replica
         * replaces it (and the damaged one goes to the quarantine). */
        if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
            return status;
        }
        cs_quarantine(r, sc, key, path, &e, cs_copy_damage(r, &fi, sha, &e));
        cs_store_unlock_key(lock);
        lock = NULL;
        v = 0;
    }
    if (!(v == version && sha[0])) {
        if ((status = cs_prepare_dir(r, sc, key, path)) != OK) {
            return status;
        }
        rv = cs_store_tmp_create(r->pool, &sc->store, "replica", &tmp);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(048)
                          "replica of %s: cannot create a temp file in "
                          "%s/tmp", key, sc->store.state_dir);
            return cs_store_http_status(rv);
        }
        if ((status = cs_read_body(r, key, tmp)) != OK) {
            return status;
        }
        cs_store_tmp_digest(tmp, &size, sha);
        if (size != e.size || strcmp(sha, e.sha256) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(045)
                          "replica of %s v%" APR_UINT64_T_FMT " from %s does"
                          " not match the registry (%" APR_UINT64_T_FMT
                          " bytes, %s); discarded", key, version, peer, size,
                          sha);
            return HTTP_BAD_REQUEST;
        }
        if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
            return status;
        }
        /* A copy only moves forward: this node may have written a newer
         * version while the replica was on its way. */
        if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha)
            == APR_SUCCESS && v > version) {
            cs_store_unlock_key(lock);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(056)
                          "refusing replica of %s v%" APR_UINT64_T_FMT
                          " from %s: this node holds v%" APR_UINT64_T_FMT
                          " already", key, version, peer, v);
            return HTTP_CONFLICT;
        }
        rv = cs_store_tmp_seal(tmp, key, &e);
        if (rv == APR_SUCCESS) {
            rv = cs_store_install(tmp, path);
        }
        cs_store_unlock_key(lock);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(046)
                          "cannot store replica of %s at %s", key, path);
            return cs_store_http_status(rv);
        }
        CS_COUNT(sc, replicas_received, 1);
        installed = 1;
    }
    if (!(dbd = cs_registry_acquire(r))
        || cs_registry_add_replica(r->server, r->pool, dbd, key, version,
                                   &added) != APR_SUCCESS) {
        added = -1;
    }
    if (added != 1) {
        /* Not registered (the registry is down, or the version was
         * superseded or deleted while it was in flight): a copy just
         * installed goes again (unless a newer one replaced it
         * meanwhile), so that nothing this node holds is unregistered;
         * the sender tries again later if it still should. */
        if (installed) {
            cs_drop_older(r, sc, key, path, version + 1);
        }
        if (added < 0) {
            CS_COUNT(sc, registry_errors, 1);
            return cs_unavailable(r);
        }
        return HTTP_CONFLICT;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(047)
                  "stored replica of %s v%" APR_UINT64_T_FMT " from %s", key,
                  version, peer);
    r->status = HTTP_CREATED;
    return OK;
}

/* access_checker_ex: a request that claims to come from a node must prove
 * it (MAC, timestamp); a proven one skips the Require rules meant for
 * clients. */
int cs_check_peer(request_rec *r)
{
    cs_dir_conf *dc = cs_dconf(r);
    cs_server_conf *sc = cs_sconf(r->server);
    const char *auth, *ver, *node;
    uint64_t v;
    int status;

    if (!dc || dc->enabled != 1 || !sc->store.state_dir) {
        return DECLINED;
    }
    auth = apr_table_get(r->headers_in, CS_AUTH_HEADER);
    ver = apr_table_get(r->headers_in, CS_VERSION_HEADER);
    if (!auth && !ver) {
        return DECLINED;
    }
    if (!ver || cs_parse_u64(ver, strlen(ver), &v) != 0 || v == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(305)
                      "malformed " CS_VERSION_HEADER " in a peer request");
        return HTTP_BAD_REQUEST;
    }
    status = cs_auth_check(r, sc->secret, r->uri, v,
                           apr_time_now() + cs_clock_skew(sc), &node);
    if (status != OK) {
        return status;
    }
    apr_table_setn(r->notes, CS_NOTE_PEER, node);
    return OK;
}

/* The longest list of keys a PURGE may carry (cs_peer_purge_many()). */
#define CS_PURGE_BODY_MAX (1024 * 1024)

/* PURGEKEYS: every key listed in its body, one per line, which the MAC
 * covers through its digest (the version). */
static int cs_purge_many(request_rec *r, const cs_server_conf *sc,
                         apr_uint64_t v)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_int64_t len = cl ? apr_atoi64(cl) : -1;
    apr_size_t got = 0;
    char *buf, *line, *last;
    long n;
    int status;

    if (len <= 0 || len > CS_PURGE_BODY_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(306)
                      "PURGEKEYS from %s: its list of keys needs a "
                      "Content-Length of 1 to %d bytes (%d)",
                      apr_table_get(r->notes, CS_NOTE_PEER),
                      CS_PURGE_BODY_MAX, len > 0 ? 413 : 411);
        return len > 0 ? HTTP_REQUEST_ENTITY_TOO_LARGE : HTTP_LENGTH_REQUIRED;
    }
    if ((status = ap_setup_client_block(r, REQUEST_CHUNKED_ERROR)) != OK) {
        return status;
    }
    buf = apr_palloc(r->pool, (apr_size_t)len + 1);
    if (ap_should_client_block(r)) {
        while (got < (apr_size_t)len
               && (n = ap_get_client_block(r, buf + got,
                                           (apr_size_t)len - got)) > 0) {
            got += (apr_size_t)n;
        }
    }
    if (got != (apr_size_t)len || cs_auth_body_digest(buf, got) != v) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(307)
                      "PURGEKEYS from %s: its list of keys was cut short or "
                      "does not match its MAC; nothing purged (400)",
                      apr_table_get(r->notes, CS_NOTE_PEER));
        return HTTP_BAD_REQUEST;
    }
    buf[got] = '\0';
    for (line = apr_strtok(buf, "\n", &last); line;
         line = apr_strtok(NULL, "\n", &last)) {
        cs_cache_invalidate(sc->cache, line);
    }
    r->status = HTTP_NO_CONTENT;
    return OK;
}

int cs_handle_peer(request_rec *r, const cs_server_conf *sc,
                   const char *key, const char *path)
{
    const char *vh = apr_table_get(r->headers_in, CS_VERSION_HEADER);
    apr_uint64_t v = 0;

    /* cs_check_peer() accepted the request only with a valid version. */
    cs_parse_u64(vh, strlen(vh), &v);
    if (strcmp(r->method, "PURGEKEYS") == 0) {
        return cs_purge_many(r, sc, v);
    }
    if (strcmp(r->method, "PURGE") == 0) {
        cs_cache_invalidate(sc->cache, key);
        r->status = HTTP_NO_CONTENT;
        return OK;
    }
    if (strcmp(r->method, "MOVED") == 0) {
        /* A MOVE committed: rename this node's copies now (move.h). */
        ap_dbd_t *dbd = cs_registry_acquire(r);
        if (!dbd || cs_move_apply(r->server, r->pool, dbd, NULL)
                    != APR_SUCCESS) {
            return cs_unavailable(r);
        }
        r->status = HTTP_NO_CONTENT;
        return OK;
    }
    switch (r->method_number) {
    case M_GET:
        return cs_answer_peer_get(r, sc, key, path, v);
    case M_PUT:
        return cs_store_replica(r, sc, key, path, v);
    case M_DELETE:
        /* Delete propagation (a newer PUT may already have replaced the
         * copy: only older ones go). */
        if (cs_drop_older(r, sc, key, path, v) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        r->status = HTTP_NO_CONTENT;
        return OK;
    default:
        return HTTP_METHOD_NOT_ALLOWED;
    }
}
