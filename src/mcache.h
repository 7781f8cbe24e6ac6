/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mcache.h - memcached in front of the registry's database (registry.c is
 * its only user).
 *
 * Promises:
 *   - keys are "cs1:" + hex SHA-256 of the cluster key (memcached's
 *     250-byte limit never matters);
 *   - values are the compact text of codec.h plus an HMAC keyed with
 *     ClusterStorageSecret over key and value, so garbage, truncated or
 *     foreign values are a miss, never a wrong answer;
 *   - readers fill with add (never overwrite), writers overwrite with set
 *     after their commit, and delete the entry when the set fails;
 *   - a memcached that is down is a miss (logged at debug), never an error;
 *   - nothing waits on memcached for long (SPEC promise 9): the client is
 *     the module's own (memcached's text protocol over kept-alive
 *     connections; apr_memcache reads without a timeout), every connect,
 *     send and receive is bounded by CS_MC_TIMEOUT, and readers leave a
 *     server that did not answer alone for CS_MC_DOWN_TIME (CS117): the
 *     database answers meanwhile.  Writers always try it (bounded).  Keys
 *     go to servers by their hash.
 */
#ifndef CS_MCACHE_H
#define CS_MCACHE_H

#include "config.h"
#include "codec.h"

#define CS_MC_KEY_LEN   (4 + CS_SHA256_HEX_LEN)

/* Per child: the memcached client of each server_rec (a vhost that
 * inherits the main server's list shares its); its kept connections are
 * closed with p. */
apr_status_t cs_mc_child_init(apr_pool_t *p, server_rec *s);

/* The memcached key of key (out: CS_MC_KEY_LEN + 1 bytes). */
void cs_mc_key(const char *key, char out[CS_MC_KEY_LEN + 1]);

/* The entry of key (sc->mc must be set): APR_SUCCESS and *e, APR_NOTFOUND
 * for a miss (also for a value that is not authentic), or memcached's
 * error.  mckey gets the memcached key, for a cs_mc_add() after the
 * database answered. */
apr_status_t cs_mc_get(request_rec *r, const cs_server_conf *sc,
                       const char *key, char mckey[CS_MC_KEY_LEN + 1],
                       cs_entry_t *e);

/* Reader: fill in what the database said, unless a writer set it. */
void cs_mc_add(request_rec *r, const cs_server_conf *sc, const char *key,
               const char *mckey, const cs_entry_t *e);

/* Writer, after the commit: overwrite; if that fails, drop the entry
 * (and say so: APR_SUCCESS only when it was overwritten). */
apr_status_t cs_mc_set(request_rec *r, const cs_server_conf *sc,
                       const char *key, const cs_entry_t *e);

/* The same for n keys at once (a MOVE), pipelined: APR_SUCCESS when
 * every server took them all; else logged (CS118). */
apr_status_t cs_mc_set_many(request_rec *r, const cs_server_conf *sc,
                            int n, const char *const *keys,
                            const cs_entry_t *entries);

#endif /* CS_MCACHE_H */
