/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * cs_private.h - what the files of mod_clusterstorage share.
 *
 *   mod_clusterstorage.c  config, directives, hooks, request handlers
 *   registry.c/.h         the registry: MariaDB through mod_dbd, memcached
 *                         in front through apr_memcache
 *   store.c/.h            the local store: files under ClusterStorageRoot,
 *                         xattrs, temp files, atomic install, key locks
 *   queue.c/.h            the durable replication queue (job files)
 *   peer.c/.h             node-to-node authentication and transfers
 *   codec.c/.h            pure parsers/encoders (unit tested, fuzzed)
 */
#ifndef CS_PRIVATE_H
#define CS_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_memcache.h"

#include "codec.h"

/* mod_clusterstorage.c declares the module (and its log index) itself. */
#if defined(APLOG_USE_MODULE) && !defined(CS_MODULE_MAIN)
APLOG_USE_MODULE(clusterstorage);
#endif

/* Stable, module-specific message tags (see README "Observe"). */
#define CSLOG(n) "CS" #n ": "

#define CS_UNSET            (-1)
#define CS_DEFAULT_REPLICAS 2
#define CS_DEFAULT_TIMEOUT  apr_time_from_sec(10)
#define CS_DEFAULT_TTL      300
#define CS_DEFAULT_HEARTBEAT apr_time_from_sec(5)
#define CS_SECRET_MIN       16
#define CS_RETRY_AFTER      "5"
/* Clock skew allowed between nodes and the database (cache leases). */
#define CS_LEASE_MARGIN     2

/* Counters of one node since start, in shared memory so that every child
 * adds to the same numbers (anonymous shm created in post_config and
 * inherited by the forked children). */
typedef struct {
    apr_uint64_t hits;              /* GETs served from the local copy */
    apr_uint64_t not_found;         /* 404 answers */
    apr_uint64_t unverified;        /* served while the registry was down */
    apr_uint64_t peer_fetches;      /* completed fetches from a peer */
    apr_uint64_t fetch_bytes;       /* bytes received by those fetches */
    apr_uint64_t fetch_failures;    /* fetch attempts that failed, ... */
    apr_uint64_t fetch_fail_connect;    /* ... could not connect/send */
    apr_uint64_t fetch_fail_answer;     /* ... wrong status/headers */
    apr_uint64_t fetch_fail_body;       /* ... body cut short/timed out */
    apr_uint64_t fetch_fail_checksum;   /* ... bytes did not match */
    apr_uint64_t fetch_fail_local;      /* ... could not store locally */
    apr_uint64_t mc_hits;           /* registry lookups answered by memcached */
    apr_uint64_t mc_misses;         /* ... that memcached could not answer */
    apr_uint64_t peer_served;       /* peer GETs this node answered 200 */
    apr_uint64_t replicas_received; /* replication PUTs stored */
    apr_uint64_t replications_done; /* pushes confirmed by a peer */
    apr_uint64_t replications_failed;
    apr_uint64_t repairs;           /* pushes made by the repair sweep */
    apr_uint64_t registry_errors;
    apr_uint64_t puts;
    apr_uint64_t deletes;
    apr_uint64_t unavailable;       /* 503 answers */
    apr_uint64_t peer_requests;     /* requests this node made to peers */
    apr_uint64_t peer_connects;     /* ... of them on a new connection */
} cs_counters_t;

#define CS_COUNT(sc, field, n) do {                                       \
        if ((sc)->counters) {                                             \
            __atomic_fetch_add(&(sc)->counters->field, (apr_uint64_t)(n), \
                               __ATOMIC_RELAXED);                         \
        }                                                                 \
    } while (0)

/* One server context = one node. */
typedef struct {
    const char *node_name;      /* ClusterStorageNode NAME */
    const char *node_url;       /* ClusterStorageNode ... URL */
    const char *root;           /* ClusterStorageRoot, absolute */
    const char *secret;         /* ClusterStorageSecret */
    apr_array_header_t *memcache; /* ClusterStorageMemcache, "host:port" */
    int replicas;               /* ClusterStorageReplicas */
    apr_interval_time_t peer_timeout;   /* ClusterStoragePeerTimeout */
    int cache_ttl;              /* ClusterStorageCacheTTL, seconds */
    apr_interval_time_t heartbeat;      /* ClusterStorageHeartbeat */
    int local_cache;            /* ClusterStorageLocalCache On|Off */
    int used;                   /* ClusterStorage appears in this server */

    /* Derived in post_config, read-only afterwards. */
    const char *state_dir;      /* root/.clusterstorage */
    apr_size_t root_len;
    cs_counters_t *counters;    /* this node's block in shared memory */
    struct cs_cache_t *cache;   /* node-local registry cache (cache.h) */
    /* Per child, set in child_init (children are forked copies). */
    apr_memcache_t *mc;
} cs_server_conf;

typedef struct {
    int enabled;                /* ClusterStorage On|Off */
    int write;                  /* ClusterStorageWrite On|Off */
} cs_dir_conf;

extern module AP_MODULE_DECLARE_DATA clusterstorage_module;

#define cs_sconf(s) ((cs_server_conf *)ap_get_module_config( \
                         (s)->module_config, &clusterstorage_module))

#endif /* CS_PRIVATE_H */
