/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * read.h - GET/HEAD of a key from a client.
 *
 * Promises (SPEC promises 1, 3, 7): the answer is the registry's current
 * version or 404, never an older copy while the registry is reachable;
 * the descriptor whose version was checked is the one served, so a
 * concurrent PUT or DELETE never mixes versions in one response; a node
 * that lacks the current version fetches it from a holder once (one
 * transfer per key and node), verifies it and keeps it; with the registry
 * unreachable a local copy is served marked unverified, else 503.
 */
#ifndef CS_READ_H
#define CS_READ_H

#include "config.h"
#include "codec.h"

/* path: the file key maps to under the root. */
int cs_handle_get(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path);

/* Make sure this node holds version e of key at path (verified), fetching
 * it from a holder if need be: OK, or the status to answer (logged). */
int cs_ensure_local(request_rec *r, const cs_server_conf *sc,
                    const char *key, const char *path, const cs_entry_t *e);

#endif /* CS_READ_H */
