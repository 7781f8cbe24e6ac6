/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dav_lock.h - the lock hooks of the WebDAV provider (dav.h): locks live
 * in the registry (names.h), so every node enforces every lock.
 */
#ifndef CS_DAV_LOCK_H
#define CS_DAV_LOCK_H

#include "httpd.h"
#include "mod_dav.h"

/* What the lock hooks need from mod_dav (looked up at start-up) and from
 * the repository (dav.c). */
typedef struct {
    dav_error *(*new_error)(apr_pool_t *p, int status, int error_id,
                            apr_status_t aprerr, const char *desc);
    /* The key of a resource of the provider. */
    const char *(*key)(const dav_resource *res);
    /* The resource at key (an ancestor of start or start itself), looked
     * up in the registry. */
    dav_error *(*resource_at)(const dav_resource *start, const char *key,
                              const dav_resource **out);
} cs_dav_api_t;

extern const dav_hooks_locks cs_dav_lock_hooks;

/* Once, before the provider is registered. */
void cs_dav_lock_init(const cs_dav_api_t *api);

#endif /* CS_DAV_LOCK_H */
