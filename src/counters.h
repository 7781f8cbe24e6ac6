/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * counters.h - the counters of one node since its start.
 *
 * They live in anonymous shared memory created in post_config and
 * inherited by the forked children, so that every child adds to the same
 * numbers; additions are atomic and relaxed (they order nothing).  The
 * status page (status.c) reads them.
 */
#ifndef CS_COUNTERS_H
#define CS_COUNTERS_H

#include <stdint.h>

typedef struct {
    uint64_t hits;              /* GETs served from the local copy */
    uint64_t not_found;         /* 404 answers */
    uint64_t unverified;        /* served while the registry was down */
    uint64_t peer_fetches;      /* completed fetches from a peer */
    uint64_t fetch_bytes;       /* bytes received by those fetches */
    uint64_t fetch_failures;    /* fetch attempts that failed, ... */
    uint64_t fetch_fail_connect;    /* ... could not connect/send */
    uint64_t fetch_fail_answer;     /* ... wrong status/headers */
    uint64_t fetch_fail_body;       /* ... body cut short/timed out */
    uint64_t fetch_fail_checksum;   /* ... bytes did not match */
    uint64_t fetch_fail_local;      /* ... could not store locally */
    uint64_t mc_hits;           /* registry lookups answered by memcached */
    uint64_t mc_misses;         /* ... that memcached could not answer */
    uint64_t peer_served;       /* peer GETs this node answered 200 */
    uint64_t replicas_received; /* replication PUTs stored */
    uint64_t replications_done; /* pushes confirmed by a peer */
    uint64_t replications_failed;
    uint64_t repairs;           /* pushes made by the repair sweep */
    uint64_t registry_errors;
    uint64_t db_outages;        /* times the database stopped answering */
    uint64_t scrub_files;       /* copies the scrub re-hashed */
    uint64_t scrub_bytes;       /* ... and their bytes */
    uint64_t scrub_damaged;     /* ... found not to match their SHA-256 */
    uint64_t scrub_passes;      /* whole passes over the store finished */
    uint64_t puts;
    uint64_t deletes;
    uint64_t unavailable;       /* 503 answers */
    uint64_t peer_requests;     /* requests this node made to peers */
    uint64_t peer_connects;     /* ... of them on a new connection */
    /* Not a counter: the database's clock minus this node's, in
     * microseconds, at the last heartbeat that could measure it, and when
     * that was (apr_time_t; 0: never). */
    int64_t clock_skew;
    int64_t clock_measured;
    /* Not a counter: the keys the repair found to restore in its last
     * round (replicate.c), for the status page; -1 before the first. */
    int64_t repair_backlog;
    /* Not counters: while this node drains (admin.h), what its last pass
     * over its copies found still short of copies elsewhere, and the rate
     * at which that went down (keys per 1000 s); -1 while not draining. */
    int64_t drain_keys;
    int64_t drain_bytes;
    int64_t drain_rate_milli;
    /* Not counters: whether the database answers, shared by the node's
     * processes (dbconn.c). */
    struct {
        uint64_t retry_at;      /* 0: it answers; else when to ask again */
        uint32_t down;          /* 1 from the failure to the recovery */
        uint32_t apart;         /* 1: the last failure was a Galera
                                 * member outside the primary component */
        uint32_t addr_state;    /* 0 unknown, 1 being written, 2 set */
        uint32_t addrlen;
        unsigned char addr[128];    /* the server's sockaddr */
    } db;
} cs_counters_t;

/* Add n to one counter of the block c (which may be NULL: no counters). */
#define CS_COUNTER_ADD(c, field, n) do {                                  \
        if (c) {                                                          \
            __atomic_fetch_add(&(c)->field, (uint64_t)(n),                \
                               __ATOMIC_RELAXED);                         \
        }                                                                 \
    } while (0)

#endif /* CS_COUNTERS_H */
