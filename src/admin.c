/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * admin.c - the clusterstorage-admin handler; see admin.h.
 */
#include "admin.h"
#include "registry.h"
#include "request.h"

#include "http_protocol.h"
#include "apr_lib.h"
#include "apr_strings.h"

/* A node name as ClusterStorageNode takes it. */
static int cs_node_name_ok(const char *n)
{
    apr_size_t i, len = strlen(n);

    if (len == 0 || len > 64) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isalnum(n[i]) && !strchr("._-", n[i])) {
            return 0;
        }
    }
    return 1;
}

static int cs_answer(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rprintf(r, "%s\n", text);
    return OK;
}

/* forget: refused unless the node is down, draining, and none of its keys
 * is short of copies elsewhere (all its pages asked). */
static int cs_forget(request_rec *r, ap_dbd_t *dbd, const char *node)
{
    apr_array_header_t *nodes;
    cs_node_t *n = NULL;
    apr_int64_t keys = 0, bytes = 0, k, b;
    const char *after = "", *next;
    int i, gone;

    if (cs_registry_nodes(r->server, r->pool, dbd, &nodes) != APR_SUCCESS) {
        return cs_unavailable(r);
    }
    for (i = 0; i < nodes->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(nodes, i, cs_node_t).name, node) == 0) {
            n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        }
    }
    if (!n) {
        return cs_answer(r, HTTP_NOT_FOUND,
                         apr_psprintf(r->pool, "no node %s", node));
    }
    if (n->alive || !n->draining) {
        const char *why = n->alive ? "it is up: drain it, then stop it"
                                   : "it is not draining: drain it first";
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(132)
                      "admin: not forgetting node %s: %s", node, why);
        return cs_answer(r, HTTP_CONFLICT,
                         apr_psprintf(r->pool, "not forgetting %s: %s", node,
                                      why));
    }
    do {
        if (cs_registry_drain_left(r->server, r->pool, dbd, node, after, &k,
                                   &b, &next) != APR_SUCCESS) {
            return cs_unavailable(r);
        }
        keys += k;
        bytes += b;
        after = next;
    } while (*after);
    if (keys > 0) {
        const char *why = apr_psprintf(r->pool, "%" APR_INT64_T_FMT " of its "
                                       "keys (%" APR_INT64_T_FMT " bytes) "
                                       "have fewer copies elsewhere than "
                                       "ClusterStorageReplicas", keys, bytes);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(133)
                      "admin: not forgetting node %s: %s", node, why);
        return cs_answer(r, HTTP_CONFLICT,
                         apr_psprintf(r->pool, "not forgetting %s: %s", node,
                                      why));
    }
    if (cs_registry_forget(r->server, r->pool, dbd, node, &gone)
        != APR_SUCCESS) {
        return cs_unavailable(r);
    }
    if (!gone) {        /* it came back meanwhile */
        return cs_answer(r, HTTP_CONFLICT,
                         apr_psprintf(r->pool, "not forgetting %s: it is up "
                                      "again", node));
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, CSLOG(131)
                  "admin: node %s forgotten (no longer a member)", node);
    return cs_answer(r, HTTP_OK,
                     apr_psprintf(r->pool, "%s forgotten", node));
}

int cs_admin_handler(request_rec *r)
{
    cs_server_conf *sc;
    const char *node = NULL, *cmd = NULL;
    static const char *const cmds[] = { "drain", "undrain", "forget", NULL };
    ap_dbd_t *dbd;
    int i, found;

    if (!r->handler || strcmp(r->handler, "clusterstorage-admin") != 0) {
        return DECLINED;
    }
    r->allowed = AP_METHOD_BIT << M_POST;
    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    sc = cs_sconf(r->server);
    if (!sc->store.state_dir) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(134)
                      "clusterstorage-admin in a server that is not a node");
        return HTTP_NOT_FOUND;
    }
    for (i = 0; cmds[i]; i++) {
        const char *v = cs_query_arg(r, cmds[i]);
        if (v) {
            if (cmd) {
                cmd = NULL;     /* one command at a time */
                break;
            }
            cmd = cmds[i];
            node = v;
        }
    }
    if (!cmd || !cs_node_name_ok(node)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CSLOG(135)
                      "admin: no command: POST ?drain=NODE, ?undrain=NODE "
                      "or ?forget=NODE (one, with a valid node name)");
        return cs_answer(r, HTTP_BAD_REQUEST,
                         "POST ?drain=NODE, ?undrain=NODE or ?forget=NODE");
    }
    if (!(dbd = cs_registry_acquire(r))) {
        return cs_unavailable(r);
    }
    if (strcmp(cmd, "forget") == 0) {
        return cs_forget(r, dbd, node);
    }
    if (cs_registry_set_draining(r->server, r->pool, dbd, node,
                                 strcmp(cmd, "drain") == 0, &found)
        != APR_SUCCESS) {
        return cs_unavailable(r);
    }
    if (!found) {
        return cs_answer(r, HTTP_NOT_FOUND,
                         apr_psprintf(r->pool, "no node %s", node));
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, CSLOG(130)
                  "admin: node %s %s", node,
                  strcmp(cmd, "drain") == 0
                  ? "drains: its copies go to other nodes, it takes no new "
                    "ones"
                  : "no longer drains");
    return cs_answer(r, HTTP_OK,
                     apr_psprintf(r->pool, "%s %s", node,
                                  strcmp(cmd, "drain") == 0
                                  ? "drains" : "no longer drains"));
}
