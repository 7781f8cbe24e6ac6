/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * write.h - PUT and DELETE of a key from a client.
 *
 * Promises (SPEC promises 1, 2, 4, 6): a write is answered only after its
 * bytes are fsynced and renamed into place (PUT), its version is
 * committed in the registry with its replication or delete job durably
 * queued, and every node whose cache may hold the key has forgotten it or
 * lost its lease; conditional writes are decided against the committed
 * cluster-wide version under the key's row lock; a write that fails
 * leaves no file, no registry entry and no job behind.
 */
#ifndef CS_WRITE_H
#define CS_WRITE_H

#include "config.h"

int cs_handle_put(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path);
int cs_handle_delete(request_rec *r, const cs_server_conf *sc,
                     const char *key, const char *path);

#endif /* CS_WRITE_H */
