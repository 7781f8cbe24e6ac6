/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * store.c - the local store; see store.h for the promises.
 */
#include "store.h"
#include "crypto.h"

#include "httpd.h"
#include "unixd.h"
#include "apr_hash.h"
#include "apr_strings.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CS_LOCK_STRIPES 1024

struct cs_tmp_t {
    apr_pool_t *pool;
    apr_file_t *file;
    char *path;
    cs_sha256_t *sha;
    apr_uint64_t size;
    int installed;
};

static apr_status_t cs_fsync_parent(apr_pool_t *p, const char *path);

static const char *cs_state_sub(apr_pool_t *p, const char *root,
                                const char *sub)
{
    return apr_pstrcat(p, root, "/" CS_STATE_DIRNAME, sub ? "/" : "",
                       sub ? sub : "", NULL);
}

/* mkdir (if missing) and hand to the server's user when we are root. */
static apr_status_t cs_mkdir_owned(const char *dir, mode_t mode)
{
    struct stat st;

    if (mkdir(dir, mode) != 0 && errno != EEXIST) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (lstat(dir, &st) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        return APR_ENOTDIR;
    }
    if (geteuid() == 0
        && (st.st_uid != ap_unixd_config.user_id
            || st.st_gid != ap_unixd_config.group_id)
        && chown(dir, ap_unixd_config.user_id,
                 ap_unixd_config.group_id) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

/* Can the server's user (after it drops root) write to dir? */
static int cs_user_can_write(const struct stat *st)
{
    uid_t uid = geteuid() == 0 ? ap_unixd_config.user_id : geteuid();
    gid_t gid = geteuid() == 0 ? ap_unixd_config.group_id : getegid();

    if (uid == 0) {
        return 1;
    }
    if (st->st_uid == uid) {
        return (st->st_mode & S_IWUSR) && (st->st_mode & S_IXUSR);
    }
    if (st->st_gid == gid) {
        return (st->st_mode & S_IWGRP) && (st->st_mode & S_IXGRP);
    }
    return (st->st_mode & S_IWOTH) && (st->st_mode & S_IXOTH);
}

/* Remove temp files left by processes that no longer exist.  A temp name
 * carries its creator's pid ("put-PID-XXXXXX"), so files of children that
 * still finish requests across a graceful restart are left alone. */
static void cs_sweep_tmp(apr_pool_t *p, const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;

    if (!d) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        const char *dash = strchr(de->d_name, '-');
        long pid;

        if (de->d_name[0] == '.' || !dash) {
            continue;
        }
        pid = strtol(dash + 1, NULL, 10);
        if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            const char *f = apr_pstrcat(p, tmpdir, "/", de->d_name, NULL);
            char v[32];
            /* A sealed PUT temp file may hold a committed version whose
             * rename the crash prevented: cs_store_recover() decides. */
            if (strncmp(de->d_name, "put-", 4) == 0
                && getxattr(f, CS_XATTR_VERSION, v, sizeof(v)) > 0) {
                continue;
            }
            unlink(f);
        }
    }
    closedir(d);
}

apr_status_t cs_store_init_root(apr_pool_t *p, const char *root,
                                const char **why, int *exact_mtime)
{
    struct stat st;
    struct timespec ts[2];
    static const char *const subs[] = { NULL, "tmp", "queue", "locks",
                                        "quarantine", "spare", NULL };
    const char *probe;
    apr_status_t rv;
    int i, fd;

    if (root[0] != '/') {
        *why = "must be an absolute path";
        return APR_EINVAL;
    }
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *why = "does not exist or is not a directory; create it";
        return APR_ENOTDIR;
    }
    if (!cs_user_can_write(&st)) {
        *why = apr_psprintf(p, "is not writable by the server's user "
                            "(uid %ld); chown or chmod it",
                            (long)ap_unixd_config.user_id);
        return APR_EACCES;
    }
    /* subs[0] == NULL stands for the state directory itself. */
    for (i = 0; i == 0 || subs[i]; i++) {
        const char *dir = cs_state_sub(p, root, subs[i]);
        rv = cs_mkdir_owned(dir, 0750);
        if (rv != APR_SUCCESS) {
            *why = apr_psprintf(p, "cannot create %s: %pm", dir, &rv);
            return rv;
        }
    }
    probe = apr_psprintf(p, "%s/xattr-probe-%ld", cs_state_sub(p, root, "tmp"),
                         (long)getpid());
    fd = open(probe, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        *why = apr_psprintf(p, "cannot create a file in it: %pm", &rv);
        return rv;
    }
    if (fsetxattr(fd, "user.clusterstorage.probe", "1", 1, 0) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        close(fd);
        unlink(probe);
        *why = apr_psprintf(p, "is on a file system without user extended "
                            "attributes (%pm); mount it with user_xattr or "
                            "choose another directory", &rv);
        return rv;
    }
    /* Does the file system keep microseconds of an mtime we set? */
    ts[0].tv_sec = ts[1].tv_sec = 1000000000;
    ts[0].tv_nsec = ts[1].tv_nsec = 123456000;
    *exact_mtime = futimens(fd, ts) == 0 && fstat(fd, &st) == 0
                   && st.st_mtim.tv_sec == ts[1].tv_sec
                   && st.st_mtim.tv_nsec / 1000 == ts[1].tv_nsec / 1000;
    close(fd);
    unlink(probe);
    cs_sweep_tmp(p, cs_state_sub(p, root, "tmp"));
    cs_sweep_tmp(p, cs_state_sub(p, root, "spare"));
    return APR_SUCCESS;
}

/* The close of a copy opened by cs_store_open_file(), by its number, when
 * its pool goes.  Never apr_file_close() such a file: that closes the
 * number first, and this would close it again (maybe another thread's
 * descriptor by then).  The number, not the apr_file_t: the core output
 * filter may set the file aside (apr_file_setaside() leaves -1 in the
 * original and gives the copy no cleanup of its own). */
static apr_status_t cs_close_fd(void *data)
{
    close((int)(apr_uintptr_t)data);
    return APR_SUCCESS;
}

apr_status_t cs_store_open_file(apr_pool_t *p, const char *path,
                                apr_int32_t flags, apr_file_t **f,
                                apr_finfo_t *fi)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    apr_os_file_t osf;
    apr_status_t rv;

    if (fd < 0) {
        return (errno == ENOENT || errno == ELOOP || errno == ENOTDIR)
               ? APR_ENOENT : APR_FROM_OS_ERROR(errno);
    }
    apr_pool_cleanup_register(p, (void *)(apr_uintptr_t)fd, cs_close_fd,
                              apr_pool_cleanup_null);
    osf = fd;
    rv = apr_os_file_put(f, &osf, flags | APR_FOPEN_READ, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(fi, APR_FINFO_NORM, *f);
        if (rv == APR_INCOMPLETE) {
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (fi->filetype != APR_REG) {
        return APR_ENOENT;
    }
    fi->fname = path;
    return APR_SUCCESS;
}

/* The attributes of the open file fd: version, checksum and key (key
 * needs CS_KEY_MAX + 1 bytes; "" when the file does not say).  Copies
 * sealed before .meta existed carry three separate attributes. */
static void cs_meta_of(int fd, apr_uint64_t *version,
                       char sha256[CS_SHA256_HEX_LEN + 1], char *key)
{
    char meta[22 + CS_SHA256_HEX_LEN + 1 + CS_KEY_MAX + 1];
    const char *k;
    size_t klen;
    ssize_t n;

    *version = 0;
    sha256[0] = '\0';
    key[0] = '\0';
    /* The hit path: one attribute with all three. */
    n = fgetxattr(fd, CS_XATTR_META, meta, sizeof(meta) - 1);
    if (n > 0 && cs_meta_decode(meta, (size_t)n, version, sha256, &k, &klen)
                 == 0 && klen <= CS_KEY_MAX) {
        memcpy(key, k, klen);
        key[klen] = '\0';
        return;
    }
    *version = 0;
    sha256[0] = '\0';
    n = fgetxattr(fd, CS_XATTR_KEY, key, CS_KEY_MAX);
    key[n > 0 ? n : 0] = '\0';
    n = fgetxattr(fd, CS_XATTR_VERSION, meta, 31);
    if (n <= 0 || cs_parse_u64(meta, (size_t)n, version) != 0) {
        *version = 0;
    }
    n = fgetxattr(fd, CS_XATTR_SHA256, meta, CS_SHA256_HEX_LEN + 1);
    if (n == CS_SHA256_HEX_LEN && cs_is_sha256_hex(meta, (size_t)n)) {
        memcpy(sha256, meta, CS_SHA256_HEX_LEN);
        sha256[CS_SHA256_HEX_LEN] = '\0';
    }
}

apr_status_t cs_store_read_meta(apr_file_t *f, const char *key,
                                apr_uint64_t *version,
                                char sha256[CS_SHA256_HEX_LEN + 1])
{
    char have[CS_KEY_MAX + 1];
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    cs_meta_of(fd, version, sha256, have);
    /* Another URL may map onto this file: it is this key's copy only if
     * it says so (a copy that names no key is taken at its word). */
    if (key && have[0] && strcmp(have, key) != 0) {
        *version = 0;
        sha256[0] = '\0';
        return APR_EEXIST;
    }
    return APR_SUCCESS;
}

apr_status_t cs_store_read_key(apr_file_t *f, apr_uint64_t *version,
                               char sha256[CS_SHA256_HEX_LEN + 1],
                               char key[CS_KEY_MAX + 1])
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    cs_meta_of(fd, version, sha256, key);
    return *version && sha256[0] && key[0] ? APR_SUCCESS : APR_ENOENT;
}

apr_status_t cs_store_check_sum(apr_pool_t *p, apr_file_t *f,
                                const char *sha256, cs_pace_fn pace,
                                void *baton, apr_uint64_t *read, int *match)
{
    char got[CS_SHA256_HEX_LEN + 1];
    apr_status_t rv = cs_store_hash(p, f, pace, baton, got, read);

    *match = rv == APR_SUCCESS && strcmp(got, sha256) == 0;
    return rv;
}

apr_status_t cs_store_hash(apr_pool_t *p, apr_file_t *f, cs_pace_fn pace,
                           void *baton, char sha256[CS_SHA256_HEX_LEN + 1],
                           apr_uint64_t *read)
{
    char buf[65536];
    cs_sha256_t *h;
    apr_off_t off = 0;
    apr_status_t rv;

    *read = 0;
    sha256[0] = '\0';
    if ((rv = cs_sha256_start(p, &h)) != APR_SUCCESS
        || (rv = apr_file_seek(f, APR_SET, &off)) != APR_SUCCESS) {
        return rv;
    }
    for (;;) {
        apr_size_t n = sizeof(buf);
        rv = apr_file_read(f, buf, &n);
        if (rv == APR_EOF || (rv == APR_SUCCESS && n == 0)) {
            break;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        cs_sha256_update(h, buf, n);
        *read += n;
        if (pace && pace(baton, n) != 0) {
            return APR_EINTR;
        }
    }
    cs_sha256_final_hex(h, sha256);
    return APR_SUCCESS;
}

int cs_store_intact(const cs_store_t *st, const apr_finfo_t *fi,
                    const cs_entry_t *e)
{
    if ((apr_uint64_t)fi->size != e->size) {
        return 0;
    }
    return st->exact_mtime
           ? fi->mtime == (apr_time_t)e->mtime
           : apr_time_sec(fi->mtime) == apr_time_sec((apr_time_t)e->mtime);
}

apr_status_t cs_store_quarantine(apr_pool_t *p, const cs_store_t *st,
                                 const char *path, const char **dst)
{
    const char *slash = strrchr(path, '/');
    const char *to = apr_psprintf(p, "%s/quarantine/%" APR_UINT64_T_HEX_FMT
                                  "-%s", st->state_dir,
                                  (apr_uint64_t)apr_time_now(),
                                  slash ? slash + 1 : path);
    apr_status_t rv;

    if (rename(path, to) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (dst) {
        *dst = to;
    }
    rv = cs_fsync_parent(p, path);
    if (rv == APR_SUCCESS) {
        rv = cs_fsync_parent(p, to);
    }
    return rv;
}

apr_status_t cs_store_open(apr_pool_t *p, const char *path, const char *key,
                           apr_int32_t flags, apr_file_t **f,
                           apr_finfo_t *fi, apr_uint64_t *version,
                           char sha256[CS_SHA256_HEX_LEN + 1])
{
    apr_status_t rv = cs_store_open_file(p, path, flags, f, fi);

    if (rv != APR_SUCCESS) {
        *version = 0;
        sha256[0] = '\0';
        return rv;
    }
    return cs_store_read_meta(*f, key, version, sha256);
}

static apr_status_t cs_tmp_cleanup(void *data)
{
    cs_tmp_t *t = data;

    if (!t->installed && t->path) {
        unlink(t->path);
    }
    return APR_SUCCESS;
}

apr_status_t cs_store_tmp_create(apr_pool_t *p, const cs_store_t *st,
                                 const char *prefix, cs_tmp_t **tp)
{
    cs_tmp_t *t = apr_pcalloc(p, sizeof(*t));
    apr_status_t rv;

    t->pool = p;
    t->path = apr_psprintf(p, "%s/tmp/%s-%ld-XXXXXX", st->state_dir, prefix,
                           (long)getpid());
    rv = apr_file_mktemp(&t->file, t->path,
                         APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                         | APR_FOPEN_EXCL | APR_FOPEN_BUFFERED
                         | APR_FOPEN_BINARY, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* Registered after mktemp's own close cleanup, so it runs first;
     * unlinking an open file is fine. */
    apr_pool_cleanup_register(p, t, cs_tmp_cleanup, apr_pool_cleanup_null);
    rv = cs_sha256_start(p, &t->sha);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_file_buffer_set(t->file, apr_palloc(p, 65536), 65536);
    *tp = t;
    return APR_SUCCESS;
}

apr_status_t cs_store_tmp_write(cs_tmp_t *t, const char *buf, apr_size_t len)
{
    apr_status_t rv = apr_file_write_full(t->file, buf, len, NULL);

    if (rv == APR_SUCCESS) {
        cs_sha256_update(t->sha, buf, len);
        t->size += len;
    }
    return rv;
}

apr_status_t cs_store_tmp_append_file(cs_tmp_t *t, apr_file_t *f,
                                      apr_off_t from, apr_off_t len)
{
    char buf[65536];
    apr_off_t pos = from;
    apr_status_t rv = apr_file_seek(f, APR_SET, &pos);

    while (rv == APR_SUCCESS && len != 0) {
        apr_size_t n = len < 0 || len > (apr_off_t)sizeof(buf)
                       ? sizeof(buf) : (apr_size_t)len;
        rv = apr_file_read(f, buf, &n);
        if (rv == APR_EOF) {
            /* Short: the caller asked for bytes the file does not have. */
            return len < 0 ? APR_SUCCESS : APR_EOF;
        }
        if (rv == APR_SUCCESS) {
            rv = cs_store_tmp_write(t, buf, n);
            if (len > 0) {
                len -= n;
            }
        }
    }
    return rv;
}

apr_status_t cs_store_tmp_append_tmp(cs_tmp_t *t, cs_tmp_t *src)
{
    apr_status_t rv = apr_file_flush(src->file);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return cs_store_tmp_append_file(t, src->file, 0, (apr_off_t)src->size);
}

apr_status_t cs_store_tmp_prefix_sha(apr_pool_t *p, cs_tmp_t *t,
                                     apr_uint64_t len,
                                     char sha256[CS_SHA256_HEX_LEN + 1])
{
    char buf[65536];
    cs_sha256_t *h;
    apr_os_file_t fd;
    apr_uint64_t off = 0;
    apr_status_t rv;

    if (len > t->size) {
        return APR_EOF;
    }
    if ((rv = apr_file_flush(t->file)) != APR_SUCCESS
        || (rv = apr_os_file_get(&fd, t->file)) != APR_SUCCESS
        || (rv = cs_sha256_start(p, &h)) != APR_SUCCESS) {
        return rv;
    }
    /* pread: the file's position (where the next write goes) stays. */
    while (off < len) {
        size_t want = len - off > sizeof(buf) ? sizeof(buf)
                                              : (size_t)(len - off);
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return got < 0 ? APR_FROM_OS_ERROR(errno) : APR_EOF;
        }
        cs_sha256_update(h, buf, (size_t)got);
        off += (apr_uint64_t)got;
    }
    cs_sha256_final_hex(h, sha256);
    return APR_SUCCESS;
}

void cs_store_tmp_digest(cs_tmp_t *t, apr_uint64_t *size,
                         char sha256[CS_SHA256_HEX_LEN + 1])
{
    cs_sha256_final_hex(t->sha, sha256);
    *size = t->size;
}

/* The attributes of version e of key on fd; -1 with errno on failure. */
static int cs_set_meta(apr_pool_t *p, int fd, const char *key,
                       const cs_entry_t *e)
{
    char ver[32];
    const char *meta;

    apr_snprintf(ver, sizeof(ver), "%" APR_UINT64_T_FMT, e->version);
    meta = apr_pstrcat(p, ver, " ", e->sha256, " ", key, NULL);
    if (fsetxattr(fd, CS_XATTR_VERSION, ver, strlen(ver), 0) != 0
        || fsetxattr(fd, CS_XATTR_SHA256, e->sha256, strlen(e->sha256), 0)
        || fsetxattr(fd, CS_XATTR_META, meta, strlen(meta), 0) != 0) {
        return -1;
    }
    return 0;
}

apr_status_t cs_store_tmp_seal(cs_tmp_t *t, const char *key,
                               const cs_entry_t *e)
{
    apr_os_file_t fd;
    struct timespec ts[2];
    apr_status_t rv;

    rv = apr_file_flush(t->file);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_os_file_get(&fd, t->file);
    if (cs_set_meta(t->pool, fd, key, e) != 0 || fchmod(fd, 0644) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    ts[0].tv_sec = ts[1].tv_sec = (time_t)(e->mtime / APR_USEC_PER_SEC);
    ts[0].tv_nsec = ts[1].tv_nsec = (long)(e->mtime % APR_USEC_PER_SEC) * 1000;
    if (futimens(fd, ts) != 0 || fsync(fd) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

/* Remove dir if it holds nothing but (recursively) empty directories:
 * what a removed collection leaves behind on a node.  0 if it is gone. */
static int cs_prune_empty(const char *dir, int depth)
{
    DIR *d;
    struct dirent *de;
    int busy = 0;

    if (depth > 64 || !(d = opendir(dir))) {
        return -1;
    }
    while (!busy && (de = readdir(d)) != NULL) {
        char sub[4096];
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name)
            >= (int)sizeof(sub)
            || lstat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode)
            || cs_prune_empty(sub, depth + 1) != 0) {
            busy = 1;
        }
    }
    closedir(d);
    return busy ? -1 : rmdir(dir);
}

apr_status_t cs_store_make_parents(apr_pool_t *p, const cs_store_t *st,
                                   const char *path)
{
    char *cur = apr_pstrdup(p, path);
    char *s = cur + st->root_len;
    struct stat sb;

    if (strncmp(path, st->root, st->root_len) != 0 || *s != '/') {
        return CS_STORE_EUNSAFE;
    }
    while ((s = strchr(s + 1, '/')) != NULL) {
        *s = '\0';
        if (lstat(cur, &sb) != 0) {
            if (errno != ENOENT
                || (mkdir(cur, 0755) != 0 && errno != EEXIST)
                || lstat(cur, &sb) != 0) {
                return APR_FROM_OS_ERROR(errno);
            }
        }
        if (S_ISLNK(sb.st_mode)) {
            return CS_STORE_EUNSAFE;
        }
        if (!S_ISDIR(sb.st_mode)) {
            return APR_ENOTDIR;
        }
        *s = '/';
    }
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)
        && cs_prune_empty(path, 0) != 0) {
        return APR_FROM_OS_ERROR(EISDIR);
    }
    return APR_SUCCESS;
}

static apr_status_t cs_fsync_parent(apr_pool_t *p, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = apr_pstrndup(p, path, slash > path ? (apr_size_t)(slash - path)
                                                   : 1);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(fd);
    return rv;
}

apr_status_t cs_store_install_unsynced(cs_tmp_t *t, const char *path)
{
    if (rename(t->path, path) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    t->installed = 1;
    return APR_SUCCESS;
}

apr_status_t cs_store_install(cs_tmp_t *t, const char *path)
{
    apr_status_t rv = cs_store_install_unsynced(t, path);

    return rv == APR_SUCCESS ? cs_fsync_parent(t->pool, path) : rv;
}

apr_status_t cs_store_remove(apr_pool_t *p, const char *path)
{
    if (unlink(path) != 0) {
        return errno == ENOENT ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    return cs_fsync_parent(p, path);
}

apr_status_t cs_store_relabel(apr_pool_t *p, apr_file_t *f, const char *key,
                              const cs_entry_t *e)
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    return cs_set_meta(p, fd, key, e) == 0 ? APR_SUCCESS
                                           : APR_FROM_OS_ERROR(errno);
}

/* Paths in walk order: '/' sorts before every other byte. */
static int cs_path_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = *a == '/' ? 1 : (unsigned char)*a;
        int y = *b == '/' ? 1 : (unsigned char)*b;
        if (x != y || !x) {
            return x - y;
        }
    }
}

static int cs_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cs_store_walk(apr_pool_t *pool, const char *dir, const char *rel,
                  char *cursor, apr_size_t cursor_size, cs_visit_fn visit,
                  void *baton)
{
    apr_array_header_t *names;
    apr_pool_t *p;
    DIR *d;
    struct dirent *de;
    int i, more = 0;

    apr_pool_create(&p, pool);
    if (!(d = opendir(dir))) {
        apr_pool_destroy(p);
        return 0;
    }
    names = apr_array_make(p, 64, sizeof(char *));
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || (!*rel && strcmp(de->d_name, CS_STATE_DIRNAME) == 0)) {
            continue;
        }
        APR_ARRAY_PUSH(names, char *) = apr_pstrdup(p, de->d_name);
    }
    closedir(d);
    qsort(names->elts, names->nelts, sizeof(char *), cs_name_cmp);
    for (i = 0; i < names->nelts && !more; i++) {
        const char *name = APR_ARRAY_IDX(names, i, char *);
        const char *crel = apr_pstrcat(p, rel, "/", name, NULL);
        const char *path = apr_pstrcat(p, dir, "/", name, NULL);
        size_t cl = strlen(crel);
        struct stat sb;
        apr_pool_t *sub;
        cs_walk_t next;
        int inside = strncmp(cursor, crel, cl) == 0 && cursor[cl] == '/';

        if (cursor[0] && !inside && cs_path_cmp(crel, cursor) <= 0) {
            continue;           /* done before */
        }
        if (lstat(path, &sb) != 0) {
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            more = cs_store_walk(p, path, crel, cursor, cursor_size, visit,
                                 baton);
            continue;
        }
        apr_pool_create(&sub, p);
        next = visit(baton, sub, path, crel, &sb);
        apr_pool_destroy(sub);
        if (next == CS_WALK_AGAIN) {
            more = 1;
            break;
        }
        if (cl < cursor_size) {
            memcpy(cursor, crel, cl + 1);
        }
        more = next == CS_WALK_PAUSE;
    }
    apr_pool_destroy(p);
    return more;
}

apr_status_t cs_store_label_unsynced(apr_pool_t *p, apr_file_t *f,
                                     const char *key, const cs_entry_t *e)
{
    apr_os_file_t fd;
    struct timespec ts[2];

    apr_os_file_get(&fd, f);
    ts[0].tv_sec = ts[1].tv_sec = (time_t)(e->mtime / APR_USEC_PER_SEC);
    ts[0].tv_nsec = ts[1].tv_nsec = (long)(e->mtime % APR_USEC_PER_SEC) * 1000;
    if (cs_set_meta(p, fd, key, e) != 0 || futimens(fd, ts) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

apr_status_t cs_store_sync_file(apr_file_t *f)
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    return fsync(fd) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

apr_status_t cs_store_label_in_place(apr_pool_t *p, apr_file_t *f,
                                     const char *key, const cs_entry_t *e)
{
    apr_status_t rv = cs_store_label_unsynced(p, f, key, e);

    return rv == APR_SUCCESS ? cs_store_sync_file(f) : rv;
}

apr_status_t cs_store_unlabel(apr_file_t *f)
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    fremovexattr(fd, CS_XATTR_META);
    fremovexattr(fd, CS_XATTR_SHA256);
    fremovexattr(fd, CS_XATTR_VERSION);
    return fsync(fd) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

apr_status_t cs_store_rename(const char *from, const char *to)
{
    return rename(from, to) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

apr_status_t cs_store_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;

    if (fd < 0) {
        return errno == ENOENT ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    if (fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(fd);
    return rv;
}

void cs_store_prune(const cs_store_t *st, const char *dir)
{
    if (strncmp(dir, st->root, st->root_len) == 0
        && dir[st->root_len] == '/') {
        cs_prune_empty(dir, 0);
    }
}

/* Write data to a temp file and rename it to dst; fsynced (file, then
 * dst's directory) when sync is set. */
static apr_status_t cs_put_small(apr_pool_t *p, const cs_store_t *st,
                                 const char *prefix, const char *dst,
                                 const char *spare, const char *data,
                                 apr_size_t len, int sync)
{
    const char *slash = strrchr(dst, '/');
    const char *tmp = apr_psprintf(p, "%s/tmp/%s-%ld-%s", st->state_dir,
                                   prefix, (long)getpid(),
                                   slash ? slash + 1 : dst);
    apr_status_t rv = APR_SUCCESS;
    int fd = -1;

    /* A spare file taken over keeps its inode: no inode is made here, and
     * none was freed when it was retired (queue.h). */
    if (spare && rename(spare, tmp) == 0) {
        fd = open(tmp, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            unlink(tmp);
        }
    }
    if (fd < 0) {
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    while (len > 0 && rv == APR_SUCCESS) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno != EINTR) {
                rv = APR_FROM_OS_ERROR(errno);
            }
            continue;
        }
        data += n;
        len -= (apr_size_t)n;
    }
    if (rv == APR_SUCCESS && sync && fsync(fd) != 0) {
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
    if (sync && (rv = cs_fsync_parent(p, dst)) != APR_SUCCESS) {
        unlink(dst);
    }
    return rv;
}

apr_status_t cs_store_put_small(apr_pool_t *p, const cs_store_t *st,
                                const char *prefix, const char *dst,
                                const char *spare, const char *data,
                                apr_size_t len)
{
    return cs_put_small(p, st, prefix, dst, spare, data, len, 1);
}

apr_status_t cs_store_put_small_unsynced(apr_pool_t *p, const cs_store_t *st,
                                         const char *prefix, const char *dst,
                                         const char *data, apr_size_t len)
{
    return cs_put_small(p, st, prefix, dst, NULL, data, len, 0);
}

apr_status_t cs_store_sync_fs(const char *path, apr_uint64_t *dev)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    apr_status_t rv = APR_SUCCESS;
    struct stat sb;

    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (fstat(fd, &sb) != 0 || syncfs(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    else if (dev) {
        *dev = (apr_uint64_t)sb.st_dev;
    }
    close(fd);
    return rv;
}

apr_status_t cs_store_sync_fs_of(apr_file_t *f)
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    return syncfs(fd) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

/* The lock stripe of key. */
static apr_uint32_t cs_stripe(const char *key)
{
    apr_uint32_t h = 2166136261u;       /* FNV-1a */
    const unsigned char *k;

    for (k = (const unsigned char *)key; *k; k++) {
        h = (h ^ *k) * 16777619u;
    }
    return h % CS_LOCK_STRIPES;
}

/* Take the exclusive flock of the lock file name in the locks dir (nb:
 * APR_EBUSY at once if someone holds it). */
static apr_status_t cs_lock_file_nb(apr_pool_t *p, const cs_store_t *st,
                                    const char *name, int nb,
                                    apr_file_t **lock)
{
    const char *path = apr_pstrcat(p, st->state_dir, "/locks/", name, NULL);
    apr_os_file_t fd;
    apr_status_t rv;

    rv = apr_file_open(lock, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_os_file_get(&fd, *lock);
    /* flock, not fcntl: each open file description is its own owner, so
     * two threads of one process exclude each other too. */
    while (flock(fd, nb ? LOCK_EX | LOCK_NB : LOCK_EX) != 0) {
        if (errno != EINTR) {
            rv = errno == EWOULDBLOCK ? APR_EBUSY : APR_FROM_OS_ERROR(errno);
            apr_file_close(*lock);
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t cs_lock_file(apr_pool_t *p, const cs_store_t *st,
                                 const char *name, apr_file_t **lock)
{
    return cs_lock_file_nb(p, st, name, 0, lock);
}

apr_status_t cs_store_lock_key(apr_pool_t *p, const cs_store_t *st,
                               const char *key, apr_file_t **lock)
{
    return cs_lock_file(p, st, apr_psprintf(p, "%04x", cs_stripe(key)),
                        lock);
}

apr_status_t cs_store_lock_keys(apr_pool_t *p, const cs_store_t *st,
                                const char *k1, const char *k2,
                                apr_file_t **l1, apr_file_t **l2)
{
    apr_uint32_t s1 = cs_stripe(k1), s2 = cs_stripe(k2);
    apr_status_t rv;

    *l1 = *l2 = NULL;
    /* Always the lower stripe first: two nodes' worth of MOVEs in
     * opposite directions cannot wait for each other. */
    rv = cs_store_lock_key(p, st, s1 <= s2 ? k1 : k2, l1);
    if (rv == APR_SUCCESS && s1 != s2
        && (rv = cs_store_lock_key(p, st, s1 <= s2 ? k2 : k1, l2))
           != APR_SUCCESS) {
        cs_store_unlock_key(*l1);
        *l1 = NULL;
    }
    return rv;
}

struct cs_lockset_t {
    int n;
    apr_file_t **locks;
};

static int cs_u32_cmp(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

apr_status_t cs_store_lock_many(apr_pool_t *p, const cs_store_t *st,
                                const char *const *keys, int n,
                                cs_lockset_t **out)
{
    cs_lockset_t *ls = apr_pcalloc(p, sizeof(*ls));
    apr_uint32_t *stripes = apr_palloc(p, sizeof(*stripes) * (n + 1));
    apr_status_t rv = APR_SUCCESS;
    int i, m = 0;

    for (i = 0; i < n; i++) {
        stripes[i] = cs_stripe(keys[i]);
    }
    qsort(stripes, n, sizeof(*stripes), cs_u32_cmp);
    ls->locks = apr_pcalloc(p, sizeof(*ls->locks) * (n + 1));
    /* Each stripe once (a second flock of it would wait for the first),
     * lowest first, as cs_store_lock_keys() takes them. */
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        if (i > 0 && stripes[i] == stripes[i - 1]) {
            continue;
        }
        rv = cs_lock_file(p, st, apr_psprintf(p, "%04x", stripes[i]),
                          &ls->locks[m]);
        if (rv == APR_SUCCESS) {
            m++;
        }
    }
    ls->n = m;
    if (rv != APR_SUCCESS) {
        cs_store_unlock_many(ls);
        ls = NULL;
    }
    *out = ls;
    return rv;
}

apr_status_t cs_store_trylock_many(apr_pool_t *p, const cs_store_t *st,
                                   const char *const *keys, int n,
                                   int *busy, cs_lockset_t **out)
{
    cs_lockset_t *ls = apr_pcalloc(p, sizeof(*ls));
    apr_hash_t *seen = apr_hash_make(p);
    apr_status_t rv = APR_SUCCESS;
    int i;

    ls->locks = apr_pcalloc(p, sizeof(*ls->locks) * (n + 1));
    /* Nothing waits here, so the order does not matter; each stripe is
     * tried once and its answer holds for all its keys. */
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        const char *name = apr_psprintf(p, "%04x", cs_stripe(keys[i]));
        int *state = apr_hash_get(seen, name, APR_HASH_KEY_STRING);
        if (!state) {
            apr_status_t lrv;
            state = apr_palloc(p, sizeof(*state));
            lrv = cs_lock_file_nb(p, st, name, 1, &ls->locks[ls->n]);
            if (lrv == APR_SUCCESS) {
                ls->n++;
            }
            else if (lrv != APR_EBUSY) {
                rv = lrv;
            }
            *state = lrv != APR_SUCCESS;
            apr_hash_set(seen, name, APR_HASH_KEY_STRING, state);
        }
        busy[i] = *state;
    }
    if (rv != APR_SUCCESS) {
        cs_store_unlock_many(ls);
        ls = NULL;
    }
    *out = ls;
    return rv;
}

void cs_store_unlock_many(cs_lockset_t *ls)
{
    int i;

    for (i = 0; ls && i < ls->n; i++) {
        cs_store_unlock_key(ls->locks[i]);
    }
    if (ls) {
        ls->n = 0;
    }
}

apr_status_t cs_store_lock_named(apr_pool_t *p, const cs_store_t *st,
                                 const char *name, apr_file_t **lock)
{
    return cs_lock_file(p, st, name, lock);
}

apr_status_t cs_store_trylock_named(apr_pool_t *p, const cs_store_t *st,
                                    const char *name, apr_file_t **lock)
{
    return cs_lock_file_nb(p, st, name, 1, lock);
}

void cs_store_unlock_key(apr_file_t *lock)
{
    if (lock) {
        apr_file_close(lock);   /* closing the description drops the flock */
    }
}

apr_status_t cs_store_recover(apr_pool_t *p, const cs_store_t *st,
                              cs_recover_fn decide, void *baton,
                              int *recovered)
{
    const char *tmpdir = apr_pstrcat(p, st->state_dir, "/tmp", NULL);
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    apr_status_t result = APR_SUCCESS;

    *recovered = 0;
    if (!d) {
        return APR_FROM_OS_ERROR(errno);
    }
    while ((de = readdir(d)) != NULL) {
        const char *f, *relpath = NULL;
        char key[CS_KEY_MAX + 1], sha[CS_SHA256_HEX_LEN + 1];
        apr_uint64_t version;
        long pid;
        int fd, verdict;

        if (strncmp(de->d_name, "put-", 4) != 0) {
            continue;
        }
        pid = strtol(de->d_name + 4, NULL, 10);
        if (pid > 0 && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            continue;           /* its process still runs */
        }
        f = apr_pstrcat(p, tmpdir, "/", de->d_name, NULL);
        fd = open(f, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        cs_meta_of(fd, &version, sha, key);
        close(fd);
        if (version == 0 || !key[0]) {
            unlink(f);
            continue;
        }
        verdict = decide(baton, key, version, &relpath);
        if (verdict < 0) {
            result = APR_EAGAIN;        /* registry down: try again later */
            continue;
        }
        if (verdict > 0 && relpath) {
            const char *path = apr_pstrcat(p, st->root, relpath, NULL);
            struct stat sb;
            char lv[32];
            uint64_t local = 0;
            ssize_t ln = getxattr(path, CS_XATTR_VERSION, lv, sizeof(lv));

            if (ln > 0 && cs_parse_u64(lv, (size_t)ln, &local) != 0) {
                local = 0;
            }
            if (local < version
                && cs_store_make_parents(p, st, path) == APR_SUCCESS
                && (lstat(path, &sb) != 0 || S_ISREG(sb.st_mode))
                && rename(f, path) == 0) {
                cs_fsync_parent(p, path);
                (*recovered)++;
                continue;
            }
        }
        unlink(f);
    }
    closedir(d);
    return result;
}
