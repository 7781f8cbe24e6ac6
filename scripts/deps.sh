#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages needed to build and test
# mod_clusterstorage.  Idempotent: only missing packages are installed, and
# `apt-get update` runs at most once, and only if something is missing.
#
# No system service is started or enabled: while installing, a policy-rc.d
# that exits 101 ("action forbidden") is put in place (an existing one that
# already forbids is left alone; a permissive one is backed up and restored).
# If a system daemon (mariadb, memcached, apache2) nevertheless came up during
# the install and was not running before, it is stopped again by the PID in
# its *system* pid file -- nothing else is touched.
set -euo pipefail

PACKAGES=(
    apache2 apache2-dev libapr1-dev libaprutil1-dev libaprutil1-dbd-mysql
    memcached mariadb-server mariadb-client libapache2-mod-perl2 libssl-dev
    libwww-perl attr curl php-cli wrk build-essential
    clang libclang-rt-14-dev faketime litmus rclone davfs2 galera-4 rsync iproute2 haproxy
    debhelper dpkg-dev
)

die() { echo "deps.sh: ERROR: $*" >&2; exit 1; }
log() { echo "deps.sh: $*"; }

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found (this script expects Debian/Ubuntu)"

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all ${#PACKAGES[@]} required packages are already installed"
    exit 0
fi

log "missing packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    die "not running as root; cannot install: ${missing[*]} (re-run as root, e.g. sudo $0)"
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found"

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# System pid files of the daemons the packages may try to start.
declare -A SYS_PIDFILES=(
    [mariadb]=/run/mysqld/mysqld.pid
    [memcached]=/run/memcached/memcached.pid
    [apache2]=/run/apache2/apache2.pid
    [haproxy]=/run/haproxy.pid
)
declare -A RUNNING_BEFORE=()

sys_pid() { # print pid of system daemon $1 if its pid file names a live process
    local f=${SYS_PIDFILES[$1]} pid
    [[ -r "$f" ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cleanup() {
    local rc=$?
    restore_policy
    # Stop system daemons that this install brought up (should not happen
    # thanks to policy-rc.d, this is a safety net).
    local svc pid
    for svc in "${!SYS_PIDFILES[@]}"; do
        [[ -n "${RUNNING_BEFORE[$svc]:-}" ]] && continue
        if pid=$(sys_pid "$svc"); then
            log "system service $svc was started by the install (pid $pid); stopping it"
            kill -TERM "$pid" 2>/dev/null || true
            local i
            for ((i = 0; i < 300; i++)); do # up to 30 s
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    exit $rc
}

for svc in "${!SYS_PIDFILES[@]}"; do
    if sys_pid "$svc" >/dev/null; then RUNNING_BEFORE[$svc]=1; fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forbid_service_starts

# -------------------------------------------------------------------- install
export DEBIAN_FRONTEND=noninteractive
log "running apt-get update"
apt-get update || die "apt-get update failed"
log "installing: ${missing[*]}"
apt-get install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"

# verify
still=()
for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || still+=("$p")
done
((${#still[@]} == 0)) || die "packages still not installed after apt-get: ${still[*]}"
log "installed: ${missing[*]}"
