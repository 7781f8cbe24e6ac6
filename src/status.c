/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * status.c - the clusterstorage-status handler; see status.h.
 */
#include "status.h"
#include "registry.h"
#include "queue.h"
#include "request.h"
#include "cache.h"

#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

/* A JSON string literal for s (bytes >= 0x80 pass through as UTF-8). */
typedef struct {
    const char *name;
    const char *help;
    apr_size_t offset;
} cs_counter_def;

#define CS_C(f, h) { #f, h, APR_OFFSETOF(cs_counters_t, f) }
static const cs_counter_def cs_counter_defs[] = {
    CS_C(hits, "GETs served from the local copy"),
    CS_C(not_found, "404 answers"),
    CS_C(unverified, "local copies served while the registry was down"),
    CS_C(peer_fetches, "copies fetched from a peer"),
    CS_C(fetch_bytes, "bytes fetched from peers"),
    CS_C(fetch_failures, "fetch attempts that failed"),
    CS_C(fetch_fail_connect, "fetch failures: no connection"),
    CS_C(fetch_fail_answer, "fetch failures: wrong status or headers"),
    CS_C(fetch_fail_body, "fetch failures: body cut short or timed out"),
    CS_C(fetch_fail_checksum, "fetch failures: bytes did not match"),
    CS_C(fetch_fail_local, "fetch failures: could not store locally"),
    CS_C(mc_hits, "registry lookups answered by memcached"),
    CS_C(mc_misses, "registry lookups memcached could not answer"),
    CS_C(peer_served, "peer fetches this node answered"),
    CS_C(replicas_received, "replication PUTs stored"),
    CS_C(replications_done, "replications confirmed by a peer"),
    CS_C(replications_failed, "replication attempts that failed"),
    CS_C(repairs, "copies pushed by the repair sweep"),
    CS_C(registry_errors, "registry (database) errors"),
    CS_C(db_outages, "times the database stopped answering (requests then fail at once)"),
    CS_C(scrub_files, "copies the background scrub re-hashed"),
    CS_C(scrub_bytes, "bytes the background scrub re-hashed"),
    CS_C(scrub_damaged, "copies the scrub found damaged (quarantined)"),
    CS_C(scrub_passes, "whole passes of the scrub over the store"),
    CS_C(puts, "client PUTs committed"),
    CS_C(deletes, "client DELETEs committed"),
    CS_C(unavailable, "503 answers"),
    CS_C(peer_requests, "requests made to peers"),
    CS_C(peer_connects, "requests made to peers on a new connection"),
    { NULL, NULL, 0 }
};

static apr_uint64_t cs_counter(const cs_server_conf *sc, apr_size_t off)
{
    if (!sc->counters) {
        return 0;
    }
    return __atomic_load_n((apr_uint64_t *)((char *)sc->counters + off),
                           __ATOMIC_RELAXED);
}

static int cs_status_path(request_rec *r, const char *key)
{
    cs_server_conf *sc = cs_sconf(r->server);
    apr_array_header_t *holders = NULL;
    ap_dbd_t *dbd;
    cs_entry_t e;
    int i;

    ap_set_content_type(r, "application/json");
    if (cs_registry_get_db(r, key, &e) != APR_SUCCESS
        || !(dbd = cs_registry_acquire(r))
        || cs_registry_holders(r->server, r->pool, dbd, key, e.version,
                               &holders) != APR_SUCCESS) {
        apr_table_setn(r->err_headers_out, "Retry-After", CS_RETRY_AFTER);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_rprintf(r, "{\"key\":%s,\"exists\":%s,\"version\":%" APR_UINT64_T_FMT
               ",\"size\":%" APR_UINT64_T_FMT ",\"sha256\":%s,"
               "\"mtime\":%" APR_INT64_T_FMT ",\"deleted\":%s,"
               "\"holders\":[",
               cs_json_str(r->pool, key),
               e.version && !e.deleted ? "true" : "false", e.version, e.size,
               cs_json_str(r->pool, e.sha256), e.mtime,
               e.deleted ? "true" : "false");
    for (i = 0; i < holders->nelts; i++) {
        cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
        ap_rprintf(r, "%s{\"node\":%s,\"url\":%s,\"alive\":%s}",
                   i ? "," : "", cs_json_str(r->pool, h->name),
                   cs_json_str(r->pool, h->url), h->alive ? "true" : "false");
    }
    ap_rprintf(r, "],\"this_node\":%s}\n", cs_json_str(r->pool, sc->node_name));
    return OK;
}

/* This node's drain (admin.h) as JSON: null when it does not drain;
 * keys_left -1 until its first pass over its copies ended. */
static const char *cs_drain_json(request_rec *r, cs_server_conf *sc)
{
    apr_int64_t keys, bytes, rate;

    if (!sc->counters) {
        return "null";
    }
    keys = __atomic_load_n(&sc->counters->drain_keys, __ATOMIC_RELAXED);
    bytes = __atomic_load_n(&sc->counters->drain_bytes, __ATOMIC_RELAXED);
    rate = __atomic_load_n(&sc->counters->drain_rate_milli, __ATOMIC_RELAXED);
    if (keys < 0) {
        return "null";
    }
    return apr_psprintf(r->pool, "{\"keys_left\":%" APR_INT64_T_FMT
                        ",\"bytes_left\":%" APR_INT64_T_FMT
                        ",\"keys_per_second\":%s}", keys, bytes,
                        rate < 0 ? "null"
                        : apr_psprintf(r->pool, "%.3f", (double)rate / 1000));
}

int cs_status_handler(request_rec *r)
{
    cs_server_conf *sc;
    const char *format, *path;
    apr_array_header_t *nodes = NULL;
    ap_dbd_t *dbd;
    int jobs, i, registry_ok, backlog = -1;
    apr_int64_t oldest;
    const cs_counter_def *d;

    if (!r->handler || strcmp(r->handler, "clusterstorage-status") != 0) {
        return DECLINED;
    }
    r->allowed = AP_METHOD_BIT << M_GET;
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", NULL);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    sc = cs_sconf(r->server);
    if (!sc->store.state_dir) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(060)
                      "clusterstorage-status in a server that is not a node");
        return HTTP_NOT_FOUND;
    }
    if ((path = cs_query_arg(r, "path")) != NULL) {
        if (cs_key_check(path, strlen(path)) == CS_KEY_TOO_LONG) {
            return HTTP_REQUEST_URI_TOO_LARGE;
        }
        return cs_status_path(r, path);
    }
    format = cs_query_arg(r, "format");
    dbd = cs_registry_acquire(r);
    registry_ok = dbd && cs_registry_nodes(r->server, r->pool, dbd, &nodes)
                         == APR_SUCCESS;
    if (!registry_ok) {
        nodes = apr_array_make(r->pool, 0, sizeof(cs_node_t));
    }
    cs_queue_stats(r->pool, &sc->store, &jobs, &oldest);
    /* What the repair found in its last round (replicate.c): the page
     * queries it runs, not one of its own that would read the registry. */
    if (sc->counters) {
        backlog = (int)__atomic_load_n(&sc->counters->repair_backlog,
                                       __ATOMIC_RELAXED);
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");

    if (format && strcmp(format, "json") == 0) {
        ap_set_content_type(r, "application/json");
        ap_rprintf(r, "{\"node\":%s,\"url\":%s,\"replicas\":%d,"
                   "\"registry_reachable\":%s,\"queue\":{\"jobs\":%d,"
                   "\"oldest_seconds\":%" APR_INT64_T_FMT "},"
                   "\"repair_backlog\":%d,\"nodes\":[",
                   cs_json_str(r->pool, sc->node_name),
                   cs_json_str(r->pool, sc->node_url), sc->replicas,
                   registry_ok ? "true" : "false", jobs, oldest, backlog);
        for (i = 0; i < nodes->nelts; i++) {
            cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
            ap_rprintf(r, "%s{\"name\":%s,\"url\":%s,\"state\":\"%s\","
                       "\"heartbeat_age\":%" APR_INT64_T_FMT ","
                       "\"draining\":%s}",
                       i ? "," : "", cs_json_str(r->pool, n->name),
                       cs_json_str(r->pool, n->url), n->alive ? "up" : "down",
                       n->age, n->draining ? "true" : "false");
        }
        {
            apr_uint64_t h, m, inv;
            apr_time_t lease = cs_cache_lease(sc->cache);
            cs_cache_stats(sc->cache, &h, &m, &inv);
            ap_rprintf(r, "],\"cache\":{\"hits\":%" APR_UINT64_T_FMT
                       ",\"misses\":%" APR_UINT64_T_FMT ",\"invalidations\":%"
                       APR_UINT64_T_FMT ",\"lease_ms\":%" APR_INT64_T_FMT "}",
                       h, m, inv,
                       lease > apr_time_now()
                       ? (apr_int64_t)apr_time_as_msec(lease - apr_time_now())
                       : 0);
        }
        {
            int measured = sc->counters && sc->counters->clock_measured;
            ap_rprintf(r, ",\"clock_skew_ms\":%s",
                       measured ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                               (apr_int64_t)apr_time_as_msec(
                                                   cs_clock_skew(sc)))
                                : "null");
        }
        ap_rprintf(r, ",\"drain\":%s", cs_drain_json(r, sc));
        ap_rputs(",\"counters\":{", r);
        for (d = cs_counter_defs; d->name; d++) {
            ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT,
                       d == cs_counter_defs ? "" : ",", d->name,
                       cs_counter(sc, d->offset));
        }
        ap_rputs("}}\n", r);
        return OK;
    }
    if (format && strcmp(format, "prometheus") == 0) {
        const char *lbl = apr_psprintf(r->pool, "node=\"%s\"", sc->node_name);
        ap_set_content_type(r, "text/plain; version=0.0.4");
        for (d = cs_counter_defs; d->name; d++) {
            if (strncmp(d->name, "fetch_fail_", 11) == 0) {
                continue;       /* below, as one family with a cause */
            }
            ap_rprintf(r, "# HELP clusterstorage_%s_total %s\n"
                       "# TYPE clusterstorage_%s_total counter\n"
                       "clusterstorage_%s_total{%s} %" APR_UINT64_T_FMT "\n",
                       d->name, d->help, d->name, d->name, lbl,
                       cs_counter(sc, d->offset));
        }
        ap_rputs("# HELP clusterstorage_fetch_failures_by_cause_total failed "
                 "fetch attempts by cause\n# TYPE clusterstorage_fetch_"
                 "failures_by_cause_total counter\n", r);
        for (d = cs_counter_defs; d->name; d++) {
            if (strncmp(d->name, "fetch_fail_", 11) == 0) {
                ap_rprintf(r, "clusterstorage_fetch_failures_by_cause_total"
                           "{%s,cause=\"%s\"} %" APR_UINT64_T_FMT "\n", lbl,
                           d->name + 11, cs_counter(sc, d->offset));
            }
        }
        {
            apr_uint64_t h, m, inv;
            cs_cache_stats(sc->cache, &h, &m, &inv);
            ap_rprintf(r, "# HELP clusterstorage_cache_hits_total registry "
                       "lookups answered by the node's own cache\n"
                       "# TYPE clusterstorage_cache_hits_total counter\n"
                       "clusterstorage_cache_hits_total{%s} %" APR_UINT64_T_FMT
                       "\n# HELP clusterstorage_cache_misses_total lookups "
                       "the cache could not answer\n# TYPE clusterstorage_"
                       "cache_misses_total counter\nclusterstorage_cache_"
                       "misses_total{%s} %" APR_UINT64_T_FMT "\n"
                       "# HELP clusterstorage_cache_invalidations_total keys "
                       "dropped from the cache by writes\n# TYPE "
                       "clusterstorage_cache_invalidations_total counter\n"
                       "clusterstorage_cache_invalidations_total{%s} %"
                       APR_UINT64_T_FMT "\n# HELP clusterstorage_cache_lease_"
                       "valid 1 while the cache may be trusted\n# TYPE "
                       "clusterstorage_cache_lease_valid gauge\n"
                       "clusterstorage_cache_lease_valid{%s} %d\n",
                       lbl, h, lbl, m, lbl, inv, lbl,
                       cs_cache_lease_valid(sc->cache));
        }
        ap_rprintf(r, "# HELP clusterstorage_queue_jobs replication jobs "
                   "waiting\n# TYPE clusterstorage_queue_jobs gauge\n"
                   "clusterstorage_queue_jobs{%s} %d\n"
                   "# HELP clusterstorage_queue_oldest_seconds age of the "
                   "oldest job\n# TYPE clusterstorage_queue_oldest_seconds "
                   "gauge\nclusterstorage_queue_oldest_seconds{%s} %"
                   APR_INT64_T_FMT "\n"
                   "# HELP clusterstorage_repair_backlog keys the repair found "
                   "to restore in its last round (-1: none yet)\n# TYPE "
                   "clusterstorage_repair_backlog gauge\n"
                   "clusterstorage_repair_backlog{%s} %d\n"
                   "# HELP clusterstorage_registry_up 1 if the database "
                   "answered\n# TYPE clusterstorage_registry_up gauge\n"
                   "clusterstorage_registry_up{%s} %d\n"
                   "# HELP clusterstorage_clock_skew_seconds the database's "
                   "clock minus this node's, at the last heartbeat\n"
                   "# TYPE clusterstorage_clock_skew_seconds gauge\n"
                   "clusterstorage_clock_skew_seconds{%s} %.3f\n"
                   "# HELP clusterstorage_node_up 1 if the node's heartbeat "
                   "is fresh\n# TYPE clusterstorage_node_up gauge\n",
                   lbl, jobs, lbl, oldest, lbl, backlog, lbl, registry_ok,
                   lbl, (double)cs_clock_skew(sc) / APR_USEC_PER_SEC);
        for (i = 0; i < nodes->nelts; i++) {
            cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
            ap_rprintf(r, "clusterstorage_node_up{%s,peer=\"%s\"} %d\n", lbl,
                       n->name, n->alive);
        }
        if (sc->counters) {
            ap_rprintf(r, "# HELP clusterstorage_drain_keys_left keys of this "
                       "draining node still short of copies elsewhere (-1: "
                       "not draining)\n# TYPE clusterstorage_drain_keys_left "
                       "gauge\nclusterstorage_drain_keys_left{%s} %" APR_INT64_T_FMT
                       "\n", lbl, (apr_int64_t)__atomic_load_n(
                           &sc->counters->drain_keys, __ATOMIC_RELAXED));
        }
        return OK;
    }
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<!DOCTYPE html>\n<html><head><title>clusterstorage "
               "status: %s</title></head><body>\n<h1>Node %s</h1>\n"
               "<p>URL %s, replicas %d, registry %s</p>\n"
               "<p>Replication queue: %d jobs, oldest %" APR_INT64_T_FMT
               " s; repair backlog: %d keys</p>\n<h2>Nodes</h2>\n<table border=\"1\"><tr><th>name"
               "</th><th>url</th><th>state</th><th>heartbeat age (s)</th>"
               "</tr>\n",
               ap_escape_html(r->pool, sc->node_name),
               ap_escape_html(r->pool, sc->node_name),
               ap_escape_html(r->pool, sc->node_url), sc->replicas,
               registry_ok ? "reachable" : "<b>unreachable</b>", jobs, oldest,
               backlog);
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%"
                   APR_INT64_T_FMT "</td></tr>\n",
                   ap_escape_html(r->pool, n->name),
                   ap_escape_html(r->pool, n->url),
                   n->alive ? (n->draining ? "up, draining" : "up")
                            : (n->draining ? "down, draining" : "down"),
                   n->age);
    }
    {
        apr_uint64_t h, m, inv;
        cs_cache_stats(sc->cache, &h, &m, &inv);
        ap_rprintf(r, "</table>\n<h2>Registry cache</h2>\n<p>%s; %"
                   APR_UINT64_T_FMT " hits, %" APR_UINT64_T_FMT " misses, %"
                   APR_UINT64_T_FMT " invalidations</p>\n",
                   !sc->cache ? "off (ClusterStorageLocalCache Off)"
                   : cs_cache_lease_valid(sc->cache) ? "lease valid"
                   : "<b>lease expired</b> (lookups go to memcached/database)",
                   h, m, inv);
    }
    ap_rprintf(r, "<p>Clock: %.3f s behind the database's (negative: "
               "ahead)%s</p>\n", (double)cs_clock_skew(sc) / APR_USEC_PER_SEC,
               cs_skew_beyond(cs_clock_skew(sc), CS_WRITE_SKEW_MAX)
               ? " <b>: writes refused, fix the clock</b>" : "");
    ap_rputs("<h2>Counters since start</h2>\n<table border=\"1\">\n", r);
    for (d = cs_counter_defs; d->name; d++) {
        ap_rprintf(r, "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td><td>%s"
                   "</td></tr>\n", d->name, cs_counter(sc, d->offset),
                   d->help);
    }
    ap_rputs("</table>\n</body></html>\n", r);
    return OK;
}
