/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * status.h - SetHandler clusterstorage-status: this node's view of the
 * cluster (members with state and heartbeat age, replication backlog,
 * counters of all children from shared memory) as HTML, JSON
 * (?format=json) or Prometheus text (?format=prometheus); ?path=/key
 * gives that key's registry entry and holders as JSON.
 */
#ifndef CS_STATUS_H
#define CS_STATUS_H

#include "httpd.h"

int cs_status_handler(request_rec *r);

#endif /* CS_STATUS_H */
