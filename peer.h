/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer.h - node-to-node requests.
 *
 * Every node-to-node request carries
 *     X-ClusterStorage-Auth: NODE TIMESTAMP MAC
 * MAC = hex HMAC-SHA256 keyed with ClusterStorageSecret over
 *     METHOD "\n" KEY "\n" VERSION "\n" TIMESTAMP
 * A receiver accepts it only with a matching MAC (compared in constant
 * time) and a timestamp within CS_AUTH_WINDOW seconds of its own clock.
 */
#ifndef CS_PEER_H
#define CS_PEER_H

#include "cs_private.h"

#define CS_AUTH_HEADER  "X-ClusterStorage-Auth"
#define CS_AUTH_WINDOW  300

/* Hex HMAC-SHA256 of data keyed with secret (out: 65 bytes). */
void cs_hmac_hex(const char *secret, const void *data, apr_size_t len,
                 char *out);

/* Hex MAC of a node-to-node request (out: 65 bytes). */
void cs_peer_mac(const char *secret, const char *method, const char *key,
                 apr_uint64_t version, apr_int64_t timestamp, char *out);

/* The header value this node sends for (method, key, version) now. */
const char *cs_peer_auth_value(apr_pool_t *p, const cs_server_conf *sc,
                               const char *method, const char *key,
                               apr_uint64_t version);

/* Check r's X-ClusterStorage-Auth for (key, version).  OK, or
 * HTTP_FORBIDDEN with the reason logged.  *node gets the sender's name. */
int cs_peer_auth_check(request_rec *r, const cs_server_conf *sc,
                       const char *key, apr_uint64_t version,
                       const char **node);

/* Headers of the peer protocol. */
#define CS_VERSION_HEADER "X-ClusterStorage-Version"
#define CS_SHA256_HEADER  "X-ClusterStorage-SHA256"

/* Forward declaration (store.h). */
struct cs_tmp_t;

/* Fetch version e of key from the node at base_url into tmp: a GET with
 * X-ClusterStorage-Version, answered from the peer's local copy only.  The
 * bytes are kept only if the status, version, SHA-256 header, length and
 * the SHA-256 of the received bytes all match e.  APR_SUCCESS, or an error
 * with *why saying what was wrong.  Bounded by sc->peer_timeout per
 * connect/read. */
typedef enum {
    CS_FETCH_CONNECT,       /* no connection, or the request not sent */
    CS_FETCH_ANSWER,        /* wrong status, version, checksum or length */
    CS_FETCH_BODY,          /* body cut short or timed out */
    CS_FETCH_CHECKSUM,      /* the received bytes do not match */
    CS_FETCH_LOCAL          /* this node could not write them */
} cs_fetch_cause_t;

/* Per child: connections to peers are kept alive and reused (at most 32
 * idle per process, each for at most 2 s); they are closed when pchild
 * goes away. */
void cs_peer_child_init(apr_pool_t *pchild);

apr_status_t cs_peer_fetch(apr_pool_t *p, const cs_server_conf *sc,
                           const char *base_url, const char *key,
                           const cs_entry_t *e, struct cs_tmp_t *tmp,
                           const char **why, cs_fetch_cause_t *cause);

/* Push this node's copy (path, version e) of key to base_url (replication
 * PUT).  *status is the peer's answer (0 when there was none). */
apr_status_t cs_peer_push(apr_pool_t *p, const cs_server_conf *sc,
                          const char *base_url, const char *key,
                          const cs_entry_t *e, const char *path,
                          int *status);

/* Tell base_url to drop copies of key older than (tombstone) version. */
apr_status_t cs_peer_delete(apr_pool_t *p, const cs_server_conf *sc,
                            const char *base_url, const char *key,
                            apr_uint64_t version, int *status);

/* Tell base_url to drop key from its registry cache (cache.h). */
apr_status_t cs_peer_purge(apr_pool_t *p, const cs_server_conf *sc,
                           const char *base_url, const char *key,
                           apr_uint64_t version, int *status);

#endif /* CS_PEER_H */
