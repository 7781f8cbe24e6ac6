/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * queue.c - the replication queue's job files; see queue.h.
 */
#include "queue.h"

#include "apr_atomic.h"
#include "apr_file_info.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

static volatile apr_uint32_t cs_job_seq;

static const char *cs_queue_dir(apr_pool_t *p, const cs_store_t *st)
{
    return apr_pstrcat(p, st->state_dir, "/queue", NULL);
}

struct cs_queue_bell_t {
    int fd[2];                  /* read end, write end; both non-blocking */
    int sp[2];                  /* the spare job files' names, likewise */
};

/* A spare's name travels as one record of this many bytes (NUL-padded):
 * a read of one record never gets part of another. */
#define CS_SPARE_REC 32
/* The spare files a node keeps at most: the records its pipe holds, 128
 * to a page, here 16 pages: about 2,000 files of one block each (8 MiB),
 * as many jobs as a burst of writes leaves for the drain in a few
 * seconds.  (A page takes records until its end, even when reads have
 * emptied most of it, and is reused once read to its end: the pipe takes
 * 15 to 16 pages of records.) */
#define CS_SPARE_PIPE (16 * 4096)

static const char *cs_spare_dir(apr_pool_t *p, const cs_store_t *st)
{
    return apr_pstrcat(p, st->state_dir, "/spare", NULL);
}

/* A spare job file's name ("spare-PID-SEQ", swept like a temp file once
 * PID is gone) is taken from the bell, or NULL. */
static const char *cs_spare_take(apr_pool_t *p, const cs_store_t *st,
                                 cs_queue_bell_t *bell)
{
    char rec[CS_SPARE_REC + 1];
    apr_size_t i;

    if (!bell || read(bell->sp[0], rec, CS_SPARE_REC) != CS_SPARE_REC) {
        return NULL;
    }
    rec[CS_SPARE_REC] = '\0';
    if (strncmp(rec, "spare-", 6) != 0) {
        return NULL;
    }
    for (i = 6; rec[i]; i++) {
        if (!apr_isdigit(rec[i]) && rec[i] != '-') {
            return NULL;
        }
    }
    return apr_pstrcat(p, cs_spare_dir(p, st), "/", rec, NULL);
}

static apr_status_t cs_job_write(apr_pool_t *p, const cs_store_t *st,
                                 cs_queue_bell_t *bell, const cs_job_t *job,
                                 int sync, const char **path)
{
    const char *name = apr_psprintf(p, "%016" APR_UINT64_T_HEX_FMT
                                    "-%ld-%u.job",
                                    (apr_uint64_t)apr_time_now(),
                                    (long)getpid(),
                                    apr_atomic_inc32(&cs_job_seq));
    const char *dst = apr_pstrcat(p, cs_queue_dir(p, st), "/", name, NULL);
    const char *body = apr_psprintf(p, "CSJ1 %c %" APR_UINT64_T_FMT
                                    "\n%s\n%s", job->op, job->version,
                                    job->key, job->relpath);
    apr_status_t rv = sync ? cs_store_put_small(p, st, "job", dst,
                                                cs_spare_take(p, st, bell),
                                                body, strlen(body))
                           : cs_store_put_small_unsynced(p, st, "job", dst,
                                                         body, strlen(body));

    if (rv == APR_SUCCESS && path) {
        *path = dst;
    }
    return rv;
}

apr_status_t cs_queue_add(apr_pool_t *p, const cs_store_t *st,
                          cs_queue_bell_t *bell, const cs_job_t *job,
                          const char **path)
{
    return cs_job_write(p, st, bell, job, 1, path);
}

apr_status_t cs_queue_add_many(apr_pool_t *p, const cs_store_t *st,
                               const cs_job_t *jobs, int n,
                               const char **paths, apr_uint64_t *dev)
{
    apr_status_t rv = APR_SUCCESS;
    int i, written;

    for (written = 0; written < n && rv == APR_SUCCESS; written++) {
        rv = cs_job_write(p, st, NULL, &jobs[written], 0, &paths[written]);
    }
    if (rv != APR_SUCCESS) {
        written--;
    }
    if (rv == APR_SUCCESS) {
        rv = cs_store_sync_fs(cs_queue_dir(p, st), dev);
    }
    if (rv != APR_SUCCESS) {
        for (i = 0; i < written; i++) {
            unlink(paths[i]);
        }
    }
    return rv;
}

apr_status_t cs_queue_remove(apr_pool_t *p, const char *path)
{
    (void)p;
    if (unlink(path) != 0 && errno != ENOENT) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

void cs_queue_retire(apr_pool_t *p, const cs_store_t *st,
                     cs_queue_bell_t *bell, const char *path)
{
    static volatile apr_uint32_t seq;
    char rec[CS_SPARE_REC];
    const char *spare;

    memset(rec, 0, sizeof(rec));
    snprintf(rec, sizeof(rec), "spare-%ld-%u", (long)getpid(),
             apr_atomic_inc32(&seq));
    spare = apr_pstrcat(p, cs_spare_dir(p, st), "/", rec, NULL);
    /* The file first, then its record: a record names a file that is
     * there.  With no room for the record, the file goes. */
    if (bell && rename(path, spare) == 0) {
        if (write(bell->sp[1], rec, CS_SPARE_REC) != CS_SPARE_REC) {
            unlink(spare);
        }
        return;
    }
    cs_queue_remove(p, path);
}

int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job)
{
    const char *key, *rel;
    size_t klen, rlen;
    uint64_t version;
    char op;

    if (cs_job_decode(buf, len, &op, &version, &key, &klen, &rel, &rlen)
        != 0) {
        return -1;
    }
    job->op = op;
    job->version = version;
    job->key = apr_pstrmemdup(p, key, klen);
    job->relpath = apr_pstrmemdup(p, rel, rlen);
    return 0;
}

apr_status_t cs_queue_read(apr_pool_t *p, const char *path, cs_job_t *job)
{
    apr_file_t *f;
    apr_status_t rv;
    /* The longest job cs_job_decode() accepts: a key and a relpath of
     * CS_KEY_MAX bytes each, the header, and one byte to see a longer one. */
    apr_size_t n = 2 * CS_KEY_MAX + 64, len = 0;
    char *buf;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    buf = apr_palloc(p, n + 1);
    rv = apr_file_read_full(f, buf, n, &len);
    apr_file_close(f);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
        return rv;
    }
    if (len == n) {
        return APR_EINVAL;      /* longer than any job can be */
    }
    return cs_job_parse(p, buf, len, job) == 0 ? APR_SUCCESS : APR_EINVAL;
}

static int cs_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Job file names (not paths), sorted. */
static apr_array_header_t *cs_job_names(apr_pool_t *p, const char *dir)
{
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return names;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        apr_size_t n = strlen(fi.name);
        if (fi.filetype == APR_REG && n > 4
            && strcmp(fi.name + n - 4, ".job") == 0) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
        }
    }
    apr_dir_close(d);
    qsort(names->elts, names->nelts, sizeof(const char *), cs_name_cmp);
    return names;
}

apr_array_header_t *cs_queue_list(apr_pool_t *p, const cs_store_t *st)
{
    const char *dir = cs_queue_dir(p, st);
    apr_array_header_t *names = cs_job_names(p, dir);
    int i;

    for (i = 0; i < names->nelts; i++) {
        const char **n = &APR_ARRAY_IDX(names, i, const char *);
        *n = apr_pstrcat(p, dir, "/", *n, NULL);
    }
    return names;
}

static apr_status_t cs_bell_close(void *data)
{
    cs_queue_bell_t *b = data;

    close(b->fd[0]);
    close(b->fd[1]);
    close(b->sp[0]);
    close(b->sp[1]);
    return APR_SUCCESS;
}

/* The spare files an earlier generation left (those of children that
 * still finish requests across a graceful restart; the sweep at start-up
 * removed the others) get records in the new pipe, or go. */
static void cs_spare_adopt(apr_pool_t *p, const cs_store_t *st,
                           cs_queue_bell_t *b)
{
    const char *dir = cs_spare_dir(p, st);
    apr_dir_t *d;
    apr_finfo_t fi;
    char rec[CS_SPARE_REC];
    apr_size_t n;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        if (fi.filetype != APR_REG || strncmp(fi.name, "spare-", 6) != 0) {
            continue;
        }
        /* A name that does not fit a record, or no room left: the file
         * goes. */
        memset(rec, 0, sizeof(rec));
        n = strlen(fi.name);
        if (n < sizeof(rec)) {
            memcpy(rec, fi.name, n);
        }
        if (n >= sizeof(rec)
            || write(b->sp[1], rec, CS_SPARE_REC) != CS_SPARE_REC) {
            unlink(apr_pstrcat(p, dir, "/", fi.name, NULL));
        }
    }
    apr_dir_close(d);
}

apr_status_t cs_queue_bell_create(apr_pool_t *p, const cs_store_t *st,
                                  cs_queue_bell_t **bell)
{
    cs_queue_bell_t *b = apr_pcalloc(p, sizeof(*b));

    /* Not inherited by what the children exec (CGI, piped logs). */
    if (pipe2(b->fd, O_NONBLOCK | O_CLOEXEC) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (pipe2(b->sp, O_NONBLOCK | O_CLOEXEC) != 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);
        close(b->fd[0]);
        close(b->fd[1]);
        return rv;
    }
    (void)fcntl(b->sp[1], F_SETPIPE_SZ, CS_SPARE_PIPE);
    /* Room for the rings of a few thousand jobs (64 KiB holds about
     * 300) while the drain is behind; where the system allows less, the
     * rings that do not fit are lost, not their jobs. */
    (void)fcntl(b->fd[1], F_SETPIPE_SZ, 1024 * 1024);
    apr_pool_cleanup_register(p, b, cs_bell_close, apr_pool_cleanup_null);
    cs_spare_adopt(p, st, b);
    *bell = b;
    return APR_SUCCESS;
}

/* A job file's name as cs_job_write() makes it ("HEX-PID-SEQ.job"). */
static int cs_job_name_ok(const char *n, apr_size_t len)
{
    apr_size_t i;

    if (len < 5 || len > 64 || memcmp(n + len - 4, ".job", 4) != 0) {
        return 0;
    }
    for (i = 0; i < len - 4; i++) {
        if (!apr_isxdigit(n[i]) && n[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* The longest ring: a job name (cs_job_name_ok), a space, an entry. */
#define CS_RING_MAX (64 + 1 + CS_ENTRY_MAX_LEN + 1)

void cs_queue_ring(cs_queue_bell_t *bell, const char *path,
                   const cs_entry_t *e)
{
    const char *name = strrchr(path, '/');
    char msg[CS_RING_MAX + 1];
    apr_size_t n;
    int m;

    name = name ? name + 1 : path;
    n = strlen(name);
    if (!bell || !cs_job_name_ok(name, n)) {
        return;
    }
    memcpy(msg, name, n);
    if (e && (m = cs_entry_encode(e, msg + n + 1, CS_ENTRY_MAX_LEN + 1)) > 0) {
        msg[n] = ' ';
        n += 1 + (apr_size_t)m;
    }
    msg[n++] = '\n';
    /* One write below PIPE_BUF: never interleaved with another child's.
     * EAGAIN (the pipe is full) loses nothing but promptness. */
    if (write(bell->fd[1], msg, n) < 0) {
        return;
    }
}

/* One ring's line (without its newline) into *out; 0 if it is not one. */
static int cs_ring_parse(apr_pool_t *p, const char *dir, const char *line,
                         apr_size_t len, cs_rung_t *out)
{
    const char *sp = memchr(line, ' ', len);
    apr_size_t nlen = sp ? (apr_size_t)(sp - line) : len;

    if (!cs_job_name_ok(line, nlen)) {
        return 0;
    }
    memset(&out->e, 0, sizeof(out->e));
    if (sp && cs_entry_decode(sp + 1, len - nlen - 1, &out->e) != 0) {
        memset(&out->e, 0, sizeof(out->e));
    }
    out->path = apr_pstrcat(p, dir, "/", apr_pstrmemdup(p, line, nlen),
                            NULL);
    return 1;
}

apr_array_header_t *cs_queue_wait(apr_pool_t *p, const cs_store_t *st,
                                  cs_queue_bell_t *bell,
                                  apr_interval_time_t timeout)
{
    apr_array_header_t *paths = apr_array_make(p, 8, sizeof(cs_rung_t));
    const char *dir = cs_queue_dir(p, st);
    struct pollfd pfd;
    char buf[4096];
    apr_size_t have = 0;
    ssize_t got;

    /* At most a second: the caller looks at its stop condition between
     * waits. */
    if (timeout < 0) {
        timeout = 0;
    }
    if (timeout > apr_time_from_sec(1)) {
        timeout = apr_time_from_sec(1);
    }
    if (!bell) {
        apr_sleep(timeout);
        return paths;
    }
    pfd.fd = bell->fd[0];
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, (int)((timeout + 999) / 1000)) <= 0) {
        return paths;
    }
    /* Read until the pipe is empty.  Rings are whole writes, but a read
     * may end inside one: the rest of it starts the next read. */
    while ((got = read(bell->fd[0], buf + have, sizeof(buf) - have)) > 0) {
        char *line = buf, *end = buf + have + got, *nl;

        while (line < end && (nl = memchr(line, '\n', end - line))) {
            cs_rung_t one;
            if (cs_ring_parse(p, dir, line, (apr_size_t)(nl - line), &one)) {
                APR_ARRAY_PUSH(paths, cs_rung_t) = one;
            }
            line = nl + 1;
        }
        have = end - line;
        if (have >= sizeof(buf) / 2) {
            have = 0;           /* no ring is this long: not one of ours */
        }
        memmove(buf, line, have);
    }
    return paths;
}

void cs_queue_stats(apr_pool_t *p, const cs_store_t *st, int *jobs,
                    apr_int64_t *oldest)
{
    apr_array_header_t *names = cs_job_names(p, cs_queue_dir(p, st));

    *jobs = names->nelts;
    *oldest = 0;
    if (names->nelts) {
        /* Names start with the creation time in hex microseconds. */
        apr_int64_t t = (apr_int64_t)apr_strtoi64(
            APR_ARRAY_IDX(names, 0, const char *), NULL, 16);
        *oldest = apr_time_sec(apr_time_now() - t);
    }
}
