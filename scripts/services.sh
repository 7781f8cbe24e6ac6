#!/usr/bin/env bash
# services.sh - private MariaDB + memcached instances for mod_clusterstorage
# tests.  Everything lives under $CS_STATE_DIR (default: <repo>/.state) and
# listens on 127.0.0.1 only.  The system's own mariadb/memcached services,
# /var/lib/mysql and /run/mysqld are never touched (no systemctl/service).
#
# Usage: scripts/services.sh <command>
#   start            init (first time) + start MariaDB and memcached, write env
#   stop [--purge]   stop both (TERM, then KILL after a deadline);
#                    --purge also deletes the datadir, logs, ports and env
#   start-db         (re)start MariaDB on the SAME port/datadir
#   stop-db          graceful stop of MariaDB (SIGTERM + wait)
#   kill-db          SIGKILL MariaDB (crash simulation)
#   start-mc         (re)start memcached on the SAME port
#   stop-mc          graceful stop of memcached
#   kill-mc          SIGKILL memcached
#   status           show what is running
#   env              print the env file (source it: eval "$(services.sh env)")
#   sql "STATEMENT"  run SQL as user cs on database clusterstorage over TCP
#                    (batch mode, tab separated, no column names); without
#                    an argument the SQL is read from stdin
#
# A Galera cluster of three MariaDB members beside the single server (for
# the tests of a registry without a single point of failure; not run as
# root: rsync's state transfer must enter the joiner's datadir):
#   galera-start     init (first time) + start members 1-3, wait until all
#                    are synced, print their env (CS_GALERA_PORT1..3)
#   galera-stop [--purge]  stop the members; --purge deletes their state
#   galera-kill N    SIGKILL member N
#   galera-start-member N  start member N again; it joins the others (or
#                    starts a new cluster when none is up) and is synced
#   galera-bootstrap N  make member N, left alone outside the primary
#                    component, a new primary component (pc.bootstrap)
#   galera-pid N     the pid of member N
#   galera-sql N "STATEMENT"  SQL as user cs through member N
#
# Layout of $CS_STATE_DIR:
#   env              shell exports (CS_DB_HOST CS_DB_PORT CS_DB_USER CS_DB_PASS
#                    CS_DB_NAME CS_DB_SOCKET CS_MC_HOST CS_MC_PORT CS_STATE_DIR)
#   ports            DB_PORT=/MC_PORT= chosen at first start, reused afterwards
#   mariadb-data/    datadir          mysql.sock, mariadb.pid, mariadb.err
#   memcached.pid    memcached.log    .lock (flock, serialises invocations)
#
# Running as root: mariadbd refuses to run as root unless given --user=root
# ("Please consult the Knowledge Base to find out how to run mysqld as
# root!").  We pass --user=root (to mariadb-install-db and mariadbd) instead of
# chown'ing everything to mysql: then the state dir, socket, pid and log files
# need no special ownership and the same script works unchanged for non-root
# users (where --user is simply omitted).  memcached likewise refuses to run
# as root without -u, so it gets "-u root".
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

STATE=${CS_STATE_DIR:-$REPO_DIR/.state}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd) # absolute

DATADIR=$STATE/mariadb-data
DB_SOCK=$STATE/mysql.sock
DB_PID=$STATE/mariadb.pid
DB_ERR=$STATE/mariadb.err
DB_OUT=$STATE/mariadb.out
MC_PID=$STATE/memcached.pid
MC_LOG=$STATE/memcached.log
PORTS=$STATE/ports
ENVFILE=$STATE/env
LOCK=$STATE/.lock

DB_NAME=clusterstorage
DB_USER=cs
DB_PASS=cs-test-password

DB_START_TIMEOUT=${CS_DB_START_TIMEOUT:-60}
DB_STOP_TIMEOUT=${CS_DB_STOP_TIMEOUT:-60}
MC_START_TIMEOUT=${CS_MC_START_TIMEOUT:-15}
MC_STOP_TIMEOUT=${CS_MC_STOP_TIMEOUT:-10}

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

die() { echo "services.sh: ERROR: $*" >&2; exit 1; }
log() { echo "services.sh: $*" >&2; }

if ((${#DB_SOCK} > 100)); then
    die "socket path too long for a unix socket (${#DB_SOCK} chars): $DB_SOCK; use a shorter CS_STATE_DIR"
fi

# -------------------------------------------------------------------- helpers

# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# Print the pid from pidfile $1 if it is alive AND its command line contains
# $2 (guards against stale pid files and pid reuse).
our_pid() {
    local f=$1 marker=$2 pid
    [[ -r "$f" ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n "$pid" ]] || return 1
    pid_alive "$pid" || return 1
    [[ "$(cmdline_of "$pid")" == *"$marker"* ]] || return 1
    echo "$pid"
}

db_pid() { our_pid "$DB_PID" "--datadir=$DATADIR"; }
mc_pid() { our_pid "$MC_PID" "$MC_PID"; }

load_ports() {
    DB_PORT="" MC_PORT=""
    if [[ -r "$PORTS" ]]; then
        DB_PORT=$(sed -n 's/^DB_PORT=\([0-9]*\)$/\1/p' "$PORTS")
        MC_PORT=$(sed -n 's/^MC_PORT=\([0-9]*\)$/\1/p' "$PORTS")
    fi
}

save_ports() {
    printf 'DB_PORT=%s\nMC_PORT=%s\n' "$DB_PORT" "$MC_PORT" >"$PORTS.tmp"
    mv -f "$PORTS.tmp" "$PORTS"
}

write_env() {
    {
        printf 'export CS_DB_HOST=127.0.0.1\n'
        printf 'export CS_DB_PORT=%s\n' "$DB_PORT"
        printf 'export CS_DB_USER=%s\n' "$DB_USER"
        printf 'export CS_DB_PASS=%s\n' "$DB_PASS"
        printf 'export CS_DB_NAME=%s\n' "$DB_NAME"
        printf 'export CS_DB_SOCKET=%q\n' "$DB_SOCK"
        printf 'export CS_MC_HOST=127.0.0.1\n'
        printf 'export CS_MC_PORT=%s\n' "$MC_PORT"
        printf 'export CS_STATE_DIR=%q\n' "$STATE"
        # The client options of conf/mariadb-client.cnf (DBDParams
        # group=clusterstorage), read from MARIADB_HOME/my.cnf.
        printf 'export MARIADB_HOME=%q\n' "$STATE/mariadb-client"
    } >"$ENVFILE.tmp"
    mkdir -p "$STATE/mariadb-client"
    cp "$REPO_DIR/conf/mariadb-client.cnf" "$STATE/mariadb-client/my.cnf"
    mv -f "$ENVFILE.tmp" "$ENVFILE"
}

# spawn LOGFILE CMD...: start CMD detached (own session, stdin /dev/null,
# output appended to LOGFILE), with every inherited fd above 2 closed --
# notably our flock fd and any pipes of a calling test harness, which would
# otherwise be held open by the daemon forever.
spawn() {
    local logf=$1
    shift
    (
        for fd in "/proc/$BASHPID/fd"/*; do
            fd=${fd##*/}
            [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
        done
        exec setsid "$@" </dev/null >>"$logf" 2>&1
    ) &
    SPAWNED=$!
}

# stop_pid NAME PID TIMEOUT: SIGTERM, wait until gone, then SIGKILL.
stop_pid() {
    local name=$1 pid=$2 timeout=$3
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    if ! wait_until "$timeout" pid_dead "$pid"; then
        log "$name did not exit within ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 10 pid_dead "$pid" || die "$name (pid $pid) survives SIGKILL"
    fi
}

kill_pid() {
    local name=$1 pid=$2
    log "killing $name (pid $pid) with SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 pid_dead "$pid" || die "$name (pid $pid) survives SIGKILL"
}

# -------------------------------------------------------------------- MariaDB

root_sql() {
    mariadb --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot \
        --batch --skip-column-names -e "$1"
}

db_ping() {
    mariadb-admin --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

db_init() {
    [[ -d "$DATADIR/mysql" ]] && return 0
    local tmp=$DATADIR.init
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "initialising MariaDB datadir $DATADIR"
    local args=(--no-defaults --datadir="$tmp" --auth-root-authentication-method=normal
        --skip-test-db --skip-name-resolve)
    ((IS_ROOT)) && args+=(--user=root)
    if ! mariadb-install-db "${args[@]}" >"$STATE/mariadb-install.log" 2>&1; then
        tail -n 30 "$STATE/mariadb-install.log" >&2
        die "mariadb-install-db failed (full log: $STATE/mariadb-install.log)"
    fi
    mv "$tmp" "$DATADIR" # atomic: a half-initialised datadir is never used
}

# db_launch: start mariadbd on $DB_PORT and wait for it.  Returns 2 if the
# port turned out to be taken (so the caller may pick another one).
db_launch() {
    local args=(--no-defaults --datadir="$DATADIR" --socket="$DB_SOCK"
        --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DB_PID"
        --log-error="$DB_ERR" --skip-name-resolve --innodb-buffer-pool-size=64M)
    ((IS_ROOT)) && args+=(--user=root)
    rm -f "$DB_PID"
    local errsize=0
    [[ -f "$DB_ERR" ]] && errsize=$(stat -c %s "$DB_ERR")
    log "starting mariadbd on 127.0.0.1:$DB_PORT"
    spawn "$DB_OUT" mariadbd "${args[@]}"
    local launcher=$SPAWNED
    db_up_or_dead() { db_ping || ! pid_alive "$launcher"; }
    if wait_until "$DB_START_TIMEOUT" db_up_or_dead && db_ping; then
        db_pid >/dev/null || die "mariadbd answers but pid file $DB_PID is missing/stale"
        return 0
    fi
    if pid_alive "$launcher"; then
        log "mariadbd not ready after ${DB_START_TIMEOUT}s; stopping it"
        stop_pid mariadbd "$launcher" "$DB_STOP_TIMEOUT"
    fi
    wait "$launcher" 2>/dev/null || true
    local newlog
    newlog=$(tail -c +$((errsize + 1)) "$DB_ERR" 2>/dev/null || true)
    if grep -qiE 'Address already in use|Bind on TCP/IP port' <<<"$newlog"; then
        log "port $DB_PORT is taken"
        return 2
    fi
    { echo "$newlog" | tail -n 30; tail -n 10 "$DB_OUT" 2>/dev/null; } >&2
    die "mariadbd failed to start (log: $DB_ERR)"
}

db_setup_user() {
    # mariadb-install-db also creates passwordless root@127.0.0.1, root@::1
    # and root@<hostname>; keep only root@localhost (unix socket in the state
    # dir), which also silences the "ignored in --skip-name-resolve" warnings.
    local h
    for h in $(root_sql "SELECT host FROM mysql.user WHERE user='root' AND host<>'localhost'"); do
        root_sql "DROP USER IF EXISTS 'root'@'$h'" || die "dropping root@$h failed"
    done
    root_sql "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
        CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1';
        GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
        FLUSH PRIVILEGES;" || die "creating database/user failed"
}

# db_start MODE: MODE=any -> may choose a new port; MODE=same -> must reuse.
db_start() {
    local mode=$1 pid
    if pid=$(db_pid); then
        log "mariadbd already running (pid $pid, port $DB_PORT)"
        return 0
    fi
    [[ -d "$DATADIR/mysql" || $mode == any ]] || die "no datadir yet; run '$0 start' first"
    db_init
    local tries=0 rc
    while true; do
        if [[ -z "$DB_PORT" ]] || ! port_free "$DB_PORT"; then
            if [[ $mode == same ]]; then
                [[ -n "$DB_PORT" ]] || die "no DB port recorded; run '$0 start' first"
                # A port can linger briefly after a kill; give it a moment.
                wait_until 10 port_free "$DB_PORT" ||
                    die "DB port $DB_PORT is in use by another process; cannot restart on the same port"
            else
                [[ -n "$DB_PORT" ]] && log "recorded DB port $DB_PORT is busy; picking a new one"
                DB_PORT=$(pick_port "${MC_PORT:-0}")
            fi
        fi
        save_ports
        rc=0
        db_launch || rc=$?
        [[ $rc -eq 0 ]] && break
        tries=$((tries + 1))
        [[ $mode == any && $tries -lt 5 ]] || die "could not start mariadbd on port $DB_PORT"
        DB_PORT=""
    done
    db_setup_user
    log "mariadbd ready on 127.0.0.1:$DB_PORT (pid $(db_pid))"
}

db_stop() {
    local pid
    if pid=$(db_pid); then
        stop_pid mariadbd "$pid" "$DB_STOP_TIMEOUT"
    else
        log "mariadbd is not running"
    fi
}

db_kill() {
    local pid
    if pid=$(db_pid); then kill_pid mariadbd "$pid"; else log "mariadbd is not running"; fi
}

# ------------------------------------------------------------------ memcached

mc_ping() {
    local reply
    reply=$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "version\r\n" >&3
        IFS= read -r line <&3 && printf "%s" "$line"' _ "$MC_PORT" 2>/dev/null) || return 1
    [[ "$reply" == VERSION* ]]
}

mc_launch() {
    local args=(-l 127.0.0.1 -p "$MC_PORT" -U 0 -m 64 -P "$MC_PID")
    ((IS_ROOT)) && args+=(-u root)
    # Not using -d: run in the foreground of its own session (spawn/setsid)
    # so that its startup errors land in memcached.log instead of /dev/null.
    rm -f "$MC_PID"
    local logsize=0
    [[ -f "$MC_LOG" ]] && logsize=$(stat -c %s "$MC_LOG")
    log "starting memcached on 127.0.0.1:$MC_PORT"
    spawn "$MC_LOG" memcached "${args[@]}"
    local launcher=$SPAWNED
    mc_up_or_dead() { mc_ping || ! pid_alive "$launcher"; }
    if wait_until "$MC_START_TIMEOUT" mc_up_or_dead && mc_ping; then
        # memcached writes -P itself; make sure it names the right process
        mc_pid >/dev/null || echo "$launcher" >"$MC_PID"
        mc_pid >/dev/null || die "memcached answers but pid file $MC_PID is wrong"
        return 0
    fi
    if pid_alive "$launcher"; then
        log "memcached not ready after ${MC_START_TIMEOUT}s; stopping it"
        stop_pid memcached "$launcher" "$MC_STOP_TIMEOUT"
    fi
    wait "$launcher" 2>/dev/null || true
    local newlog
    newlog=$(tail -c +$((logsize + 1)) "$MC_LOG" 2>/dev/null || true)
    if grep -qiE 'Address already in use|failed to listen' <<<"$newlog"; then
        log "port $MC_PORT is taken"
        return 2
    fi
    echo "$newlog" | tail -n 20 >&2
    die "memcached failed to start (log: $MC_LOG)"
}

mc_start() {
    local mode=$1 pid
    if pid=$(mc_pid); then
        log "memcached already running (pid $pid, port $MC_PORT)"
        return 0
    fi
    local tries=0 rc
    while true; do
        if [[ -z "$MC_PORT" ]] || ! port_free "$MC_PORT"; then
            if [[ $mode == same ]]; then
                [[ -n "$MC_PORT" ]] || die "no memcached port recorded; run '$0 start' first"
                wait_until 10 port_free "$MC_PORT" ||
                    die "memcached port $MC_PORT is in use by another process; cannot restart on the same port"
            else
                [[ -n "$MC_PORT" ]] && log "recorded memcached port $MC_PORT is busy; picking a new one"
                MC_PORT=$(pick_port "${DB_PORT:-0}")
            fi
        fi
        save_ports
        rc=0
        mc_launch || rc=$?
        [[ $rc -eq 0 ]] && break
        tries=$((tries + 1))
        [[ $mode == any && $tries -lt 5 ]] || die "could not start memcached on port $MC_PORT"
        MC_PORT=""
    done
    log "memcached ready on 127.0.0.1:$MC_PORT (pid $(mc_pid))"
}

mc_stop() {
    local pid
    if pid=$(mc_pid); then
        stop_pid memcached "$pid" "$MC_STOP_TIMEOUT"
    else
        log "memcached is not running"
    fi
    rm -f "$MC_PID"
}

mc_kill() {
    local pid
    if pid=$(mc_pid); then kill_pid memcached "$pid"; else log "memcached is not running"; fi
}

# --------------------------------------------------------------------- Galera

GAL=$STATE/galera
GAL_PORTS=$GAL/ports

gal_dir() { echo "$GAL/m$1"; }
gal_pid() { our_pid "$(gal_dir "$1")/pid" "--defaults-file=$(gal_dir "$1")/my.cnf"; }

gal_root_sql() {
    mariadb --defaults-file="$(gal_dir "$1")/my.cnf" -uroot --batch \
        --skip-column-names --connect-timeout=2 -e "$2" 2>/dev/null
}

gal_status() { gal_root_sql "$1" "SHOW STATUS LIKE '$2'" | cut -f2; }

# Member N is in the primary component, synced and takes queries.
gal_synced() {
    [[ "$(gal_status "$1" wsrep_local_state_comment)" == Synced &&
        "$(gal_status "$1" wsrep_ready)" == ON ]]
}

gal_load_ports() {
    [[ -r "$GAL_PORTS" ]] || return 1
    # shellcheck disable=SC1090
    . "$GAL_PORTS"
}

gal_pick_ports() {
    local n used="${DB_PORT:-0} ${MC_PORT:-0}" kind p
    : >"$GAL_PORTS.tmp"
    for n in 1 2 3; do
        for kind in SQL GCOMM IST SST; do
            p=$(pick_port $used)
            used="$used $p"
            echo "GAL_${kind}_$n=$p" >>"$GAL_PORTS.tmp"
        done
    done
    mv -f "$GAL_PORTS.tmp" "$GAL_PORTS"
}

gal_write_cnf() {
    local n=$1 d sql gcomm ist sst addr
    d=$(gal_dir "$n")
    sql=GAL_SQL_$n gcomm=GAL_GCOMM_$n ist=GAL_IST_$n sst=GAL_SST_$n
    addr="gcomm://127.0.0.1:$GAL_GCOMM_1,127.0.0.1:$GAL_GCOMM_2,127.0.0.1:$GAL_GCOMM_3"
    mkdir -p "$d"
    cat >"$d/my.cnf.tmp" <<CNF
[mysqld]
datadir=$d/data
socket=$d/sock
port=${!sql}
bind-address=127.0.0.1
pid-file=$d/pid
log-error=$d/err
skip-name-resolve
innodb-buffer-pool-size=64M
binlog-format=ROW
innodb-autoinc-lock-mode=2
wsrep-on=ON
wsrep-provider=/usr/lib/galera/libgalera_smm.so
wsrep-cluster-name=clusterstorage-test
wsrep-cluster-address=$addr
wsrep-node-name=m$n
wsrep-node-address=127.0.0.1:${!gcomm}
wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${!gcomm};ist.recv_addr=127.0.0.1:${!ist};gcache.size=32M
wsrep-sst-method=rsync
wsrep-sst-receive-address=127.0.0.1:${!sst}
[client]
socket=$d/sock
CNF
    mv -f "$d/my.cnf.tmp" "$d/my.cnf"
}

# gal_launch N [--wsrep-new-cluster]: start member N, wait until synced.
gal_launch() {
    local n=$1 d
    shift
    d=$(gal_dir "$n")
    mkdir -p "$d/data"
    log "starting Galera member $n on 127.0.0.1:$(eval echo "\$GAL_SQL_$n")${1:+ ($1)}"
    spawn "$d/out" mariadbd --defaults-file="$d/my.cnf" "$@"
    local launcher=$SPAWNED
    gal_up_or_dead() { gal_synced "$n" || ! pid_alive "$launcher"; }
    if wait_until "$DB_START_TIMEOUT" gal_up_or_dead && gal_synced "$n"; then
        return 0
    fi
    pid_alive "$launcher" && stop_pid "galera member $n" "$launcher" "$DB_STOP_TIMEOUT"
    tail -n 30 "$d/err" >&2 || true
    die "Galera member $n did not become synced (log: $d/err)"
}

gal_any_up() {
    local n
    for n in 1 2 3; do
        [[ $n == "${1:-0}" ]] && continue
        gal_pid "$n" >/dev/null && gal_synced "$n" && return 0
    done
    return 1
}

gal_start_member() {
    local n=$1
    if gal_pid "$n" >/dev/null; then
        log "Galera member $n already running"
        return 0
    fi
    if gal_any_up "$n"; then
        gal_launch "$n"
    else
        # No primary component to join: this member starts a new one
        # (its state is the newest: it is the only one left).
        sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' \
            "$(gal_dir "$n")/data/grastate.dat" 2>/dev/null || true
        gal_launch "$n" --wsrep-new-cluster
    fi
}

gal_env() {
    printf 'export CS_GALERA_PORT1=%s\nexport CS_GALERA_PORT2=%s\nexport CS_GALERA_PORT3=%s\n' \
        "$GAL_SQL_1" "$GAL_SQL_2" "$GAL_SQL_3"
}

gal_start() {
    ((IS_ROOT)) && die "galera-start: run as an unprivileged user (rsync's state transfer cannot enter a datadir of root's)"
    [[ -x /usr/lib/galera/libgalera_smm.so || -r /usr/lib/galera/libgalera_smm.so ]] ||
        die "galera-4 is not installed (scripts/deps.sh installs it)"
    mkdir -p "$GAL"
    gal_load_ports || { load_ports; gal_pick_ports; gal_load_ports; }
    local n
    for n in 1 2 3; do gal_write_cnf "$n"; done
    if [[ ! -d "$(gal_dir 1)/data/mysql" ]]; then
        rm -rf "$(gal_dir 1)/data"
        log "initialising Galera member 1"
        mariadb-install-db --defaults-file="$(gal_dir 1)/my.cnf" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$(gal_dir 1)/install.log" 2>&1 ||
            { tail -n 20 "$(gal_dir 1)/install.log" >&2; die "mariadb-install-db failed for member 1"; }
    fi
    for n in 1 2 3; do gal_start_member "$n"; done
    gal_root_sql 1 "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
        CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1';" ||
        die "creating the database and user on Galera failed"
    gal_env >"$GAL/env"
    cat "$GAL/env"
}

gal_stop() {
    local n pid
    gal_load_ports || { log "no Galera cluster here"; return 0; }
    # The last one stopped is the one to bootstrap from next time.
    for n in 3 2 1; do
        if pid=$(gal_pid "$n"); then stop_pid "galera member $n" "$pid" "$DB_STOP_TIMEOUT"; fi
    done
}

# ------------------------------------------------------------------- commands

with_lock() {
    exec 9>"$LOCK"
    flock -w 120 9 || die "could not lock $LOCK (another services.sh running?)"
}

need_env() {
    [[ -r "$ENVFILE" ]] || die "no env file at $ENVFILE; run '$0 start' first"
}

cmd_status() {
    local pid
    load_ports
    if pid=$(db_pid); then echo "mariadb:   running  pid=$pid port=${DB_PORT:-?} socket=$DB_SOCK"
    else echo "mariadb:   stopped  port=${DB_PORT:-none}"; fi
    if pid=$(mc_pid); then echo "memcached: running  pid=$pid port=${MC_PORT:-?}"
    else echo "memcached: stopped  port=${MC_PORT:-none}"; fi
    echo "state:     $STATE"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift

case "$cmd" in
start)
    with_lock
    load_ports
    db_start any
    mc_start any
    write_env
    cat "$ENVFILE"
    ;;
stop)
    purge=0
    case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) die "usage: $0 stop [--purge]" ;;
    esac
    with_lock
    load_ports
    gal_stop
    mc_stop
    db_stop
    if ((purge)); then
        log "purging state in $STATE"
        rm -rf "$DATADIR" "$DATADIR.init" "$GAL"
        rm -f "$PORTS" "$ENVFILE" "$DB_ERR" "$DB_OUT" "$DB_PID" "$DB_SOCK" \
            "$DB_SOCK.lock" "$MC_PID" "$MC_LOG" "$STATE/mariadb-install.log"
    fi
    ;;
start-db)
    with_lock; load_ports; db_start same ;;
stop-db)
    with_lock; load_ports; db_stop ;;
kill-db)
    with_lock; load_ports; db_kill ;;
start-mc)
    with_lock; load_ports
    [[ -n "$MC_PORT" ]] || die "no memcached port recorded; run '$0 start' first"
    mc_start same ;;
stop-mc)
    with_lock; load_ports; mc_stop ;;
kill-mc)
    with_lock; load_ports; mc_kill ;;
status)
    cmd_status ;;
env)
    need_env
    cat "$ENVFILE" ;;
sql)
    need_env
    load_ports
    [[ -n "$DB_PORT" ]] || die "no DB port recorded"
    if [[ $# -gt 0 ]]; then
        stmt=$1
        shift
        MYSQL_PWD=$DB_PASS exec mariadb --no-defaults --protocol=tcp -h 127.0.0.1 \
            -P "$DB_PORT" -u "$DB_USER" --batch --skip-column-names "$@" "$DB_NAME" -e "$stmt"
    else
        MYSQL_PWD=$DB_PASS exec mariadb --no-defaults --protocol=tcp -h 127.0.0.1 \
            -P "$DB_PORT" -u "$DB_USER" --batch --skip-column-names "$DB_NAME"
    fi
    ;;
galera-start)
    with_lock; load_ports; gal_start ;;
galera-stop)
    with_lock; gal_stop
    if [[ "${1:-}" == --purge ]]; then rm -rf "$GAL"; fi ;;
galera-kill)
    with_lock; gal_load_ports || die "no Galera cluster"
    if pid=$(gal_pid "${1:?member}"); then kill_pid "galera member $1" "$pid"; fi ;;
galera-start-member)
    with_lock; gal_load_ports || die "no Galera cluster"
    gal_write_cnf "${1:?member}"; gal_start_member "$1" ;;
galera-bootstrap)
    with_lock; gal_load_ports || die "no Galera cluster"
    # A member whose peers died stays in its primary component until it
    # has evicted them (evs timeouts): bootstrap once it is outside it,
    # again if it falls back out, until it is a primary component, synced.
    gal_bootstrapped() {
        if [[ "$(gal_status "$1" wsrep_cluster_status)" == non-Primary ]]; then
            gal_root_sql "$1" "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'" || true
            return 1
        fi
        [[ "$(gal_status "$1" wsrep_cluster_size)" == 1 ]] && gal_synced "$1"
    }
    wait_until 60 gal_bootstrapped "${1:?member}" ||
        die "member $1 is not a synced primary component of its own after pc.bootstrap" ;;
galera-pid)
    gal_load_ports || die "no Galera cluster"; gal_pid "${1:?member}" ;;
galera-sql)
    gal_load_ports || die "no Galera cluster"
    port=GAL_SQL_${1:?member}
    MYSQL_PWD=$DB_PASS exec mariadb --no-defaults --protocol=tcp -h 127.0.0.1 \
        -P "${!port}" -u "$DB_USER" --batch --skip-column-names "$DB_NAME" -e "${2:?statement}" ;;
"" | -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    [[ -n "$cmd" ]] || exit 2
    ;;
*)
    die "unknown command '$cmd' (try: $0 help)" ;;
esac
