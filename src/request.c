/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * request.c - helpers of the request handlers; see request.h.
 */
#include "request.h"
#include "registry.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

#include <errno.h>

int cs_key_is_access_file(request_rec *r, const char *key)
{
    core_server_config *conf = ap_get_core_module_config(
        r->server->module_config);
    const char *names = conf->access_name;

    while (names && *names) {
        const char *name = ap_getword_conf(r->pool, &names);
        apr_size_t n = strlen(name);
        const char *k;

        if (n == 0 || strncmp(name, ".ht", 3) == 0) {
            continue;           /* cs_key_check() refused those */
        }
        for (k = key; (k = strstr(k, name)) != NULL; k++) {
            if (k > key && k[-1] == '/' && (k[n] == '/' || k[n] == '\0')) {
                return 1;
            }
        }
    }
    return 0;
}

void cs_plain_bytes(request_rec *r)
{
    ap_filter_t *f = r->output_filters;

    while (f && f->frec->ftype <= AP_FTYPE_RESOURCE) {
        ap_filter_t *next = f->next;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(016)
                      "%s: not running output filter %s on a stored file",
                      r->uri, f->frec->name);
        ap_remove_output_filter(f);
        f = next;
    }
}

int cs_clock_allows_write(request_rec *r, const cs_server_conf *sc)
{
    apr_interval_time_t skew = cs_clock_skew(sc);

    if (cs_skew_beyond(skew, CS_WRITE_SKEW_MAX)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(065)
                      "%s %s refused: this node's clock is %.1f s off the "
                      "database's; it would write what it cannot replicate",
                      r->method, r->uri, (double)skew / APR_USEC_PER_SEC);
        return cs_unavailable(r);
    }
    return OK;
}

const char *cs_query_arg(request_rec *r, const char *name)
{
    const char *a = r->args;
    apr_size_t n = strlen(name);

    while (a && *a) {
        if (strncmp(a, name, n) == 0 && a[n] == '=') {
            const char *end = strchr(a + n + 1, '&');
            char *v = apr_pstrndup(r->pool, a + n + 1,
                                   end ? (apr_size_t)(end - a - n - 1)
                                       : strlen(a + n + 1));
            return ap_unescape_url(v) == OK ? v : NULL;
        }
        a = strchr(a, '&');
        a = a ? a + 1 : NULL;
    }
    return NULL;
}

const char *cs_json_str(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s);
    char *out = apr_palloc(p, n * 6 + 3), *o = out;

    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        }
        else if (c < 0x20 || c == 0x7f) {
            o += apr_snprintf(o, 7, "\\u%04x", c);
        }
        else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

void cs_note_served(request_rec *r, const char *what, int force)
{
    if (force || !apr_table_get(r->notes, CS_NOTE_SERVED)) {
        apr_table_setn(r->notes, CS_NOTE_SERVED, what);
    }
}

int cs_unavailable(request_rec *r)
{
    cs_note_served(r, "unavailable", 1);
    CS_COUNT(cs_sconf(r->server), unavailable, 1);
    apr_table_setn(r->err_headers_out, "Retry-After", CS_RETRY_AFTER);
    return HTTP_SERVICE_UNAVAILABLE;
}

void cs_version_headers(request_rec *r, const cs_entry_t *e)
{
    char etag[64];

    cs_entry_etag(e, etag, sizeof(etag));
    /* The ETag is "VERSION-HEX16" in quotes: the version is its prefix. */
    apr_table_setn(r->headers_out, "ETag", apr_pstrdup(r->pool, etag));
    apr_table_setn(r->headers_out, "X-ClusterStorage-Version",
                   apr_pstrmemdup(r->pool, etag + 1, strcspn(etag + 1, "-")));
}

void cs_serve_head(request_rec *r, const cs_entry_t *e, apr_off_t size,
                   apr_time_t mtime, int unverified)
{
    /* The registry's time, as it is: ap_set_last_modified() would put a
     * time ahead of this node's clock back to the request's time, and
     * nodes would then disagree. */
    r->mtime = e->mtime ? (apr_time_t)e->mtime : mtime;
    {
        char *lm = apr_palloc(r->pool, APR_RFC822_DATE_LEN);
        apr_rfc822_date(lm, r->mtime);
        apr_table_setn(r->headers_out, "Last-Modified", lm);
    }
    cs_version_headers(r, e);
    cs_note_served(r, unverified ? "unverified" : "hit", 0);
    if (unverified) {
        apr_table_setn(r->headers_out, "X-ClusterStorage-Unverified", "1");
    }
    ap_set_accept_ranges(r);
    ap_set_content_length(r, size);
}

int cs_serve(request_rec *r, apr_file_t *f, const apr_finfo_t *fi,
             const cs_entry_t *e, int unverified)
{
    apr_bucket_brigade *bb;
    apr_status_t rv;
    int status;

    r->finfo = *fi;
    cs_serve_head(r, e, fi->size, fi->mtime, unverified);
    if ((status = ap_meets_conditions(r)) != OK) {
        r->status = status;
        return status;
    }
    cs_plain_bytes(r);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_brigade_insert_file(bb, f, 0, fi->size, r->pool);
    APR_BRIGADE_INSERT_TAIL(bb,
                            apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    if (rv == APR_SUCCESS || r->status != HTTP_OK || r->connection->aborted) {
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, CSLOG(020)
                  "sending %s failed", r->filename);
    return AP_FILTER_ERROR;
}

int cs_store_http_status(apr_status_t rv)
{
    if (rv == CS_STORE_EUNSAFE) {
        return HTTP_FORBIDDEN;
    }
    if (APR_STATUS_IS_ENOTDIR(rv) || rv == APR_FROM_OS_ERROR(EISDIR)) {
        return HTTP_CONFLICT;
    }
    if (APR_STATUS_IS_ENOSPC(rv)) {
        return HTTP_INSUFFICIENT_STORAGE;
    }
    return HTTP_INTERNAL_SERVER_ERROR;
}

int cs_lock_key(request_rec *r, const cs_server_conf *sc, const char *key,
                apr_file_t **lock)
{
    apr_status_t rv = cs_store_lock_key(r->pool, &sc->store, key, lock);

    if (rv != APR_SUCCESS) {
        *lock = NULL;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(036)
                      "%s %s: cannot take the key lock", r->method, key);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

const char *cs_key_path(request_rec *r, const cs_server_conf *sc,
                        const char *key)
{
    const char *path = r->path_info && *r->path_info
                       ? apr_pstrcat(r->pool, r->filename, r->path_info,
                                     NULL)
                       : r->filename;

    if (!path || strncmp(path, sc->store.root, sc->store.root_len) != 0
        || path[sc->store.root_len] != '/') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(014)
                      "%s maps to %s, outside ClusterStorageRoot %s; fix "
                      "DocumentRoot/Alias", key, path ? path : "(nothing)",
                      sc->store.root);
        return NULL;
    }
    return path;
}

int cs_prepare_dir(request_rec *r, const cs_server_conf *sc,
                   const char *key, const char *path)
{
    apr_status_t rv = cs_store_make_parents(r->pool, &sc->store, path);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR,
                      rv == CS_STORE_EUNSAFE ? 0 : rv, r, CSLOG(034)
                      "%s %s%s: cannot prepare the directory for %s%s",
                      apr_table_get(r->notes, CS_NOTE_PEER) ? "replica"
                      : r->method,
                      apr_table_get(r->notes, CS_NOTE_PEER) ? "of " : "",
                      key, path,
                      rv == CS_STORE_EUNSAFE
                      ? " (outside the root or through a symlink)" : "");
        return cs_store_http_status(rv);
    }
    return OK;
}

int cs_read_body(request_rec *r, const char *key, cs_tmp_t *tmp)
{
    apr_bucket_brigade *bb;
    apr_status_t rv;
    int seen_eos = 0;

    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    do {
        apr_bucket *b;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, 65536);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, CSLOG(032)
                          "PUT %s: request body rejected or cut short "
                          "(status %d); nothing stored", key,
                          status == AP_FILTER_ERROR ? r->status : status);
            return status;
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, CSLOG(026)
                              "PUT %s: reading the body failed; nothing "
                              "stored", key);
                return HTTP_BAD_REQUEST;
            }
            rv = cs_store_tmp_write(tmp, data, len);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(033)
                              "PUT %s: cannot write the temp file; nothing "
                              "stored", key);
                return cs_store_http_status(rv);
            }
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    return OK;
}

const char *cs_copy_damage(request_rec *r, const apr_finfo_t *fi,
                           const char *sha, const cs_entry_t *e)
{
    if ((apr_uint64_t)fi->size != e->size) {
        return apr_psprintf(r->pool, "%" APR_OFF_T_FMT " bytes instead of %"
                            APR_UINT64_T_FMT, fi->size, e->size);
    }
    if (strcmp(sha, e->sha256) != 0) {
        return "its attribute names another checksum";
    }
    if (!cs_store_intact(&cs_sconf(r->server)->store, fi, e)) {
        return "modified on disk since it was stored (mtime)";
    }
    return NULL;
}

int cs_quarantine(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, const cs_entry_t *e, const char *why)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_uint64_t v = 0;
    char sha[CS_SHA256_HEX_LEN + 1];
    const char *dst = NULL;
    ap_dbd_t *dbd;
    apr_status_t rv;

    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) != APR_SUCCESS
        || v != e->version || !cs_copy_damage(r, &fi, sha, e)) {
        return 0;               /* gone, replaced or good meanwhile */
    }
    rv = cs_store_quarantine(r->pool, &sc->store, path, &dst);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(054)
                      "cannot move the damaged copy %s to the quarantine",
                      path);
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(053)
                  "copy of %s v%" APR_UINT64_T_FMT " is damaged (%s); moved "
                  "to %s", key, v, why, dst);
    if ((dbd = cs_registry_acquire(r))) {
        cs_registry_drop_replica(r->server, r->pool, dbd, key, v);
    }
    return 1;
}

int cs_drop_older(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_uint64_t below)
{
    apr_file_t *lock, *f;
    apr_finfo_t fi;
    apr_uint64_t v = 0;
    char sha[CS_SHA256_HEX_LEN + 1];
    int status = cs_lock_key(r, sc, key, &lock);

    if (status != OK) {
        return status;
    }
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v > 0 && v < below) {
        cs_store_remove(r->pool, path);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(021)
                      "dropped stale copy of %s (version %" APR_UINT64_T_FMT
                      ")", key, v);
    }
    cs_store_unlock_key(lock);
    return OK;
}

int cs_wait_nodes(request_rec *r, ap_dbd_t *dbd, apr_array_header_t *pending,
                  int (*done)(request_rec *r, ap_dbd_t *dbd,
                              const char *node, void *baton),
                  void *baton)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(60);
    apr_array_header_t *nodes;
    int i, j;

    while (pending->nelts > 0 && apr_time_now() < deadline) {
        apr_array_header_t *still = apr_array_make(r->pool, pending->nelts,
                                                   sizeof(cs_node_t *));
        if (cs_registry_nodes(r->server, r->pool, dbd, &nodes)
            != APR_SUCCESS) {
            break;
        }
        for (i = 0; i < pending->nelts; i++) {
            cs_node_t *p = APR_ARRAY_IDX(pending, i, cs_node_t *);
            int waiting = 0;
            for (j = 0; j < nodes->nelts; j++) {
                cs_node_t *n = &APR_ARRAY_IDX(nodes, j, cs_node_t);
                if (strcmp(n->name, p->name) == 0) {
                    waiting = n->lease > 0
                              && n->age <= n->lease + CS_LEASE_MARGIN;
                }
            }
            if (waiting && !done(r, dbd, p->name, baton)) {
                APR_ARRAY_PUSH(still, cs_node_t *) = p;
            }
        }
        pending = still;
        if (pending->nelts) {
            apr_sleep(apr_time_from_msec(100));
        }
    }
    return pending->nelts;
}
