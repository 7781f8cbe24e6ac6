/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mod_clusterstorage.c - configuration, hooks and request handlers.
 *
 * A URL space with "ClusterStorage On" is cluster storage.  For every
 * request in it the handler:
 *   GET/HEAD  asks the registry for the key's current version and serves
 *             this node's copy when it is that version (core primitives:
 *             file buckets/sendfile, byterange filter, ap_meets_conditions),
 *             404 when the key is absent or deleted;
 *   PUT       streams the body to a temp file, commits a new version in the
 *             registry (with the replication job durably queued), renames
 *             the file into place and answers 201/204;
 *   DELETE    commits a tombstone and drops the local copy; 204/404;
 *   others    405 with Allow.
 * The file is opened and its version checked on one descriptor, and that
 * descriptor is what gets served, so a concurrent PUT (rename) or DELETE
 * can never mix versions in one response.
 */
#define CS_MODULE_MAIN
#include "cs_private.h"
#include "registry.h"
#include "cache.h"
#include "store.h"
#include "queue.h"
#include "peer.h"
#include "status.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_watchdog.h"
#include "apr_lib.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_uri.h"

#include <limits.h>
#include <stdlib.h>

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *cs_wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *cs_wd_register;

/* State directories of all nodes: never served, whatever maps to them.
 * Built in post_config, read-only in the children. */
static apr_array_header_t *cs_state_dirs;
/* The roots themselves, for the early key-length check. */
static apr_array_header_t *cs_roots;

/* ------------------------------------------------------------------ */
/* Configuration                                                      */
/* ------------------------------------------------------------------ */

static void *cs_create_server_conf(apr_pool_t *p, server_rec *s)
{
    cs_server_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->replicas = CS_UNSET;
    c->peer_timeout = CS_UNSET;
    c->cache_ttl = CS_UNSET;
    c->heartbeat = CS_UNSET;
    c->local_cache = CS_UNSET;
    return c;
}

#define CS_MERGE_PTR(f)   c->f = add->f ? add->f : base->f
#define CS_MERGE_VAL(f)   c->f = add->f != CS_UNSET ? add->f : base->f

static void *cs_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    cs_server_conf *base = basev, *add = addv;
    cs_server_conf *c = apr_pcalloc(p, sizeof(*c));

    CS_MERGE_PTR(node_name);
    CS_MERGE_PTR(node_url);
    CS_MERGE_PTR(root);
    CS_MERGE_PTR(secret);
    CS_MERGE_PTR(memcache);
    CS_MERGE_VAL(replicas);
    CS_MERGE_VAL(peer_timeout);
    CS_MERGE_VAL(cache_ttl);
    CS_MERGE_VAL(heartbeat);
    CS_MERGE_VAL(local_cache);
    c->used = add->used;
    return c;
}

static void *cs_create_dir_conf(apr_pool_t *p, char *dir)
{
    cs_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)dir;
    c->enabled = CS_UNSET;
    c->write = CS_UNSET;
    return c;
}

static void *cs_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    cs_dir_conf *base = basev, *add = addv;
    cs_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    CS_MERGE_VAL(enabled);
    CS_MERGE_VAL(write);
    return c;
}

static const char *cs_set_node(cmd_parms *cmd, void *dummy, const char *name,
                               const char *url)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    apr_uri_t uri;
    apr_size_t i, n = strlen(name);

    (void)dummy;
    if (n < 1 || n > 64) {
        return "ClusterStorageNode: NAME must be 1 to 64 characters";
    }
    for (i = 0; i < n; i++) {
        if (!apr_isalnum(name[i]) && !strchr("._-", name[i])) {
            return "ClusterStorageNode: NAME may only contain A-Z a-z 0-9 "
                   ". _ -";
        }
    }
    if (apr_uri_parse(cmd->temp_pool, url, &uri) != APR_SUCCESS
        || !uri.scheme || strcasecmp(uri.scheme, "http") != 0
        || !uri.hostname || !*uri.hostname
        || (uri.path && strcmp(uri.path, "/") != 0) || uri.query
        || uri.fragment || uri.user) {
        return apr_psprintf(cmd->pool, "ClusterStorageNode: URL '%s' must "
                            "look like http://host:port (no path)", url);
    }
    sc->node_name = name;
    sc->node_url = apr_psprintf(cmd->pool, "http://%s:%u",
                                strchr(uri.hostname, ':')
                                ? apr_pstrcat(cmd->temp_pool, "[",
                                              uri.hostname, "]", NULL)
                                : uri.hostname,
                                uri.port ? uri.port : 80);
    return NULL;
}

static const char *cs_set_root(cmd_parms *cmd, void *dummy, const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    const char *root = ap_server_root_relative(cmd->pool, arg);

    (void)dummy;
    if (!root) {
        return apr_pstrcat(cmd->pool, "ClusterStorageRoot: invalid path ",
                           arg, NULL);
    }
    sc->root = root;
    return NULL;
}

static const char *cs_set_secret(cmd_parms *cmd, void *dummy,
                                 const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);

    (void)dummy;
    if (strlen(arg) < CS_SECRET_MIN) {
        return "ClusterStorageSecret must be at least 16 bytes long";
    }
    sc->secret = arg;
    return NULL;
}

static const char *cs_add_memcache(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    char *host = NULL, *scope = NULL;
    apr_port_t port = 0;

    (void)dummy;
    if (apr_parse_addr_port(&host, &scope, &port, arg, cmd->temp_pool)
        != APR_SUCCESS || !host || scope || !port) {
        return apr_psprintf(cmd->pool, "ClusterStorageMemcache: '%s' is not "
                            "HOST:PORT", arg);
    }
    if (!sc->memcache) {
        sc->memcache = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->memcache, const char *) = arg;
    return NULL;
}

static const char *cs_set_replicas(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    char *end;
    long n = strtol(arg, &end, 10);

    (void)dummy;
    if (*end || end == arg || n < 1 || n > 64) {
        return "ClusterStorageReplicas must be a number from 1 to 64";
    }
    sc->replicas = (int)n;
    return NULL;
}

/* Durations: seconds by default, "ms" etc. accepted. */
static const char *cs_duration(cmd_parms *cmd, const char *arg,
                               apr_interval_time_t min,
                               apr_interval_time_t max,
                               apr_interval_time_t *out)
{
    apr_interval_time_t t = 0;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS
        || t < min || t > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be a duration "
                            "between %" APR_TIME_T_FMT " ms and %"
                            APR_TIME_T_FMT " s", cmd->cmd->name, arg,
                            apr_time_as_msec(min), apr_time_sec(max));
    }
    *out = t;
    return NULL;
}

static const char *cs_set_timeout(cmd_parms *cmd, void *dummy,
                                  const char *arg)
{
    (void)dummy;
    return cs_duration(cmd, arg, apr_time_from_msec(100),
                       apr_time_from_sec(3600),
                       &cs_sconf(cmd->server)->peer_timeout);
}

static const char *cs_set_heartbeat(cmd_parms *cmd, void *dummy,
                                    const char *arg)
{
    (void)dummy;
    return cs_duration(cmd, arg, apr_time_from_sec(1),
                       apr_time_from_sec(3600),
                       &cs_sconf(cmd->server)->heartbeat);
}

static const char *cs_set_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_interval_time_t t = 0;
    const char *err;

    (void)dummy;
    /* memcached reads more than 30 days as an absolute time. */
    err = cs_duration(cmd, arg, apr_time_from_sec(1),
                      apr_time_from_sec(30 * 86400), &t);
    if (!err) {
        cs_sconf(cmd->server)->cache_ttl = (int)apr_time_sec(t);
    }
    return err;
}

static const char *cs_set_local_cache(cmd_parms *cmd, void *dummy, int on)
{
    (void)dummy;
    cs_sconf(cmd->server)->local_cache = on;
    return NULL;
}

static const char *cs_set_enabled(cmd_parms *cmd, void *dcv, int on)
{
    cs_dir_conf *dc = dcv;

    dc->enabled = on;
    /* Remember that this server uses cluster storage (only while reading
     * the main configuration; .htaccess is read at request time). */
    if (on && cmd->pool == cmd->server->process->pconf) {
        cs_sconf(cmd->server)->used = 1;
    }
    return NULL;
}

static const char *cs_set_write(cmd_parms *cmd, void *dcv, int on)
{
    (void)cmd;
    ((cs_dir_conf *)dcv)->write = on;
    return NULL;
}

static const command_rec cs_cmds[] = {
    AP_INIT_TAKE2("ClusterStorageNode", cs_set_node, NULL, RSRC_CONF,
                  "this node's name and the base URL peers reach it at"),
    AP_INIT_TAKE1("ClusterStorageRoot", cs_set_root, NULL, RSRC_CONF,
                  "directory that holds this node's copies"),
    AP_INIT_TAKE1("ClusterStorageSecret", cs_set_secret, NULL, RSRC_CONF,
                  "shared secret (16+ bytes) authenticating node requests"),
    AP_INIT_ITERATE("ClusterStorageMemcache", cs_add_memcache, NULL,
                    RSRC_CONF, "memcached servers (HOST:PORT ...)"),
    AP_INIT_TAKE1("ClusterStorageReplicas", cs_set_replicas, NULL, RSRC_CONF,
                  "how many nodes hold each current version (default 2)"),
    AP_INIT_TAKE1("ClusterStoragePeerTimeout", cs_set_timeout, NULL,
                  RSRC_CONF, "connect/read timeout towards a peer"),
    AP_INIT_TAKE1("ClusterStorageCacheTTL", cs_set_ttl, NULL, RSRC_CONF,
                  "lifetime of a registry entry in memcached"),
    AP_INIT_TAKE1("ClusterStorageHeartbeat", cs_set_heartbeat, NULL,
                  RSRC_CONF, "how often this node records its heartbeat"),
    AP_INIT_FLAG("ClusterStorageLocalCache", cs_set_local_cache, NULL,
                 RSRC_CONF, "decide GETs from a node-local registry cache "
                 "kept coherent by writers and leases (default Off)"),
    AP_INIT_FLAG("ClusterStorage", cs_set_enabled, NULL,
                 RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                 "this URL space is cluster storage"),
    AP_INIT_FLAG("ClusterStorageWrite", cs_set_write, NULL,
                 RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                 "clients may PUT and DELETE here"),
    { NULL }
};

/* ------------------------------------------------------------------ */
/* Start-up                                                           */
/* ------------------------------------------------------------------ */

#define CS_WD_HEARTBEAT "_clusterstorage_heartbeat_"
#define CS_WD_QUEUE     "_clusterstorage_queue_"

/* Crash recovery (store.h): install a PUT's sealed temp file if the
 * registry says its version was committed as held by this node. */
typedef struct {
    server_rec *s;
    apr_pool_t *p;
    ap_dbd_t *dbd;
} cs_recover_ctx;

static int cs_recover_decide(void *baton, const char *key,
                             apr_uint64_t version, const char **relpath)
{
    cs_recover_ctx *ctx = baton;

    if (!ctx->dbd && !(ctx->dbd = cs_registry_open(ctx->s, ctx->p))) {
        return -1;
    }
    if (cs_registry_held_relpath(ctx->s, ctx->p, ctx->dbd, key, version,
                                 relpath) != APR_SUCCESS) {
        return -1;
    }
    return *relpath ? 1 : 0;
}

static void cs_recover(server_rec *s, apr_pool_t *pool)
{
    cs_server_conf *sc = cs_sconf(s);
    cs_recover_ctx ctx;
    int n = 0;

    ctx.s = s;
    ctx.p = pool;
    ctx.dbd = NULL;
    cs_store_recover(pool, sc, cs_recover_decide, &ctx, &n);
    cs_registry_close(s, ctx.dbd);
    if (n) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, CSLOG(204)
                     "node %s: installed %d committed PUT(s) that a crash "
                     "had left in %s/tmp", sc->node_name, n, sc->state_dir);
    }
}

/* Heartbeat thread: schema at start, then this node's heartbeat.  Kept
 * apart from the queue thread so that a long transfer never delays it. */
static apr_status_t cs_wd_heartbeat(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    cs_server_conf *sc = cs_sconf(s);
    apr_status_t rv;
    apr_time_t t0;
    int i;

    switch (state) {
    case AP_WATCHDOG_STATE_STARTING:
        /* mod_watchdog (built into httpd) starts this thread from its
         * child_init, which may run before mod_dbd's has set up the
         * connection pool: give it a moment rather than warn. */
        for (i = 0; (rv = cs_registry_ensure_schema(s, pool))
                    == APR_ECONNREFUSED && i < 50; i++) {
            apr_sleep(apr_time_from_msec(20));
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(201)
                         "node %s: registry not reachable at start-up; "
                         "retrying in the background", sc->node_name);
        }
        /* record the first heartbeat right away */
        /* fall through */
    case AP_WATCHDOG_STATE_RUNNING:
        t0 = apr_time_now();
        rv = cs_registry_heartbeat(s, pool);
        if (rv == APR_SUCCESS) {
            /* cache.h point 1: the lease counts from before the heartbeat
             * and the invalidations applied with it. */
            cs_cache_set_lease(sc->cache, t0 + 2 * sc->heartbeat);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(202)
                         "node %s: cannot record heartbeat", sc->node_name);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, s, CSLOG(203)
                         "node %s: heartbeat recorded", sc->node_name);
            cs_recover(s, pool);
        }
        break;
    case AP_WATCHDOG_STATE_STOPPING:
        /* Best effort: while the child exits, mod_dbd may already be gone;
         * then the registry keeps the lease until it ages out. */
        if (sc->cache) {
            cs_cache_set_lease(sc->cache, 0);
            cs_registry_drop_lease(s, pool);
        }
        break;
    default:
        break;
    }
    return APR_SUCCESS;
}

/* Queue thread, every 100 ms: replication and delete jobs. */
static apr_status_t cs_wd_queue(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING) {
        cs_queue_drain(data, pool);
    }
    return APR_SUCCESS;
}

/* Queue thread, every heartbeat period: one step of the repair sweep. */
static apr_status_t cs_wd_repair(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING) {
        cs_repair_step(data, pool);
    }
    return APR_SUCCESS;
}

static int cs_check_server(apr_pool_t *p, apr_pool_t *ptemp, server_rec *s)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *why = NULL;
    char *real;
    apr_status_t rv;

    if (!sc->node_name) {
        why = "ClusterStorageNode NAME URL is missing";
    }
    else if (!sc->root) {
        why = "ClusterStorageRoot DIR is missing";
    }
    else if (!sc->secret) {
        why = "ClusterStorageSecret (at least 16 bytes, the same on every "
              "node) is missing; the server refuses to start without it";
    }
    if (why) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, CSLOG(001)
                     "%s:%d uses cluster storage but %s",
                     s->defn_name ? s->defn_name : "(main server)",
                     s->defn_line_number, why);
        return !OK;
    }
    if (sc->replicas == CS_UNSET) {
        sc->replicas = CS_DEFAULT_REPLICAS;
    }
    if (sc->peer_timeout == CS_UNSET) {
        sc->peer_timeout = CS_DEFAULT_TIMEOUT;
    }
    if (sc->cache_ttl == CS_UNSET) {
        sc->cache_ttl = CS_DEFAULT_TTL;
    }
    if (sc->heartbeat == CS_UNSET) {
        sc->heartbeat = CS_DEFAULT_HEARTBEAT;
    }
    if (sc->local_cache == CS_UNSET) {
        sc->local_cache = 0;
    }
    rv = cs_store_init_root(ptemp, sc->root, &why);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, CSLOG(002)
                     "ClusterStorageRoot %s %s", sc->root, why);
        return !OK;
    }
    real = realpath(sc->root, NULL);
    if (!real) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_FROM_OS_ERROR(errno), s,
                     CSLOG(002) "ClusterStorageRoot %s cannot be resolved",
                     sc->root);
        return !OK;
    }
    sc->root = apr_pstrdup(p, real);
    free(real);
    sc->root_len = strlen(sc->root);
    sc->state_dir = apr_pstrcat(p, sc->root, "/" CS_STATE_DIRNAME, NULL);
    return OK;
}

static int cs_post_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    server_rec *vs;
    apr_hash_t *nodes = apr_hash_make(ptemp);
    apr_array_header_t *node_servers = apr_array_make(ptemp, 4,
                                                      sizeof(server_rec *));
    ap_watchdog_t *wd_hb = NULL, *wd_q = NULL;
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

        if (!sc->used && !sc->node_name && !sc->root) {
            continue;
        }
        if (!cs_registry_have_dbd()) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(003)
                         "mod_dbd is required: add 'LoadModule dbd_module "
                         "modules/mod_dbd.so' (a2enmod dbd) and configure "
                         "DBDriver mysql and DBDParams");
            return !OK;
        }
        cs_wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
        cs_wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
        if (!cs_wd_get_instance || !cs_wd_register) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(004)
                         "mod_watchdog is required: add 'LoadModule "
                         "watchdog_module modules/mod_watchdog.so'");
            return !OK;
        }
        if (cs_check_server(p, ptemp, vs) != OK) {
            return !OK;
        }
        other = apr_hash_get(nodes, sc->root, APR_HASH_KEY_STRING);
        if (other && strcmp(other, sc->node_name) != 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs, CSLOG(005)
                         "nodes %s and %s share ClusterStorageRoot %s; "
                         "each node needs its own", other, sc->node_name,
                         sc->root);
            return !OK;
        }
        if (!other) {
            apr_hash_set(nodes, sc->root, APR_HASH_KEY_STRING,
                         sc->node_name);
            APR_ARRAY_PUSH(cs_state_dirs, const char *) = sc->state_dir;
            APR_ARRAY_PUSH(cs_roots, const char *) = sc->root;
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
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(007)
                     "no shared memory for counters; status shows none");
    }
    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        for (i = 0; blocks && sc->state_dir && i < node_servers->nelts; i++) {
            server_rec *ns = APR_ARRAY_IDX(node_servers, i, server_rec *);
            if (strcmp(cs_sconf(ns)->root, sc->root) == 0) {
                sc->counters = &blocks[i];
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
            if (!sc->state_dir || !sc->local_cache) {
                sc->cache = NULL;
                continue;
            }
            c = apr_hash_get(caches, sc->root, APR_HASH_KEY_STRING);
            if (!c) {
                rv = cs_cache_create(pp, 65536, &c);
                if (rv != APR_SUCCESS) {
                    ap_log_error(APLOG_MARK, APLOG_CRIT, rv, vs, CSLOG(008)
                                 "cannot create the registry cache");
                    return !OK;
                }
                apr_hash_set(caches, apr_pstrdup(pp, sc->root),
                             APR_HASH_KEY_STRING, c);
            }
            sc->cache = c;
        }
    }
    /* Background work: two singleton watchdog threads per httpd. */
    if (cs_wd_get_instance(&wd_hb, CS_WD_HEARTBEAT, 0, 1, p) != APR_SUCCESS
        || cs_wd_get_instance(&wd_q, CS_WD_QUEUE, 0, 1, p) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, CSLOG(006)
                     "cannot create the watchdog threads");
        return !OK;
    }
    for (i = 0; i < node_servers->nelts; i++) {
        server_rec *ns = APR_ARRAY_IDX(node_servers, i, server_rec *);
        cs_server_conf *sc = cs_sconf(ns);
        if (cs_wd_register(wd_hb, sc->heartbeat, ns, cs_wd_heartbeat)
            || cs_wd_register(wd_q, AP_WD_TM_SLICE, ns, cs_wd_queue)
            || cs_wd_register(wd_q, sc->heartbeat, ns, cs_wd_repair)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ns, CSLOG(006)
                         "cannot register the background callbacks");
            return !OK;
        }
    }
    return OK;
}

static void cs_child_init(apr_pool_t *p, server_rec *s)
{
    cs_registry_child_init(p, s);
    cs_peer_child_init(p);
}

/* ------------------------------------------------------------------ */
/* Requests                                                           */
/* ------------------------------------------------------------------ */

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

static int cs_unavailable(request_rec *r)
{
    CS_COUNT(cs_sconf(r->server), unavailable, 1);
    apr_table_setn(r->err_headers_out, "Retry-After", CS_RETRY_AFTER);
    return HTTP_SERVICE_UNAVAILABLE;
}

static void cs_version_headers(request_rec *r, const cs_entry_t *e)
{
    char etag[64];

    cs_entry_etag(e, etag, sizeof(etag));
    /* The ETag is "VERSION-HEX16" in quotes: the version is its prefix. */
    apr_table_setn(r->headers_out, "ETag", apr_pstrdup(r->pool, etag));
    apr_table_setn(r->headers_out, "X-ClusterStorage-Version",
                   apr_pstrmemdup(r->pool, etag + 1, strcspn(etag + 1, "-")));
}

/* Serve an opened, verified local copy with the core's machinery. */
static int cs_serve(request_rec *r, apr_file_t *f, const apr_finfo_t *fi,
                    const cs_entry_t *e, int unverified)
{
    apr_bucket_brigade *bb;
    apr_status_t rv;
    int status;

    r->finfo = *fi;
    ap_update_mtime(r, e->mtime ? (apr_time_t)e->mtime : fi->mtime);
    ap_set_last_modified(r);
    cs_version_headers(r, e);
    if (unverified) {
        apr_table_setn(r->headers_out, "X-ClusterStorage-Unverified", "1");
    }
    ap_set_accept_ranges(r);
    ap_set_content_length(r, fi->size);
    if ((status = ap_meets_conditions(r)) != OK) {
        r->status = status;
        return status;
    }
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

/* Drop this node's copy of a key that the registry says is gone or newer,
 * unless a writer replaced it meanwhile. */
static void cs_drop_stale(request_rec *r, cs_server_conf *sc, const char *key,
                          const char *path, apr_uint64_t below)
{
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];

    if (cs_store_lock_key(r->pool, sc, key, &lock) != APR_SUCCESS) {
        return;
    }
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v > 0 && v < below) {
        cs_store_remove(r->pool, path);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(021)
                      "dropped stale copy of %s (version %" APR_UINT64_T_FMT
                      ")", key, v);
    }
    cs_store_unlock_key(lock);
}

/* Fetch version e of key from a holder into this node's store: one
 * transfer per key and node (the key lock), live holders first, every
 * transfer verified (peer.c) before it is renamed into place. */
static int cs_fetch(request_rec *r, cs_server_conf *sc, const char *key,
                    const char *path, const cs_entry_t *e,
                    apr_array_header_t *holders)
{
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int pass, i, status, tried = 0;
    apr_time_t t0 = apr_time_now();

    rv = cs_store_lock_key(r->pool, sc, key, &lock);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(036)
                      "GET %s: cannot take the key lock", key);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (apr_time_now() - t0 > apr_time_from_msec(100)) {
        holders = NULL;     /* read before a long wait: ask again */
    }
    /* Another request may have fetched it while this one waited. */
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v == e->version) {
        cs_store_unlock_key(lock);
        return OK;
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
    rv = cs_store_make_parents(r->pool, sc, path, &status);
    if (rv != APR_SUCCESS) {
        cs_store_unlock_key(lock);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(034)
                      "GET %s: cannot prepare the directory for %s", key,
                      path);
        return status;
    }
    /* Live holders first; holders that look down last (they may just be
     * late with their heartbeat). */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < holders->nelts; i++) {
            cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
            apr_pool_t *sub;
            cs_tmp_t *tmp;
            const char *why = "cannot create a temp file";
            cs_fetch_cause_t cause = CS_FETCH_LOCAL;

            if (strcmp(h->name, sc->node_name) == 0
                || (pass == 0) != (h->alive != 0)) {
                continue;
            }
            tried++;
            apr_pool_create(&sub, r->pool);
            rv = cs_store_tmp_create(sub, sc, "fetch", &tmp);
            if (rv == APR_SUCCESS) {
                rv = cs_peer_fetch(sub, sc, h->url, key, e, tmp, &why,
                                   &cause);
            }
            if (rv == APR_SUCCESS) {
                why = "cannot store the verified copy";
                cause = CS_FETCH_LOCAL;
                rv = cs_store_tmp_seal(tmp, key, e);
                if (rv == APR_SUCCESS) {
                    rv = cs_store_install(tmp, path);
                }
            }
            if (rv == APR_SUCCESS) {
                apr_pool_destroy(sub);
                CS_COUNT(sc, peer_fetches, 1);
                CS_COUNT(sc, fetch_bytes, e->size);
                if (cs_registry_add_replica(r->server, r->pool, dbd, key,
                                            e->version, NULL)
                    != APR_SUCCESS) {
                    CS_COUNT(sc, registry_errors, 1);
                }
                cs_store_unlock_key(lock);
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(050)
                              "fetched %s v%" APR_UINT64_T_FMT " (%"
                              APR_UINT64_T_FMT " bytes) from %s", key,
                              e->version, e->size, h->name);
                return OK;
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
    return cs_unavailable(r);
}

static int cs_handle_get(request_rec *r, cs_server_conf *sc, const char *key,
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
    int status, by_identity = 0;

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
            cs_drop_stale(r, sc, key, path, e.version ? e.version : v + 1);
        }
        CS_COUNT(sc, not_found, 1);
        return HTTP_NOT_FOUND;
    }
    if (lrv == APR_SUCCESS && v == e.version) {
        if (strcmp(local.sha256, e.sha256) != 0
            || (apr_uint64_t)fi.size != e.size) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(024)
                          "local copy of %s (version %" APR_UINT64_T_FMT
                          ") does not match the registry; not serving it",
                          key, v);
            return cs_unavailable(r);
        }
        CS_COUNT(sc, hits, 1);
        /* Remember the verified file, unless it changed so recently that
         * a change within the same clock tick could share its ctime (git's
         * "racy clean" rule). */
        if (!by_identity
            && apr_time_now() - fi.ctime >= apr_time_from_sec(2)) {
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
    /* This node lacks the current version: fetch it from a holder. */
    if ((status = cs_fetch(r, sc, key, path, &e, holders)) != OK) {
        return status;
    }
    lrv = cs_store_open(r->pool, path, key, flags, &f, &fi, &v, local.sha256);
    if (lrv != APR_SUCCESS || v != e.version) {
        return cs_unavailable(r);
    }
    return cs_serve(r, f, &fi, &e, 0);
}

/* Conditional write headers against the committed current entry. */
typedef struct {
    const char *key;
    const char *path;
    const char *relpath;    /* path below ClusterStorageRoot */
    cs_server_conf *sc;
    cs_tmp_t *tmp;
    const char *job;
} cs_write_ctx;

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

static apr_status_t cs_queue_job(request_rec *r, cs_write_ctx *w, char op,
                                 apr_uint64_t version)
{
    cs_job_t job;

    job.op = op;
    job.version = version;
    job.key = w->key;
    job.relpath = w->relpath;
    return cs_queue_add(r->pool, w->sc, &job, &w->job);
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
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(031)
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

/* cache.h point 2: before a write is answered, every node whose cache
 * lease may still run forgets the key, or its lease runs out. */
static void cs_invalidate_cluster(request_rec *r, cs_server_conf *sc,
                                  const char *key, apr_uint64_t version)
{
    apr_array_header_t *nodes, *pending;
    ap_dbd_t *dbd;
    apr_time_t deadline;
    int i;

    cs_cache_invalidate(sc->cache, key);
    if (!(dbd = cs_registry_acquire(r))
        || cs_registry_nodes(r->server, r->pool, dbd, &nodes)
           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(070)
                      "%s: cannot list the nodes to invalidate their "
                      "caches", key);
        return;
    }
    pending = apr_array_make(r->pool, 2, sizeof(cs_node_t *));
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        apr_pool_t *sub;
        int status = 0;

        if (strcmp(n->name, sc->node_name) == 0 || n->lease <= 0
            || n->age > n->lease + CS_LEASE_MARGIN) {
            continue;           /* itself, no cache, or its lease lapsed */
        }
        apr_pool_create(&sub, r->pool);
        if (cs_peer_purge(sub, sc, n->url, key, version, &status)
            != APR_SUCCESS || status < 200 || status >= 300) {
            APR_ARRAY_PUSH(pending, cs_node_t *) = n;
        }
        apr_pool_destroy(sub);
    }
    if (pending->nelts == 0) {
        return;
    }
    for (i = 0; i < pending->nelts; i++) {
        cs_node_t *n = APR_ARRAY_IDX(pending, i, cs_node_t *);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(071)
                      "%s: node %s could not be told to drop it from its "
                      "cache; waiting until it has or its lease ends", key,
                      n->name);
        cs_registry_inv_add(r->server, r->pool, dbd, n->name, key, version);
    }
    /* Wait: each pending node either applies the queued invalidation when
     * it renews its lease, or its lease lapses.  Bounded in any case. */
    deadline = apr_time_now() + apr_time_from_sec(60);
    while (pending->nelts > 0 && apr_time_now() < deadline) {
        apr_array_header_t *still = apr_array_make(r->pool, pending->nelts,
                                                   sizeof(cs_node_t *));
        if (cs_registry_nodes(r->server, r->pool, dbd, &nodes)
            != APR_SUCCESS) {
            break;
        }
        for (i = 0; i < pending->nelts; i++) {
            cs_node_t *p = APR_ARRAY_IDX(pending, i, cs_node_t *);
            int j, waiting = 0, queued = 1;
            for (j = 0; j < nodes->nelts; j++) {
                cs_node_t *n = &APR_ARRAY_IDX(nodes, j, cs_node_t);
                if (strcmp(n->name, p->name) == 0) {
                    waiting = n->lease > 0
                              && n->age <= n->lease + CS_LEASE_MARGIN;
                }
            }
            if (waiting
                && cs_registry_inv_pending(r->server, r->pool, dbd, p->name,
                                           key, &queued) == APR_SUCCESS
                && !queued) {
                waiting = 0;
            }
            if (waiting) {
                APR_ARRAY_PUSH(still, cs_node_t *) = p;
            }
        }
        pending = still;
        if (pending->nelts) {
            apr_sleep(apr_time_from_msec(100));
        }
    }
    if (pending->nelts) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(072)
                      "%s: gave up waiting for %d node(s) to drop it from "
                      "their caches", key, pending->nelts);
    }
}

/* Stream the request body into w->tmp.  OK or the HTTP status to answer. */
static int cs_read_body(request_rec *r, cs_write_ctx *w)
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
                          "(status %d); nothing stored", w->key,
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
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, CSLOG(032)
                              "PUT %s: reading the body failed; nothing "
                              "stored", w->key);
                return HTTP_BAD_REQUEST;
            }
            rv = cs_store_tmp_write(w->tmp, data, len);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(033)
                              "PUT %s: cannot write the temp file; nothing "
                              "stored", w->key);
                return APR_STATUS_IS_ENOSPC(rv) ? HTTP_INSUFFICIENT_STORAGE
                                                : HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    return OK;
}

static int cs_handle_put(request_rec *r, cs_server_conf *sc, const char *key,
                         const char *path)
{
    cs_write_ctx w;
    cs_write_ops_t ops;
    cs_entry_t e;
    apr_file_t *lock = NULL;
    apr_uint64_t size;
    char sha[CS_SHA256_HEX_LEN + 1];
    apr_status_t rv;
    int status, created = 0;

    memset(&w, 0, sizeof(w));
    w.key = key;
    w.path = path;
    w.relpath = path + sc->root_len;
    w.sc = sc;
    /* No registry, no write: answer before the body is transferred. */
    if (!cs_registry_acquire(r)) {
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
    }
    /* Fail fast on a precondition before the body is transferred; the
     * transaction decides again under the row lock. */
    if (apr_table_get(r->headers_in, "If-Match")
        || apr_table_get(r->headers_in, "If-None-Match")) {
        if (cs_registry_get_db(r, key, &e) != APR_SUCCESS) {
            return cs_unavailable(r);
        }
        if ((status = cs_precondition(r, &e, &w)) != OK) {
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
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(027)
                          "%s maps onto %s, the copy of another key; each "
                          "key needs its own file (check Alias)", key, path);
            return HTTP_CONFLICT;
        }
    }
    rv = cs_store_make_parents(r->pool, sc, path, &status);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(034)
                      "PUT %s: cannot prepare the directory for %s", key,
                      path);
        return status;
    }
    rv = cs_store_tmp_create(r->pool, sc, "put", &w.tmp);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(035)
                      "PUT %s: cannot create a temp file in %s/tmp", key,
                      sc->state_dir);
        return APR_STATUS_IS_ENOSPC(rv) ? HTTP_INSUFFICIENT_STORAGE
                                        : HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((status = cs_read_body(r, &w)) != OK) {
        return status;      /* the pool cleanup removes the temp file */
    }
    cs_store_tmp_digest(w.tmp, &size, sha);

    ops.precondition = cs_precondition;
    ops.prepare = cs_put_prepare;
    ops.abort = cs_write_abort;
    ops.baton = &w;
    rv = cs_store_lock_key(r->pool, sc, key, &lock);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(036)
                      "PUT %s: cannot take the key lock", key);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    status = cs_registry_put(r, key, w.relpath, size, sha, &ops, &e,
                             &created);
    if (status == OK) {
        rv = cs_store_install(w.tmp, path);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_CRIT, rv, r, CSLOG(037)
                          "PUT %s: version %" APR_UINT64_T_FMT " committed "
                          "but cannot be renamed into %s", key, e.version,
                          path);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    cs_store_unlock_key(lock);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        return cs_unavailable(r);
    }
    if (status != OK) {
        return status;
    }
    cs_invalidate_cluster(r, sc, key, e.version);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(038)
                  "stored %s version %" APR_UINT64_T_FMT " (%"
                  APR_UINT64_T_FMT " bytes)", key, e.version, e.size);
    CS_COUNT(sc, puts, 1);
    cs_version_headers(r, &e);
    if (created) {
        apr_table_setn(r->headers_out, "Location",
                       ap_construct_url(r->pool, r->uri, r));
    }
    r->status = created ? HTTP_CREATED : HTTP_NO_CONTENT;
    return OK;
}

static int cs_handle_delete(request_rec *r, cs_server_conf *sc,
                            const char *key, const char *path)
{
    cs_write_ctx w;
    cs_write_ops_t ops;
    cs_entry_t e;
    apr_file_t *lock = NULL;
    apr_status_t rv;
    int status;

    memset(&w, 0, sizeof(w));
    w.key = key;
    w.path = path;
    w.relpath = path + sc->root_len;
    w.sc = sc;
    ops.precondition = cs_precondition;
    ops.prepare = cs_delete_prepare;
    ops.abort = cs_write_abort;
    ops.baton = &w;
    rv = cs_store_lock_key(r->pool, sc, key, &lock);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(036)
                      "DELETE %s: cannot take the key lock", key);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    status = cs_registry_delete(r, key, &ops, &e);
    if (status == OK) {
        rv = cs_store_remove(r->pool, path);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(039)
                          "DELETE %s: committed, but the local copy %s could "
                          "not be removed; it will not be served", key, path);
        }
    }
    cs_store_unlock_key(lock);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        return cs_unavailable(r);
    }
    if (status != OK) {
        return status;
    }
    cs_invalidate_cluster(r, sc, key, e.version);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(040)
                  "deleted %s (tombstone version %" APR_UINT64_T_FMT ")",
                  key, e.version);
    CS_COUNT(sc, deletes, 1);
    apr_table_setn(r->headers_out, "X-ClusterStorage-Version",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, e.version));
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* ---- node-to-node requests (authenticated in cs_check_peer) ---------- */

#define CS_NOTE_PEER "clusterstorage-peer"

/* A peer fetch: answered from the local copy only, never by fetching. */
static int cs_answer_peer_get(request_rec *r, cs_server_conf *sc, const char *key,
                       const char *path, apr_uint64_t version)
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
        if (cs_store_lock_key(r->pool, sc, key, &lock) == APR_SUCCESS) {
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
    local.version = v;
    local.size = (apr_uint64_t)fi.size;
    local.mtime = fi.mtime;
    apr_table_setn(r->headers_out, CS_SHA256_HEADER,
                   apr_pstrdup(r->pool, local.sha256));
    CS_COUNT(sc, peer_served, 1);
    return cs_serve(r, f, &fi, &local, 0);
}

/* A replication PUT: verify, store atomically, register; never pass on. */
static int cs_store_replica(request_rec *r, cs_server_conf *sc, const char *key,
                       const char *path, apr_uint64_t version)
{
    const char *sha_h = apr_table_get(r->headers_in, CS_SHA256_HEADER);
    const char *peer = apr_table_get(r->notes, CS_NOTE_PEER);
    cs_write_ctx w;
    cs_entry_t e;
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v, size;
    char sha[CS_SHA256_HEX_LEN + 1];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int status, added = 0;

    if (!sha_h || !cs_is_sha256_hex(sha_h, strlen(sha_h))) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(042)
                      "replica of %s from %s without a valid "
                      CS_SHA256_HEADER, key, peer);
        return HTTP_BAD_REQUEST;
    }
    if (cs_registry_get_db(r, key, &e) != APR_SUCCESS) {
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
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
    if (!(cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
          && v == version)) {
        memset(&w, 0, sizeof(w));
        w.key = key;
        w.path = path;
        w.sc = sc;
        rv = cs_store_make_parents(r->pool, sc, path, &status);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(034)
                          "replica of %s: cannot prepare the directory for "
                          "%s", key, path);
            return status;
        }
        rv = cs_store_tmp_create(r->pool, sc, "replica", &w.tmp);
        if (rv != APR_SUCCESS) {
            return APR_STATUS_IS_ENOSPC(rv) ? HTTP_INSUFFICIENT_STORAGE
                                            : HTTP_INTERNAL_SERVER_ERROR;
        }
        if ((status = cs_read_body(r, &w)) != OK) {
            return status;
        }
        cs_store_tmp_digest(w.tmp, &size, sha);
        if (size != e.size || strcmp(sha, e.sha256) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(045)
                          "replica of %s v%" APR_UINT64_T_FMT " from %s does"
                          " not match the registry (%" APR_UINT64_T_FMT
                          " bytes, %s); discarded", key, version, peer, size,
                          sha);
            return HTTP_BAD_REQUEST;
        }
        if ((rv = cs_store_lock_key(r->pool, sc, key, &lock))
            != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        rv = cs_store_tmp_seal(w.tmp, key, &e);
        if (rv == APR_SUCCESS) {
            rv = cs_store_install(w.tmp, path);
        }
        cs_store_unlock_key(lock);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, CSLOG(046)
                          "cannot store replica of %s at %s", key, path);
            return APR_STATUS_IS_ENOSPC(rv) ? HTTP_INSUFFICIENT_STORAGE
                                            : HTTP_INTERNAL_SERVER_ERROR;
        }
        CS_COUNT(sc, replicas_received, 1);
    }
    if (!(dbd = cs_registry_acquire(r))
        || cs_registry_add_replica(r->server, r->pool, dbd, key, version,
                                   &added) != APR_SUCCESS) {
        CS_COUNT(sc, registry_errors, 1);
        return cs_unavailable(r);
    }
    if (!added) {
        return HTTP_CONFLICT;   /* superseded while it was in flight */
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(047)
                  "stored replica of %s v%" APR_UINT64_T_FMT " from %s", key,
                  version, peer);
    r->status = HTTP_CREATED;
    return OK;
}

/* Delete propagation: drop this node's copy if it is older than the
 * tombstone (a newer PUT may already have replaced it). */
static int cs_drop_for_peer(request_rec *r, cs_server_conf *sc, const char *key,
                          const char *path, apr_uint64_t version)
{
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v = 0;
    char sha[CS_SHA256_HEX_LEN + 1];

    if (cs_store_lock_key(r->pool, sc, key, &lock) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (cs_store_open(r->pool, path, key, 0, &f, &fi, &v, sha) == APR_SUCCESS
        && v > 0 && v < version) {
        cs_store_remove(r->pool, path);
    }
    cs_store_unlock_key(lock);
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* access_checker_ex: a request that claims to come from a node must prove
 * it (MAC, timestamp); a proven one skips the Require rules meant for
 * clients. */
static int cs_check_peer(request_rec *r)
{
    cs_dir_conf *dc = ap_get_module_config(r->per_dir_config,
                                           &clusterstorage_module);
    cs_server_conf *sc = cs_sconf(r->server);
    const char *auth, *ver, *node;
    uint64_t v;
    int status;

    if (!dc || dc->enabled != 1 || !sc->state_dir) {
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
    status = cs_peer_auth_check(r, sc, r->uri, v, &node);
    if (status != OK) {
        return status;
    }
    apr_table_setn(r->notes, CS_NOTE_PEER, node);
    return OK;
}

static int cs_handler(request_rec *r)
{
    cs_dir_conf *dc = ap_get_module_config(r->per_dir_config,
                                           &clusterstorage_module);
    cs_server_conf *sc;
    const char *key = r->uri, *path;
    apr_size_t klen;
    int write;

    if (!dc || dc->enabled != 1) {
        return DECLINED;
    }
    if (r->handler && strcmp(r->handler, "clusterstorage-status") == 0) {
        return DECLINED;
    }
    sc = cs_sconf(r->server);
    if (!sc->state_dir) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(011)
                      "ClusterStorage On in a server without "
                      "ClusterStorageNode/Root/Secret");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    write = dc->write == 1;
    klen = strlen(key);
    switch (cs_key_check(key, klen)) {
    case CS_KEY_OK:
        break;
    case CS_KEY_TOO_LONG:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(012)
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
    path = r->path_info && *r->path_info
           ? apr_pstrcat(r->pool, r->filename, r->path_info, NULL)
           : r->filename;
    if (!path || strncmp(path, sc->root, sc->root_len) != 0
        || path[sc->root_len] != '/') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(014)
                      "%s maps to %s, outside ClusterStorageRoot %s; fix "
                      "DocumentRoot/Alias", key, path ? path : "(nothing)",
                      sc->root);
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
        apr_uint64_t v = 0;
        cs_parse_u64(apr_table_get(r->headers_in, CS_VERSION_HEADER),
                     strlen(apr_table_get(r->headers_in, CS_VERSION_HEADER)),
                     &v);
        if (strcmp(r->method, "PURGE") == 0) {
            cs_cache_invalidate(sc->cache, key);
            r->status = HTTP_NO_CONTENT;
            return OK;
        }
        switch (r->method_number) {
        case M_GET:
            return cs_answer_peer_get(r, sc, key, path, v);
        case M_PUT:
            return cs_store_replica(r, sc, key, path, v);
        case M_DELETE:
            return cs_drop_for_peer(r, sc, key, path, v);
        default:
            return HTTP_METHOD_NOT_ALLOWED;
        }
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
    (void)p;
    /* After mod_dbd and mod_watchdog have set themselves up. */
    ap_hook_post_config(cs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Per child: memcached clients. */
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
