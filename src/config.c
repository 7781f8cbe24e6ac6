/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * config.c - directives, the contexts' create/merge, and the start-up
 * checks of a node's configuration; see config.h.
 */
#include "config.h"

#include "http_core.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "apr_uri.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

void *cs_create_server_conf(apr_pool_t *p, server_rec *s)
{
    cs_server_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->replicas = CS_UNSET;
    c->peer_timeout = CS_UNSET;
    c->db_timeout = CS_UNSET;
    c->scrub_rate = CS_UNSET;
    c->scrub_interval = CS_UNSET;
    c->cache_ttl = CS_UNSET;
    c->heartbeat = CS_UNSET;
    c->local_cache = CS_UNSET;
    return c;
}

#define CS_MERGE_PTR(f)   c->f = add->f ? add->f : base->f
#define CS_MERGE_VAL(f)   c->f = add->f != CS_UNSET ? add->f : base->f

void *cs_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    cs_server_conf *base = basev, *add = addv;
    cs_server_conf *c = apr_pcalloc(p, sizeof(*c));

    CS_MERGE_PTR(node_name);
    CS_MERGE_PTR(node_url);
    CS_MERGE_PTR(store.root);
    CS_MERGE_PTR(secret);
    CS_MERGE_PTR(memcache);
    CS_MERGE_VAL(replicas);
    CS_MERGE_VAL(peer_timeout);
    CS_MERGE_VAL(db_timeout);
    CS_MERGE_VAL(scrub_rate);
    CS_MERGE_VAL(scrub_interval);
    CS_MERGE_VAL(cache_ttl);
    CS_MERGE_VAL(heartbeat);
    CS_MERGE_VAL(local_cache);
    c->used = add->used;
    return c;
}

void *cs_create_dir_conf(apr_pool_t *p, char *dir)
{
    cs_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)dir;
    c->enabled = CS_UNSET;
    c->write = CS_UNSET;
    return c;
}

void *cs_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
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
    sc->store.root = root;
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

/* Whole seconds: MariaDB Connector/C takes its timeouts in seconds. */
static const char *cs_set_db_timeout(cmd_parms *cmd, void *dummy,
                                     const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    const char *err = cs_duration(cmd, arg, apr_time_from_sec(2),
                                  apr_time_from_sec(600), &sc->db_timeout);

    (void)dummy;
    if (!err && sc->db_timeout % APR_USEC_PER_SEC) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be whole seconds",
                            cmd->cmd->name, arg);
    }
    return err;
}

/* Bytes per second: a number with an optional K, M or G (powers of
 * 1024), or Off (0). */
static const char *cs_set_scrub_rate(cmd_parms *cmd, void *dummy,
                                     const char *arg)
{
    cs_server_conf *sc = cs_sconf(cmd->server);
    apr_off_t n = 0, unit = 1;
    const char *p = arg;

    (void)dummy;
    if (strcasecmp(arg, "off") == 0) {
        sc->scrub_rate = 0;
        return NULL;
    }
    for (; *p >= '0' && *p <= '9' && n < APR_INT64_C(1) << 40; p++) {
        n = n * 10 + (*p - '0');
    }
    if (*p == 'K' || *p == 'k') {
        unit = 1024, p++;
    }
    else if (*p == 'M' || *p == 'm') {
        unit = 1024 * 1024, p++;
    }
    else if (*p == 'G' || *p == 'g') {
        unit = 1024 * 1024 * 1024, p++;
    }
    if (p == arg || *p || n >= APR_INT64_C(1) << 40) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be bytes per second "
                            "(a number, K, M or G after it) or Off",
                            cmd->cmd->name, arg);
    }
    sc->scrub_rate = n * unit;
    return NULL;
}

static const char *cs_set_scrub_interval(cmd_parms *cmd, void *dummy,
                                         const char *arg)
{
    (void)dummy;
    return cs_duration(cmd, arg, apr_time_from_sec(1),
                       apr_time_from_sec(366 * 86400),
                       &cs_sconf(cmd->server)->scrub_interval);
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

const command_rec cs_cmds[] = {
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
    AP_INIT_TAKE1("ClusterStorageDatabaseTimeout", cs_set_db_timeout, NULL,
                  RSRC_CONF, "longest wait on the database (default 5 s)"),
    AP_INIT_TAKE1("ClusterStorageScrubRate", cs_set_scrub_rate, NULL,
                  RSRC_CONF, "bytes per second the background scrub reads "
                  "(K, M, G; Off; default 8M)"),
    AP_INIT_TAKE1("ClusterStorageScrubInterval", cs_set_scrub_interval, NULL,
                  RSRC_CONF, "least time between the starts of two scrub "
                  "passes (default 86400 s)"),
    AP_INIT_TAKE1("ClusterStorageCacheTTL", cs_set_ttl, NULL, RSRC_CONF,
                  "lifetime of a registry entry in memcached"),
    AP_INIT_TAKE1("ClusterStorageHeartbeat", cs_set_heartbeat, NULL,
                  RSRC_CONF, "how often this node records its heartbeat"),
    AP_INIT_FLAG("ClusterStorageLocalCache", cs_set_local_cache, NULL,
                 RSRC_CONF, "decide GETs from a node-local registry cache "
                 "kept coherent by writers and leases (default On)"),
    AP_INIT_FLAG("ClusterStorage", cs_set_enabled, NULL,
                 RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                 "this URL space is cluster storage"),
    AP_INIT_FLAG("ClusterStorageWrite", cs_set_write, NULL,
                 RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                 "clients may PUT and DELETE here"),
    { NULL }
};

int cs_config_check_server(apr_pool_t *p, apr_pool_t *ptemp, server_rec *s)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *why = NULL;
    char *real;
    apr_status_t rv;

    if (!sc->node_name) {
        why = "ClusterStorageNode NAME URL is missing";
    }
    else if (!sc->store.root) {
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
    if (sc->scrub_rate == CS_UNSET) {
        sc->scrub_rate = CS_DEFAULT_SCRUB_RATE;
    }
    if (sc->scrub_interval == CS_UNSET) {
        sc->scrub_interval = CS_DEFAULT_SCRUB_INTERVAL;
    }
    if (sc->db_timeout == CS_UNSET) {
        sc->db_timeout = CS_DEFAULT_DB_TIMEOUT;
    }
    if (sc->cache_ttl == CS_UNSET) {
        sc->cache_ttl = CS_DEFAULT_TTL;
    }
    if (sc->heartbeat == CS_UNSET) {
        sc->heartbeat = CS_DEFAULT_HEARTBEAT;
    }
    if (sc->local_cache == CS_UNSET) {
        sc->local_cache = 1;    /* SPEC §2: the fast, coherent default */
    }
    rv = cs_store_init_root(ptemp, sc->store.root, &why,
                            &sc->store.exact_mtime);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, CSLOG(002)
                     "ClusterStorageRoot %s %s", sc->store.root, why);
        return !OK;
    }
    real = realpath(sc->store.root, NULL);
    if (!real) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_FROM_OS_ERROR(errno), s,
                     CSLOG(009) "ClusterStorageRoot %s cannot be resolved",
                     sc->store.root);
        return !OK;
    }
    sc->store.root = apr_pstrdup(p, real);
    free(real);
    sc->store.root_len = strlen(sc->store.root);
    sc->store.state_dir = apr_pstrcat(p, sc->store.root,
                                      "/" CS_STATE_DIRNAME, NULL);
    sc->peer.node = sc->node_name;
    sc->peer.secret = sc->secret;
    sc->peer.timeout = sc->peer_timeout;
    sc->peer.counters = NULL;   /* post_config, once the block exists */
    return OK;
}
