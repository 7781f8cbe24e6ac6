/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * read.c - the read path: GET and HEAD of a key; see read.h.
 *
 * Top to bottom: cs_handle_get() looks the key up (node-local cache,
 * memcached, the database: registry.c), opens this node's copy and checks
 * its version on the descriptor it will serve, and serves it (request.c);
 * when this node lacks the current version, cs_fetch() gets it from a
 * holder first (peer.c), verified, under the key lock.
 */
#include "read.h"
#include "cache.h"
#include "crypto.h"
#include "holders.h"
#include "peer.h"
#include "registry.h"
#include "request.h"
#include "store.h"

#include "http_core.h"
#include "http_protocol.h"
#include "apr_poll.h"
#include "apr_strings.h"

/* cs_fetch(): no holder could give this version (logged, not answered). */
#define CS_NO_HOLDER (-2)

/* A large copy fetched for a GET goes to the client while it arrives, so
 * its first byte does not wait for the whole file; but it never reaches
 * the client as a complete answer before it was verified:
 *   - only a plain GET (no Range, no conditions) of at least
 *     CS_STREAM_MIN bytes is streamed, with the head cs_serve() sends;
 *   - the last CS_STREAM_HOLD bytes are held back until the whole copy
 *     matched its SHA-256 and is in place; they, and whatever was not sent
 *     yet, then go from that file;
 *   - if no holder can give a copy that matches, the connection is closed
 *     short of the Content-Length (CS160): every HTTP client reports such
 *     an answer as failed, never as a file;
 *   - when a holder fails mid-way and another one takes over, the bytes
 *     already sent stand only if the new transfer's first bytes have the
 *     same SHA-256 (checked as they arrive), else the answer is cut;
 *   - a client that falls behind (its socket takes no more, bytes wait
 *     in the core's output filter, or its writes took CS_STREAM_SLOW in
 *     all) is fed from the transfer no more, so the key lock and the peer
 *     connection are not held at its pace; it gets the rest from the
 *     file. */
#define CS_STREAM_MIN  (1024 * 1024)
#define CS_STREAM_HOLD (64 * 1024)
#define CS_STREAM_SLOW apr_time_from_msec(100)
#define CS_STREAM_PIECE (16 * 1024)

typedef struct {
    request_rec *r;
    const cs_entry_t *e;
    apr_bucket_brigade *bb;
    apr_uint64_t sent;          /* body bytes passed to the client */
    apr_uint64_t limit;         /* the most that may go before the end */
    apr_interval_time_t blocked; /* time the client's writes took */
    apr_pollfd_t pfd;           /* the client's socket, for POLLOUT */
    apr_int32_t flags;          /* how the copy is opened (sendfile) */
    apr_file_t *f;              /* the verified copy, opened under the
                                 * key lock once it is in place */
    apr_finfo_t fi;
    int feeding;                /* bytes still go to the client as they come */
    int broken;                 /* what was sent cannot be vouched for */
    /* After a transfer failed with bytes sent: the next transfer's first
     * `sent` bytes must hash to prefix. */
    int verifying;
    char prefix[CS_SHA256_HEX_LEN + 1];
    cs_sha256_t *vsha;
    apr_uint64_t vgot;
} cs_stream_t;

/* Whether r's answer may be streamed (above) for version e. */
static int cs_stream_fits(request_rec *r, const cs_entry_t *e)
{
    static const char *const no[] = { "Range", "If-Match", "If-None-Match",
        "If-Modified-Since", "If-Unmodified-Since", "If-Range", NULL };
    ap_filter_t *f;
    int i;

    /* Not over HTTP/2 (flow control the client's socket does not show),
     * and only where the cut is seen: a filter that changes the bytes
     * on their way (mod_deflate) drops the Content-Length, and can close
     * what it was given as a whole answer. */
    if (r->header_only || r->method_number != M_GET
        || e->size < CS_STREAM_MIN || r->connection->master) {
        return 0;
    }
    for (f = r->output_filters; f; f = f->next) {
        if (f->frec->ftype >= AP_FTYPE_CONTENT_SET
            && f->frec->ftype < AP_FTYPE_PROTOCOL) {
            return 0;
        }
    }
    for (i = 0; no[i]; i++) {
        if (apr_table_get(r->headers_in, no[i])) {
            return 0;
        }
    }
    return 1;
}

/* The fetch's tee (cs_fetch_tee_fn): the bytes at off of a transfer. */
static void cs_stream_tee(void *baton, const char *buf, apr_size_t n,
                          apr_uint64_t off)
{
    cs_stream_t *st = baton;
    request_rec *r = st->r;
    apr_uint64_t end = off + n, from, to;
    apr_bucket *b;
    apr_time_t t0;
    apr_status_t rv;

    if (st->broken) {
        return;
    }
    if (st->verifying) {
        char sha[CS_SHA256_HEX_LEN + 1];
        apr_uint64_t take;

        if (off == 0) {         /* the next transfer begins */
            st->vgot = 0;
            if (cs_sha256_start(r->pool, &st->vsha) != APR_SUCCESS) {
                st->vsha = NULL;
            }
        }
        if (!st->vsha || off != st->vgot) {
            st->broken = 1;
            return;
        }
        take = end < st->sent ? n : st->sent - off;
        cs_sha256_update(st->vsha, buf, (size_t)take);
        st->vgot += take;
        if (st->vgot < st->sent) {
            return;
        }
        cs_sha256_final_hex(st->vsha, sha);
        st->vsha = NULL;
        if (strcmp(sha, st->prefix) != 0) {
            st->broken = 1;
            return;
        }
        st->verifying = 0;      /* the bytes sent were these: go on */
    }
    from = off > st->sent ? off : st->sent;
    to = end < st->limit ? end : st->limit;
    if (st->sent == 0 && st->feeding && to > from) {
        cs_serve_head(r, st->e, (apr_off_t)st->e->size, apr_time_now(), 0);
        cs_plain_bytes(r);
    }
    /* In pieces well below the core output filter's 64 KiB threshold
     * (above it, it writes blocking), each only once the client's socket
     * can take more: a client that stopped reading never blocks this. */
    while (st->feeding && from < to) {
        apr_size_t piece = to - from > CS_STREAM_PIECE ? CS_STREAM_PIECE
                                                        : (apr_size_t)(to - from);
        apr_int32_t ready = 0;

        /* Bytes still waiting in the core's filter, or a socket that
         * takes no more: the client is behind. */
        st->pfd.rtnevents = 0;
        if (st->sent > 0 && (r->connection->data_in_output_filters
                             || apr_poll(&st->pfd, 1, &ready, 0)
                                != APR_SUCCESS
                             || ready == 0)) {
            st->feeding = 0;
            break;
        }
        b = apr_bucket_transient_create(buf + (from - off), piece,
                                        r->connection->bucket_alloc);
        APR_BRIGADE_INSERT_TAIL(st->bb, b);
        t0 = apr_time_now();
        rv = ap_pass_brigade(r->output_filters, st->bb);
        apr_brigade_cleanup(st->bb);
        st->blocked += apr_time_now() - t0;
        from += piece;
        st->sent = from;
        if (rv != APR_SUCCESS || r->connection->aborted
            || st->blocked > CS_STREAM_SLOW) {
            st->feeding = 0;
        }
    }
}

/* A transfer failed after bytes of it were sent (tmp holds them): the
 * next transfer must begin with the same bytes. */
static void cs_stream_failed(cs_stream_t *st, apr_pool_t *p, cs_tmp_t *tmp)
{
    if (!st || st->sent == 0 || st->verifying || st->broken) {
        return;
    }
    if (cs_store_tmp_prefix_sha(p, tmp, st->sent, st->prefix)
        == APR_SUCCESS) {
        st->verifying = 1;
    }
    else {
        st->broken = 1;
    }
}

/* The copy just put in place at path, opened under its key lock for
 * the rest of a streamed answer (a write after the lock cannot swap it). */
static void cs_stream_keep(cs_stream_t *st, const char *key, const char *path)
{
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];

    if (cs_store_open(st->r->pool, path, key, st->flags, &st->f, &st->fi, &v,
                      sha) != APR_SUCCESS
        || v != st->e->version || strcmp(sha, st->e->sha256) != 0
        || (apr_uint64_t)st->fi.size != st->e->size) {
        st->f = NULL;
    }
}

/* The end of a streamed answer (st->sent > 0): the rest of the copy now
 * at path, or, when the fetch ended with status instead or what was sent
 * cannot be vouched for, the connection closed short (an error bucket,
 * as mod_proxy does when its backend breaks). */
static int cs_stream_finish(request_rec *r, cs_stream_t *st,
                            const char *key, int status)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;

    if (status == OK && !st->broken && !st->verifying && st->f) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(159)
                      "%s: %" APR_UINT64_T_FMT " of %" APR_UINT64_T_FMT
                      " bytes went to the client as they arrived, the rest "
                      "from the verified copy", key, st->sent, st->e->size);
        apr_brigade_insert_file(st->bb, st->f, (apr_off_t)st->sent,
                                (apr_off_t)(st->e->size - st->sent), r->pool);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(160)
                      "%s: %" APR_UINT64_T_FMT " bytes were sent while the "
                      "copy arrived, and %s; closing the connection short of "
                      "the %" APR_UINT64_T_FMT " bytes announced", key,
                      st->sent, status != OK ? "no holder could finish it"
                      : st->broken || st->verifying
                      ? "they do not match the verified copy"
                      : "the verified copy could not be opened",
                      st->e->size);
        r->connection->keepalive = AP_CONN_CLOSE;
        r->no_cache = 1;        /* as mod_proxy does when its backend breaks */
        if (r->main) {
            r->main->no_cache = 1;
        }
        APR_BRIGADE_INSERT_TAIL(st->bb, ap_bucket_error_create(
            HTTP_BAD_GATEWAY, NULL, r->pool, ba));
    }
    APR_BRIGADE_INSERT_TAIL(st->bb, apr_bucket_eos_create(ba));
    ap_pass_brigade(r->output_filters, st->bb);
    return OK;
}

/* Fetch version e of key from a holder into this node's store: one
 * transfer per key and node (the key lock), live holders first, every
 * transfer verified (peer.c) before it is renamed into place. */
static int cs_fetch(request_rec *r, const cs_server_conf *sc, const char *key,
                    const char *path, const cs_entry_t *e,
                    apr_array_header_t *holders, cs_stream_t *st)
{
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi, ifi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int pass, i, status, tried = 0, later = 0;
    apr_time_t t0 = apr_time_now();

    if ((status = cs_lock_key(r, sc, key, &lock)) != OK) {
        return status;
    }
    if (apr_time_now() - t0 > apr_time_from_msec(100)) {
        holders = NULL;     /* read before a long wait: ask again */
    }
    /* Another request may have fetched it while this one waited; a copy
     * of this version that is damaged goes to the quarantine first. */
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v == e->version) {
        const char *why = cs_copy_damage(r, &fi, sha, e);
        if (!why) {
            cs_store_unlock_key(lock);
            return OK;
        }
        cs_quarantine(r, sc, key, path, e, why);
    }
    /* The holders of e's version, unless they came with e. */
    if (!(dbd = cs_registry_acquire(r))
        || (!holders
            && cs_registry_holders(r->server, r->pool, dbd, key, e->version,
                                   &holders) != APR_SUCCESS)) {
        cs_store_unlock_key(lock);
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
    }
    if ((status = cs_prepare_dir(r, sc, key, path)) != OK) {
        cs_store_unlock_key(lock);
        return status;
    }
    /* Live holders first; holders that look down last (they may just be
     * late with their heartbeat). */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < holders->nelts; i++) {
            cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
            apr_pool_t *sub;
            cs_tmp_t *tmp = NULL;
            const char *why = "cannot create a temp file";
            cs_fetch_cause_t cause = CS_FETCH_LOCAL;

            if (strcmp(h->name, sc->node_name) == 0
                || (pass == 0) != (h->alive != 0)) {
                continue;
            }
            tried++;
            apr_pool_create(&sub, r->pool);
            rv = cs_store_tmp_create(sub, &sc->store, "fetch", &tmp);
            if (rv == APR_SUCCESS) {
                rv = cs_peer_fetch(sub, &sc->peer, h->url, key, e, tmp,
                                   st ? cs_stream_tee : NULL, st, &why,
                                   &cause);
            }
            if (rv == APR_SUCCESS) {
                /* The bytes are fsynced now; the rename is made durable
                 * and the copy registered later, with the other copies
                 * this child fetches meanwhile (holders.h), if there is
                 * room for it; else now. */
                later = cs_holders_room(sc);
                why = "cannot store the verified copy";
                cause = CS_FETCH_LOCAL;
                rv = cs_store_tmp_seal(tmp, key, e);
                if (rv == APR_SUCCESS) {
                    rv = later ? cs_store_install_unsynced(tmp, path)
                               : cs_store_install(tmp, path);
                }
                /* The batch registers this very file (not one that
                 * replaced it meanwhile): its inode, under the lock. */
                if (rv == APR_SUCCESS && later
                    && apr_stat(&ifi, path, APR_FINFO_INODE, sub)
                       != APR_SUCCESS) {
                    ifi.inode = 0;
                }
            }
            if (rv == APR_SUCCESS) {
                apr_pool_destroy(sub);
                CS_COUNT(sc, peer_fetches, 1);
                CS_COUNT(sc, fetch_bytes, e->size);
                if (st && st->sent > 0) {
                    cs_stream_keep(st, key, path);
                }
                if (later) {
                    cs_holders_add(sc, key, path, e->version,
                                   (apr_uint64_t)ifi.inode);
                }
                else if (cs_registry_add_replica(r->server, r->pool, dbd,
                                                 key, e->version, NULL)
                         != APR_SUCCESS) {
                    CS_COUNT(sc, registry_errors, 1);
                }
                cs_store_unlock_key(lock);
                cs_note_served(r, "fetched", 1);
                apr_table_setn(r->notes, CS_NOTE_FROM, h->name);
                apr_table_setn(r->notes, CS_NOTE_FETCH_MS,
                               apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                            apr_time_as_msec(apr_time_now()
                                                             - t0)));
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(050)
                              "fetched %s v%" APR_UINT64_T_FMT " (%"
                              APR_UINT64_T_FMT " bytes) from %s", key,
                              e->version, e->size, h->name);
                return OK;
            }
            if (tmp) {
                cs_stream_failed(st, sub, tmp);
            }
            apr_pool_destroy(sub);      /* removes the temp file */
            CS_COUNT(sc, fetch_failures, 1);
            switch (cause) {
            case CS_FETCH_CONNECT:
                CS_COUNT(sc, fetch_fail_connect, 1);
                break;
            case CS_FETCH_ANSWER:
                CS_COUNT(sc, fetch_fail_answer, 1);
                break;
            case CS_FETCH_BODY:
                CS_COUNT(sc, fetch_fail_body, 1);
                break;
            case CS_FETCH_CHECKSUM:
                CS_COUNT(sc, fetch_fail_checksum, 1);
                break;
            default:
                CS_COUNT(sc, fetch_fail_local, 1);
                break;
            }
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(051)
                          "fetching %s v%" APR_UINT64_T_FMT " from %s (%s) "
                          "failed: %s", key, e->version, h->name, h->url,
                          why);
        }
    }
    cs_store_unlock_key(lock);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(052)
                  "no holder of %s v%" APR_UINT64_T_FMT " could be reached "
                  "(%d tried)", key, e->version, tried);
    return CS_NO_HOLDER;
}

/* No holder of version e can be reached.  If e's writer has not answered
 * (it died before it did, SPEC promise 11) and this node holds the version
 * before it, that is the last one that may have been answered: served, as
 * unverified (the registry no longer describes it).  Else 503. */
static int cs_previous_or_503(request_rec *r, const cs_server_conf *sc,
                              const char *key, apr_file_t *f,
                              apr_finfo_t *fi, cs_entry_t *local,
                              const cs_entry_t *e)
{
    int unacked = 0;

    if (f && local->version && local->version + 1 == e->version
        && local->sha256[0] && !e->deleted
        && cs_registry_unacked(r, key, e->version, &unacked) == APR_SUCCESS
        && unacked) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(120)
                      "%s: v%" APR_UINT64_T_FMT " was never answered and no "
                      "holder of it can be reached; serving this node's v%"
                      APR_UINT64_T_FMT " (unverified)", key, e->version,
                      local->version);
        local->mtime = fi->mtime;
        CS_COUNT(sc, unverified, 1);
        cs_note_served(r, "previous", 1);
        return cs_serve(r, f, fi, local, 1);
    }
    return cs_unavailable(r);
}

int cs_ensure_local(request_rec *r, const cs_server_conf *sc,
                    const char *key, const char *path, const cs_entry_t *e)
{
    int status = cs_fetch(r, sc, key, path, e, NULL, NULL);

    return status == CS_NO_HOLDER ? cs_unavailable(r) : status;
}

int cs_handle_get(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    apr_int32_t flags = AP_SENDFILE_ENABLED(cd->enable_sendfile);
    cs_entry_t e, local;
    cs_local_t known;
    apr_array_header_t *holders = NULL;
    apr_file_t *f = NULL;
    apr_finfo_t fi;
    apr_uint64_t v = 0;
    apr_status_t rv, lrv;
    const char *damage;
    cs_stream_t st;
    int status, round, by_identity = 0;

    memset(&local, 0, sizeof(local));
    memset(&fi, 0, sizeof(fi));
    rv = cs_registry_get(r, key, &e, &known);
    if (path == r->filename && r->finfo.filetype == APR_NOFILE) {
        /* The core's directory walk found nothing there just now; a copy
         * that appears meanwhile is found again under the key lock. */
        lrv = APR_ENOENT;
    }
    else if ((lrv = cs_store_open_file(r->pool, path, flags, &f, &fi))
             == APR_SUCCESS) {
        if (known.ino && known.ino == (apr_uint64_t)fi.inode
            && known.dev == (apr_uint64_t)fi.device
            && known.ctime == fi.ctime) {
            /* Verified before, unchanged since (cache.h, 5.). */
            v = e.version;
            memcpy(local.sha256, e.sha256, sizeof(local.sha256));
            by_identity = 1;
        }
        else {
            lrv = cs_store_read_meta(f, key, &v, local.sha256);
        }
    }
    local.version = v;
    local.size = (apr_uint64_t)fi.size;
    if (rv != APR_SUCCESS) {
        /* SPEC promise 7: the registry is down; a local copy still serves,
         * marked as unverified. */
        if (lrv == APR_SUCCESS && v > 0 && local.sha256[0]) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(022)
                          "registry unreachable; serving local copy of %s "
                          "unverified", key);
            local.mtime = fi.mtime;
            CS_COUNT(sc, unverified, 1);
            return cs_serve(r, f, &fi, &local, 1);
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(023)
                      "registry unreachable and no local copy of %s", key);
        return cs_unavailable(r);
    }
    if (!(lrv == APR_SUCCESS && v == e.version && !e.deleted)
        && !(lrv != APR_SUCCESS && (e.version == 0 || e.deleted))) {
        /* Before dropping a copy, fetching one or answering 404 for a
         * deleted key, make sure the cache is not behind the database
         * (and learn who holds the current version, for the fetch). */
        cs_entry_t db;
        if (cs_registry_get_db_holders(r, key, &db, &holders)
            == APR_SUCCESS) {
            e = db;
        }
    }
    if (e.version == 0 || e.deleted) {
        if (lrv == APR_SUCCESS && v > 0) {
            cs_drop_older(r, sc, key, path, e.version ? e.version : v + 1);
        }
        CS_COUNT(sc, not_found, 1);
        cs_note_served(r, "absent", 1);
        return HTTP_NOT_FOUND;
    }
    if (lrv == APR_SUCCESS && v == e.version
        && (damage = cs_copy_damage(r, &fi, local.sha256, &e)) != NULL) {
        /* Changed behind the module's back (SPEC promise 10): never
         * served as the registry's version; a good copy is fetched. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(024)
                      "local copy of %s (version %" APR_UINT64_T_FMT
                      ") does not match the registry: %s; not serving it, "
                      "fetching a good copy", key, v, damage);
        lrv = APR_ENOENT;
    }
    if (lrv == APR_SUCCESS && v == e.version) {
        CS_COUNT(sc, hits, 1);
        /* Remember the verified file, unless it changed so recently that
         * a change within the same clock tick could share its ctime (git's
         * "racy clean" rule). */
        if (!by_identity
            && apr_time_now() - fi.ctime >= CS_CACHE_IDENTITY_AGE) {
            known.dev = (apr_uint64_t)fi.device;
            known.ino = (apr_uint64_t)fi.inode;
            known.ctime = fi.ctime;
            cs_cache_note_local(sc->cache, key, &e, &known);
        }
        return cs_serve(r, f, &fi, &e, 0);
    }
    if (lrv == APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(027)
                      "%s maps onto %s, the copy of another key; each key "
                      "needs its own file (check Alias/DocumentRoot)", key,
                      path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (lrv != APR_SUCCESS && lrv != APR_ENOENT) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, lrv, r, CSLOG(025)
                      "cannot open local copy %s", path);
    }
    /* This node lacks the current version: fetch it from a holder.  The
     * holders may move on to a newer version while this request asks for
     * the one it read (a holder then answers 404): read the registry
     * again and fetch that (SPEC promise 11), five times at most. */
    memset(&st, 0, sizeof(st));
    st.r = r;
    st.e = &e;
    st.feeding = 1;
    st.flags = flags;
    if (cs_stream_fits(r, &e)
        && (st.pfd.desc.s = ap_get_conn_socket(r->connection)) != NULL) {
        st.limit = e.size - CS_STREAM_HOLD;
        st.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
        st.pfd.p = r->pool;
        st.pfd.desc_type = APR_POLL_SOCKET;
        st.pfd.reqevents = APR_POLLOUT;
    }
    for (round = 0;
         (status = cs_fetch(r, sc, key, path, &e, holders,
                            st.bb ? &st : NULL)) == CS_NO_HOLDER;
         round++) {
        cs_entry_t db;
        if (st.sent > 0) {
            break;              /* its head is out: no other version now */
        }
        if (round >= 5
            || cs_registry_get_db_holders(r, key, &db, &holders)
               != APR_SUCCESS
            || (db.version == e.version && !db.deleted)) {
            return cs_previous_or_503(r, sc, key, f, &fi, &local, &e);
        }
        if (db.version == 0 || db.deleted) {
            CS_COUNT(sc, not_found, 1);
            cs_note_served(r, "absent", 1);
            return HTTP_NOT_FOUND;
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(055)
                      "%s moved on from v%" APR_UINT64_T_FMT " to v%"
                      APR_UINT64_T_FMT " while it was fetched; fetching "
                      "that", key, e.version, db.version);
        e = db;
        if (!cs_stream_fits(r, &e) || !st.pfd.desc.s) {
            st.bb = NULL;
        }
        else if (!st.bb) {
            st.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
        }
        st.limit = e.size > CS_STREAM_HOLD ? e.size - CS_STREAM_HOLD : 0;
    }
    if (st.sent > 0) {
        return cs_stream_finish(r, &st, key, status);
    }
    if (status != OK) {
        return status;
    }
    lrv = cs_store_open(r->pool, path, key, flags, &f, &fi, &v, local.sha256);
    if (lrv != APR_SUCCESS || v != e.version
        || cs_copy_damage(r, &fi, local.sha256, &e)) {
        return cs_unavailable(r);
    }
    return cs_serve(r, f, &fi, &e, 0);
}
