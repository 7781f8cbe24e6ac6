/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * admin.h - SetHandler clusterstorage-admin: the operator's commands, as
 * POST requests to any node (protect the location like any admin page:
 * Require, authentication; README "Drain and retire a node"):
 *
 *   POST ?drain=NODE    NODE drains: it serves as before, takes no new
 *                       copies, and its copies no longer count towards
 *                       ClusterStorageReplicas, so the repair of every node
 *                       copies its keys to the others, as fast as pushes go
 *                       (replicate.c).  Its status page shows what is left
 *                       (keys, bytes, rate).
 *   POST ?undrain=NODE  it counts again.
 *   POST ?forget=NODE   NODE leaves the membership: only once it is stopped
 *                       (down), draining and no key of it is short of copies
 *                       elsewhere (else 409); its holder rows go with it.
 *
 * Answers: 200 with a line of text, 400 (no or bad command), 404 (no such
 * node), 405 (not POST), 409 (forget refused, with why), 503 (registry
 * unreachable).  Each command is logged.
 */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "httpd.h"

int cs_admin_handler(request_rec *r);

#endif /* CS_ADMIN_H */
