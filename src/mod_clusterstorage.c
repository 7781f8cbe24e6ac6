/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mod_clusterstorage.c - the module: its hooks, post_config and the
 * handler that gives each request to its path.
 *
 * A URL space with "ClusterStorage On" is cluster storage.  A request in
 * it goes to
 *   read.c        GET/HEAD from a client;
 *   write.c       PUT/DELETE from a client (ClusterStorageWrite On);
 *   peer_serve.c  a request another node proved it sent (access phase);
 * anything else is 405 with Allow, except in a WebDAV space (dav.c), where
 * mod_dav answers every method but GET and HEAD.  config.c holds the
 * directives,
 * drive.c the background threads, status.c the status page; the file map
 * is in cs_private.h.
 */
#define CS_MODULE_MAIN
#include "cs_private.h"
#include "cache.h"
#include "config.h"
#include "dav.h"
#include "drive.h"
#include "peer.h"
#include "peer_serve.h"
#include "queue.h"
#include "read.h"
#include "registry.h"
#include "request.h"
#include "status.h"
#include "admin.h"
#include "write.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_shm.h"
#include "apr_strings.h"

/* State directories of all nodes: never served, whatever maps to them.
 * Built in post_config, read-only in the children. */
static apr_array_header_t *cs_state_dirs;
/* The roots themselves, for the early key-length check. */
static apr_array_header_t *cs_roots;

static int cs_post_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    server_rec *vs;
    apr_hash_t *nodes = apr_hash_make(ptemp);
    apr_array_header_t *node_servers = apr_array_make(ptemp, 4,
                                                      sizeof(server_rec *));
    cs_counters_t *blocks = NULL;
    apr_shm_t *shm;
    apr_status_t rv;
    int i;

    (void)plog;
    cs_state_dirs = apr_array_make(p, 4, sizeof(const char *));
    cs_roots = apr_array_make(p, 4, sizeof(const char *));
    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        const char *other;

        if (!sc->used && !sc->node_name && !sc->store.root) {
            continue;
        }
        if (!cs_registry_have_dbd()) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(003)
                         "mod_dbd is required: add 'LoadModule dbd_module "
                         "modules/mod_dbd.so' (a2enmod dbd) and configure "
                         "DBDriver mysql and DBDParams");
            return !OK;
        }
        if (!cs_drive_available()) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(004)
                         "mod_watchdog is required: add 'LoadModule "
                         "watchdog_module modules/mod_watchdog.so'");
            return !OK;
        }
        if (cs_config_check_server(p, ptemp, vs) != OK) {
            return !OK;
        }
        other = apr_hash_get(nodes, sc->store.root, APR_HASH_KEY_STRING);
        if (other && strcmp(other, sc->node_name) != 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(005)
                         "nodes %s and %s share ClusterStorageRoot %s; "
                         "each node needs its own", other, sc->node_name,
                         sc->store.root);
            return !OK;
        }
        if (!other) {
            apr_hash_set(nodes, sc->store.root, APR_HASH_KEY_STRING,
                         sc->node_name);
            APR_ARRAY_PUSH(cs_state_dirs, const char *) = sc->store.state_dir;
            APR_ARRAY_PUSH(cs_roots, const char *) = sc->store.root;
            APR_ARRAY_PUSH(node_servers, server_rec *) = vs;
        }
    }
    /* The first of the two start-up passes only validates. */
    if (node_servers->nelts == 0
        || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    /* Counters: one block per node in anonymous shared memory, inherited
     * by every child. */
    rv = apr_shm_create(&shm, node_servers->nelts * sizeof(cs_counters_t),
                        NULL, p);
    if (rv == APR_SUCCESS) {
        blocks = apr_shm_baseaddr_get(shm);
        memset(blocks, 0, node_servers->nelts * sizeof(cs_counters_t));
        for (i = 0; i < node_servers->nelts; i++) {
            blocks[i].repair_backlog = -1;  /* no repair round yet */
            blocks[i].drain_keys = -1;      /* not draining */
            blocks[i].drain_bytes = -1;
            blocks[i].drain_rate_milli = -1;
        }
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(007)
                     "no shared memory for counters; status shows none");
    }
    /* Each node's queue bell: a pipe every child of this generation
     * inherits (queue.h). */
    for (i = 0; i < node_servers->nelts; i++) {
        server_rec *ns = APR_ARRAY_IDX(node_servers, i, server_rec *);
        cs_server_conf *nsc = cs_sconf(ns);
        if ((rv = cs_queue_bell_create(p, &nsc->store, &nsc->bell)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, ns, CSLOG(158)
                         "node %s: cannot create its queue's pipe",
                         nsc->node_name);
            return !OK;
        }
    }
    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        for (i = 0; sc->store.state_dir && i < node_servers->nelts; i++) {
            server_rec *ns = APR_ARRAY_IDX(node_servers, i, server_rec *);
            if (strcmp(cs_sconf(ns)->store.root, sc->store.root) == 0) {
                sc->bell = cs_sconf(ns)->bell;
                if (blocks) {
                    sc->counters = &blocks[i];
                    sc->peer.counters = sc->counters;
                }
            }
        }
    }
    /* Registry caches: created once per httpd and kept across graceful
     * restarts (cache.h point 4), one per node.  A restart into a module
     * with another slot layout makes new ones (CS_CACHE_LAYOUT). */
    {
        void *data = NULL;
        apr_hash_t *caches;
        apr_pool_t *pp = s->process->pool;
        apr_pool_userdata_get(&data, "clusterstorage-caches-" CS_CACHE_LAYOUT, pp);
        caches = data;
        if (!caches) {
            caches = apr_hash_make(pp);
            apr_pool_userdata_set(caches, "clusterstorage-caches-" CS_CACHE_LAYOUT,
                                  apr_pool_cleanup_null, pp);
        }
        for (vs = s; vs; vs = vs->next) {
            cs_server_conf *sc = cs_sconf(vs);
            cs_cache_t *c;
            if (!sc->store.state_dir || !sc->local_cache) {
                sc->cache = NULL;
                continue;
            }
            c = apr_hash_get(caches, sc->store.root, APR_HASH_KEY_STRING);
            if (!c) {
                rv = cs_cache_create(pp, 65536, &c);
                if (rv != APR_SUCCESS) {
                    ap_log_error(APLOG_MARK, APLOG_CRIT, rv, vs, CSLOG(008)
                                 "cannot create the registry cache");
                    return !OK;
                }
                apr_hash_set(caches, apr_pstrdup(pp, sc->store.root),
                             APR_HASH_KEY_STRING, c);
            }
            sc->cache = c;
        }
    }
    /* Background work (drive.c). */
    return cs_drive_start(p, s, node_servers);
}

/* mod_dav and its providers are all loaded by now, in whatever order. */
static int cs_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp)
{
    cs_dav_pre_config(pconf);
    return OK;
}

static void cs_child_init(apr_pool_t *p, server_rec *s)
{
    cs_registry_child_init(p, s);
    cs_peer_child_init(p);
    cs_drive_child_init(p, s);
}

/* Nothing under a node's .clusterstorage/ is ever served, whichever
 * Location or Alias maps there. */
static int cs_fixups(request_rec *r)
{
    int i;

    if (!cs_state_dirs || !r->filename) {
        return DECLINED;
    }
    for (i = 0; i < cs_state_dirs->nelts; i++) {
        const char *d = APR_ARRAY_IDX(cs_state_dirs, i, const char *);
        apr_size_t n = strlen(d);
        if (strncmp(r->filename, d, n) == 0
            && (r->filename[n] == '/' || r->filename[n] == '\0')) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(010)
                          "refusing to serve the module's working "
                          "directory %s", r->filename);
            return HTTP_NOT_FOUND;
        }
    }
    return DECLINED;
}

/* Overlong keys get 414 before the core's directory walk stumbles over
 * a name the file system cannot hold (it would answer 403). */
static int cs_map_to_storage(request_rec *r)
{
    int i;

    if (!cs_roots || !r->filename || strlen(r->uri) <= CS_KEY_MAX) {
        return DECLINED;
    }
    for (i = 0; i < cs_roots->nelts; i++) {
        const char *d = APR_ARRAY_IDX(cs_roots, i, const char *);
        apr_size_t n = strlen(d);
        if (strncmp(r->filename, d, n) == 0 && r->filename[n] == '/') {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(012)
                          "key of %" APR_SIZE_T_FMT " bytes is longer than "
                          "%d", strlen(r->uri), CS_KEY_MAX);
            return HTTP_REQUEST_URI_TOO_LARGE;
        }
    }
    return DECLINED;
}

static int cs_handler(request_rec *r)
{
    cs_dir_conf *dc = cs_dconf(r);
    cs_server_conf *sc;
    const char *key = r->uri, *path;
    apr_size_t klen;
    int write;

    if (!dc || dc->enabled != 1) {
        return DECLINED;
    }
    if (r->handler && (strcmp(r->handler, "clusterstorage-status") == 0
                       || strcmp(r->handler, "clusterstorage-admin") == 0)) {
        return DECLINED;
    }
    /* In a `DAV clusterstorage` space mod_dav answers (dav.c), except what
     * another node sends (replication, purges). */
    if (cs_dav_owns(r) && !apr_table_get(r->notes, CS_NOTE_PEER)) {
        /* mod_dav has no PATCH: partial updates are the provider's. */
        return r->method_number == M_PATCH ? cs_dav_patch(r) : DECLINED;
    }
    sc = cs_sconf(r->server);
    if (!sc->store.state_dir) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(011)
                      "ClusterStorage On in a server without "
                      "ClusterStorageNode/Root/Secret");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    write = dc->write == 1;
    klen = strlen(key);
    switch (cs_key_check(key, klen)) {
    case CS_KEY_OK:
        if (!cs_key_is_access_file(r, key)) {
            break;
        }
        /* fall through */
    case CS_KEY_CONFIG:
        /* Stored, it would be per-directory configuration (or credentials)
         * on every node that holds it.  A DELETE may still remove one
         * stored before this rule existed. */
        if (r->method_number == M_DELETE) {
            break;              /* ClusterStorageWrite is checked below */
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(018)
                      "refusing key %s: httpd reads such a file as "
                      "configuration (AccessFileName, .ht*)", key);
        return HTTP_FORBIDDEN;
    case CS_KEY_TOO_LONG:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(017)
                      "key of %" APR_SIZE_T_FMT " bytes is longer than %d",
                      klen, CS_KEY_MAX);
        return HTTP_REQUEST_URI_TOO_LARGE;
    case CS_KEY_RESERVED:
        return HTTP_NOT_FOUND;
    case CS_KEY_DIRECTORY:
        if (r->method_number == M_GET) {
            return HTTP_NOT_FOUND;
        }
        /* a directory is not a storable key */
        /* fall through */
    case CS_KEY_BAD:
    default:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(013)
                      "refusing malformed key %s", key);
        return HTTP_BAD_REQUEST;
    }
    /* The file K maps to (DocumentRoot/Alias), including any part of the
     * path below the first directory that does not exist yet. */
    if (!(path = cs_key_path(r, sc, key))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    r->allowed = (AP_METHOD_BIT << M_GET)
                 | (write ? (AP_METHOD_BIT << M_PUT)
                            | (AP_METHOD_BIT << M_DELETE) : 0);
    /* A file below a directory that does not exist yet: let mod_mime see
     * the real name once the path is complete. */
    if (r->path_info && *r->path_info && r->method_number == M_GET) {
        r->filename = (char *)path;
        r->path_info = NULL;
        ap_run_type_checker(r);
    }
    if (apr_table_get(r->notes, CS_NOTE_PEER)) {
        return cs_handle_peer(r, sc, key, path);
    }
    switch (r->method_number) {
    case M_GET:
        return cs_handle_get(r, sc, key, path);
    case M_PUT:
        if (write) {
            return cs_handle_put(r, sc, key, path);
        }
        break;
    case M_DELETE:
        if (write) {
            return cs_handle_delete(r, sc, key, path);
        }
        break;
    default:
        break;
    }
    /* What the 405 lists in Allow. */
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", NULL);
    if (write) {
        ap_allow_methods(r, MERGE_ALLOW, "PUT", "DELETE", NULL);
    }
    return HTTP_METHOD_NOT_ALLOWED;
}

static void cs_register_hooks(apr_pool_t *p)
{
    /* mod_watchdog starts its threads in its own post_config (APR_HOOK_LAST):
     * the callbacks must be registered before. */
    static const char *const watchdog_after[] = { "mod_watchdog.c", NULL };

    (void)p;
    /* The WebDAV provider, before `DAV clusterstorage` is read. */
    ap_hook_pre_config(cs_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Checks every node, then shared memory and the background threads;
     * mod_dbd's optional functions exist from its register_hooks on. */
    ap_hook_post_config(cs_post_config, NULL, watchdog_after,
                        APR_HOOK_MIDDLE);
    /* Per child: memcached clients, the peer connection pool. */
    ap_hook_child_init(cs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before the core's directory walk: overlong keys. */
    ap_hook_map_to_storage(cs_map_to_storage, NULL, NULL,
                           APR_HOOK_REALLY_FIRST);
    /* Before anything serves a file from a .clusterstorage/ directory. */
    ap_hook_fixups(cs_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Node-to-node requests prove themselves with a MAC instead of the
     * client Require rules. */
    ap_hook_check_access_ex(cs_check_peer, NULL, NULL, APR_HOOK_FIRST,
                            AP_AUTH_INTERNAL_PER_CONF);
    /* Ahead of the default handler and whatever SetHandler says, for the
     * URL spaces with ClusterStorage On. */
    ap_hook_handler(cs_handler, NULL, NULL, APR_HOOK_FIRST);
    /* SetHandler clusterstorage-status. */
    ap_hook_handler(cs_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* SetHandler clusterstorage-admin. */
    ap_hook_handler(cs_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(clusterstorage) = {
    STANDARD20_MODULE_STUFF,
    cs_create_dir_conf,
    cs_merge_dir_conf,
    cs_create_server_conf,
    cs_merge_server_conf,
    cs_cmds,
    cs_register_hooks,
    AP_MODULE_FLAG_NONE
};
