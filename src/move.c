/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * move.c - MOVE as one registry transaction and a rename on each node;
 * see move.h.
 */
#include "move.h"
#include "cache.h"
#include "mcache.h"
#include "names.h"
#include "peer.h"
#include "registry.h"
#include "request.h"
#include "store.h"

#include "apr_hash.h"
#include "apr_strings.h"
#include "apr_allocator.h"
#include "apr_thread_proc.h"

/* The key %s itself and everything below it (three arguments). */
#define CS_RANGE(a) \
    "(" a "path = %s OR (" a "path >= CONCAT(%s, '/')" \
    " AND " a "path < CONCAT(%s, '0')))"
/* The same key below the destination instead of the source. */
#define CS_AT_DST(col) "CONCAT(%s, SUBSTRING(" col ", LENGTH(%s) + 1))"

/* A collection's own row first: a first PUT below it, which inserts its
 * parents with INSERT IGNORE, waits for the MOVE instead of slipping a
 * new file in behind the file list. */
static const cs_sql_t cs_m_lockdir = {
    "cs_m_lockdir", "SELECT path FROM cs_dirs WHERE path = %s FOR UPDATE" };
static const cs_sql_t cs_m_src = {
    "cs_m_src",
    "SELECT path, version, mtime FROM cs_files WHERE " CS_RANGE("")
    " AND deleted = 0 AND version > 0 ORDER BY path FOR UPDATE" };
/* Each live source file's next version at the destination, same bytes
 * and time (a destination tombstone's version counts on). */
static const cs_sql_t cs_m_files = {
    "cs_m_files",
    "INSERT INTO cs_files (path, version, size, sha256, mtime, deleted,"
    " relpath, parent)"
    " SELECT " CS_AT_DST("s.path") ", 1, s.size, s.sha256, s.mtime, 0, "
    CS_AT_DST("s.relpath") ","
    " IF(s.path = %s, %s, " CS_AT_DST("s.parent") ")"
    " FROM cs_files s WHERE " CS_RANGE("s.")
    " AND s.deleted = 0 AND s.version > 0"
    " ON DUPLICATE KEY UPDATE version = cs_files.version + 1,"
    " size = VALUES(size), sha256 = VALUES(sha256), mtime = VALUES(mtime),"
    " deleted = 0, relpath = VALUES(relpath), parent = VALUES(parent)" };
static const cs_sql_t cs_m_drop_replicas = {
    "cs_m_drop_replicas", "DELETE FROM cs_replicas WHERE " CS_RANGE("") };
/* Who holds a source file's version holds its destination's. */
static const cs_sql_t cs_m_holders = {
    "cs_m_holders",
    "INSERT INTO cs_replicas (path, node, version, stored_at)"
    " SELECT d.path, r.node, d.version, UNIX_TIMESTAMP()"
    " FROM cs_files f JOIN cs_replicas r"
    "  ON r.path = f.path AND r.version = f.version"
    " JOIN cs_files d ON d.path = " CS_AT_DST("f.path")
    " WHERE " CS_RANGE("f.") " AND f.deleted = 0 AND f.version > 0" };
/* Tombstones, as a DELETE writes them. */
static const cs_sql_t cs_m_tomb = {
    "cs_m_tomb",
    "UPDATE cs_files SET version = version + 1, deleted = 1, size = 0,"
    " sha256 = '', relpath = '', mtime = GREATEST(%s, mtime + 1)"
    " WHERE " CS_RANGE("") " AND deleted = 0 AND version > 0" };
/* Every member, this node included even before its first heartbeat. */
static const cs_sql_t cs_m_queue = {
    "cs_m_queue",
    "INSERT INTO cs_moves (node, src, dst, src_rel, dst_rel, tree)"
    " SELECT n, %s, %s, %s, %s, %s FROM"
    " (SELECT name AS n FROM cs_nodes WHERE name <> %s UNION SELECT %s) m" };
static const cs_sql_t cs_m_seq = {
    "cs_m_seq", "SELECT MAX(seq) FROM cs_moves WHERE node = %s" };
static const cs_sql_t cs_m_dst = {
    "cs_m_dst",
    "SELECT path, version, size, sha256, mtime FROM cs_files"
    " WHERE " CS_RANGE("") " AND deleted = 0 AND version > 0" };

/* What each node applies. */
static const cs_sql_t cs_m_pending = {
    "cs_m_pending",
    "SELECT seq, src, dst, src_rel, dst_rel, tree FROM cs_moves"
    " WHERE node = %s ORDER BY seq" };
static const cs_sql_t cs_m_held = {
    "cs_m_held",
    "SELECT d.path, d.version, d.size, d.sha256, d.mtime, d.relpath"
    " FROM cs_files d JOIN cs_replicas r ON r.path = d.path"
    "  AND r.version = d.version AND r.node = %s"
    " WHERE " CS_RANGE("d.") " AND d.deleted = 0 ORDER BY d.path" };
static const cs_sql_t cs_m_done = {
    "cs_m_done", "DELETE FROM cs_moves WHERE seq = %s AND node = %s" };
static const cs_sql_t cs_m_left = {
    "cs_m_left",
    "SELECT COUNT(*) FROM cs_moves WHERE node = %s AND seq <= %s" };

/* One MOVE, as the transaction and the appliers see it. */
typedef struct {
    const char *skey, *dkey;    /* keys */
    const char *srel, *drel;    /* their paths below the root */
    int tree;
} cs_move_t;

static const char *cs_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

/* The transaction.  *src: the source's live files (path, version,
 * mtime) before it; *dst: the destination's entries after it (path,
 * version, size, sha256, mtime); *seq: this node's cs_moves row. */
static apr_status_t cs_move_txn(request_rec *r, const cs_server_conf *sc,
                                ap_dbd_t *dbd, const cs_move_t *m,
                                apr_int64_t now, apr_array_header_t **src,
                                apr_array_header_t **dst, apr_uint64_t *seq,
                                int *retry)
{
    server_rec *s = r->server;
    apr_pool_t *p = r->pool;
    const char *S = m->skey, *D = m->dkey, *me = sc->node_name;
    const char *t = cs_i64(p, now);
    const char *a_s[3] = { S, S, S }, *a_d[3] = { D, D, D };
    const char *a_files[11];
    const char *a_holders[5] = { D, S, S, S, S };
    const char *a_tomb[4] = { t, S, S, S };
    const char *a_queue[7] = { S, D, m->srel, m->drel, m->tree ? "1" : "0",
                               me, me };
    apr_array_header_t *rows;
    apr_status_t rv;

    /* Each CS_AT_DST takes (dst, src); the moved key's own parent is
     * D's parent. */
    a_files[0] = D;
    a_files[1] = S;
    a_files[2] = m->drel;
    a_files[3] = m->srel;
    a_files[4] = S;
    a_files[5] = cs_key_parent(p, D);
    a_files[6] = D;
    a_files[7] = S;
    a_files[8] = S;
    a_files[9] = S;
    a_files[10] = S;
    *src = *dst = NULL;
    *seq = 0;
    *retry = 1;
    if (cs_db_begin(s, p, dbd) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = m->tree ? cs_db_select(s, p, dbd, &cs_m_lockdir, 1, &rows, 1, a_s)
                 : APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        rv = cs_db_select(s, p, dbd, &cs_m_src, 3, src, 3, a_s);
    }
    if (rv == APR_SUCCESS && !m->tree && (*src)->nelts == 0) {
        /* The file went away meanwhile: nothing to move. */
        cs_db_end(s, p, dbd, 0, retry);
        *retry = 0;
        return APR_ENOENT;
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_files, NULL, 11, a_files);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_drop_replicas, NULL, 3, a_d);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_holders, NULL, 5, a_holders);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_tomb, NULL, 4, a_tomb);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_drop_replicas, NULL, 3, a_s);
    }
    if (rv == APR_SUCCESS && m->tree) {
        rv = cs_names_copy_dirs(s, p, dbd, S, D, now);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_names_props_copy(s, p, dbd, S, D, m->tree);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_names_rmcol(s, p, dbd, S);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_m_queue, NULL, 7, a_queue);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_select(s, p, dbd, &cs_m_seq, 1, &rows, 1, &me);
        if (rv == APR_SUCCESS && rows->nelts == 1) {
            *seq = (apr_uint64_t)apr_atoi64(
                       APR_ARRAY_IDX(rows, 0, const char **)[0]);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_select(s, p, dbd, &cs_m_dst, 5, dst, 3, a_d);
    }
    return cs_db_end(s, p, dbd, rv == APR_SUCCESS, retry);
}

/* The five columns of cs_m_dst / cs_m_held as an entry. */
static void cs_row_entry(const char **c, cs_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    e->version = (apr_uint64_t)apr_atoi64(c[1]);
    e->size = (apr_uint64_t)apr_atoi64(c[2]);
    apr_cpystrn(e->sha256, c[3], sizeof(e->sha256));
    e->mtime = apr_atoi64(c[4]);
}

/* This node's cache forgets both paths (all of it for a collection). */
static void cs_move_forget(cs_cache_t *c, const cs_move_t *m)
{
    if (m->tree) {
        cs_cache_flush(c);
    }
    else {
        cs_cache_invalidate(c, m->skey);
        cs_cache_invalidate(c, m->dkey);
    }
}

/* Is node done with the MOVEs up to *seq? */
static int cs_move_done(request_rec *r, ap_dbd_t *dbd, const char *node,
                        void *seq)
{
    const char *args[2];
    apr_array_header_t *rows;

    args[0] = node;
    args[1] = apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                           *(apr_uint64_t *)seq);
    return cs_db_select(r->server, r->pool, dbd, &cs_m_left, 1, &rows, 2,
                        args) == APR_SUCCESS
           && rows->nelts == 1
           && apr_atoi64(APR_ARRAY_IDX(rows, 0, const char **)[0]) == 0;
}

/* Telling one node (in a thread of its own: all at once, and while this
 * node renames its own copies). */
typedef struct {
    apr_pool_t *p;
    const cs_peer_conf_t *pc;
    cs_node_t *node;
    const char *key;
    apr_uint64_t seq;
    int leased;         /* its cache lease may run: the answer waits */
    int status;
    apr_status_t rv;
    apr_thread_t *thread;
} cs_poke_t;

static void *APR_THREAD_FUNC cs_poke_run(apr_thread_t *t, void *data)
{
    cs_poke_t *k = data;

    k->rv = cs_peer_moved(k->p, k->pc, k->node->url, k->key, k->seq,
                          &k->status);
    if (t) {
        apr_thread_exit(t, APR_SUCCESS);
    }
    return NULL;
}

/* Start telling every other live node (cs_poke_t *; NULL: none known). */
static apr_array_header_t *cs_move_tell(request_rec *r,
                                        const cs_server_conf *sc,
                                        ap_dbd_t *dbd, const char *dkey,
                                        apr_uint64_t seq)
{
    apr_array_header_t *nodes, *pokes;
    int i;

    if (cs_registry_nodes(r->server, r->pool, dbd, &nodes) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(087)
                      "MOVE to %s: cannot list the nodes to tell; they "
                      "apply it at their next heartbeat", dkey);
        return NULL;
    }
    pokes = apr_array_make(r->pool, nodes->nelts, sizeof(cs_poke_t *));
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        cs_poke_t *k;
        apr_allocator_t *alloc;
        int leased = n->lease > 0 && n->age <= n->lease + CS_LEASE_MARGIN;

        if (strcmp(n->name, sc->node_name) == 0 || (!n->alive && !leased)) {
            continue;
        }
        k = apr_pcalloc(r->pool, sizeof(*k));
        /* The thread's pool has an allocator of its own: pools that share
         * one must not be used from two threads. */
        k->pc = &sc->peer;
        k->node = n;
        k->key = dkey;
        k->seq = seq;
        k->leased = leased;
        if (apr_allocator_create(&alloc) == APR_SUCCESS) {
            apr_pool_create_ex(&k->p, r->pool, NULL, alloc);
            apr_allocator_owner_set(alloc, k->p);
            if (apr_thread_create(&k->thread, NULL, cs_poke_run, k, k->p)
                != APR_SUCCESS) {
                k->thread = NULL;
            }
        }
        else {
            apr_pool_create(&k->p, r->pool);
        }
        if (!k->thread) {
            cs_poke_run(NULL, k);       /* then here, one after another */
        }
        APR_ARRAY_PUSH(pokes, cs_poke_t *) = k;
    }
    return pokes;
}

/* The answer waits for the nodes that could not be told until they have
 * applied it, or their lease has run out. */
static void cs_move_told(request_rec *r, ap_dbd_t *dbd, const char *dkey,
                         apr_uint64_t seq, apr_array_header_t *pokes)
{
    apr_array_header_t *pending;
    int i, left;

    if (!pokes) {
        return;
    }
    pending = apr_array_make(r->pool, 2, sizeof(cs_node_t *));
    for (i = 0; i < pokes->nelts; i++) {
        cs_poke_t *k = APR_ARRAY_IDX(pokes, i, cs_poke_t *);
        apr_status_t trv;
        if (k->thread) {
            apr_thread_join(&trv, k->thread);
        }
        if ((k->rv != APR_SUCCESS || k->status < 200 || k->status >= 300)
            && k->leased) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, k->rv, r, CSLOG(088)
                          "MOVE to %s: node %s could not be told (status "
                          "%d); waiting until it has applied it or its "
                          "lease ends", dkey, k->node->name, k->status);
            APR_ARRAY_PUSH(pending, cs_node_t *) = k->node;
        }
    }
    if (pending->nelts
        && (left = cs_wait_nodes(r, dbd, pending, cs_move_done, &seq)) > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(089)
                      "MOVE to %s: gave up waiting for %d node(s) to apply "
                      "it", dkey, left);
    }
}

int cs_move(request_rec *r, const cs_server_conf *sc, const char *skey,
            const char *spath, const char *dkey, const char *dpath, int tree,
            int *files)
{
    cs_move_t m;
    apr_array_header_t *src = NULL, *dst = NULL;
    apr_uint64_t seq = 0;
    apr_status_t rv = APR_EGENERAL;
    ap_dbd_t *dbd;
    apr_int64_t now = 0;
    apr_time_t t0 = apr_time_now(), t1, t2, t3;
    const char **keys;
    cs_entry_t *ents;
    apr_array_header_t *pokes;
    int attempt, retry = 0, i, status;

    *files = 0;
    m.skey = skey;
    m.dkey = dkey;
    m.srel = spath + sc->store.root_len;
    m.drel = dpath + sc->store.root_len;
    m.tree = tree;
    if ((status = cs_clock_allows_write(r, sc)) != OK) {
        return status;
    }
    if (!(dbd = cs_registry_acquire(r))) {
        return cs_unavailable(r);
    }
    for (attempt = 0; attempt < 4; attempt++) {
        now = (apr_int64_t)(apr_time_now() + cs_clock_skew(sc));
        rv = cs_move_txn(r, sc, dbd, &m, now, &src, &dst, &seq, &retry);
        if (rv == APR_SUCCESS || !retry) {
            break;
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(090)
                      "retrying the registry transaction of MOVE %s "
                      "(attempt %d)", skey, attempt + 2);
    }
    if (rv == APR_ENOENT) {
        return HTTP_NOT_FOUND;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(091)
                      "MOVE %s to %s: the registry transaction failed; "
                      "nothing moved", skey, dkey);
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
    }
    t1 = apr_time_now();
    /* Committed.  This node forgets what it knew of both paths, memcached
     * learns their new entries (as a writer sets them), then every node
     * renames its copies. */
    cs_move_forget(sc->cache, &m);
    /* In one pipelined go per memcached server (if it fails, the old
     * entries last until the TTL: CS118, the memcached partition case). */
    keys = apr_palloc(r->pool, (src->nelts + dst->nelts + 1)
                               * sizeof(*keys));
    ents = apr_pcalloc(r->pool, (src->nelts + dst->nelts + 1)
                                * sizeof(*ents));
    for (i = 0; i < src->nelts; i++) {
        const char **c = APR_ARRAY_IDX(src, i, const char **);
        apr_int64_t mt = apr_atoi64(c[2]);
        keys[i] = c[0];
        ents[i].version = (apr_uint64_t)apr_atoi64(c[1]) + 1;
        ents[i].deleted = 1;
        ents[i].mtime = now > mt ? now : mt + 1;
    }
    for (i = 0; i < dst->nelts; i++) {
        const char **c = APR_ARRAY_IDX(dst, i, const char **);
        keys[src->nelts + i] = c[0];
        cs_row_entry(c, &ents[src->nelts + i]);
    }
    cs_mc_set_many(r, sc, src->nelts + dst->nelts, keys, ents);
    t2 = apr_time_now();
    /* The others rename theirs while this node renames its own. */
    pokes = cs_move_tell(r, sc, dbd, dkey, seq);
    if (cs_move_apply(r->server, r->pool, dbd, NULL) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(092)
                      "MOVE %s to %s: committed; this node renames its "
                      "copies at its next heartbeat", skey, dkey);
    }
    t3 = apr_time_now();
    cs_move_told(r, dbd, dkey, seq, pokes);
    *files = dst->nelts;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(093)
                  "moved %s to %s (%d files, move %" APR_UINT64_T_FMT "): "
                  "transaction %d ms, memcached %d ms, own copies %d ms, "
                  "then waiting for the other nodes %d ms", skey, dkey, dst->nelts, seq,
                  (int)((t1 - t0) / 1000), (int)((t2 - t1) / 1000),
                  (int)((t3 - t2) / 1000),
                  (int)((apr_time_now() - t3) / 1000));
    return OK;
}

/* A file of this node in the way of dpath (where dkey's parents go): if
 * it is a stale copy (its key deleted, or at a newer version), remove it
 * under its own key lock, as the delete job would have.  1 if removed. */
static int cs_move_clear_way(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                             const cs_server_conf *sc, const char *dkey,
                             const char *dpath)
{
    char *path = apr_pstrdup(p, dpath), *key = apr_pstrdup(p, dkey);
    char *cut = path + sc->store.root_len, *end;
    const char *q;
    apr_finfo_t fi;
    apr_file_t *lock, *f;
    apr_uint64_t v = 0;
    char sha[CS_SHA256_HEX_LEN + 1];
    cs_entry_t e;
    int segs = 1, removed = 0;

    /* The first parent of dpath that is a file. */
    while ((cut = strchr(cut + 1, '/')) != NULL) {
        *cut = '\0';
        if (apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_LINK, p)
            == APR_SUCCESS && fi.filetype == APR_REG) {
            break;
        }
        *cut = '/';
    }
    if (!cut) {
        return 0;
    }
    /* Its key: dkey without as many trailing segments as dpath has after
     * it (keys and paths share that suffix). */
    for (q = cut + 1; *q; q++) {
        segs += *q == '/';
    }
    for (end = key + strlen(key); segs > 0 && end > key; end--) {
        if (end[-1] == '/' && --segs == 0) {
            end[-1] = '\0';
        }
    }
    if (segs > 0 || !*key
        || cs_store_lock_key(p, &sc->store, key, &lock) != APR_SUCCESS) {
        return 0;
    }
    if (cs_registry_entry(s, p, dbd, key, &e) == APR_SUCCESS
        && cs_store_open(p, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && (e.version == 0 || e.deleted || v < e.version)
        && cs_store_remove(p, path) == APR_SUCCESS) {
        removed = 1;
    }
    cs_store_unlock_key(lock);
    return removed;
}

/* One file of a MOVE on this node, registered as holding version e of
 * dkey: its copy of skey renamed, else its registration dropped.  1 if
 * renamed, 0 if there was nothing to do, -1 if it was dropped, -2 if it
 * must be tried again (the MOVE stays queued). */
static int cs_move_one(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                       const cs_server_conf *sc, const char *skey,
                       const char *spath, const char *dkey,
                       const char *dpath, const cs_entry_t *e, int again)
{
    apr_file_t *l1, *l2, *f;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    apr_status_t rv = APR_SUCCESS;
    int result = -1;

    if ((rv = cs_store_lock_keys(p, &sc->store, skey, dkey, &l1, &l2))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CSLOG(094)
                     "MOVE to %s: cannot take the key locks", dkey);
        return -2;
    }
    /* Already there: applied before, by a crashed or concurrent run. */
    if (cs_store_open(p, dpath, dkey, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v == e->version && strcmp(sha, e->sha256) == 0
        && cs_store_intact(&sc->store, &fi, e)) {
        result = 0;
    }
    /* The old copy, if it still is the moved bytes. */
    else if (cs_store_open(p, spath, skey, 0, &f, &fi, &v, sha)
             == APR_SUCCESS && strcmp(sha, e->sha256) == 0
             && cs_store_intact(&sc->store, &fi, e)) {
        rv = cs_store_make_parents(p, &sc->store, dpath);
        if (rv == APR_ENOTDIR && !again) {
            /* A stale copy in the way (its delete has not reached this
             * node yet): cleared without holding these locks, then once
             * more. */
            cs_store_unlock_key(l2);
            cs_store_unlock_key(l1);
            cs_move_clear_way(s, p, dbd, sc, dkey, dpath);
            return cs_move_one(s, p, dbd, sc, skey, spath, dkey, dpath, e,
                               1);
        }
        if (rv == APR_SUCCESS
            && (rv = cs_store_relabel(p, f, dkey, e)) == APR_SUCCESS
            && (rv = cs_store_rename(spath, dpath)) == APR_SUCCESS) {
            result = 1;
        }
    }
    if (result < 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, rv, s, CSLOG(095)
                     "MOVE of %s to %s: this node has no intact copy of it "
                     "to rename; it no longer counts as a holder (repair "
                     "makes up for it)", skey, dkey);
        if (cs_registry_drop_replica(s, p, dbd, dkey, e->version)
            != APR_SUCCESS) {
            result = -2;
        }
    }
    cs_store_unlock_key(l2);
    cs_store_unlock_key(l1);
    return result;
}

/* Note the directory of path in dirs (kept in p, looked up in tmp). */
static void cs_note_dir(apr_pool_t *p, apr_pool_t *tmp, apr_hash_t *dirs,
                        const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *d = apr_pstrmemdup(tmp, path,
                                   slash ? (apr_size_t)(slash - path) : 0);

    if (!apr_hash_get(dirs, d, APR_HASH_KEY_STRING)) {
        d = apr_pstrdup(p, d);
        apr_hash_set(dirs, d, APR_HASH_KEY_STRING, d);
    }
}

/* Apply one queued MOVE (row: seq, src, dst, src_rel, dst_rel, tree). */
static apr_status_t cs_move_apply_one(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char **row,
                                      int *moved)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *root = sc->store.root;
    cs_move_t m;
    apr_array_header_t *held;
    const char *args[4];
    apr_size_t dlen, drlen;
    apr_hash_t *dirs = apr_hash_make(p);
    apr_hash_index_t *hi;
    apr_status_t rv;
    int i, renamed = 0;

    m.skey = row[1];
    m.dkey = row[2];
    m.srel = row[3];
    m.drel = row[4];
    m.tree = atoi(row[5]) != 0;
    dlen = strlen(m.dkey);
    drlen = strlen(m.drel);
    cs_move_forget(sc->cache, &m);
    args[0] = sc->node_name;
    args[1] = args[2] = args[3] = m.dkey;
    rv = cs_db_select(s, p, dbd, &cs_m_held, 6, &held, 4, args);
    for (i = 0; rv == APR_SUCCESS && i < held->nelts; i++) {
        const char **c = APR_ARRAY_IDX(held, i, const char **);
        apr_pool_t *sub;
        const char *spath, *dpath;
        cs_entry_t e;
        int r1;
        if (strncmp(c[0], m.dkey, dlen) != 0
            || strncmp(c[5], m.drel, drlen) != 0) {
            continue;           /* not a path this MOVE made */
        }
        cs_row_entry(c, &e);
        apr_pool_create(&sub, p);
        spath = apr_pstrcat(sub, root, m.srel, c[5] + drlen, NULL);
        dpath = apr_pstrcat(sub, root, c[5], NULL);
        r1 = cs_move_one(s, sub, dbd, sc,
                         apr_pstrcat(sub, m.skey, c[0] + dlen, NULL), spath,
                         c[0], dpath, &e, 0);
        if (r1 > 0) {
            /* Both directories are synced once at the end. */
            cs_note_dir(p, sub, dirs, spath);
            cs_note_dir(p, sub, dirs, dpath);
        }
        apr_pool_destroy(sub);
        renamed += r1 > 0;
        if (r1 == -2) {
            rv = APR_EAGAIN;
        }
    }
    for (hi = apr_hash_first(p, dirs); hi; hi = apr_hash_next(hi)) {
        const char *d = apr_hash_this_val(hi);
        apr_status_t srv = cs_store_sync_dir(d);
        if (srv != APR_SUCCESS) {
            rv = srv;
            ap_log_error(APLOG_MARK, APLOG_ERR, srv, s, CSLOG(096)
                         "MOVE of %s: cannot sync the renamed copies in %s",
                         m.skey, d);
        }
    }
    if (rv == APR_SUCCESS && m.tree) {
        cs_store_prune(&sc->store, apr_pstrcat(p, root, m.srel, NULL));
    }
    if (rv == APR_SUCCESS) {
        args[0] = row[0];
        args[1] = sc->node_name;
        rv = cs_db_run(s, p, dbd, &cs_m_done, NULL, 2, args);
    }
    if (moved) {
        *moved += renamed;
    }
    ap_log_error(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_WARNING,
                 rv, s, CSLOG(097) "MOVE %s of %s to %s: %d of this node's "
                 "copies renamed%s", row[0], m.skey, m.dkey, renamed,
                 rv == APR_SUCCESS ? "" : "; it stays queued");
    return rv;
}

apr_status_t cs_move_apply(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                           int *moved)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *rows;
    apr_file_t *lock;
    apr_pool_t *sub;
    apr_status_t rv;
    int i;

    if (moved) {
        *moved = 0;
    }
    apr_pool_create(&sub, p);
    /* One applier at a time on this node, in the order of the MOVEs. */
    if ((rv = cs_store_lock_named(sub, &sc->store, "moves", &lock))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CSLOG(098)
                     "cannot take the lock of the MOVE queue");
        apr_pool_destroy(sub);
        return rv;
    }
    rv = cs_db_select(s, sub, dbd, &cs_m_pending, 6, &rows, 1,
                      &sc->node_name);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; i++) {
        rv = cs_move_apply_one(s, sub, dbd,
                               APR_ARRAY_IDX(rows, i, const char **), moved);
    }
    apr_pool_destroy(sub);      /* the lock goes with it */
    return rv;
}
