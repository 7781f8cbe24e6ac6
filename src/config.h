/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * config.h - the module's configuration: one server context per node, one
 * directory context per URL space, and the protocol's constants.
 *
 * Directives fill the contexts at start-up (config.c); post_config checks
 * them, sets the defaults and derives the rest (cs_config_check_server()).
 * From then on they are read-only: the children are forked copies.
 */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include "cs_private.h"
#include "counters.h"
#include "peer.h"
#include "store.h"

#define CS_UNSET            (-1)
#define CS_DEFAULT_REPLICAS 2
#define CS_DEFAULT_TIMEOUT  apr_time_from_sec(10)
#define CS_DEFAULT_DB_TIMEOUT apr_time_from_sec(5)
#define CS_DEFAULT_TTL      300
#define CS_DEFAULT_HEARTBEAT apr_time_from_sec(5)
#define CS_DEFAULT_SCRUB_RATE (8 * 1024 * 1024)
#define CS_DEFAULT_SCRUB_INTERVAL apr_time_from_sec(86400)
#define CS_SECRET_MIN       16
#define CS_RETRY_AFTER      "5"

/* Per-request notes for LogFormat's %{NAME}n: what the module did with a
 * request (README "Observe").  SERVED: hit, fetched, unverified,
 * previous, absent, unavailable, written or deleted; FROM: the holder a
 * fetch read from, FETCH_MS its time; LOOKUP: where the registry entry came
 * from (cache, memcached or database). */
#define CS_NOTE_SERVED      "clusterstorage-served"
#define CS_NOTE_FROM        "clusterstorage-from"
#define CS_NOTE_FETCH_MS    "clusterstorage-fetch-ms"
#define CS_NOTE_LOOKUP      "clusterstorage-lookup"

/* The protocol's timing rules, in heartbeat periods and seconds; the
 * registry's SQL, the heartbeat and the writers' cache fan-out use these
 * names (cache.h explains the leases). */
#define CS_ALIVE_PERIODS    3   /* a node is up while its heartbeat is
                                   younger than this many of its periods */
#define CS_LEASE_PERIODS    2   /* a node trusts its cache this long after
                                   the start of its last heartbeat */
/* memcached: every connect, send and receive waits at most this long;
 * a server that did not answer is not asked again for a while. */
#define CS_MC_TIMEOUT       apr_time_from_msec(500)
#define CS_MC_DOWN_TIME     apr_time_from_sec(5)
#define CS_LEASE_MARGIN     2   /* seconds of clock skew allowed between
                                   nodes and the database */
#define CS_WRITE_SKEW_MAX   60  /* seconds: a node whose clock is further
                                   off takes no writes (its replication
                                   and peer MACs would be refused) */

struct cs_cache_t;
struct cs_holders_t;

/* One server context = one node. */
typedef struct {
    const char *node_name;      /* ClusterStorageNode NAME */
    const char *node_url;       /* ClusterStorageNode ... URL */
    const char *secret;         /* ClusterStorageSecret */
    apr_array_header_t *memcache; /* ClusterStorageMemcache, "host:port" */
    int replicas;               /* ClusterStorageReplicas */
    apr_interval_time_t peer_timeout;   /* ClusterStoragePeerTimeout */
    apr_interval_time_t db_timeout;     /* ClusterStorageDatabaseTimeout */
    int cache_ttl;              /* ClusterStorageCacheTTL, seconds */
    apr_interval_time_t heartbeat;      /* ClusterStorageHeartbeat */
    int local_cache;            /* ClusterStorageLocalCache On|Off */
    apr_off_t scrub_rate;       /* ClusterStorageScrubRate, bytes/s; 0 off */
    apr_interval_time_t scrub_interval; /* ClusterStorageScrubInterval */
    int used;                   /* ClusterStorage appears in this server */
    /* store.root is ClusterStorageRoot (made absolute and resolved in
     * post_config, which also sets root_len and state_dir). */
    cs_store_t store;

    /* Derived in post_config, read-only afterwards. */
    cs_peer_conf_t peer;        /* what the node-to-node client needs */
    cs_counters_t *counters;    /* this node's block in shared memory */
    struct cs_cache_t *cache;   /* node-local registry cache (cache.h) */
    struct cs_queue_bell_t *bell; /* wakes the queue's drain (queue.h) */
    /* Per child, set in child_init (children are forked copies). */
    struct cs_mc_t *mc;         /* memcached client (mcache.c), per child */
    struct cs_holders_t *holders; /* fetched copies to register (holders.c) */
} cs_server_conf;

typedef struct {
    int enabled;                /* ClusterStorage On|Off */
    int write;                  /* ClusterStorageWrite On|Off */
} cs_dir_conf;

#define cs_sconf(s) ((cs_server_conf *)ap_get_module_config( \
                         (s)->module_config, &clusterstorage_module))
#define cs_dconf(r) ((cs_dir_conf *)ap_get_module_config( \
                         (r)->per_dir_config, &clusterstorage_module))

#define CS_COUNT(sc, field, n) CS_COUNTER_ADD((sc)->counters, field, n)

/* 1 if a clock skew is more than `seconds` either way. */
static APR_INLINE int cs_skew_beyond(apr_interval_time_t skew, int seconds)
{
    return skew > apr_time_from_sec(seconds)
           || skew < -apr_time_from_sec(seconds);
}

/* The database's clock minus this node's, as measured at the last
 * heartbeat (0 when never measured). */
static APR_INLINE apr_interval_time_t cs_clock_skew(const cs_server_conf *sc)
{
    return sc->counters
           ? (apr_interval_time_t)__atomic_load_n(&sc->counters->clock_skew,
                                                  __ATOMIC_RELAXED)
           : 0;
}

/* The directives and the contexts' constructors (config.c). */
extern const command_rec cs_cmds[];
void *cs_create_server_conf(apr_pool_t *p, server_rec *s);
void *cs_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
void *cs_create_dir_conf(apr_pool_t *p, char *dir);
void *cs_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);

/* post_config, for a server that uses cluster storage: refuse (logged,
 * with what to change) a missing node/root/secret or an unusable root;
 * set the defaults; resolve the root and derive the rest.  OK or !OK. */
int cs_config_check_server(apr_pool_t *p, apr_pool_t *ptemp, server_rec *s);

#endif /* CS_CONFIG_H */
