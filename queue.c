/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * queue.c - the durable replication queue; see queue.h.
 */
#include "queue.h"

#include "apr_atomic.h"
#include "apr_strings.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static volatile apr_uint32_t cs_job_seq;

static apr_status_t cs_write_all(int fd, const char *buf, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return APR_FROM_OS_ERROR(errno);
        }
        buf += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t cs_queue_add(apr_pool_t *p, const cs_server_conf *sc,
                          const cs_job_t *job, const char **path)
{
    const char *name = apr_psprintf(p, "%016" APR_UINT64_T_HEX_FMT
                                    "-%ld-%u.job",
                                    (apr_uint64_t)apr_time_now(),
                                    (long)getpid(),
                                    apr_atomic_inc32(&cs_job_seq));
    const char *tmp = apr_pstrcat(p, sc->state_dir, "/tmp/job-",
                                  apr_ltoa(p, (long)getpid()), "-", name,
                                  NULL);
    const char *dst = apr_pstrcat(p, sc->state_dir, "/queue/", name, NULL);
    const char *body = apr_psprintf(p, "CSJ1 %c %" APR_UINT64_T_FMT "\n%s",
                                    job->op, job->version, job->key);
    apr_status_t rv;
    int fd, dfd;

    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    rv = cs_write_all(fd, body, strlen(body));
    if (rv == APR_SUCCESS && fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(fd);
    if (rv == APR_SUCCESS && rename(tmp, dst) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (rv != APR_SUCCESS) {
        unlink(tmp);
        return rv;
    }
    dfd = open(apr_pstrcat(p, sc->state_dir, "/queue", NULL),
               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    if (rv != APR_SUCCESS) {
        unlink(dst);
        return rv;
    }
    if (path) {
        *path = dst;
    }
    return APR_SUCCESS;
}

apr_status_t cs_queue_remove(apr_pool_t *p, const char *path)
{
    (void)p;
    if (unlink(path) != 0 && errno != ENOENT) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job)
{
    const char *nl = memchr(buf, '\n', len);
    const char *sp;
    apr_size_t hlen, klen;

    if (!nl || len < 9 || memcmp(buf, "CSJ1 ", 5) != 0
        || (buf[5] != 'P' && buf[5] != 'D') || buf[6] != ' ') {
        return -1;
    }
    hlen = (apr_size_t)(nl - buf);
    sp = buf + 7;
    if (cs_parse_u64(sp, (size_t)(nl - sp), &job->version) != 0
        || job->version == 0) {
        return -1;
    }
    klen = len - hlen - 1;
    if (memchr(nl + 1, '\0', klen)
        || cs_key_check(nl + 1, klen) != CS_KEY_OK) {
        return -1;
    }
    job->op = buf[5];
    job->key = apr_pstrmemdup(p, nl + 1, klen);
    return 0;
}
