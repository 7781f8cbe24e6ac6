/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dbconn.h - the registry's database connections: mod_dbd's, with every
 * wait on the database bounded (SPEC promise 9).  registry.c is the only
 * user.
 *
 * Promises:
 *   - each connection mod_dbd gives out gets, at its first use, connect,
 *     read and write timeouts of ClusterStorageDatabaseTimeout (apr_dbd_mysql
 *     passes none; MariaDB Connector/C applies them at a connect, so the
 *     connection is made again once, before the module prepares anything
 *     on it), and the library's own reconnects are turned off (each would
 *     be one more timeout).  From then on every statement and mod_dbd's
 *     ping end within that time.  New connections that mod_dbd makes get
 *     a connect timeout only from an option file (DBDParams
 *     group=clusterstorage, conf/mariadb-client.cnf); without one the
 *     start says so (CS127);
 *   - a database that did not answer (a timeout, a lost or refused
 *     connection) is "unreachable" for the node, all its processes
 *     (CS123): requests do not wait on it again but fail at once (503, or
 *     a local copy served unverified: promise 7).  Every 500 ms one caller
 *     (a request or a background thread) asks the server for its
 *     greeting, within the timeout and without mod_dbd; once it greets,
 *     the database is used again (CS124).  So a frozen database delays a
 *     request by at most the timeout, and only the requests that were
 *     already waiting on it;
 *   - a connection that carries other modules' prepared statements
 *     (DBDPrepareSQL) is not made again (that would invalidate them): its
 *     timeouts apply from the library's next reconnect (CS126 says so
 *     once);
 *   - without MariaDB Connector/C's functions (another driver) nothing is
 *     bounded, and the start says so (CS125).
 */
#ifndef CS_DBCONN_H
#define CS_DBCONN_H

#include "config.h"
#include "apr_dbd.h"
#include "mod_dbd.h"

/* mod_dbd's functions are there (post_config). */
int cs_dbconn_have_dbd(void);

/* The request's connection (mod_dbd's, released with the request), or
 * NULL: none could be had, or the database is unreachable (then without
 * waiting). */
ap_dbd_t *cs_dbconn_acquire(request_rec *r);

/* A connection for background work (the same rules), given back with
 * cs_dbconn_close(). */
ap_dbd_t *cs_dbconn_open(apr_pool_t *p, server_rec *s);
void cs_dbconn_close(server_rec *s, ap_dbd_t *dbd);

/* A statement on a connection failed with the driver's error e after
 * took: a lost connection after most of the timeout means the database
 * did not answer, and it is unreachable from now on. */
void cs_dbconn_failed(server_rec *s, int e, apr_interval_time_t took);

/* The database counts as unreachable (a failed call is not tried again). */
int cs_dbconn_down(server_rec *s);

#endif
