/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * auth.h - the node-to-node protocol's headers and how a request proves
 * that it comes from a node.
 *
 * Every node-to-node request carries
 *     X-ClusterStorage-Auth: NODE TIMESTAMP MAC
 *     X-ClusterStorage-Version: VERSION
 * MAC = hex HMAC-SHA256 keyed with ClusterStorageSecret over
 *     METHOD "\n" KEY "\n" VERSION "\n" TIMESTAMP
 * A receiver accepts it only with a matching MAC (compared in constant
 * time) and a timestamp within CS_AUTH_WINDOW seconds of its own clock.
 * Both sides read "now" on the database's clock as each measured it
 * (the caller passes it: local time plus the measured skew), so nodes
 * whose own clocks disagree still accept each other.
 * The sender (peer.c) and the receiver (peer_serve.c) both use this file;
 * it needs only the secret, never the rest of the configuration.
 */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include "httpd.h"

#define CS_AUTH_HEADER    "X-ClusterStorage-Auth"
#define CS_VERSION_HEADER "X-ClusterStorage-Version"
#define CS_SHA256_HEADER  "X-ClusterStorage-SHA256"
/* On a peer GET: "SIZE MTIME" (bytes, microseconds) of the version the
 * fetcher read from the registry, so that the holder can check its copy
 * without a registry lookup of its own (a hint: it is not in the MAC). */
#define CS_EXPECT_HEADER  "X-ClusterStorage-Expect"
#define CS_AUTH_WINDOW    300

/* Hex MAC of a node-to-node request (out: 65 bytes). */
void cs_auth_mac(const char *secret, const char *method, const char *key,
                 apr_uint64_t version, apr_int64_t timestamp, char *out);

/* The X-ClusterStorage-Auth value node `node` sends for (method, key,
 * version) at time now. */
const char *cs_auth_value(apr_pool_t *p, const char *node,
                          const char *secret, const char *method,
                          const char *key, apr_uint64_t version,
                          apr_time_t now);

/* Check r's X-ClusterStorage-Auth for (key, version).  OK, or
 * HTTP_FORBIDDEN with the reason logged.  *node gets the sender's name. */
int cs_auth_check(request_rec *r, const char *secret, const char *key,
                  apr_uint64_t version, apr_time_t now, const char **node);

/* A request with a body that the MAC must cover too (a PURGE of many
 * keys) sends as its version the first 64 bits of the body's SHA-256
 * (never 0); the receiver checks the body against it. */
apr_uint64_t cs_auth_body_digest(const char *body, apr_size_t len);

#endif /* CS_AUTH_H */
