#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine:
#   installs what is missing (as root), builds the module, runs the C unit
#   tests, starts private MariaDB + memcached on free 127.0.0.1 ports, runs
#   the Apache::Test suite (t/TEST) and stops everything it started.
# Extra arguments go to t/TEST (e.g. scripts/test.sh t/01_put_get_delete.t).
#
# Apache::Test refuses to run as root (httpd would have to switch users), so
# when started as root this script installs the packages, then runs the suite
# as the unprivileged user "cstest" on a copy of the working tree.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

if [ "$(id -u)" = 0 ]; then
    bash scripts/deps.sh
    # The Debian package, built, installed, checked and purged before the
    # suite (which reads /etc/apache2 and must find it as it was).
    # CS_SKIP_PACKAGE=1 skips it (targeted runs).
    pkg_rc=0
    if [ -z "${CS_SKIP_PACKAGE:-}" ]; then
        echo "== the Debian package"
        bash scripts/package-test.sh || pkg_rc=$?
    fi
    id cstest >/dev/null 2>&1 \
        || useradd --system --user-group --shell /bin/bash --no-create-home \
                   cstest
    WORK=$(mktemp -d /tmp/cs-suite.XXXXXX)
    # The tree as it is (committed or not), without build and run leftovers.
    tar -C "$REPO" --exclude=./.git --exclude=./.state --exclude=./t/logs \
        --exclude=./t/storage --exclude=./.libs --exclude=./src/.libs -cf - . | tar -C "$WORK" -xf -
    # Special file systems for the tests that need them: one without user
    # extended attributes (ramfs) and a small one that fills up (tmpfs).
    mkdir -p "$WORK/t/mnt/noxattr" "$WORK/t/mnt/small"
    mount -t ramfs -o size=1m ramfs "$WORK/t/mnt/noxattr"
    mount -t tmpfs -o size=4m,mode=0755 tmpfs "$WORK/t/mnt/small"
    # davfs2 for t/51_dav_clients.t, mounted by cstest the way Debian lets
    # an ordinary user mount WebDAV (man mount.davfs, "SECURITY POLICY"):
    # mount.davfs setuid root (what `dpkg-reconfigure davfs2` does when
    # unprivileged mounts are allowed; left as it is if an override
    # exists), the user in group davfs2, and an fstab entry with the
    # option `user` for the run's mount point.  That entry names the URL
    # (t/51's front listens on DAVFS_PORT, outside the ports the suite
    # picks at random) and a user configuration file that t/51 writes.
    # The first two stay; the entry goes when this script ends.
    DAVFS_MNT="$WORK/t/mnt/davfs"
    DAVFS_PORT=$(die() { echo "test.sh: $*" >&2; exit 1; }
                 . scripts/lib.sh; PORT_MIN=12000 PORT_MAX=19999 pick_port)
    mkdir -p "$DAVFS_MNT"
    dpkg-statoverride --list /usr/sbin/mount.davfs >/dev/null \
        || dpkg-statoverride --update --add root root 4755 /usr/sbin/mount.davfs
    usermod -a -G davfs2 cstest
    trap 'sed -i "\|# t/51 $WORK\$|d" /etc/fstab' EXIT
    echo "http://127.0.0.1:$DAVFS_PORT/dav/ $DAVFS_MNT davfs user,noauto,conf=$WORK/t/mnt/davfs2.conf 0 0 # t/51 $WORK" >>/etc/fstab
    chown -R cstest:cstest "$WORK"
    chmod 755 "$WORK"
    rc=0
    runuser -u cstest -- env -u CS_STATE_DIR SANITIZE="${SANITIZE:-}" \
        CS_MNT_NOXATTR="$WORK/t/mnt/noxattr" CS_MNT_SMALL="$WORK/t/mnt/small" \
        CS_DAVFS_MNT="$DAVFS_MNT" \
        bash "$WORK/scripts/run-suite.sh" "$@" || rc=$?
    # The same suite against an AddressSanitizer build of the module (the
    # fuzzers already run under ASan).  CS_SKIP_ASAN=1 skips this pass.
    if [ "$rc" = 0 ] && [ -z "${CS_SKIP_ASAN:-}" ] && [ -z "${SANITIZE:-}" ]; then
        echo "==== the suite again, module built with AddressSanitizer"
        runuser -u cstest -- env -u CS_STATE_DIR SANITIZE=address CS_SKIP_FUZZ=1 \
            CS_MNT_NOXATTR="$WORK/t/mnt/noxattr" CS_MNT_SMALL="$WORK/t/mnt/small" \
            CS_DAVFS_MNT="$DAVFS_MNT" \
            bash "$WORK/scripts/run-suite.sh" "$@" || rc=$?
    fi
    umount "$WORK/t/mnt/noxattr" "$WORK/t/mnt/small" || true
    # A davfs2 mount a failed t/51 left behind (before rm -rf walks it).
    if mountpoint -q "$DAVFS_MNT"; then umount -l "$DAVFS_MNT" || true; fi
    if [ "$rc" != 0 ] && [ -d "$WORK/t/logs" ]; then
        echo "== error_log of the failed run (last 60 lines)"
        tail -n 60 "$WORK/t/logs/error_log" || true
    fi
    if [ -n "${CS_KEEP_WORK:-}" ]; then
        echo "work tree kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    if [ "$pkg_rc" != 0 ]; then
        echo "== the Debian package checks failed (see above)"
        [ "$rc" = 0 ] && rc=$pkg_rc
    fi
    exit "$rc"
fi

exec bash scripts/run-suite.sh "$@"
