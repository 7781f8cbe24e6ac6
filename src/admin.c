/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * admin.c - the clusterstorage-admin handler; see admin.h.
 */
#include "admin.h"
#include "crypto.h"
#include "queue.h"
#include "registry.h"
#include "request.h"
#include "store.h"
#include "write.h"

#include "http_protocol.h"
#include "http_request.h"
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

/* ---- adopt ------------------------------------------------------------ */

/* At most this many files per POST (the request's pool holds what each
 * file's statements allocate), and no more while the replication queue
 * holds this many jobs (adoption goes at the pace replication keeps). */
#define CS_ADOPT_BATCH     1000
#define CS_ADOPT_QUEUE_MAX 2000

enum { CS_A_FILES, CS_A_BYTES, CS_A_NEW, CS_A_KNOWN, CS_A_MATCHED,
       CS_A_CONFLICTS, CS_A_REFUSED, CS_A_TOTAL, CS_A_N };
static const char *const cs_a_names[CS_A_N] = {
    "files", "bytes", "adopted", "known", "matched", "conflicts", "refused",
    "total" };

/* Files decided together: one registry transaction, one syncfs(), one
 * PURGEKEYS per node (cs_adopt_batch()); fewer when they hold more than
 * CS_ADOPT_GROUP_BYTES, since a group's key locks are held while its
 * files are hashed. */
#define CS_ADOPT_GROUP 250
#define CS_ADOPT_GROUP_BYTES (APR_INT64_C(64) * 1024 * 1024)

typedef struct {
    request_rec *r;
    cs_server_conf *sc;
    const char *prefix;         /* the key of the directory, no '/' at the end */
    apr_time_t until;
    int batch;                  /* files visited in this POST */
    int status;                 /* not OK: stop and answer it */
    int waiting;                /* stopped for the replication queue */
    apr_int64_t n[CS_A_N];
    char cursor[CS_KEY_MAX + 1];        /* after the last file done */
    char walked[CS_KEY_MAX + 1];        /* after the last file visited */
    apr_pool_t *gp;             /* the group's */
    cs_adopt_item_t group[CS_ADOPT_GROUP];
    const char *rels[CS_ADOPT_GROUP];
    int ngroup;
    apr_int64_t gbytes;         /* the group's bytes to hash */
} cs_adopt_ctx;

/* The state of the adoption of prefix: "CURSOR\nN0 N1 ...\n". */
static const char *cs_adopt_state(apr_pool_t *p, cs_server_conf *sc,
                                  const char *prefix)
{
    char hex[CS_SHA256_HEX_LEN + 1];

    cs_sha256_hex(prefix, strlen(prefix), hex);
    hex[16] = '\0';
    return apr_pstrcat(p, sc->store.state_dir, "/adopt-", hex, NULL);
}

static void cs_adopt_load(apr_pool_t *p, cs_adopt_ctx *c, const char *file)
{
    char buf[CS_KEY_MAX + 400], *nl, *tok, *last;
    apr_size_t n = sizeof(buf) - 1;
    apr_file_t *fh;
    int i = 0;

    if (apr_file_open(&fh, file, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        c->n[CS_A_TOTAL] = -1;          /* a new adoption */
        return;
    }
    apr_file_read_full(fh, buf, n, &n);
    apr_file_close(fh);
    buf[n] = '\0';
    if (!(nl = strchr(buf, '\n')) || (apr_size_t)(nl - buf) > CS_KEY_MAX) {
        c->n[CS_A_TOTAL] = -1;
        return;
    }
    memcpy(c->cursor, buf, nl - buf);
    c->cursor[nl - buf] = '\0';
    for (tok = apr_strtok(nl + 1, " \n", &last); tok && i < CS_A_N;
         tok = apr_strtok(NULL, " \n", &last)) {
        c->n[i++] = apr_atoi64(tok);
    }
}

static apr_status_t cs_adopt_save(apr_pool_t *p, cs_adopt_ctx *c,
                                  const char *file)
{
    const char *data = apr_pstrcat(p, c->cursor, "\n", NULL);
    int i;

    for (i = 0; i < CS_A_N; i++) {
        data = apr_psprintf(p, "%s%s%" APR_INT64_T_FMT, data, i ? " " : "",
                            c->n[i]);
    }
    data = apr_pstrcat(p, data, "\n", NULL);
    return cs_store_put_small(p, &c->sc->store, "adopt", file, NULL, data,
                              strlen(data));
}

static cs_walk_t cs_adopt_count(void *baton, apr_pool_t *p, const char *path,
                                const char *rel, const struct stat *sb)
{
    (void)p; (void)path; (void)rel; (void)sb;
    ((cs_adopt_ctx *)baton)->n[CS_A_TOTAL]++;
    return CS_WALK_ON;
}

/* The count of each outcome of cs_adopt_batch(). */
static const int cs_a_counter[] = {
    [CS_ADOPT_NEW] = CS_A_NEW, [CS_ADOPT_KNOWN] = CS_A_KNOWN,
    [CS_ADOPT_MATCHED] = CS_A_MATCHED, [CS_ADOPT_CONFLICT] = CS_A_CONFLICTS,
    [CS_ADOPT_REFUSED] = CS_A_REFUSED, [CS_ADOPT_PENDING] = CS_A_REFUSED };

/* Decide the group; count what was done (in order, up to the first
 * file that was not) and move the cursor past it. */
static void cs_adopt_flush(cs_adopt_ctx *c)
{
    int i, status;

    if (c->ngroup == 0) {
        return;
    }
    status = cs_adopt_batch(c->r, c->sc, c->group, c->ngroup);
    for (i = 0; i < c->ngroup && c->group[i].what != CS_ADOPT_PENDING; i++) {
        cs_adopt_item_t *it = &c->group[i];
        c->n[CS_A_FILES]++;
        c->n[cs_a_counter[it->what]]++;
        if (it->what == CS_ADOPT_NEW || it->what == CS_ADOPT_MATCHED) {
            c->n[CS_A_BYTES] += (apr_int64_t)it->bytes;
        }
        apr_cpystrn(c->cursor, c->rels[i], sizeof(c->cursor));
    }
    if (status != OK || i < c->ngroup) {
        c->status = status != OK ? status : HTTP_SERVICE_UNAVAILABLE;
    }
    c->ngroup = 0;
    c->gbytes = 0;
    apr_pool_clear(c->gp);
}

static cs_walk_t cs_adopt_visit(void *baton, apr_pool_t *p, const char *path,
                                const char *rel, const struct stat *sb)
{
    cs_adopt_ctx *c = baton;
    request_rec *r = c->r;
    cs_adopt_item_t *it;
    const char *key;

    if (c->status != OK || c->batch >= CS_ADOPT_BATCH
        || apr_time_now() >= c->until) {
        return CS_WALK_AGAIN;
    }
    if (c->ngroup == 0) {
        int jobs;
        apr_int64_t oldest;
        cs_queue_stats(p, &c->sc->store, &jobs, &oldest);
        if (jobs >= CS_ADOPT_QUEUE_MAX) {
            c->waiting = 1;
            return CS_WALK_AGAIN;
        }
    }
    c->batch++;
    it = &c->group[c->ngroup];
    c->rels[c->ngroup++] = apr_pstrdup(c->gp, rel);
    it->key = key = apr_pstrcat(c->gp, c->prefix, rel, NULL);
    it->path = apr_pstrdup(c->gp, path);
    it->what = CS_ADOPT_PENDING;
    it->bytes = 0;
    if (!S_ISREG(sb->st_mode)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(139)
                      "adopt: not adopting %s: %s", path,
                      S_ISLNK(sb->st_mode) ? "a symbolic link"
                                           : "not a regular file");
        it->what = CS_ADOPT_REFUSED;
    }
    else if (cs_key_check(key, strlen(key)) != CS_KEY_OK
             || cs_key_is_access_file(r, key)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(140)
                      "adopt: not adopting %s: %s is not a key the module "
                      "takes (too long, dot segments, control bytes, or a "
                      "name httpd reads as configuration)", path, key);
        it->what = CS_ADOPT_REFUSED;
    }
    if (it->what == CS_ADOPT_PENDING) {
        c->gbytes += (apr_int64_t)sb->st_size;
    }
    if (c->ngroup == CS_ADOPT_GROUP || c->gbytes >= CS_ADOPT_GROUP_BYTES) {
        cs_adopt_flush(c);
    }
    return CS_WALK_ON;
}

/* POST ?adopt=KEY-OF-A-DIRECTORY[&seconds=N]: one batch (admin.h). */
static int cs_adopt(request_rec *r, cs_server_conf *sc, const char *prefix)
{
    cs_adopt_ctx *c = apr_pcalloc(r->pool, sizeof(*c));
    const char *secs = cs_query_arg(r, "seconds"), *state, *dir, *json;
    apr_file_t *lock = NULL;
    apr_size_t plen = strlen(prefix);
    request_rec *sub;
    cs_dir_conf *dc;
    int i, more, n = secs ? atoi(secs) : 10;

    while (plen > 1 && prefix[plen - 1] == '/') {
        plen--;
    }
    prefix = apr_pstrmemdup(r->pool, prefix, plen);
    if (cs_key_check(prefix, plen) != CS_KEY_OK || n < 1 || n > 300) {
        return cs_answer(r, HTTP_BAD_REQUEST, "adopt=KEY (a directory's "
                         "path in a ClusterStorage space) [&seconds=1-300]");
    }
    /* Where the directory is, as httpd maps its URL. */
    sub = ap_sub_req_lookup_uri(apr_pstrcat(r->pool, prefix, "/", NULL), r,
                                NULL);
    dc = sub ? cs_dconf(sub) : NULL;
    if (!sub || sub->finfo.filetype != APR_DIR || !sub->filename || !dc
        || dc->enabled != 1 || dc->write != 1
        || strncmp(sub->filename, sc->store.root, sc->store.root_len) != 0
        || (sub->filename[sc->store.root_len] != '/'
            && sub->filename[sc->store.root_len] != '\0')) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(141)
                      "admin: cannot adopt %s: not a directory of a "
                      "ClusterStorage On, ClusterStorageWrite On space below "
                      "ClusterStorageRoot", prefix);
        return cs_answer(r, HTTP_NOT_FOUND,
                         apr_psprintf(r->pool, "%s is not a directory of a "
                                      "writable ClusterStorage space", prefix));
    }
    dir = apr_pstrdup(r->pool, sub->filename);
    for (plen = strlen(dir); plen > 1 && dir[plen - 1] == '/'; plen--) {
        ((char *)dir)[plen - 1] = '\0';
    }
    if (!cs_registry_acquire(r)) {
        return cs_unavailable(r);
    }
    c->r = r;
    c->sc = sc;
    c->prefix = prefix;
    c->status = OK;
    state = cs_adopt_state(r->pool, sc, prefix);
    /* One batch of a prefix at a time (a client that went away may have
     * left its batch running): the next one waits, then goes on from
     * where it ended. */
    if (cs_store_lock_named(r->pool, &sc->store,
                            apr_pstrcat(r->pool, strrchr(state, '/') + 1,
                                        ".lock", NULL), &lock)
        != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    cs_adopt_load(r->pool, c, state);
    if (c->n[CS_A_TOTAL] < 0) {         /* first batch: count the files */
        char none[1] = "";
        memset(c->n, 0, sizeof(c->n));
        c->cursor[0] = '\0';
        cs_store_walk(r->pool, dir, "", none, 1, cs_adopt_count, c);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, CSLOG(142)
                      "admin: adopting %s (%s): %" APR_INT64_T_FMT " files",
                      prefix, dir, c->n[CS_A_TOTAL]);
    }
    c->until = apr_time_now() + apr_time_from_sec(n);
    apr_pool_create(&c->gp, r->pool);
    memcpy(c->walked, c->cursor, sizeof(c->walked));
    more = cs_store_walk(r->pool, dir, "", c->walked, sizeof(c->walked),
                         cs_adopt_visit, c);
    cs_adopt_flush(c);
    /* A group that was not done all through is walked again from the
     * last file done. */
    more = more || c->status != OK;
    if (more && cs_adopt_save(r->pool, c, state) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(143)
                      "admin: cannot save where the adoption of %s is (%s)",
                      prefix, state);
    }
    if (!more) {
        apr_file_remove(state, r->pool);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, CSLOG(144)
                      "admin: adoption of %s done: %" APR_INT64_T_FMT
                      " files, %" APR_INT64_T_FMT " adopted, %" APR_INT64_T_FMT
                      " conflicts, %" APR_INT64_T_FMT " refused", prefix,
                      c->n[CS_A_FILES], c->n[CS_A_NEW],
                      c->n[CS_A_CONFLICTS], c->n[CS_A_REFUSED]);
    }
    cs_store_unlock_key(lock);
    if (c->status != OK) {
        return c->status;       /* the registry went away: resume later */
    }
    json = apr_psprintf(r->pool, "{\"prefix\":%s,\"done\":%s,"
                        "\"waiting_for_replication\":%s",
                        cs_json_str(r->pool, prefix), more ? "false" : "true",
                        c->waiting ? "true" : "false");
    for (i = 0; i < CS_A_N; i++) {
        json = apr_psprintf(r->pool, "%s,\"%s\":%" APR_INT64_T_FMT, json,
                            cs_a_names[i], c->n[i]);
    }
    r->status = HTTP_OK;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rprintf(r, "%s}\n", json);
    return OK;
}

int cs_admin_handler(request_rec *r)
{
    cs_server_conf *sc;
    const char *node = NULL, *cmd = NULL;
    static const char *const cmds[] = { "drain", "undrain", "forget", "adopt",
                                        NULL };
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
    if (cmd && strcmp(cmd, "adopt") == 0) {
        return cs_adopt(r, sc, node);
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
