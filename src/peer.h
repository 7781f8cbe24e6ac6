/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer.h - the node-to-node HTTP client: fetches, replication pushes,
 * delete propagation and cache purges, over apr sockets.
 *
 * Promises:
 *   - every request carries the MAC of auth.h; every connect and read is
 *     bounded by the configured timeout;
 *   - a fetched body is kept only if status, version, SHA-256 header,
 *     length and the SHA-256 of the received bytes all match the registry
 *     entry asked for;
 *   - connections are kept alive per process (at most 32 idle, each for at
 *     most 2 s) and closed when the child exits; a reused connection the
 *     peer closed before answering gets exactly one fresh retry.
 * It knows nothing of the registry or of the request being answered.
 */
#ifndef CS_PEER_H
#define CS_PEER_H

#include "codec.h"
#include "counters.h"
#include "apr_pools.h"
#include "apr_time.h"

/* What the client needs of the configuration (config.h derives it). */
typedef struct {
    const char *node;               /* this node's name */
    const char *secret;             /* ClusterStorageSecret */
    apr_interval_time_t timeout;    /* ClusterStoragePeerTimeout */
    cs_counters_t *counters;        /* peer_requests/connects, or NULL */
} cs_peer_conf_t;

/* Forward declaration (store.h). */
struct cs_tmp_t;

/* Why a fetch failed (counted on the status page). */
typedef enum {
    CS_FETCH_CONNECT,       /* no connection, or the request not sent */
    CS_FETCH_ANSWER,        /* wrong status, version, checksum or length */
    CS_FETCH_BODY,          /* body cut short or timed out */
    CS_FETCH_CHECKSUM,      /* the received bytes do not match */
    CS_FETCH_LOCAL          /* this node could not write them */
} cs_fetch_cause_t;

/* Per child: the idle connections are closed when pchild goes away. */
void cs_peer_child_init(apr_pool_t *pchild);

/* Fetch version e of key from the node at base_url into tmp: a GET with
 * X-ClusterStorage-Version, answered from the peer's local copy only.
 * APR_SUCCESS, or an error with *why saying what was wrong. */
/* tee (may be NULL) is given the body's bytes as they arrive, each piece
 * once it is written to tmp, with its offset in the body: bytes not yet
 * verified (the SHA-256 is known only at the end). */
typedef void (*cs_fetch_tee_fn)(void *baton, const char *buf, apr_size_t n,
                                apr_uint64_t offset);
apr_status_t cs_peer_fetch(apr_pool_t *p, const cs_peer_conf_t *pc,
                           const char *base_url, const char *key,
                           const cs_entry_t *e, struct cs_tmp_t *tmp,
                           cs_fetch_tee_fn tee, void *baton,
                           const char **why, cs_fetch_cause_t *cause);

/* Push this node's copy (path, version e) of key to base_url (replication
 * PUT).  *status is the peer's answer (0 when there was none). */
apr_status_t cs_peer_push(apr_pool_t *p, const cs_peer_conf_t *pc,
                          const char *base_url, const char *key,
                          const cs_entry_t *e, const char *path,
                          int *status);

/* Tell base_url to drop copies of key older than (tombstone) version. */
apr_status_t cs_peer_delete(apr_pool_t *p, const cs_peer_conf_t *pc,
                            const char *base_url, const char *key,
                            apr_uint64_t version, int *status);

/* Tell the n nodes at urls to drop key from their registry caches
 * (cache.h), all at once: the requests are sent first, then the answers
 * read against one deadline, so that hung peers cost one
 * ClusterStoragePeerTimeout together, not one each.  With keys (their
 * list, one per line; key is one of them) it is one PURGEKEYS listing
 * them, whose MAC covers the list (cs_auth_body_digest()).  statuses[i]:
 * node i's answer, or 0 when it gave none.  A node that does not know
 * PURGEKEYS answers 405: the caller then queues the invalidations as for
 * a node it could not reach. */
void cs_peer_purge_all(apr_pool_t *p, const cs_peer_conf_t *pc, int n,
                       const char *const *urls, const char *key,
                       apr_uint64_t version, const char *keys,
                       apr_size_t len, int *statuses);

/* Tell base_url to apply the MOVEs queued for it (move.h) now; key is
 * one the MOVE concerns, seq its number. */
apr_status_t cs_peer_moved(apr_pool_t *p, const cs_peer_conf_t *pc,
                           const char *base_url, const char *key,
                           apr_uint64_t seq, int *status);

#endif /* CS_PEER_H */
