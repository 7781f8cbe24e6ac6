/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * scrub.c - the background scrub; see scrub.h.
 *
 * A pass walks the root depth first, each directory's entries in byte
 * order, so that "the last path checked" is a position the walk can
 * return to: a path's components compare as strings, a parent before
 * its children.  A step (one watchdog call) walks from that position for
 * a few seconds and writes it down.
 */
#include "scrub.h"
#include "cache.h"
#include "peer.h"
#include "registry.h"
#include "store.h"

#include "apr_strings.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

/* How long one step walks before it writes its position down. */
#define CS_SCRUB_STEP apr_time_from_sec(5)
/* The token bucket holds at most this much of the rate. */
#define CS_SCRUB_BURST apr_time_from_msec(250)
#define CS_SCRUB_STATE "scrub"

typedef struct {
    server_rec *s;              /* the node this is the state of */
    int loaded;                 /* read from the state file */
    apr_time_t pass_start;      /* 0: no pass running */
    apr_time_t next_pass;       /* the next pass starts no earlier */
    char cursor[CS_KEY_MAX * 2 + 2];    /* the last path checked */
    /* this pass, for CS210 (since this process took it over) */
    apr_uint64_t files, bytes, damaged;
} cs_scrub_state_t;

/* The watchdog thread of the scrub is the only user (one per httpd). */
static cs_scrub_state_t cs_scrubs[64];

typedef struct {
    server_rec *s;
    cs_server_conf *sc;
    cs_scrub_state_t *st;
    int (*stop)(void);
    apr_time_t step_end;
    double tokens;              /* bytes that may be read now */
    apr_time_t refilled;
    int stopped;
} cs_scrub_ctx;

static cs_scrub_state_t *cs_state_of(server_rec *s)
{
    size_t i;

    for (i = 0; i < sizeof(cs_scrubs) / sizeof(cs_scrubs[0]); i++) {
        if (cs_scrubs[i].s == s || !cs_scrubs[i].s) {
            cs_scrubs[i].s = s;
            return &cs_scrubs[i];
        }
    }
    return NULL;
}

/* The state file: "PASS_START NEXT_PASS\nCURSOR\n" (microseconds). */
static void cs_state_load(apr_pool_t *p, cs_scrub_ctx *c)
{
    const char *f = apr_pstrcat(p, c->sc->store.state_dir,
                                "/" CS_SCRUB_STATE, NULL);
    char buf[sizeof(c->st->cursor) + 64], *nl, *end;
    apr_size_t n = sizeof(buf) - 1;
    apr_file_t *fh;

    c->st->loaded = 1;
    if (apr_file_open(&fh, f, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return;
    }
    if (apr_file_read_full(fh, buf, n, &n) != APR_SUCCESS && n == 0) {
        apr_file_close(fh);
        return;
    }
    apr_file_close(fh);
    buf[n] = '\0';
    c->st->pass_start = (apr_time_t)apr_strtoi64(buf, &end, 10);
    c->st->next_pass = (apr_time_t)apr_strtoi64(end, &end, 10);
    if (*end == '\n' && (nl = strchr(end + 1, '\n')) != NULL
        && (apr_size_t)(nl - end - 1) < sizeof(c->st->cursor)) {
        memcpy(c->st->cursor, end + 1, nl - end - 1);
        c->st->cursor[nl - end - 1] = '\0';
    }
}

static void cs_state_save(apr_pool_t *p, cs_scrub_ctx *c)
{
    const char *data = apr_psprintf(p, "%" APR_TIME_T_FMT " %" APR_TIME_T_FMT
                                    "\n%s\n", c->st->pass_start,
                                    c->st->next_pass, c->st->cursor);
    apr_status_t rv = cs_store_put_small(p, &c->sc->store, "scrub",
                                         apr_pstrcat(p,
                                                     c->sc->store.state_dir,
                                                     "/" CS_SCRUB_STATE,
                                                     NULL),
                                         NULL, data, strlen(data));

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, c->s, CSLOG(211)
                     "scrub: cannot record its position in %s/"
                     CS_SCRUB_STATE " (a restart begins the pass again)",
                     c->sc->store.state_dir);
    }
}

/* cs_pace_fn: spend n bytes of the rate; wait for more when it is spent.
 * Nonzero when the child is exiting. */
static int cs_scrub_pace(void *baton, apr_size_t n)
{
    cs_scrub_ctx *c = baton;
    double rate = (double)c->sc->scrub_rate;

    c->tokens -= (double)n;
    while (c->tokens < 0) {
        apr_time_t now = apr_time_now();
        double wait = -c->tokens / rate * APR_USEC_PER_SEC;

        if (c->stop()) {
            c->stopped = 1;
            return 1;
        }
        apr_sleep(wait > 100000 ? 100000 : (apr_interval_time_t)wait + 1);
        now = apr_time_now();
        c->tokens += rate * (double)(now - c->refilled) / APR_USEC_PER_SEC;
        c->refilled = now;
    }
    if (c->tokens > rate * CS_SCRUB_BURST / APR_USEC_PER_SEC) {
        c->tokens = rate * CS_SCRUB_BURST / APR_USEC_PER_SEC;
    }
    return 0;
}

/* After a damaged copy of key went to the quarantine: a good copy of the
 * current version from a live holder, verified, in its place (under the
 * key's lock), and this node a holder again.  0, or -1 (the next GET or
 * the repair will). */
static int cs_scrub_refetch(apr_pool_t *p, cs_scrub_ctx *c, ap_dbd_t *dbd,
                            const char *key, const char *path)
{
    apr_array_header_t *holders;
    apr_file_t *lock = NULL;
    cs_entry_t e;
    int i, done = -1;

    if (cs_registry_entry_holders(c->s, p, dbd, key, &e, &holders)
        != APR_SUCCESS || !e.version || e.deleted
        || cs_store_lock_key(p, &c->sc->store, key, &lock) != APR_SUCCESS) {
        return -1;
    }
    for (i = 0; i < holders->nelts && done != 0; i++) {
        cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
        const char *why = "";
        cs_fetch_cause_t cause;
        apr_pool_t *sub;
        cs_tmp_t *tmp;

        if (!h->alive || strcmp(h->name, c->sc->node_name) == 0) {
            continue;
        }
        apr_pool_create(&sub, p);
        if (cs_store_tmp_create(sub, &c->sc->store, "fetch", &tmp)
            == APR_SUCCESS
            && cs_peer_fetch(sub, &c->sc->peer, h->url, key, &e, tmp, NULL,
                             NULL, &why,
                             &cause) == APR_SUCCESS
            && cs_store_make_parents(sub, &c->sc->store, path)
               == APR_SUCCESS
            && cs_store_tmp_seal(tmp, key, &e) == APR_SUCCESS
            && cs_store_install(tmp, path) == APR_SUCCESS) {
            cs_registry_add_replica(c->s, sub, dbd, key, e.version, NULL);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, c->s, CSLOG(215)
                         "scrub: %s v%" APR_UINT64_T_FMT " replaced by a "
                         "good copy from %s", key, e.version, h->name);
            done = 0;
        }
        apr_pool_destroy(sub);  /* a temp file not installed goes too */
    }
    cs_store_unlock_key(lock);
    return done;
}

/* The copy at path was read and its bytes do not have the SHA-256 its
 * attributes name: out of the way, if it is still that file. */
static void cs_scrub_damaged(apr_pool_t *p, cs_scrub_ctx *c,
                             const char *path, const char *key,
                             apr_uint64_t version, const char *sha,
                             const apr_finfo_t *read)
{
    apr_file_t *lock = NULL, *f;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha2[CS_SHA256_HEX_LEN + 1], key2[CS_KEY_MAX + 1];
    const char *dst = NULL;
    ap_dbd_t *dbd;
    apr_status_t rv;

    if (cs_store_lock_key(p, &c->sc->store, key, &lock) != APR_SUCCESS) {
        return;
    }
    if (cs_store_open_file(p, path, 0, &f, &fi) != APR_SUCCESS
        || fi.inode != read->inode || fi.device != read->device
        || cs_store_read_key(f, &v, sha2, key2) != APR_SUCCESS
        || v != version || strcmp(sha2, sha) != 0) {
        cs_store_unlock_key(lock);
        return;                 /* replaced meanwhile: a new copy */
    }
    rv = cs_store_quarantine(p, &c->sc->store, path, &dst);
    cs_store_unlock_key(lock);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, c->s, CSLOG(212)
                     "scrub: copy of %s v%" APR_UINT64_T_FMT " is damaged "
                     "but cannot be moved to the quarantine", key, version);
        return;
    }
    c->st->damaged++;
    CS_COUNT(c->sc, scrub_damaged, 1);
    cs_cache_invalidate(c->sc->cache, key);
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, c->s, CSLOG(209)
                 "scrub: copy of %s v%" APR_UINT64_T_FMT " is damaged (its "
                 "bytes do not match its SHA-256); moved to %s", key,
                 version, dst);
    if (!(dbd = cs_registry_open(c->s, p))
        || cs_registry_drop_replica(c->s, p, dbd, key, version)
           != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, c->s, CSLOG(213)
                     "scrub: cannot tell the registry that this node no "
                     "longer holds %s v%" APR_UINT64_T_FMT " (peers asking "
                     "for it get 404 and ask another holder)", key, version);
    }
    else {
        cs_scrub_refetch(p, c, dbd, key, path);
    }
    cs_registry_close(c->s, dbd);
}

static void cs_scrub_file(apr_pool_t *p, cs_scrub_ctx *c, const char *path)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_uint64_t version, n = 0;
    char sha[CS_SHA256_HEX_LEN + 1], key[CS_KEY_MAX + 1];
    apr_status_t rv;
    int match = 0;

    if (cs_store_open_file(p, path, 0, &f, &fi) != APR_SUCCESS
        || cs_store_read_key(f, &version, sha, key) != APR_SUCCESS) {
        return;                 /* gone, or not one of the module's */
    }
    rv = cs_store_check_sum(p, f, sha, cs_scrub_pace, c, &n, &match);
    CS_COUNT(c->sc, scrub_bytes, n);
    c->st->bytes += n;
    if (rv != APR_SUCCESS) {
        if (!c->stopped) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, c->s, CSLOG(214)
                         "scrub: cannot read %s", path);
        }
        return;
    }
    CS_COUNT(c->sc, scrub_files, 1);
    c->st->files++;
    if (!match) {
        cs_scrub_damaged(p, c, path, key, version, sha, &fi);
    }
}

/* One entry of the walk (cs_store_walk): regular files are checked. */
static cs_walk_t cs_scrub_visit(void *baton, apr_pool_t *p, const char *path,
                                const char *rel, const struct stat *sb)
{
    cs_scrub_ctx *c = baton;

    (void)rel;
    if (!S_ISREG(sb->st_mode)) {
        return CS_WALK_ON;      /* symbolic links and the like */
    }
    cs_scrub_file(p, c, path);
    if (c->stopped) {
        return CS_WALK_AGAIN;   /* this file again next time */
    }
    return c->stop() || apr_time_now() >= c->step_end ? CS_WALK_PAUSE
                                                      : CS_WALK_ON;
}

void cs_scrub_step(server_rec *s, apr_pool_t *p, int (*stop)(void))
{
    cs_scrub_ctx c;
    apr_time_t now = apr_time_now();

    memset(&c, 0, sizeof(c));
    c.s = s;
    c.sc = cs_sconf(s);
    c.stop = stop;
    if (c.sc->scrub_rate <= 0 || !c.sc->store.state_dir
        || !(c.st = cs_state_of(s))) {
        return;
    }
    if (!c.st->loaded) {
        cs_state_load(p, &c);
    }
    if (!c.st->pass_start) {
        if (now < c.st->next_pass) {
            return;
        }
        c.st->pass_start = now;
        c.st->cursor[0] = '\0';
        c.st->files = c.st->bytes = c.st->damaged = 0;
    }
    c.step_end = now + CS_SCRUB_STEP;
    c.refilled = now;
    c.tokens = (double)c.sc->scrub_rate * CS_SCRUB_BURST / APR_USEC_PER_SEC;
    if (!cs_store_walk(p, c.sc->store.root, "", c.st->cursor,
                       sizeof(c.st->cursor), cs_scrub_visit, &c)) {
        CS_COUNT(c.sc, scrub_passes, 1);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, CSLOG(210)
                     "scrub pass done: %" APR_UINT64_T_FMT " copies, %"
                     APR_UINT64_T_FMT " bytes, %" APR_UINT64_T_FMT
                     " damaged, in %" APR_TIME_T_FMT " s", c.st->files,
                     c.st->bytes, c.st->damaged,
                     apr_time_sec(apr_time_now() - c.st->pass_start));
        c.st->next_pass = c.st->pass_start + c.sc->scrub_interval;
        c.st->pass_start = 0;
        c.st->cursor[0] = '\0';
    }
    cs_state_save(p, &c);
}
