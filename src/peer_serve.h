/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer_serve.h - this node's side of the node-to-node protocol (peer.h is
 * the other side).
 *
 * Promises: a request that claims to come from a node is answered only
 * with a valid MAC and timestamp (403 otherwise, logged, nothing changed);
 * a peer GET is answered from the local copy only, never by fetching; a
 * replica is stored only if it is the registry's current version and its
 * bytes match the registry's size and SHA-256 (400/409 otherwise, nothing
 * left behind).
 */
#ifndef CS_PEER_SERVE_H
#define CS_PEER_SERVE_H

#include "config.h"

/* access_checker_ex hook: OK for a proven node request (its name in
 * r->notes CS_NOTE_PEER), DECLINED for a client's, 400/403 for a bad
 * claim. */
int cs_check_peer(request_rec *r);

/* Answer a proven node request for key (path: its file under the root). */
int cs_handle_peer(request_rec *r, const cs_server_conf *sc,
                   const char *key, const char *path);

#endif /* CS_PEER_SERVE_H */
