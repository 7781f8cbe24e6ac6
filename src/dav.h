/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dav.h - the mod_dav repository provider "clusterstorage" (SPEC section
 * 8): `DAV clusterstorage` in a ClusterStorage On + ClusterStorageWrite On
 * <Location> makes it a WebDAV class 1 and 2 repository whose state is the
 * registry's (names.h), so that every node answers alike.
 *
 * mod_dav parses the methods, headers and XML; the provider answers from
 * the registry and writes through the same paths as a PUT or DELETE
 * (write.h), so every promise of those holds for DAV writes too.  GET and
 * HEAD stay with read.c (handle_get = 0).
 *
 * mod_dav is optional: its functions are looked up when the server
 * starts, so the module loads without it, in any LoadModule order, and a
 * `DAV clusterstorage` without mod_dav is mod_dav's own config error.
 */
#ifndef CS_DAV_H
#define CS_DAV_H

#include "httpd.h"

/* pre_config: register the provider if mod_dav is loaded. */
void cs_dav_pre_config(apr_pool_t *pconf);

/* 1 if r is a WebDAV request in a DAV space (mod_dav will answer it). */
int cs_dav_owns(request_rec *r);

/* PATCH with Content-Type application/x-sabredav-partialupdate and
 * X-Update-Range (append, bytes=A-B, bytes=A-) in a DAV space: a partial
 * write (write.h), refused with 423 while a lock whose token the request
 * does not name covers the key.  An HTTP status. */
int cs_dav_patch(request_rec *r);

#endif /* CS_DAV_H */
