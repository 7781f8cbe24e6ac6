# scripts/lib.sh - shell helpers shared by scripts/services.sh,
# scripts/demo.sh, scripts/deps.sh, scripts/package-test.sh and bench/run.sh
# (sourced; the caller defines die() and log()).

# Random ports come from below the kernel's ephemeral range (so an outgoing
# connection cannot grab them between our probe and the daemon's bind).
PORT_MIN=20000
PORT_MAX=32000

now_ds() { # current time in deciseconds since boot (monotonic)
    local s
    s=$(</proc/uptime)
    s=${s%% *}
    echo $((10#${s%.*} * 10 + 10#${s#*.} / 10))
}

# wait_until TIMEOUT_SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
    local timeout=$1
    shift
    local deadline=$(($(now_ds) + timeout * 10))
    while true; do
        "$@" && return 0
        (($(now_ds) >= deadline)) && return 1
        sleep 0.1
    done
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
pid_dead() { ! pid_alive "$1"; }

# pidfile_pid FILE: the pid in FILE, if that process is alive.
pidfile_pid() {
    local pid
    [[ -r "$1" ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    pid_alive "$pid" || return 1
    echo "$pid"
}

# stop_httpds HTTPD TIMEOUT WHO [NAME CONF PIDFILE]...: "HTTPD -f CONF -k
# stop" for each running server, then wait (with a deadline) until each
# parent is gone; SIGKILL to its children and itself as a last resort.
# WHO prefixes the messages.
stop_httpds() {
    local httpd=$1 timeout=$2 who=$3 name pid
    local -A pids=()
    shift 3
    while (($# >= 3)); do
        name=$1
        if pid=$(pidfile_pid "$3"); then
            pids[$name]=$pid
            echo "$who: stopping $name (pid $pid)"
            "$httpd" -f "$2" -k stop 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        fi
        shift 3
    done
    for name in "${!pids[@]}"; do
        pid=${pids[$name]}
        if ! wait_until "$timeout" pid_dead "$pid"; then
            echo "$who: $name did not stop within ${timeout}s; SIGKILL" >&2
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            wait_until 10 pid_dead "$pid" || true
        fi
    done
}

# port_free PORT: true if 127.0.0.1:PORT can be bound (and nothing listens on
# the wildcard address).  SO_REUSEADDR like mariadbd/memcached use, otherwise
# TIME_WAIT leftovers of the previous instance would make a just-stopped
# port look busy.
port_free() {
    perl -MSocket -e '
        socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 2;
        setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or exit 2;
        bind($s, pack_sockaddr_in($ARGV[0], inet_aton("127.0.0.1"))) or exit 1;
        exit 0;' "$1"
}

# pick_port [EXCLUDE...]: a currently free random port, none of EXCLUDE.
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN)))
        [[ " $* " == *" $p "* ]] && continue
        port_free "$p" && { echo "$p"; return 0; }
    done
    die "could not find a free TCP port in $PORT_MIN..$PORT_MAX"
}

# sed_escape STRING: STRING for the replacement side of s|...|...|.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# Keeping packages from starting system services while they are installed
# (root only): a policy-rc.d that exits 101 ("action forbidden") is put in
# place unless one that forbids is there already; an existing permissive
# one is backed up.  restore_policy puts things back (call it on exit).
POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
POLICY_CREATED=0

policy_forbids() {
    # A policy-rc.d that exits 101 for a start request forbids service starts.
    [[ -x "$POLICY" ]] || return 1
    local rc=0
    "$POLICY" mariadb start >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 101 ]]
}

forbid_service_starts() {
    if policy_forbids; then
        log "existing $POLICY already forbids service starts; keeping it"
        return 0
    fi
    if [[ -e "$POLICY" ]]; then
        POLICY_BACKUP=$(mktemp "$POLICY.deps-backup.XXXXXX")
        cp -p "$POLICY" "$POLICY_BACKUP"
        log "temporarily replacing $POLICY (backup: $POLICY_BACKUP)"
    else
        POLICY_CREATED=1
        log "creating temporary $POLICY (exit 101) to keep services from starting"
    fi
    printf '#!/bin/sh\n# temporary, created by mod_clusterstorage scripts\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
}

restore_policy() {
    if [[ -n "$POLICY_BACKUP" ]]; then
        mv -f "$POLICY_BACKUP" "$POLICY" && log "restored original $POLICY"
    elif ((POLICY_CREATED)); then
        rm -f "$POLICY" && log "removed temporary $POLICY"
    fi
    POLICY_BACKUP="" POLICY_CREATED=0
}
