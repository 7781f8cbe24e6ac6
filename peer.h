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

#endif /* CS_PEER_H */
