/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dav.c - the WebDAV repository provider; see dav.h.
 *
 * A resource is a key: a file (cs_files, through registry.h) or a
 * collection (cs_dirs, names.h); the space's own root is a collection
 * that always exists.  Writes go through write.h: a PUT's body streams
 * into an upload, a COPY uploads the source's bytes from this node's copy
 * (fetched first if it has none), a MOVE is move.h's one registry
 * transaction with a rename of the copies on each node, a DELETE of a
 * collection tombstones each file below it and then drops the
 * collections, properties and locks of the subtree.  So every file
 * written this way keeps the promises of a PUT.
 *
 * Dead properties are stored as self-contained XML elements (their own
 * namespace declarations and xml:lang), so they are given back byte for
 * byte the same on every node.  Locks are dav_lock.c's.
 */
#include "dav.h"
#include "dav_lock.h"
#include "move.h"
#include "cs_private.h"
#include "config.h"
#include "names.h"
#include "read.h"
#include "registry.h"
#include "request.h"
#include "store.h"
#include "write.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "mod_dav.h"

#include <dlfcn.h>

/* ------------------------------------------------------------------ */
/* mod_dav's functions, found at start-up                             */
/* ------------------------------------------------------------------ */

static struct {
    void (*register_provider)(apr_pool_t *, const char *,
                              const dav_provider *);
    dav_error *(*new_error)(apr_pool_t *, int, int, apr_status_t,
                            const char *);
    void (*hook_find_liveprop)(dav_HOOK_find_liveprop_t *,
                               const char *const *, const char *const *,
                               int);
    void (*hook_insert_all_liveprops)(dav_HOOK_insert_all_liveprops_t *,
                                      const char *const *,
                                      const char *const *, int);
    void (*register_liveprop_group)(apr_pool_t *,
                                    const dav_liveprop_group *);
    int (*do_find_liveprop)(const char *, const char *,
                            const dav_liveprop_group *,
                            const dav_hooks_liveprop **);
    long (*get_liveprop_info)(int, const dav_liveprop_group *,
                              const dav_liveprop_spec **);
    dav_error *(*get_resource)(request_rec *, int, int, dav_resource **);
    int (*handle_err)(request_rec *, dav_error *, dav_response *);
} cs_dav_api;

static int cs_dav_resolve(void)
{
#define CS_DAV_FN(field, name) \
    (*(void **)&cs_dav_api.field = dlsym(RTLD_DEFAULT, name)) != NULL
    return CS_DAV_FN(register_provider, "dav_register_provider")
           && CS_DAV_FN(new_error, "dav_new_error")
           && CS_DAV_FN(hook_find_liveprop, "dav_hook_find_liveprop")
           && CS_DAV_FN(hook_insert_all_liveprops,
                        "dav_hook_insert_all_liveprops")
           && CS_DAV_FN(register_liveprop_group,
                        "dav_register_liveprop_group")
           && CS_DAV_FN(do_find_liveprop, "dav_do_find_liveprop")
           && CS_DAV_FN(get_liveprop_info, "dav_get_liveprop_info")
           && CS_DAV_FN(get_resource, "dav_get_resource")
           && CS_DAV_FN(handle_err, "dav_handle_err");
#undef CS_DAV_FN
}

/* An error for mod_dav to answer with; the log line is the caller's. */
static dav_error *cs_dav_err(apr_pool_t *p, int status, const char *desc)
{
    return cs_dav_api.new_error(p, status, 0, 0, desc);
}

/* ------------------------------------------------------------------ */
/* Resources                                                          */
/* ------------------------------------------------------------------ */

struct dav_resource_private {
    request_rec *r;             /* the request that looked it up */
    const cs_server_conf *sc;
    const char *key;            /* no trailing slash */
    const char *path;           /* its file below ClusterStorageRoot */
    const char *root;           /* the DAV space's root key */
    cs_entry_t e;               /* a file's entry */
};

static const dav_hooks_repository cs_dav_repos;

/* key without its trailing slashes ("/" stays "/"). */
static char *cs_dav_trim(apr_pool_t *p, const char *s)
{
    char *k = apr_pstrdup(p, s);
    apr_size_t n = strlen(k);

    while (n > 1 && k[n - 1] == '/') {
        k[--n] = '\0';
    }
    return k;
}

static dav_resource *cs_dav_new(request_rec *r, const cs_server_conf *sc,
                                const char *root, const char *key,
                                const char *path)
{
    dav_resource *res = apr_pcalloc(r->pool, sizeof(*res));
    dav_resource_private *info = apr_pcalloc(r->pool, sizeof(*info));

    info->r = r;
    info->sc = sc;
    info->key = key;
    info->path = path;
    info->root = root;
    res->type = DAV_RESOURCE_TYPE_REGULAR;
    res->info = info;
    res->hooks = &cs_dav_repos;
    res->pool = r->pool;
    res->uri = key;
    return res;
}

/* Fill in what the registry says of res: a live file, a collection, or
 * nothing.  NULL, or the error to answer (503: no registry). */
static dav_error *cs_dav_look(dav_resource *res)
{
    dav_resource_private *info = res->info;
    request_rec *r = info->r;
    ap_dbd_t *dbd;
    apr_int64_t mtime = 0;
    cs_local_t known;
    int is_dir = 0;

    res->exists = res->collection = 0;
    if (strcmp(info->key, info->root) == 0) {
        res->exists = res->collection = 1;
    }
    else {
        if (cs_registry_get(r, info->key, &info->e, &known) != APR_SUCCESS) {
            return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                              "the registry cannot be reached");
        }
        if (info->e.version > 0 && !info->e.deleted) {
            res->exists = 1;
            return NULL;
        }
        if (!(dbd = cs_registry_acquire(r))
            || cs_names_dir(r->server, r->pool, dbd, info->key, &is_dir,
                            &mtime) != APR_SUCCESS) {
            return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                              "the registry cannot be reached");
        }
        res->exists = res->collection = is_dir;
        info->e.mtime = mtime;
    }
    if (res->collection) {
        res->uri = apr_pstrcat(r->pool, info->key,
                               strcmp(info->key, "/") ? "/" : "", NULL);
    }
    return NULL;
}

static dav_error *cs_dav_get_resource(request_rec *r, const char *root_dir,
                                      const char *label, int use_checked_in,
                                      dav_resource **out)
{
    cs_dir_conf *dc = cs_dconf(r);
    cs_server_conf *sc = cs_sconf(r->server);
    const char *path, *key, *root;
    dav_resource *res;
    dav_error *err;

    *out = NULL;
    if (!dc || dc->enabled != 1 || dc->write != 1 || !sc->store.state_dir) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(057)
                      "DAV clusterstorage at %s needs ClusterStorage On and "
                      "ClusterStorageWrite On in a node's server", r->uri);
        return cs_dav_err(r->pool, HTTP_INTERNAL_SERVER_ERROR,
                          "DAV clusterstorage is not configured here");
    }
    key = cs_dav_trim(r->pool, r->uri);
    root = cs_dav_trim(r->pool, root_dir && *root_dir == '/' ? root_dir
                                                            : "/");
    if (strncmp(key, root, strlen(root)) != 0) {
        root = key;             /* <Directory>: the request's own path */
    }
    if (strcmp(key, root) != 0) {
        switch (cs_key_check(key, strlen(key))) {
        case CS_KEY_OK:
            if (!cs_key_is_access_file(r, key)) {
                break;
            }
            /* fall through */
        case CS_KEY_CONFIG:
            if (r->method_number == M_DELETE
                || r->method_number == M_PROPFIND) {
                break;
            }
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(058)
                          "refusing key %s: httpd reads such a file as "
                          "configuration (AccessFileName, .ht*)", key);
            return cs_dav_err(r->pool, HTTP_FORBIDDEN,
                              "such a name is server configuration");
        case CS_KEY_TOO_LONG:
            return cs_dav_err(r->pool, HTTP_REQUEST_URI_TOO_LARGE,
                              "the name is too long");
        case CS_KEY_RESERVED:
            return cs_dav_err(r->pool, HTTP_NOT_FOUND, "not found");
        default:
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(059)
                          "refusing malformed key %s", key);
            return cs_dav_err(r->pool, HTTP_BAD_REQUEST, "malformed name");
        }
    }
    if (!(path = cs_key_path(r, sc, key))) {
        return cs_dav_err(r->pool, HTTP_INTERNAL_SERVER_ERROR,
                          "the space maps outside ClusterStorageRoot");
    }
    res = cs_dav_new(r, sc, root, key, cs_dav_trim(r->pool, path));
    if ((err = cs_dav_look(res)) != NULL) {
        return err;
    }
    *out = res;
    return NULL;
}

/* The resource at key, a key below res's or one of its ancestors, with
 * its file mapped the way res's is (the key's tail is the path's). */
static dav_resource *cs_dav_relative(const dav_resource *res,
                                     const char *key)
{
    dav_resource_private *info = res->info;
    apr_size_t klen = strlen(info->key), plen = strlen(info->path);
    const char *path;

    if (strncmp(key, info->key, klen) == 0) {
        path = apr_pstrcat(res->pool, info->path, key + klen, NULL);
    }
    else {
        apr_size_t up = klen - strlen(key);
        path = apr_pstrmemdup(res->pool, info->path,
                              plen > up ? plen - up : 0);
    }
    return cs_dav_new(info->r, info->sc, info->root, key, path);
}

static dav_error *cs_dav_get_parent(const dav_resource *res,
                                    dav_resource **parent)
{
    dav_resource_private *info = res->info;
    dav_resource *p;
    dav_error *err;

    *parent = NULL;
    if (strcmp(info->key, info->root) == 0) {
        return NULL;
    }
    p = cs_dav_relative(res, cs_key_parent(res->pool, info->key));
    if (!*p->info->key) {
        p->info->key = "/";
    }
    if ((err = cs_dav_look(p)) != NULL) {
        return err;
    }
    *parent = p;
    return NULL;
}

/* NULL if res's parent collection exists, else 409 (as on a local file
 * system: no missing parents are created in a DAV space). */
static dav_error *cs_dav_need_parent(const dav_resource *res)
{
    dav_resource *parent;
    dav_error *err = cs_dav_get_parent(res, &parent);

    if (err || !parent || (parent->exists && parent->collection)) {
        return err;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, res->info->r, CSLOG(121)
                  "%s %s: no collection %s", res->info->r->method,
                  res->info->key, parent->info->key);
    return cs_dav_err(res->pool, HTTP_CONFLICT,
                      "the parent collection does not exist");
}

static int cs_dav_is_same(const dav_resource *a, const dav_resource *b)
{
    return a->hooks == b->hooks && strcmp(a->info->key, b->info->key) == 0;
}

static int cs_dav_is_parent(const dav_resource *a, const dav_resource *b)
{
    apr_size_t n = strlen(a->info->key);

    return a->hooks == b->hooks
           && strncmp(a->info->key, b->info->key, n) == 0
           && (b->info->key[n] == '/' || (n == 1 && b->info->key[1]));
}

/* ------------------------------------------------------------------ */
/* Writing a file: PUT through an upload                              */
/* ------------------------------------------------------------------ */

struct dav_stream {
    const dav_resource *res;
    cs_upload_t *up;            /* a whole new body */
    cs_tmp_t *body;             /* a Content-Range PUT: the range's bytes */
    apr_off_t offset;           /* ... and where they go */
};

/* "bytes A-B/..." of a Content-Range header: 0, or -1 if malformed. */
static int cs_dav_content_range(const char *h, apr_off_t *a, apr_off_t *b)
{
    char *end;

    if (!h || strncasecmp(h, "bytes ", 6) != 0) {
        return -1;
    }
    h += 6;
    while (*h == ' ') {
        h++;
    }
    if (!apr_isdigit(*h) || apr_strtoff(a, h, &end, 10) != APR_SUCCESS
        || *end != '-' || !apr_isdigit(end[1])
        || apr_strtoff(b, end + 1, &end, 10) != APR_SUCCESS || *end != '/'
        || *b < *a) {
        return -1;
    }
    return 0;
}

/* An HTTP status from write.h as mod_dav's error. */
static dav_error *cs_dav_status(request_rec *r, int status)
{
    if (status == OK) {
        return NULL;
    }
    return cs_dav_err(r->pool, status, apr_psprintf(r->pool,
                      "the cluster answered %d", status));
}

static dav_error *cs_dav_open_stream(const dav_resource *res,
                                     dav_stream_mode mode, dav_stream **out)
{
    dav_resource_private *info = res->info;
    request_rec *r = info->r;
    dav_stream *st;
    dav_error *err;
    int status;

    *out = NULL;
    if ((err = cs_dav_need_parent(res)) != NULL) {
        return err;
    }
    st = apr_pcalloc(r->pool, sizeof(*st));
    st->res = res;
    if (mode == DAV_MODE_WRITE_SEEKABLE) {
        /* A range of the current version (SPEC section 8): the bytes are
         * kept aside, the new version is built at the end. */
        apr_status_t rv;
        if (!res->exists || res->collection) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(062)
                          "PUT %s with Content-Range refused: no such file "
                          "(404); nothing stored", info->key);
            return cs_dav_err(r->pool, HTTP_NOT_FOUND, "no such file");
        }
        rv = cs_store_tmp_create(r->pool, &info->sc->store, "range",
                                 &st->body);
        if (rv != APR_SUCCESS) {
            return cs_dav_status(r, cs_store_http_status(rv));
        }
        *out = st;
        return NULL;
    }
    status = cs_upload_begin(r, info->sc, info->key, info->path, 1, &st->up);
    if (status != OK) {
        return cs_dav_status(r, status);
    }
    *out = st;
    return NULL;
}

static dav_error *cs_dav_write_stream(dav_stream *st, const void *buf,
                                      apr_size_t len)
{
    request_rec *r = st->res->info->r;
    apr_status_t rv = cs_store_tmp_write(st->body ? st->body
                                                  : cs_upload_tmp(st->up),
                                         buf, len);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(063)
                      "PUT %s: cannot write the temp file; nothing stored",
                      st->res->info->key);
        return cs_dav_status(r, cs_store_http_status(rv));
    }
    return NULL;
}

static dav_error *cs_dav_seek_stream(dav_stream *st, apr_off_t pos)
{
    if (!st->body) {
        return cs_dav_err(st->res->pool, HTTP_BAD_REQUEST,
                          "a seek in a whole new body");
    }
    st->offset = pos;
    return NULL;
}

static dav_error *cs_dav_close_stream(dav_stream *st, int commit)
{
    dav_resource_private *info = st->res->info;
    request_rec *r = info->r;
    apr_off_t a, b;
    apr_uint64_t size;
    char sha[CS_SHA256_HEX_LEN + 1];
    cs_entry_t e;
    int created;

    if (!commit) {
        return NULL;            /* the pool cleanup removes the temp file */
    }
    if (!st->body) {
        return cs_dav_status(r, cs_upload_commit(st->up, &e, &created));
    }
    cs_store_tmp_digest(st->body, &size, sha);
    if (cs_dav_content_range(apr_table_get(r->headers_in, "Content-Range"),
                             &a, &b) != 0
        || a != st->offset || (apr_uint64_t)(b - a + 1) != size) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(078)
                      "PUT %s: Content-Range %s does not match the %"
                      APR_UINT64_T_FMT " bytes of the body (400); nothing "
                      "stored", info->key,
                      apr_table_get(r->headers_in, "Content-Range"), size);
        return cs_dav_err(r->pool, HTTP_BAD_REQUEST,
                          "the body does not fill the Content-Range");
    }
    return cs_dav_status(r, cs_patch_key(r, info->sc, info->key, info->path,
                                         a, st->body, size, &e));
}

/* ------------------------------------------------------------------ */
/* Collections, COPY, MOVE, DELETE                                    */
/* ------------------------------------------------------------------ */

static ap_dbd_t *cs_dav_dbd(request_rec *r, dav_error **err)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);

    *err = dbd ? NULL : cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                                   "the registry cannot be reached");
    return dbd;
}

static apr_int64_t cs_dav_now(const cs_server_conf *sc)
{
    return (apr_int64_t)(apr_time_now() + cs_clock_skew(sc));
}

static dav_error *cs_dav_mkcol(dav_resource *res)
{
    dav_resource_private *info = res->info;
    request_rec *r = info->r;
    dav_error *err;
    ap_dbd_t *dbd = cs_dav_dbd(r, &err);
    int created = 0;

    if (!dbd || (err = cs_dav_need_parent(res)) != NULL) {
        return err;
    }
    if (cs_names_mkcol(r->server, r->pool, dbd, info->key,
                       cs_dav_now(info->sc), &created) != APR_SUCCESS) {
        return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                          "the registry cannot be reached");
    }
    if (!created) {
        return cs_dav_err(r->pool, HTTP_METHOD_NOT_ALLOWED,
                          "the collection exists");
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(066)
                  "created collection %s", info->key);
    res->exists = res->collection = 1;
    return NULL;
}

/* Remove one file key (its tombstone, copy, properties and locks). */
static int cs_dav_remove_file(request_rec *r, const cs_server_conf *sc,
                              ap_dbd_t *dbd, const char *key,
                              const char *path)
{
    cs_entry_t e;
    int status = cs_delete_key(r, sc, key, path, 0, &e);

    if (status == HTTP_NOT_FOUND) {
        status = OK;            /* gone meanwhile: what was asked */
    }
    if (status == OK
        && cs_names_rmcol(r->server, r->pool, dbd, key) != APR_SUCCESS) {
        status = HTTP_SERVICE_UNAVAILABLE;
    }
    return status;
}

static dav_error *cs_dav_remove(dav_resource *res, dav_response **response)
{
    dav_resource_private *info = res->info;
    request_rec *r = info->r;
    apr_array_header_t *files;
    dav_error *err;
    ap_dbd_t *dbd = cs_dav_dbd(r, &err);
    apr_pool_t *sub;
    int i, status = OK;

    *response = NULL;
    if (!dbd) {
        return err;
    }
    if (!res->collection) {
        status = cs_dav_remove_file(r, info->sc, dbd, info->key, info->path);
        if (status == OK) {
            res->exists = 0;
        }
        return cs_dav_status(r, status);
    }
    if (strcmp(info->key, info->root) == 0) {
        return cs_dav_err(r->pool, HTTP_FORBIDDEN,
                          "the root of the space cannot be removed");
    }
    /* Every file below it, each the way a DELETE removes it, then the
     * collections: a failure leaves the collections in place. */
    if (cs_names_files_below(r->server, r->pool, dbd, info->key, &files)
        != APR_SUCCESS) {
        return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                          "the registry cannot be reached");
    }
    apr_pool_create(&sub, r->pool);
    for (i = 0; i < files->nelts && status == OK; i++) {
        const char *k = APR_ARRAY_IDX(files, i, const char *);
        dav_resource *m = cs_dav_relative(res, k);
        status = cs_dav_remove_file(r, info->sc, dbd, k, m->info->path);
        apr_pool_clear(sub);
    }
    apr_pool_destroy(sub);
    if (status == OK
        && cs_names_rmcol(r->server, r->pool, dbd, info->key)
           != APR_SUCCESS) {
        status = HTTP_SERVICE_UNAVAILABLE;
    }
    if (status != OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(067)
                      "DELETE of collection %s stopped after %d of %d "
                      "files (status %d)", info->key, i, files->nelts,
                      status);
        return cs_dav_status(r, status);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(068)
                  "removed collection %s (%d files)", info->key,
                  files->nelts);
    res->exists = res->collection = 0;
    return NULL;
}

/* Copy the file src (version e) to the key and path of dst: an upload of
 * this node's verified copy of it. */
/* Open this node's verified copy of the current version of skey (*e),
 * fetched first if need be, in pool fp; a version replaced meanwhile is
 * read again.  OK, 404, or the status to answer. */
static int cs_dav_open_current(request_rec *r, const cs_server_conf *sc,
                               apr_pool_t *fp, const char *skey,
                               const char *spath, cs_entry_t *e,
                               apr_file_t **f)
{
    int attempt, status = HTTP_SERVICE_UNAVAILABLE;

    for (attempt = 0; attempt < 8; attempt++) {
        cs_entry_t now;
        apr_finfo_t fi;
        apr_uint64_t v;
        char sha[CS_SHA256_HEX_LEN + 1];

        if (cs_registry_get_db(r, skey, e) != APR_SUCCESS) {
            return cs_unavailable(r);
        }
        if (e->version == 0 || e->deleted) {
            return HTTP_NOT_FOUND;
        }
        apr_pool_clear(fp);
        if (cs_store_open(fp, spath, skey, 0, f, &fi, &v, sha) == APR_SUCCESS
            && v == e->version && !cs_copy_damage(r, &fi, sha, e)) {
            return OK;
        }
        /* Missing, older, or damaged on disk (the fetch quarantines a
         * damaged copy): a COPY never spreads bytes the registry does
         * not vouch for. */
        status = cs_ensure_local(r, sc, skey, spath, e);
        apr_pool_clear(fp);
        if (status == OK
            && cs_store_open(fp, spath, skey, 0, f, &fi, &v, sha)
               == APR_SUCCESS
            && v == e->version && !cs_copy_damage(r, &fi, sha, e)) {
            return OK;
        }
        /* No holder of that version any more, or it was replaced while
         * it was fetched: again on the newer one; else the answer stands. */
        if (cs_registry_get_db(r, skey, &now) != APR_SUCCESS
            || now.version == e->version) {
            break;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(069)
                  "COPY %s: no copy of its current version could be read "
                  "(status %d)", skey, status);
    return status == OK ? HTTP_SERVICE_UNAVAILABLE : status;
}

/* Copy the current version of file skey to the key and path of dst: an
 * upload of this node's verified copy of it.  *copied: that version. */
static int cs_dav_copy_file(request_rec *r, const cs_server_conf *sc,
                            const char *skey, const char *spath,
                            const char *dkey, const char *dpath,
                            apr_uint64_t *copied)
{
    cs_entry_t e, out;
    cs_upload_t *up;
    apr_file_t *f;
    apr_pool_t *fp;
    apr_status_t rv;
    int status, created;

    /* The open copy lives in its own pool: a collection's COPY opens one
     * after another. */
    apr_pool_create(&fp, r->pool);
    if ((status = cs_dav_open_current(r, sc, fp, skey, spath, &e, &f))
        != OK) {
        apr_pool_destroy(fp);
        return status;
    }
    if ((status = cs_upload_begin(r, sc, dkey, dpath, 0, &up)) != OK) {
        apr_pool_destroy(fp);
        return status;
    }
    rv = cs_store_tmp_append_file(cs_upload_tmp(up), f, 0,
                                  (apr_off_t)e.size);
    apr_pool_destroy(fp);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(119)
                      "COPY %s to %s: cannot copy the bytes", skey, dkey);
        return cs_store_http_status(rv);
    }
    if (copied) {
        *copied = e.version;
    }
    return cs_upload_commit(up, &out, &created);
}

/* COPY of one file, with its dead properties. */
static int cs_dav_copy_one(request_rec *r, const cs_server_conf *sc,
                           ap_dbd_t *dbd, const char *skey,
                           const char *spath, const char *dkey,
                           const char *dpath)
{
    int status = cs_dav_copy_file(r, sc, skey, spath, dkey, dpath, NULL);

    if (status == OK
        && cs_names_props_copy(r->server, r->pool, dbd, skey, dkey, 0)
           != APR_SUCCESS) {
        status = HTTP_SERVICE_UNAVAILABLE;
    }
    return status;
}

/* COPY of src to dst.  A collection: its collections (with Depth 0 only
 * itself) and dead properties first, then each file. */
static dav_error *cs_dav_copy_tree(dav_resource *src, dav_resource *dst,
                                   int depth)
{
    dav_resource_private *si = src->info, *di = dst->info;
    request_rec *r = si->r;
    apr_array_header_t *files = NULL;
    dav_error *err;
    ap_dbd_t *dbd = cs_dav_dbd(r, &err);
    apr_size_t slen = strlen(si->key);
    int i, status = OK, created;

    if (!dbd || (err = cs_dav_need_parent(dst)) != NULL) {
        return err;
    }
    if (!src->collection) {
        status = cs_dav_copy_one(r, si->sc, dbd, si->key, si->path, di->key,
                                 di->path);
        if (status == OK) {
            dst->exists = 1;
        }
        return cs_dav_status(r, status);
    }
    if ((depth == 0
         ? cs_names_mkcol(r->server, r->pool, dbd, di->key,
                          cs_dav_now(si->sc), &created)
         : cs_names_copy_dirs(r->server, r->pool, dbd, si->key, di->key,
                              cs_dav_now(si->sc))) != APR_SUCCESS
        || cs_names_props_copy(r->server, r->pool, dbd, si->key, di->key,
                               depth != 0) != APR_SUCCESS
        || (depth != 0
            && cs_names_files_below(r->server, r->pool, dbd, si->key,
                                    &files) != APR_SUCCESS)) {
        return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                          "the registry cannot be reached");
    }
    for (i = 0; files && i < files->nelts && status == OK; i++) {
        const char *k = APR_ARRAY_IDX(files, i, const char *);
        const char *dk = apr_pstrcat(r->pool, di->key, k + slen, NULL);
        dav_resource *sm = cs_dav_relative(src, k);
        dav_resource *dm = cs_dav_relative(dst, dk);
        status = cs_dav_copy_one(r, si->sc, dbd, k, sm->info->path, dk,
                                 dm->info->path);
    }
    if (status != OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(084)
                      "COPY of collection %s to %s stopped at file %d of %d "
                      "(status %d); the files before it are at the "
                      "destination", si->key, di->key, i,
                      files ? files->nelts : 0, status);
        return cs_dav_status(r, status);
    }
    dst->exists = dst->collection = 1;
    return NULL;
}

static dav_error *cs_dav_copy(const dav_resource *src, dav_resource *dst,
                              int depth, dav_response **response)
{
    *response = NULL;
    /* A COPY leaves src as it is. */
    return cs_dav_copy_tree((dav_resource *)src, dst, depth);
}

static dav_error *cs_dav_move(dav_resource *src, dav_resource *dst,
                              dav_response **response)
{
    dav_resource_private *si = src->info, *di = dst->info;
    dav_error *err;
    int status, files = 0;

    *response = NULL;
    if ((err = cs_dav_need_parent(dst)) != NULL) {
        return err;
    }
    /* One registry transaction; each node renames its own copies. */
    status = cs_move(si->r, si->sc, si->key, si->path, di->key, di->path,
                     src->collection, &files);
    if (status != OK) {
        return cs_dav_status(si->r, status);
    }
    dst->exists = 1;
    dst->collection = src->collection;
    src->exists = src->collection = 0;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Listing                                                            */
/* ------------------------------------------------------------------ */

static dav_error *cs_dav_walk_one(const dav_walk_params *params,
                                  dav_walk_resource *wres, int depth,
                                  const dav_resource *res)
{
    dav_resource_private *info = res->info;
    request_rec *r = info->r;
    apr_array_header_t *members;
    ap_dbd_t *dbd;
    dav_error *err;
    int i;

    wres->resource = res;
    err = params->func(wres, res->collection ? DAV_CALLTYPE_COLLECTION
                                             : DAV_CALLTYPE_MEMBER);
    if (err || !res->collection || depth == 0) {
        return err;
    }
    if (!(dbd = cs_dav_dbd(r, &err))) {
        return err;
    }
    if (cs_names_members(r->server, params->pool, dbd, info->key, &members)
        != APR_SUCCESS) {
        return cs_dav_err(r->pool, HTTP_SERVICE_UNAVAILABLE,
                          "the registry cannot be reached");
    }
    for (i = 0; i < members->nelts; i++) {
        cs_member_t *m = &APR_ARRAY_IDX(members, i, cs_member_t);
        dav_resource *mr = cs_dav_relative(res, m->key);
        mr->exists = 1;
        mr->collection = m->collection;
        mr->info->e = m->e;
        if (m->collection) {
            mr->uri = apr_pstrcat(r->pool, m->key, "/", NULL);
        }
        err = cs_dav_walk_one(params, wres, depth == DAV_INFINITY
                                            ? DAV_INFINITY : depth - 1, mr);
        if (err) {
            return err;
        }
    }
    return NULL;
}

static dav_error *cs_dav_walk(const dav_walk_params *params, int depth,
                              dav_response **response)
{
    dav_walk_resource wres;
    dav_error *err;

    memset(&wres, 0, sizeof(wres));
    wres.walk_ctx = params->walk_ctx;
    wres.pool = params->pool;
    err = cs_dav_walk_one(params, &wres, depth, params->root);
    *response = wres.response;
    return err;
}

static const char *cs_dav_getetag(const dav_resource *res)
{
    char etag[64];

    if (!res->exists || res->collection) {
        return "";
    }
    cs_entry_etag(&res->info->e, etag, sizeof(etag));
    return apr_pstrdup(res->pool, etag);
}

static request_rec *cs_dav_request(const dav_resource *res)
{
    return res->info->r;
}

static const char *cs_dav_pathname(const dav_resource *res)
{
    return res->info->path;
}

static const dav_hooks_repository cs_dav_repos = {
    0,                          /* GET and HEAD stay with read.c */
    cs_dav_get_resource,
    cs_dav_get_parent,
    cs_dav_is_same,
    cs_dav_is_parent,
    cs_dav_open_stream,
    cs_dav_close_stream,
    cs_dav_write_stream,
    cs_dav_seek_stream,
    NULL,                       /* set_headers: only with handle_get */
    NULL,                       /* deliver: only with handle_get */
    cs_dav_mkcol,
    cs_dav_copy,
    cs_dav_move,
    cs_dav_remove,
    cs_dav_walk,
    cs_dav_getetag,
    NULL,
    cs_dav_request,
    cs_dav_pathname
};

/* ------------------------------------------------------------------ */
/* Live properties                                                    */
/* ------------------------------------------------------------------ */

enum {
    CS_PROPID_creationdate = DAV_PROPID_TEST3 + 50,
    CS_PROPID_getcontentlength,
    CS_PROPID_getetag,
    CS_PROPID_getlastmodified
};

static const char *const cs_dav_ns_uris[] = { "DAV:", NULL };

static const dav_liveprop_spec cs_dav_props[] = {
    { 0, "creationdate", CS_PROPID_creationdate, 0 },
    { 0, "getcontentlength", CS_PROPID_getcontentlength, 0 },
    { 0, "getetag", CS_PROPID_getetag, 0 },
    { 0, "getlastmodified", CS_PROPID_getlastmodified, 0 },
    { 0, NULL, 0, 0 }
};

static const dav_hooks_liveprop cs_dav_liveprop_hooks;

static const dav_liveprop_group cs_dav_liveprop_group = {
    cs_dav_props, cs_dav_ns_uris, &cs_dav_liveprop_hooks
};

static dav_prop_insert cs_dav_insert_prop(const dav_resource *res,
                                          int propid, dav_prop_insert what,
                                          apr_text_header *phdr)
{
    const dav_liveprop_spec *spec;
    long ns;
    const char *value = NULL;
    apr_time_t t = (apr_time_t)res->info->e.mtime;
    apr_pool_t *p = res->pool;

    if (!res->exists) {
        return DAV_PROP_INSERT_NOTDEF;
    }
    switch (propid) {
    case CS_PROPID_creationdate: {
        apr_time_exp_t x;
        apr_time_exp_gmt(&x, t);
        value = apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                             x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                             x.tm_hour, x.tm_min, x.tm_sec);
        break;
    }
    case CS_PROPID_getlastmodified: {
        char *d = apr_palloc(p, APR_RFC822_DATE_LEN);
        apr_rfc822_date(d, t);
        value = d;
        break;
    }
    case CS_PROPID_getcontentlength:
        if (res->collection) {
            return DAV_PROP_INSERT_NOTDEF;
        }
        value = apr_psprintf(p, "%" APR_UINT64_T_FMT, res->info->e.size);
        break;
    case CS_PROPID_getetag:
        if (res->collection) {
            return DAV_PROP_INSERT_NOTDEF;
        }
        value = apr_xml_quote_string(p, cs_dav_getetag(res), 0);
        break;
    default:
        return DAV_PROP_INSERT_NOTDEF;
    }
    ns = cs_dav_api.get_liveprop_info(propid, &cs_dav_liveprop_group, &spec);
    if (what == DAV_PROP_INSERT_VALUE) {
        apr_text_append(p, phdr, apr_psprintf(p, "<lp%ld:%s>%s</lp%ld:%s>"
                                              DEBUG_CR, ns, spec->name,
                                              value, ns, spec->name));
    }
    else if (what == DAV_PROP_INSERT_NAME) {
        apr_text_append(p, phdr, apr_psprintf(p, "<lp%ld:%s/>" DEBUG_CR, ns,
                                              spec->name));
    }
    else {
        apr_text_append(p, phdr, apr_psprintf(p,
                        "<D:supported-live-property D:name=\"%s\" "
                        "D:namespace=\"%s\"/>" DEBUG_CR, spec->name,
                        cs_dav_ns_uris[spec->ns]));
    }
    return what;
}

static int cs_dav_is_writable(const dav_resource *res, int propid)
{
    return 0;
}

static const dav_hooks_liveprop cs_dav_liveprop_hooks = {
    cs_dav_insert_prop,
    cs_dav_is_writable,
    cs_dav_ns_uris,
    NULL, NULL, NULL, NULL,     /* no writable live properties */
    NULL
};

static int cs_dav_find_liveprop(const dav_resource *res, const char *ns_uri,
                                const char *name,
                                const dav_hooks_liveprop **hooks)
{
    if (res->hooks != &cs_dav_repos) {
        return 0;
    }
    return cs_dav_api.do_find_liveprop(ns_uri, name, &cs_dav_liveprop_group,
                                       hooks);
}

static void cs_dav_insert_all(request_rec *r, const dav_resource *res,
                              dav_prop_insert what, apr_text_header *phdr)
{
    if (res->hooks != &cs_dav_repos || !res->exists) {
        return;
    }
    cs_dav_insert_prop(res, CS_PROPID_creationdate, what, phdr);
    cs_dav_insert_prop(res, CS_PROPID_getlastmodified, what, phdr);
    if (!res->collection) {
        cs_dav_insert_prop(res, CS_PROPID_getcontentlength, what, phdr);
        cs_dav_insert_prop(res, CS_PROPID_getetag, what, phdr);
    }
}

/* ------------------------------------------------------------------ */
/* Dead properties                                                    */
/* ------------------------------------------------------------------ */

struct dav_db {
    request_rec *r;
    apr_pool_t *pool;
    const char *key;
    apr_array_header_t *props;  /* cs_prop_t, as the registry has them */
    int iter;
};

struct dav_namespace_map {
    const apr_array_header_t *namespaces;
};

struct dav_deadprop_rollback {
    dav_prop_name name;
    const char *value;          /* NULL: it did not exist */
};

static dav_error *cs_db_unavailable(dav_db *db)
{
    return cs_dav_err(db->pool, HTTP_SERVICE_UNAVAILABLE,
                      "the registry cannot be reached");
}

static dav_error *cs_db_open(apr_pool_t *p, const dav_resource *res, int ro,
                             dav_db **pdb)
{
    request_rec *r = res->info->r;
    dav_db *db;
    ap_dbd_t *dbd;

    *pdb = NULL;
    if (!res->exists) {
        return NULL;
    }
    db = apr_pcalloc(p, sizeof(*db));
    db->r = r;
    db->pool = p;
    db->key = res->info->key;
    if (!(dbd = cs_registry_acquire(r))
        || cs_names_props(r->server, p, dbd, db->key, &db->props)
           != APR_SUCCESS) {
        return cs_db_unavailable(db);
    }
    *pdb = db;
    return NULL;
}

static void cs_db_close(dav_db *db)
{
}

static dav_error *cs_db_define_namespaces(dav_db *db, dav_xmlns_info *xi)
{
    return NULL;                /* each value declares its own */
}

static cs_prop_t *cs_db_find(dav_db *db, const dav_prop_name *name)
{
    int i;

    for (i = 0; i < db->props->nelts; i++) {
        cs_prop_t *p = &APR_ARRAY_IDX(db->props, i, cs_prop_t);
        if (strcmp(p->ns, name->ns) == 0 && strcmp(p->name, name->name) == 0) {
            return p;
        }
    }
    return NULL;
}

static dav_error *cs_db_output_value(dav_db *db, const dav_prop_name *name,
                                     dav_xmlns_info *xi,
                                     apr_text_header *phdr, int *found)
{
    cs_prop_t *p = cs_db_find(db, name);

    *found = p != NULL;
    if (p) {
        apr_text_append(db->pool, phdr, p->value);
    }
    return NULL;
}

static dav_error *cs_db_map_namespaces(dav_db *db,
                                       const apr_array_header_t *namespaces,
                                       dav_namespace_map **mapping)
{
    dav_namespace_map *m = apr_palloc(db->pool, sizeof(*m));

    m->namespaces = namespaces;
    *mapping = m;
    return NULL;
}

/* Write (value) or remove (NULL) name, in the registry and in db. */
static dav_error *cs_db_put(dav_db *db, const dav_prop_name *name,
                            const char *value)
{
    request_rec *r = db->r;
    ap_dbd_t *dbd = cs_registry_acquire(r);
    cs_prop_t *p = cs_db_find(db, name);
    apr_status_t rv;

    if (!dbd) {
        return cs_db_unavailable(db);
    }
    if (value) {
        cs_prop_t np;
        np.ns = name->ns;
        np.name = name->name;
        np.value = value;
        rv = cs_names_prop_set(r->server, db->pool, dbd, db->key, &np);
    }
    else {
        rv = cs_names_prop_del(r->server, db->pool, dbd, db->key, name->ns,
                               name->name);
    }
    if (rv != APR_SUCCESS) {
        return cs_db_unavailable(db);
    }
    if (p && value) {
        p->value = value;
    }
    else if (p) {
        p->ns = p->name = "";   /* gone: never matches a real name */
        p->value = "";
    }
    else if (value) {
        p = apr_array_push(db->props);
        p->ns = apr_pstrdup(db->pool, name->ns);
        p->name = apr_pstrdup(db->pool, name->name);
        p->value = value;
    }
    return NULL;
}

static dav_error *cs_db_store(dav_db *db, const dav_prop_name *name,
                              const apr_xml_elem *elem,
                              dav_namespace_map *mapping)
{
    const char *text;
    apr_size_t len;

    if (strlen(name->ns) > 768 || strlen(name->name) > 255) {
        return cs_dav_err(db->pool, HTTP_BAD_REQUEST,
                          "property name or namespace too long");
    }
    /* The parser unquoted the text; the value is stored as XML. */
    apr_xml_quote_elem(db->pool, (apr_xml_elem *)elem);
    apr_xml_to_text(db->pool, elem, APR_XML_X2T_FULL_NS_LANG,
                    (apr_array_header_t *)mapping->namespaces, NULL, &text,
                    &len);
    return cs_db_put(db, name, text);
}

static dav_error *cs_db_remove(dav_db *db, const dav_prop_name *name)
{
    return cs_db_put(db, name, NULL);
}

static int cs_db_exists(dav_db *db, const dav_prop_name *name)
{
    return cs_db_find(db, name) != NULL;
}

static dav_error *cs_db_next_name(dav_db *db, dav_prop_name *pname)
{
    pname->ns = pname->name = NULL;
    while (db->iter < db->props->nelts) {
        cs_prop_t *p = &APR_ARRAY_IDX(db->props, db->iter, cs_prop_t);
        db->iter++;
        if (*p->name) {
            pname->ns = p->ns;
            pname->name = p->name;
            break;
        }
    }
    return NULL;
}

static dav_error *cs_db_first_name(dav_db *db, dav_prop_name *pname)
{
    db->iter = 0;
    return cs_db_next_name(db, pname);
}

static dav_error *cs_db_get_rollback(dav_db *db, const dav_prop_name *name,
                                     dav_deadprop_rollback **prb)
{
    dav_deadprop_rollback *rb = apr_pcalloc(db->pool, sizeof(*rb));
    cs_prop_t *p = cs_db_find(db, name);

    rb->name.ns = apr_pstrdup(db->pool, name->ns);
    rb->name.name = apr_pstrdup(db->pool, name->name);
    rb->value = p ? p->value : NULL;
    *prb = rb;
    return NULL;
}

static dav_error *cs_db_apply_rollback(dav_db *db, dav_deadprop_rollback *rb)
{
    return rb ? cs_db_put(db, &rb->name, rb->value) : NULL;
}

static const dav_hooks_propdb cs_dav_propdb = {
    cs_db_open,
    cs_db_close,
    cs_db_define_namespaces,
    cs_db_output_value,
    cs_db_map_namespaces,
    cs_db_store,
    cs_db_remove,
    cs_db_exists,
    cs_db_first_name,
    cs_db_next_name,
    cs_db_get_rollback,
    cs_db_apply_rollback,
    NULL
};

/* ------------------------------------------------------------------ */
/* Registration                                                       */
/* ------------------------------------------------------------------ */

static const char *cs_dav_key_of(const dav_resource *res)
{
    return res->info->key;
}

static dav_error *cs_dav_resource_at(const dav_resource *start,
                                     const char *key,
                                     const dav_resource **out)
{
    dav_resource *res = cs_dav_relative(start, key);
    dav_error *err = cs_dav_look(res);

    *out = err ? NULL : res;
    return err;
}

static cs_dav_api_t cs_dav_lock_api;

static const dav_provider cs_dav_provider = {
    &cs_dav_repos,
    &cs_dav_propdb,
    &cs_dav_lock_hooks,
    NULL,                       /* no versioning */
    NULL,                       /* no bindings */
    NULL,                       /* no search */
    NULL
};

void cs_dav_pre_config(apr_pool_t *pconf)
{
    if (!cs_dav_resolve()) {
        return;                 /* no mod_dav: `DAV clusterstorage` fails */
    }
    cs_dav_lock_api.new_error = cs_dav_api.new_error;
    cs_dav_lock_api.key = cs_dav_key_of;
    cs_dav_lock_api.resource_at = cs_dav_resource_at;
    cs_dav_lock_init(&cs_dav_lock_api);
    cs_dav_api.register_provider(pconf, "clusterstorage", &cs_dav_provider);
    cs_dav_api.register_liveprop_group(pconf, &cs_dav_liveprop_group);
    cs_dav_api.hook_find_liveprop(cs_dav_find_liveprop, NULL, NULL,
                                  APR_HOOK_MIDDLE);
    cs_dav_api.hook_insert_all_liveprops(cs_dav_insert_all, NULL, NULL,
                                         APR_HOOK_MIDDLE);
}

int cs_dav_owns(request_rec *r)
{
    return r->handler && strcmp(r->handler, "dav-handler") == 0
           && cs_dav_api.get_resource;
}

/* OK if no lock covers res, or r's If: header names one that does; else
 * 423 (logged). */
static int cs_dav_lock_allows(request_rec *r, const dav_resource *res)
{
    const char *ifh = apr_table_get(r->headers_in, "If");
    apr_array_header_t *locks;
    ap_dbd_t *dbd = cs_registry_acquire(r);
    int i;

    if (!dbd || cs_names_locks(r->server, r->pool, dbd, res->info->key,
                               &locks) != APR_SUCCESS) {
        return cs_unavailable(r);
    }
    for (i = 0; i < locks->nelts; i++) {
        const cs_lock_t *l = &APR_ARRAY_IDX(locks, i, cs_lock_t);
        if (ifh && strstr(ifh, l->token)) {
            return OK;
        }
    }
    if (locks->nelts == 0) {
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(079)
                  "PATCH %s refused: it is locked and the request names "
                  "none of its lock tokens (423)", res->info->key);
    return HTTP_LOCKED;
}

/* X-Update-Range of a partial update: "append" (*offset -1), "bytes=A-B"
 * (*last B) or "bytes=A-" (*last -1).  0, or -1 if malformed. */
static int cs_dav_update_range(const char *h, apr_off_t *offset,
                               apr_off_t *last)
{
    char *end;

    *last = -1;
    if (h && strcasecmp(h, "append") == 0) {
        *offset = -1;
        return 0;
    }
    if (!h || strncasecmp(h, "bytes=", 6) != 0 || !apr_isdigit(h[6])
        || apr_strtoff(offset, h + 6, &end, 10) != APR_SUCCESS
        || *end != '-') {
        return -1;
    }
    if (!end[1]) {
        return 0;
    }
    if (!apr_isdigit(end[1])
        || apr_strtoff(last, end + 1, &end, 10) != APR_SUCCESS || *end
        || *last < *offset) {
        return -1;
    }
    return 0;
}

int cs_dav_patch(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_off_t offset, last;
    dav_resource *res;
    dav_error *err;
    cs_tmp_t *body;
    cs_entry_t e;
    apr_uint64_t size;
    char sha[CS_SHA256_HEX_LEN + 1];
    apr_status_t rv;
    int status;

    if ((err = cs_dav_api.get_resource(r, 0, 0, &res)) != NULL) {
        return cs_dav_api.handle_err(r, err, NULL);
    }
    if (res->hooks != &cs_dav_repos) {
        return DECLINED;
    }
    if (!ct || strncasecmp(ct, "application/x-sabredav-partialupdate",
                           36) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(080)
                      "PATCH %s refused: Content-Type %s is not "
                      "application/x-sabredav-partialupdate (415)",
                      res->info->key, ct ? ct : "(none)");
        return HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    if (cs_dav_update_range(apr_table_get(r->headers_in, "X-Update-Range"),
                            &offset, &last) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(081)
                      "PATCH %s refused: X-Update-Range %s is not "
                      "\"append\", \"bytes=A-B\" or \"bytes=A-\" (400)",
                      res->info->key,
                      apr_table_get(r->headers_in, "X-Update-Range"));
        return HTTP_BAD_REQUEST;
    }
    if (!res->exists || res->collection) {
        return res->collection ? HTTP_METHOD_NOT_ALLOWED : HTTP_NOT_FOUND;
    }
    if ((status = cs_dav_lock_allows(r, res)) != OK
        || (status = cs_clock_allows_write(r, res->info->sc)) != OK) {
        return status;
    }
    rv = cs_store_tmp_create(r->pool, &res->info->sc->store, "patch", &body);
    if (rv != APR_SUCCESS) {
        return cs_store_http_status(rv);
    }
    if ((status = cs_read_body(r, res->info->key, body)) != OK) {
        return status;
    }
    cs_store_tmp_digest(body, &size, sha);
    if (last >= 0 && (apr_uint64_t)(last - offset + 1) != size) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(082)
                      "PATCH %s: X-Update-Range %s does not match the %"
                      APR_UINT64_T_FMT " bytes of the body (400); nothing "
                      "stored", res->info->key,
                      apr_table_get(r->headers_in, "X-Update-Range"), size);
        return HTTP_BAD_REQUEST;
    }
    status = cs_patch_key(r, res->info->sc, res->info->key, res->info->path,
                          offset, body, size, &e);
    if (status != OK) {
        return status;
    }
    r->status = HTTP_NO_CONTENT;
    return OK;
}
