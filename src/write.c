/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * write.c - the write path: PUT and DELETE of a key from a client; see
 * write.h.
 *
 * Top to bottom, a PUT: precondition fail-fast, the body streamed to a
 * temp file (request.c), then under the key lock one registry
 * transaction (registry.c) whose prepare step seals the temp file and
 * queues the replication job (queue.c), the rename into place, and
 * before the answer the cache fan-out to the other nodes
 * (cs_invalidate_cluster(), cache.h point 2).  A DELETE is the same
 * without a body: a tombstone and a delete job.
 */
#include "write.h"
#include "cache.h"
#include "read.h"
#include "peer.h"
#include "queue.h"
#include "registry.h"
#include "request.h"
#include "store.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

#include <sys/uio.h>

/* One write of a key, handed to the registry's transaction callbacks. */
typedef struct {
    const char *key;
    const char *path;
    const char *relpath;    /* path below ClusterStorageRoot */
    const cs_server_conf *sc;
    cs_tmp_t *tmp;
    const char *job;
    apr_uint64_t expect;    /* a partial write's base version, or 0 */
    int lost_race;          /* the key moved past expect meanwhile */
    apr_file_t *adopted;    /* an adoption: the file in place */
} cs_write_ctx;

/* Conditional write headers against the committed current entry. */
static int cs_precondition(request_rec *r, const cs_entry_t *cur, void *b)
{
    const char *im = apr_table_get(r->headers_in, "If-Match");
    const char *inm = apr_table_get(r->headers_in, "If-None-Match");
    int live = cur->version > 0 && !cur->deleted;
    char etag[64];

    (void)b;
    cs_entry_etag(cur, etag, sizeof(etag));
    if (im) {
        if (!live || (strcmp(im, "*") != 0
                      && !ap_find_etag_strong(r->pool, im, etag))) {
            return HTTP_PRECONDITION_FAILED;
        }
    }
    if (inm && live) {
        if (strcmp(inm, "*") == 0 || ap_find_etag_weak(r->pool, inm, etag)) {
            return HTTP_PRECONDITION_FAILED;
        }
    }
    return OK;
}

/* A partial write builds on the version it copied: it commits only if
 * that is still the current one (else it is built again). */
static int cs_expect_version(request_rec *r, const cs_entry_t *cur, void *b)
{
    cs_write_ctx *w = b;

    if (cur->version != w->expect || cur->deleted) {
        w->lost_race = 1;
        return HTTP_CONFLICT;
    }
    return OK;
}

static apr_status_t cs_queue_job(request_rec *r, cs_write_ctx *w, char op,
                                 apr_uint64_t version)
{
    cs_job_t job;

    job.op = op;
    job.version = version;
    job.key = w->key;
    job.relpath = w->relpath;
    return cs_queue_add(r->pool, &w->sc->store, w->sc->bell, &job,
                        &w->job);
}

static apr_status_t cs_put_prepare(request_rec *r, const cs_entry_t *next,
                                   void *b)
{
    cs_write_ctx *w = b;
    apr_status_t rv = cs_store_tmp_seal(w->tmp, w->key, next);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(030)
                      "cannot seal the temp file of %s", w->key);
        return rv;
    }
    if (w->sc->replicas > 1) {
        rv = cs_queue_job(r, w, 'P', next->version);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(031)
                          "cannot queue the replication of %s", w->key);
        }
    }
    return rv;
}

static apr_status_t cs_delete_prepare(request_rec *r, const cs_entry_t *next,
                                      void *b)
{
    cs_write_ctx *w = b;
    apr_status_t rv = cs_queue_job(r, w, 'D', next->version);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(029)
                      "cannot queue the delete of %s", w->key);
    }
    return rv;
}

static void cs_write_abort(request_rec *r, const cs_entry_t *next, void *b)
{
    cs_write_ctx *w = b;

    (void)next;
    if (w->job) {
        cs_queue_remove(r->pool, w->job);
        w->job = NULL;
    }
}

/* Keys whose invalidation is queued for nodes that could not be told. */
typedef struct {
    const char *const *keys;
    int n;
} cs_inv_keys_t;

/* Has node applied the invalidations of the keys queued for it? */
static int cs_inv_done(request_rec *r, ap_dbd_t *dbd, const char *node,
                       void *baton)
{
    cs_inv_keys_t *k = baton;
    int i, queued = 0;

    for (i = 0; i < k->n && !queued; i++) {
        queued = 1;
        if (cs_registry_inv_pending(r->server, r->pool, dbd, node,
                                    k->keys[i], &queued) != APR_SUCCESS) {
            return 0;
        }
    }
    return !queued;
}

/* cache.h point 2: before a write is answered, every node whose cache
 * lease may still run forgets the keys (one PURGE each node, or one
 * PURGEKEYS listing them all when there are several; all nodes are asked
 * at once), or its lease runs out. */
static void cs_invalidate_keys(request_rec *r, const cs_server_conf *sc,
                               const char *const *keys,
                               const apr_uint64_t *versions, int n)
{
    apr_array_header_t *nodes, *pending, *told, *urls;
    ap_dbd_t *dbd;
    cs_inv_keys_t k;
    const char *list = NULL;
    apr_size_t len = 0;
    int i, j, left;

    for (i = 0; i < n; i++) {
        cs_cache_invalidate(sc->cache, keys[i]);
    }
    if (!(dbd = cs_registry_acquire(r))
        || cs_registry_nodes(r->server, r->pool, dbd, &nodes)
           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(070)
                      "%s: cannot list the nodes to invalidate their "
                      "caches", keys[0]);
        return;
    }
    if (n > 1) {
        struct iovec *v = apr_palloc(r->pool, sizeof(*v) * 2 * n);
        for (i = 0; i < n; i++) {
            v[2 * i].iov_base = (void *)keys[i];
            v[2 * i].iov_len = strlen(keys[i]);
            v[2 * i + 1].iov_base = "\n";
            v[2 * i + 1].iov_len = 1;
        }
        list = apr_pstrcatv(r->pool, v, 2 * n, &len);
    }
    /* The nodes whose lease may still run, told all at once. */
    told = apr_array_make(r->pool, nodes->nelts, sizeof(cs_node_t *));
    urls = apr_array_make(r->pool, nodes->nelts, sizeof(const char *));
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *nd = &APR_ARRAY_IDX(nodes, i, cs_node_t);

        if (strcmp(nd->name, sc->node_name) == 0 || nd->lease <= 0
            || nd->age > nd->lease + CS_LEASE_MARGIN) {
            continue;           /* itself, no cache, or its lease lapsed */
        }
        APR_ARRAY_PUSH(told, cs_node_t *) = nd;
        APR_ARRAY_PUSH(urls, const char *) = nd->url;
    }
    pending = apr_array_make(r->pool, 2, sizeof(cs_node_t *));
    if (told->nelts > 0) {
        apr_pool_t *sub;
        int *statuses = apr_palloc(r->pool, sizeof(int) * told->nelts);

        apr_pool_create(&sub, r->pool);
        cs_peer_purge_all(sub, &sc->peer, told->nelts,
                          (const char *const *)urls->elts, keys[0],
                          versions[0], list, len, statuses);
        apr_pool_destroy(sub);
        for (i = 0; i < told->nelts; i++) {
            if (statuses[i] < 200 || statuses[i] >= 300) {
                APR_ARRAY_PUSH(pending, cs_node_t *) =
                    APR_ARRAY_IDX(told, i, cs_node_t *);
            }
        }
    }
    if (pending->nelts == 0) {
        return;
    }
    for (i = 0; i < pending->nelts; i++) {
        cs_node_t *nd = APR_ARRAY_IDX(pending, i, cs_node_t *);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(071)
                      "%s%s: node %s could not be told to drop %s from its "
                      "cache; waiting until it has or its lease ends",
                      keys[0], n > 1 ? " and others" : "", nd->name,
                      n > 1 ? "them" : "it");
        for (j = 0; j < n; j++) {
            cs_registry_inv_add(r->server, r->pool, dbd, nd->name, keys[j],
                                versions[j]);
        }
    }
    k.keys = keys;
    k.n = n;
    if ((left = cs_wait_nodes(r, dbd, pending, cs_inv_done, &k)) > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(072)
                      "%s%s: gave up waiting for %d node(s) to drop it from "
                      "their caches", keys[0], n > 1 ? " and others" : "",
                      left);
    }
}

static void cs_invalidate_cluster(request_rec *r, const cs_server_conf *sc,
                                  const char *key, apr_uint64_t version)
{
    cs_invalidate_keys(r, sc, &key, &version, 1);
}

/* The context and transaction callbacks of one write of key. */
static void cs_write_begin(cs_write_ctx *w, cs_write_ops_t *ops,
                           const cs_server_conf *sc, const char *key,
                           const char *path,
                           apr_status_t (*prepare)(request_rec *,
                                                   const cs_entry_t *,
                                                   void *))
{
    memset(w, 0, sizeof(*w));
    w->key = key;
    w->path = path;
    w->relpath = path + sc->store.root_len;
    w->sc = sc;
    ops->precondition = cs_precondition;
    ops->prepare = prepare;
    ops->abort = cs_write_abort;
    ops->baton = w;
    ops->mtime = 0;
}

/* X-OC-Mtime (the ownCloud convention rclone and the PHP client's touch()
 * use): the new version's modification time, whole seconds since 1970.
 * OK (*t 0 without the header), or 400, logged. */
static int cs_client_mtime(request_rec *r, const char *key, apr_time_t *t)
{
    const char *h = apr_table_get(r->headers_in, "X-OC-Mtime");
    apr_int64_t s = 0;
    const char *p;

    *t = 0;
    if (!h) {
        return OK;
    }
    for (p = h; *p >= '0' && *p <= '9' && s < APR_INT64_C(1) << 40; p++) {
        s = s * 10 + (*p - '0');
    }
    if (p == h || *p || s <= 0 || s >= APR_INT64_C(1) << 40) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(083)
                      "%s %s refused: X-OC-Mtime \"%s\" is not a time in "
                      "whole seconds since 1970 (400); nothing stored",
                      r->method, key, h);
        return HTTP_BAD_REQUEST;
    }
    *t = apr_time_from_sec(s);
    apr_table_setn(r->headers_out, "X-OC-MTime", "accepted");
    return OK;
}

/* The transaction ended with status (and, under the key lock, the file
 * was put in place or removed): release the lock; a committed write
 * rings the queue's bell with its job (if it queued one) and is dropped
 * from the other nodes' caches before it is answered.  OK, or the status
 * to answer. */
static int cs_write_end(request_rec *r, const cs_server_conf *sc,
                        const char *key, apr_file_t *lock, int status,
                        const cs_entry_t *e, const char *job)
{
    cs_store_unlock_key(lock);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        return cs_unavailable(r);
    }
    if (status != OK) {
        return status;
    }
    if (job) {
        cs_queue_ring(sc->bell, job, e);   /* its job can start now */
    }
    cs_invalidate_cluster(r, sc, key, e->version);
    return OK;
}

/* One upload in progress (write.h). */
struct cs_upload_t {
    request_rec *r;
    const cs_server_conf *sc;
    cs_write_ctx w;
    cs_write_ops_t ops;
};

int cs_upload_begin(request_rec *r, const cs_server_conf *sc,
                    const char *key, const char *path, int conditional,
                    cs_upload_t **out)
{
    cs_upload_t *up = apr_pcalloc(r->pool, sizeof(*up));
    cs_entry_t e;
    apr_status_t rv;
    int status;

    *out = NULL;
    up->r = r;
    up->sc = sc;
    cs_write_begin(&up->w, &up->ops, sc, key, path, cs_put_prepare);
    if (!conditional) {
        up->ops.precondition = NULL;
    }
    if ((status = cs_client_mtime(r, key, &up->ops.mtime)) != OK
        || (status = cs_clock_allows_write(r, sc)) != OK) {
        return status;
    }
    /* No registry, no write: answer before the body is transferred. */
    if (!cs_registry_acquire(r)) {
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
    }
    /* Fail fast on a precondition before the body is transferred; the
     * transaction decides again under the row lock. */
    if (conditional && (apr_table_get(r->headers_in, "If-Match")
                        || apr_table_get(r->headers_in, "If-None-Match"))) {
        if (cs_registry_get_db(r, key, &e) != APR_SUCCESS) {
            return cs_unavailable(r);
        }
        if ((status = cs_precondition(r, &e, &up->w)) != OK) {
            return status;
        }
    }
    {
        apr_file_t *f;
        apr_finfo_t fi;
        apr_uint64_t v;
        char sha[CS_SHA256_HEX_LEN + 1];
        if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha)
            == APR_EEXIST) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(028)
                          "%s maps onto %s, the copy of another key; each "
                          "key needs its own file (check Alias)", key, path);
            return HTTP_CONFLICT;
        }
    }
    if ((status = cs_prepare_dir(r, sc, key, path)) != OK) {
        return status;
    }
    rv = cs_store_tmp_create(r->pool, &sc->store, "put", &up->w.tmp);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(035)
                      "PUT %s: cannot create a temp file in %s/tmp", key,
                      sc->store.state_dir);
        return cs_store_http_status(rv);
    }
    *out = up;
    return OK;
}

cs_tmp_t *cs_upload_tmp(cs_upload_t *up)
{
    return up->w.tmp;
}

int cs_upload_commit(cs_upload_t *up, cs_entry_t *e, int *created)
{
    apr_file_t *lock = NULL;
    int status;

    *created = 0;
    if ((status = cs_lock_key(up->r, up->sc, up->w.key, &lock)) != OK) {
        return status;
    }
    return cs_upload_commit_locked(up, lock, e, created);
}

int cs_upload_commit_locked(cs_upload_t *up, apr_file_t *lock, cs_entry_t *e,
                            int *created)
{
    request_rec *r = up->r;
    const char *key = up->w.key;
    apr_uint64_t size;
    char sha[CS_SHA256_HEX_LEN + 1];
    apr_status_t rv;
    int status;

    *created = 0;
    cs_store_tmp_digest(up->w.tmp, &size, sha);
    status = cs_registry_put(r, key, up->w.relpath, size, sha, &up->ops, e,
                             created);
    if (status == OK) {
        rv = cs_store_install(up->w.tmp, up->w.path);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_CRIT, rv, r, CSLOG(037)
                          "PUT %s: version %" APR_UINT64_T_FMT " committed "
                          "but cannot be renamed into %s", key, e->version,
                          up->w.path);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if ((status = cs_write_end(r, up->sc, key, lock, status, e,
                               up->w.job)) != OK) {
        return status;
    }
    /* The last step before the answer: from now on no node may serve an
     * older version in its place (SPEC promises 1 and 11). */
    if (cs_registry_ack(r, key, e->version) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(061)
                      "PUT %s: version %" APR_UINT64_T_FMT " is stored but "
                      "could not be marked as answered; answering 503 (a "
                      "retry writes a newer version)", key, e->version);
        return cs_unavailable(r);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(038)
                  "stored %s version %" APR_UINT64_T_FMT " (%"
                  APR_UINT64_T_FMT " bytes)", key, e->version, e->size);
    CS_COUNT(up->sc, puts, 1);
    cs_version_headers(r, e);
    cs_note_served(r, "written", 1);
    return OK;
}

int cs_handle_put(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path)
{
    cs_upload_t *up;
    cs_entry_t e;
    int status, created = 0;

    /* A partial PUT is not done here (RFC 7231 4.3.4: then 400), rather
     * than replacing the whole file with the range's bytes. */
    if (apr_table_get(r->headers_in, "Content-Range")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(019)
                      "PUT %s with Content-Range refused: partial writes "
                      "are not supported here; nothing stored", key);
        return HTTP_BAD_REQUEST;
    }
    if ((status = cs_upload_begin(r, sc, key, path, 1, &up)) != OK) {
        return status;
    }
    if ((status = cs_read_body(r, key, cs_upload_tmp(up))) != OK) {
        return status;      /* the pool cleanup removes the temp file */
    }
    if ((status = cs_upload_commit(up, &e, &created)) != OK) {
        return status;
    }
    if (created) {
        apr_table_setn(r->headers_out, "Location",
                       ap_construct_url(r->pool, r->uri, r));
    }
    r->status = created ? HTTP_CREATED : HTTP_NO_CONTENT;
    return OK;
}

int cs_delete_key(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_uint64_t expect, cs_entry_t *e)
{
    cs_write_ctx w;
    cs_write_ops_t ops;
    apr_file_t *lock = NULL;
    apr_status_t rv;
    int status;

    cs_write_begin(&w, &ops, sc, key, path, cs_delete_prepare);
    if (expect) {
        ops.precondition = cs_expect_version;
        w.expect = expect;
    }
    if ((status = cs_clock_allows_write(r, sc)) != OK) {
        return status;
    }
    if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
        return status;
    }
    status = cs_registry_delete(r, key, &ops, e);
    if (status == OK) {
        rv = cs_store_remove(r->pool, path);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(039)
                          "DELETE %s: committed, but the local copy %s could "
                          "not be removed; it will not be served", key, path);
        }
    }
    if ((status = cs_write_end(r, sc, key, lock, status, e, w.job)) != OK) {
        return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(040)
                  "deleted %s (tombstone version %" APR_UINT64_T_FMT ")",
                  key, e->version);
    CS_COUNT(sc, deletes, 1);
    cs_note_served(r, "deleted", 1);
    return OK;
}

int cs_handle_delete(request_rec *r, const cs_server_conf *sc,
                     const char *key, const char *path)
{
    cs_entry_t e;
    int status = cs_delete_key(r, sc, key, path, 0, &e);

    if (status != OK) {
        return status;
    }
    apr_table_setn(r->headers_out, "X-ClusterStorage-Version",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, e.version));
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* cs_patch_key() once it is r's turn on key (or turns are not there). */
static int cs_patch_in_turn(request_rec *r, const cs_server_conf *sc,
                            const char *key, const char *path,
                            apr_off_t offset, cs_tmp_t *body,
                            apr_uint64_t len, cs_entry_t *out)
{
    int attempt, status, fetches = 0;

    for (attempt = 0; attempt < 16; attempt++) {
        cs_entry_t base;
        cs_upload_t *up;
        apr_file_t *lock = NULL;
        apr_pool_t *fp;         /* this attempt's open copy */
        apr_file_t *f;
        apr_finfo_t fi;
        apr_uint64_t v, at;
        char sha[CS_SHA256_HEX_LEN + 1];
        int created;

        if (attempt > 0) {
            /* Another node won: let it finish before building again. */
            apr_sleep(apr_time_from_msec(1 + (apr_time_now() % 5) * attempt));
        }
        /* Partial writes of the key on this node take turns (the key
         * lock, held until the commit), and read the current version
         * once it is their turn: only other nodes can overtake them. */
        if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
            return status;
        }
        if (cs_registry_get_db(r, key, &base) != APR_SUCCESS) {
            cs_store_unlock_key(lock);
            return cs_unavailable(r);
        }
        if (base.version == 0 || base.deleted) {
            cs_store_unlock_key(lock);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(073)
                          "partial write of %s refused: no such key (404); "
                          "nothing stored", key);
            return HTTP_NOT_FOUND;
        }
        at = offset < 0 ? base.size : (apr_uint64_t)offset;
        if (at > base.size) {
            cs_store_unlock_key(lock);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(074)
                          "partial write of %s at %" APR_UINT64_T_FMT
                          " refused: it has %" APR_UINT64_T_FMT " bytes "
                          "(416); nothing stored", key, at, base.size);
            return HTTP_RANGE_NOT_SATISFIABLE;
        }
        apr_pool_create(&fp, r->pool);
        if (cs_store_open(fp, path, key, 0, &f, &fi, &v, sha)
            != APR_SUCCESS || v != base.version
            || cs_copy_damage(r, &fi, sha, &base)) {
            /* This node lacks that version or its copy is damaged: fetch
             * it (the fetch takes the key lock itself and quarantines a
             * damaged copy), then take turns again. */
            apr_pool_destroy(fp);
            cs_store_unlock_key(lock);
            if ((status = cs_ensure_local(r, sc, key, path, &base)) != OK) {
                cs_entry_t now;
                /* No holder of base any more: replaced meanwhile (build
                 * again on the new one), or the answer stands. */
                if (cs_registry_get_db(r, key, &now) == APR_SUCCESS
                    && now.version != base.version) {
                    continue;
                }
                return status;
            }
            if (fetches++ < 8) {
                attempt--;      /* a fetch is not a lost race */
            }
            continue;
        }
        if ((status = cs_upload_begin(r, sc, key, path, 0, &up)) != OK) {
            apr_pool_destroy(fp);
            cs_store_unlock_key(lock);
            return status;
        }
        up->ops.precondition = cs_expect_version;
        up->w.expect = base.version;
        /* The current bytes before the range, the new ones, the current
         * ones after it. */
        if (cs_store_tmp_append_file(up->w.tmp, f, 0, (apr_off_t)at)
            != APR_SUCCESS
            || cs_store_tmp_append_tmp(up->w.tmp, body) != APR_SUCCESS
            || (at + len < base.size
                && cs_store_tmp_append_file(up->w.tmp, f,
                                            (apr_off_t)(at + len), -1)
                   != APR_SUCCESS)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(075)
                          "partial write of %s: cannot build the new "
                          "version; nothing stored", key);
            apr_pool_destroy(fp);
            cs_store_unlock_key(lock);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_destroy(fp);
        status = cs_upload_commit_locked(up, lock, out, &created);
        if (status != HTTP_CONFLICT || !up->w.lost_race) {
            return status;
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(076)
                      "partial write of %s: v%" APR_UINT64_T_FMT " was "
                      "replaced meanwhile; building it again (attempt %d)",
                      key, base.version, attempt + 2);
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(077)
                  "partial write of %s: the key kept changing; gave up "
                  "after 16 attempts (503)", key);
    return cs_unavailable(r);
}

int cs_patch_key(request_rec *r, const cs_server_conf *sc, const char *key,
                 const char *path, apr_off_t offset, cs_tmp_t *body,
                 apr_uint64_t len, cs_entry_t *out)
{
    /* Partial writes of the key through all nodes take turns: without
     * them a node that must fetch each new version first can lose every
     * race to the nodes that hold it.  The expected-version check at the
     * commit stays, for writers without a turn. */
    apr_status_t rv = cs_registry_turn(r, key, 30);
    int status;

    if (rv == APR_TIMEUP) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(099)
                      "partial write of %s: no turn within 30 s; nothing "
                      "stored (503)", key);
        return cs_unavailable(r);
    }
    status = cs_patch_in_turn(r, sc, key, path, offset, body, len, out);
    if (rv == APR_SUCCESS) {
        cs_registry_turn_end(r, key);
    }
    return status;
}

/* An adoption commits only a key the registry does not have (live). */
static int cs_adopt_absent(request_rec *r, const cs_entry_t *cur, void *b)
{
    (void)r;
    (void)b;
    return cur->version > 0 && !cur->deleted ? HTTP_CONFLICT : OK;
}

static apr_status_t cs_adopt_prepare(request_rec *r, const cs_entry_t *next,
                                     void *b)
{
    cs_write_ctx *w = b;
    apr_status_t rv = cs_store_label_in_place(r->pool, w->adopted, w->key,
                                              next);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(136)
                      "adopt: cannot set the attributes of %s", w->path);
        return rv;
    }
    if (w->sc->replicas > 1) {
        rv = cs_queue_job(r, w, 'P', next->version);
    }
    return rv;
}

static void cs_adopt_abort(request_rec *r, const cs_entry_t *next, void *b)
{
    cs_write_ctx *w = b;

    cs_write_abort(r, next, b);
    cs_store_unlabel(w->adopted);       /* it stays the operator's file */
}

int cs_adopt_file(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_pool_t *fp, cs_adopted_t *what,
                  apr_uint64_t *bytes)
{
    cs_write_ctx w;
    cs_write_ops_t ops;
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    cs_entry_t cur, e;
    apr_status_t rv;
    int status, created;

    *what = CS_ADOPT_REFUSED;
    *bytes = 0;
    if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
        return status;
    }
    rv = cs_store_open(fp, path, key, 0, &f, &fi, &v, sha);
    if (rv != APR_SUCCESS || v > 0) {
        /* Gone, not a regular file, another key's copy, or one of the
         * module's copies already (adopted before): nothing to do. */
        cs_store_unlock_key(lock);
        *what = rv == APR_SUCCESS ? CS_ADOPT_KNOWN : CS_ADOPT_REFUSED;
        return OK;
    }
    if ((rv = cs_store_hash(fp, f, NULL, NULL, sha, bytes))
        != APR_SUCCESS) {
        cs_store_unlock_key(lock);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(137)
                      "adopt: cannot read %s", path);
        return OK;
    }
    if (cs_registry_get_db(r, key, &cur) != APR_SUCCESS) {
        cs_store_unlock_key(lock);
        return cs_unavailable(r);
    }
    if (cur.version > 0 && !cur.deleted) {
        if (cur.size == *bytes && strcmp(cur.sha256, sha) == 0) {
            /* The registry has these very bytes: this file becomes this
             * node's copy of that version. */
            ap_dbd_t *dbd = cs_registry_acquire(r);
            rv = cs_store_label_in_place(r->pool, f, key, &cur);
            if (rv == APR_SUCCESS && dbd) {
                rv = cs_registry_add_replica(r->server, r->pool, dbd, key,
                                             cur.version, NULL);
            }
            cs_store_unlock_key(lock);
            *what = rv == APR_SUCCESS && dbd ? CS_ADOPT_MATCHED
                                             : CS_ADOPT_REFUSED;
            return rv == APR_SUCCESS && dbd ? OK : cs_unavailable(r);
        }
        cs_store_unlock_key(lock);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(138)
                      "adopt: not adopting %s: the registry has other bytes "
                      "for %s (version %" APR_UINT64_T_FMT "); the file is "
                      "left as it is", path, key, cur.version);
        *what = CS_ADOPT_CONFLICT;
        return OK;
    }
    cs_write_begin(&w, &ops, sc, key, path, cs_adopt_prepare);
    w.adopted = f;
    ops.precondition = cs_adopt_absent;
    ops.abort = cs_adopt_abort;
    ops.mtime = fi.mtime;       /* its time stays its Last-Modified */
    status = cs_registry_put(r, key, w.relpath, *bytes, sha, &ops, &e,
                             &created);
    if ((status = cs_write_end(r, sc, key, lock, status, &e, w.job))
        != OK) {
        if (status == HTTP_CONFLICT) {
            *what = CS_ADOPT_CONFLICT;  /* written meanwhile */
            return OK;
        }
        return status;
    }
    if (cs_registry_ack(r, key, e.version) != APR_SUCCESS) {
        return cs_unavailable(r);
    }
    *what = CS_ADOPT_NEW;
    return OK;
}

/* One file of an adopted batch, while the batch is decided. */
typedef struct {
    cs_adopt_item_t *item;
    apr_file_t *f;
    apr_uint64_t dev;           /* the file system it is on */
} cs_adopt_one;

typedef struct {
    const cs_server_conf *sc;
    const char **jobs;          /* the queued jobs' files, or NULL */
    int njobs;
} cs_adopt_batch_ctx;

/* In the batch's transaction: every new key's file labelled, its job
 * queued, all of it durable before the commit. */
static apr_status_t cs_adopt_batch_prepare(request_rec *r,
                                           cs_batch_key_t *keys, int n,
                                           void *baton)
{
    cs_adopt_batch_ctx *b = baton;
    cs_job_t *jobs = apr_palloc(r->pool, sizeof(*jobs) * n);
    apr_status_t rv = APR_SUCCESS;
    apr_uint64_t synced = 0;
    int i, m = 0, have = 0;

    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        cs_adopt_one *o = keys[i].baton;
        if (keys[i].found) {
            continue;
        }
        rv = cs_store_label_unsynced(r->pool, o->f, keys[i].key, &keys[i].e);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(146)
                          "adopt: cannot set the attributes of %s",
                          o->item->path);
            break;
        }
        jobs[m].op = 'P';
        jobs[m].version = keys[i].e.version;
        jobs[m].key = keys[i].key;
        jobs[m].relpath = keys[i].relpath;
        m++;
    }
    /* The labels and the jobs durable at once: one syncfs() of the
     * queue's file system (the state directory is below the root, like
     * the files, as a rule), one more for each other file system a file
     * is on. */
    if (rv == APR_SUCCESS && b->sc->replicas > 1 && m > 0) {
        b->jobs = apr_palloc(r->pool, sizeof(*b->jobs) * m);
        rv = cs_queue_add_many(r->pool, &b->sc->store, jobs, m, b->jobs,
                               &synced);
        if (rv != APR_SUCCESS) {
            b->jobs = NULL;
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(147)
                          "cannot queue the replication of %s and %d other "
                          "key(s)", jobs[0].key, m - 1);
            return rv;
        }
        b->njobs = m;
        have = 1;
    }
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        cs_adopt_one *o = keys[i].baton;
        if (!keys[i].found && (!have || o->dev != synced)) {
            rv = cs_store_sync_fs_of(o->f);
            synced = o->dev;
            have = 1;
        }
    }
    return rv;
}

static void cs_adopt_batch_abort(request_rec *r, cs_batch_key_t *keys, int n,
                                 void *baton)
{
    cs_adopt_batch_ctx *b = baton;
    int i;

    for (i = 0; b->jobs && i < b->njobs; i++) {
        cs_queue_remove(r->pool, b->jobs[i]);
    }
    b->jobs = NULL;
    b->njobs = 0;
    for (i = 0; i < n; i++) {
        if (!keys[i].found) {   /* they stay the operator's files */
            cs_store_unlabel(((cs_adopt_one *)keys[i].baton)->f);
        }
    }
}

/* Of a batch, the files the registry had (or, all set, every one of
 * them): one by one, as cs_adopt_file() does them; the others were
 * adopted by the batch. */
static int cs_adopt_one_by_one(request_rec *r, const cs_server_conf *sc,
                               cs_batch_key_t *keys, int n, int all)
{
    apr_pool_t *fp;
    int i, status = OK;

    apr_pool_create(&fp, r->pool);
    for (i = 0; i < n && status == OK; i++) {
        cs_adopt_item_t *it = ((cs_adopt_one *)keys[i].baton)->item;
        if (all || keys[i].found) {
            status = cs_adopt_file(r, sc, it->key, it->path, fp, &it->what,
                                   &it->bytes);
            if (status != OK) {
                it->what = CS_ADOPT_PENDING;
            }
            apr_pool_clear(fp);
        }
        else {
            it->what = CS_ADOPT_NEW;
        }
    }
    apr_pool_destroy(fp);
    return status;
}

int cs_adopt_batch(request_rec *r, const cs_server_conf *sc,
                   cs_adopt_item_t *items, int n)
{
    const char **names = apr_palloc(r->pool, sizeof(*names) * (n + 1));
    cs_batch_key_t *keys = apr_pcalloc(r->pool, sizeof(*keys) * (n + 1));
    apr_uint64_t *versions = apr_palloc(r->pool, sizeof(*versions) * (n + 1));
    cs_adopt_batch_ctx b;
    cs_batch_ops_t ops;
    cs_lockset_t *locks;
    apr_pool_t *bp;
    apr_status_t rv;
    int i, m = 0, nnew = 0, status, committed;

    for (i = 0; i < n; i++) {
        if (items[i].what == CS_ADOPT_PENDING) {
            names[m++] = items[i].key;
        }
    }
    if (m == 0) {
        return OK;
    }
    if ((rv = cs_store_lock_many(r->pool, &sc->store, names, m, &locks))
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(148)
                      "%s %s: cannot take the key lock", r->method, names[0]);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* The batch's files are open in bp (closed with it: the descriptor's
     * cleanup is on the pool it was opened in). */
    apr_pool_create(&bp, r->pool);
    m = 0;
    for (i = 0; i < n; i++) {
        cs_adopt_item_t *it = &items[i];
        cs_adopt_one *o;
        apr_finfo_t fi;
        apr_uint64_t v;
        char sha[CS_SHA256_HEX_LEN + 1];

        if (it->what != CS_ADOPT_PENDING) {
            continue;
        }
        o = apr_pcalloc(r->pool, sizeof(*o));
        o->item = it;
        rv = cs_store_open(bp, it->path, it->key, 0, &o->f, &fi, &v, sha);
        if (APR_STATUS_IS_EMFILE(rv) || APR_STATUS_IS_ENFILE(rv)
            || APR_STATUS_IS_ENOMEM(rv)) {
            continue;           /* for later: stays PENDING */
        }
        if (rv != APR_SUCCESS || v > 0) {
            /* As in cs_adopt_file(): gone, not a regular file, another
             * key's copy, or adopted before. */
            it->what = rv == APR_SUCCESS ? CS_ADOPT_KNOWN : CS_ADOPT_REFUSED;
            continue;
        }
        if ((rv = cs_store_hash(bp, o->f, NULL, NULL, keys[m].sha256,
                                &it->bytes)) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(149)
                          "adopt: cannot read %s", it->path);
            it->what = CS_ADOPT_REFUSED;
            continue;
        }
        keys[m].key = it->key;
        keys[m].relpath = it->path + sc->store.root_len;
        keys[m].size = it->bytes;
        keys[m].mtime = fi.mtime;   /* its time stays its Last-Modified */
        keys[m].baton = o;
        o->dev = (apr_uint64_t)fi.device;
        m++;
    }
    memset(&b, 0, sizeof(b));
    b.sc = sc;
    ops.prepare = cs_adopt_batch_prepare;
    ops.abort = cs_adopt_batch_abort;
    ops.baton = &b;
    status = m > 0 ? cs_registry_create_batch(r, keys, m, &ops) : OK;
    cs_store_unlock_many(locks);
    apr_pool_destroy(bp);
    if (status != OK && status != HTTP_CONFLICT) {
        return status == HTTP_SERVICE_UNAVAILABLE ? cs_unavailable(r)
                                                  : status;
    }
    committed = status == OK;
    /* The other nodes may hold "never stored" for the new keys. */
    for (i = 0; committed && i < m; i++) {
        if (!keys[i].found) {
            names[nnew] = keys[i].key;
            versions[nnew++] = keys[i].e.version;
        }
    }
    if (nnew > 0) {
        cs_invalidate_keys(r, sc, names, versions, nnew);
    }
    /* 409: a writer's row among them, nothing was written: each alone. */
    return cs_adopt_one_by_one(r, sc, keys, m, !committed);
}
