#!/usr/bin/env bash
# bench/run.sh - mod_clusterstorage beside native httpd, in one run.
#
#   bash bench/run.sh            # full run (5 rounds of 5 s, 1 GiB RSS test;
#                                #   about 5-7 minutes)
#   bash bench/run.sh --quick    # 3 rounds of 2 s, 256 MiB RSS test (~2 min)
#   options: --perf  also profile the 4 KB hit (perf record -p of node A's and
#                    of native's children; bench/perfdiff.pl ranks the extra
#                    CPU time per request) into bench/out/perf-4k.txt
#            --keep  keep the state directory (configs, logs, files)
#            --rows N  fill the registry with N more keys before measuring
#                    (rows of cs_files and two holder rows each, A's and
#                    B's, made in SQL; no files behind them): replication
#                    lag, the status page and everything else measured
#                    beside a registry of that size (e.g. --rows 1000000)
#            --hold  set everything up (services, nodes, files), print the
#                    URLs and wait for Ctrl-C instead of measuring (for
#                    profiling or poking at the nodes by hand); started in
#                    the background (`bash bench/run.sh --hold &`), it
#                    ignores SIGINT as every background job of a shell
#                    does: stop it with kill -TERM
#
# As root on a Debian 12 machine with at least 2 CPUs.  Steps: install what
# is missing (scripts/deps.sh, wrk included), build (make -f Makefile.apxs),
# start a private MariaDB + memcached (scripts/services.sh, state in a fresh
# mktemp directory), then on free 127.0.0.1 ports three Debian
# /usr/sbin/apache2 instances (mpm_event, sendfile, the same MPM/keep-alive
# settings from bench/common.conf.in):
#   native  DocumentRoot with the same test files; mod_dav_fs on /files/put/
#   A, B    cluster nodes (bench/node.conf.in): /files is ClusterStorage On +
#           Write On, ClusterStorageReplicas 2, memcached, heartbeat 1 s
# Every httpd is pinned to CPU 0 (taskset -c 0) and every load generator
# (wrk -t1 -c16, curl, perl) to CPU 1; MariaDB and memcached are not pinned.
# The test files (121 KB and 4 KB of random bytes) are PUT into node A and
# copied into the native DocumentRoot under the same URL paths.
#
# Measured, native and module interleaved (the order alternates per round);
# the table shows medians over the rounds and, as the ratio, the median of
# the per-round ratios module/native.  Each GET run starts once both CPUs
# are at most 10 % busy (up to 15 s), so that MariaDB flushing what the
# PUT and cold runs wrote does not slow one side of a pair only:
#   GET hit 121 KB, 4 KB    wrk req/s on A vs native
#   GET 404                 an absent key on A vs a missing file on native
#   cold GET                N distinct 121 KB keys that B lacks (B's copies
#                           are deleted from its disk before each round, so
#                           B fetches each from A): keys/s with each key GET
#                           once on B (bench/keys.lua, mode once), vs native
#                           GETs over the same N files (mode loop)
#   cold GET vs pull-through  the same, against what one would build by
#                           hand (bench/pull.conf.in): mod_proxy fetching
#                           each key once from native, mod_cache_disk
#                           keeping it (its cache emptied before each
#                           round); the CPU of that httpd and of native is
#                           the pull-through's, A's, B's and mariadbd's the
#                           module's (goals: 0.8 of its keys/s, no more CPU)
#   PUT 4 KB                distinct paths (bench/put.lua) on A vs mod_dav_fs
#                           (3 s runs, 1 s in --quick; A's replication queue
#                           is drained before the next measurement, and the
#                           drain rate is reported as replication throughput)
# and once:
#   cold GET latency        one client (curl, one keep-alive connection),
#                           each key once: $LAT_N of the 121 KB keys and
#                           $BIG16_N keys of 16 MiB, on B (its copies
#                           deleted), on the pull-through (its cache
#                           emptied) and on native (from disk): p50 / p99
#                           of the time to the first byte and to the last
#   replication lag         50 and 200 PUT/s for 10 s each (6 s in --quick) on A, open
#                           loop (8 client processes, 20 at 200/s); from each 201 until the
#                           copy appears in B's root (bench/lag.pl): p50/p99
#   peak RSS growth         of any httpd child of A and B (of native for the
#                           native column) during a 1 GiB PUT (including
#                           its replication to B) and a 1 GiB cold GET on B;
#                           VmHWM is reset (clear_refs 5) before, growth =
#                           VmHWM after - VmRSS before
# The table (measure | native | module | ratio | goal | met) is printed and
# written to bench/out/latest.md, followed by a second table, "CPU per
# operation (ms, median of rounds)", for the cold GET and PUT runs of every
# round: utime + stime (/proc/PID/stat fields 14 and 15, clock ticks) from
# just before to just after the wrk run, divided by the operations the run
# completed (keys fetched by keys.lua on B; 2xx answers counted by wrk for
# the native cold GET and both PUTs), per process group:
#   httpd      native's, or A's and B's (parents and children, the pids read
#              at each snapshot; native PUT = mod_dav_fs)
#   mariadbd,  the private instances of scripts/services.sh (module runs
#   memcached  only; never a system one)
# The module PUT's replication is drained after the run, so it is left out;
# two more rows (httpd, mariadbd) count until A's queue is drained.  The
# resolution is one clock tick (10 ms at 100 Hz) / the operations per run.
# Every wrk output is kept in the state dir (--keep).  Everything started
# here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH=$REPO/bench
OUT=$BENCH/out

QUICK=0
PERF=0
KEEP=0
HOLD=0
ROWS_EXTRA=0
next_is_rows=0
for a in "$@"; do
    if ((next_is_rows)); then
        [[ $a =~ ^[0-9]+$ ]] || { echo "run.sh: --rows takes a number" >&2; exit 2; }
        ROWS_EXTRA=$a next_is_rows=0
        continue
    fi
    case "$a" in
    --rows) next_is_rows=1 ;;
    --quick) QUICK=1 ;;
    --perf) PERF=1 ;;
    --keep) KEEP=1 ;;
    --hold) HOLD=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

# PUT_DUR: the PUT runs are shorter than the GET runs (DUR) because every
# module PUT leaves a replication job, and the queue is drained (outside
# the measurement) before anything else is measured.  DRAIN_BY: seconds
# after the start by which those waits give up, keeping the whole run
# bounded even when replication is slow (then noted in the table).
if ((QUICK)); then
    ROUNDS=3 DUR=2 PUT_DUR=1 COLD_N=300 LAG_SECS=6 BIG_MIB=256 COLD_MAX=15 DRAIN_TIMEOUT=30 DRAIN_BY=120 LAT_N=100 BIG16_N=6
else
    ROUNDS=5 DUR=5 PUT_DUR=3 COLD_N=600 LAG_SECS=10 BIG_MIB=1024 COLD_MAX=30 DRAIN_TIMEOUT=60 DRAIN_BY=420 LAT_N=200 BIG16_N=12
fi
LAG_RATES=(50 200)   # PUT/s of the replication lag runs
CONNS=16
QUIET_PCT=10    # GET runs start once both CPUs are at most this busy ...
QUIET_MAX=15    # ... or after this many seconds (then noted)
START_TIMEOUT=30
STOP_TIMEOUT=30
HTTPD=/usr/sbin/apache2
T_START=$SECONDS

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
NOTES_FILE=/dev/null   # a file in the state dir once there is one
note() { echo "$*" >>"$NOTES_FILE"; echo "run.sh: NOTE: $*" >&2; }

# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

# ------------------------------------------------------------------ cleanup
STATE=""
SERVICES_STARTED=0
BG_PIDS=()
SERVERS=(native pull A B)
declare -A CONF=() PORT=() DIR=()

server_pid() { pidfile_pid "${DIR[$1]:-/nonexistent}/httpd.pid"; } # pid of server $1's apache2 parent, if running

stop_servers() { # stop_servers SERVER...
    local s args=()
    for s in "$@"; do
        args+=("$s" "${CONF[$s]}" "${DIR[$s]:-/nonexistent}/httpd.pid")
    done
    stop_httpds "$HTTPD" "$STOP_TIMEOUT" run.sh "${args[@]}"
}

cleanup() {
    local rc=$? p s
    trap - EXIT INT TERM
    set +e
    for p in "${BG_PIDS[@]}"; do
        pid_alive "$p" && kill -TERM "$p" 2>/dev/null
    done
    for p in "${BG_PIDS[@]}"; do
        wait_until 10 pid_dead "$p" || kill -KILL "$p" 2>/dev/null
    done
    local started=()
    for s in "${SERVERS[@]}"; do
        [[ -n "${CONF[$s]:-}" ]] && started+=("$s")
    done
    ((${#started[@]})) && stop_servers "${started[@]}"
    if ((SERVICES_STARTED)); then
        CS_STATE_DIR=$STATE bash scripts/services.sh stop --purge >/dev/null 2>&1 ||
            echo "run.sh: stopping the services failed" >&2
    fi
    if [[ -n "$STATE" && -d "$STATE" ]]; then
        rm -f "$STATE"/big.bin "$STATE"/native/htdocs/files/put/big.bin \
            "$STATE"/A/root/files/big/* "$STATE"/B/root/files/big/* 2>/dev/null
        if ((KEEP)) || ((rc != 0)); then
            echo "run.sh: state kept in $STATE (configs, logs, wrk outputs)"
        else
            rm -rf "$STATE"
        fi
    fi
    echo "run.sh: finished in $((SECONDS - T_START)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------- packages and build
[[ $(id -u) -eq 0 ]] || die "run as root (the httpd children run as www-data; VmHWM is reset through /proc/PID/clear_refs)"
(($(nproc) >= 2)) || die "needs at least 2 CPUs (httpd on CPU 0, the load generator on CPU 1)"
mkdir -p "$OUT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

say "installing what is missing (scripts/deps.sh)"
bash scripts/deps.sh

say "building the module (make -f Makefile.apxs)"
make -f Makefile.apxs >"$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log"; die "build failed (log: $OUT/build.log)"; }
MODULE_SO=$REPO/.libs/mod_clusterstorage.so
[[ -f "$MODULE_SO" ]] || die "the build did not produce $MODULE_SO"
for c in wrk taskset curl perl "$HTTPD"; do
    command -v "$c" >/dev/null || die "$c not found"
done
MODULES=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)
RUN_USER=www-data
RUN_GROUP=www-data

# ------------------------------------------------------------------ services
STATE=$(mktemp -d /tmp/cs-bench.XXXXXX)
chmod 755 "$STATE"
export CS_STATE_DIR=$STATE
LOGS=$STATE/logs
mkdir -p "$LOGS"
NOTES_FILE=$STATE/notes
: >"$NOTES_FILE"

say "starting private MariaDB + memcached (state in $STATE)"
SERVICES_STARTED=1
bash scripts/services.sh start >"$LOGS/services.log" 2>&1 || { cat "$LOGS/services.log"; die "services.sh start failed"; }
eval "$(bash scripts/services.sh env)"
echo "MariaDB on 127.0.0.1:$CS_DB_PORT, memcached on 127.0.0.1:$CS_MC_PORT"
sql() { bash scripts/services.sh sql "$1" 2>/dev/null; }

# ------------------------------------------------------------------- configs
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
COMMON=$STATE/common.conf
subst() { # subst TEMPLATE OUT NAME=VALUE...
    local tmpl=$1 out=$2 args=() kv
    shift 2
    for kv in "$@"; do
        args+=(-e "s|@${kv%%=*}@|$(sed_escape "${kv#*=}")|g")
    done
    sed "${args[@]}" "$tmpl" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then
        die "unsubstituted placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | head -n 1)"
    fi
}
subst "$BENCH/common.conf.in" "$COMMON" MODULES="$MODULES" USER="$RUN_USER" GROUP="$RUN_GROUP"

for s in "${SERVERS[@]}"; do
    DIR[$s]=$STATE/$s
    PORT[$s]=$(pick_port "${PORT[@]}" "$CS_DB_PORT" "$CS_MC_PORT")
    CONF[$s]=$STATE/$s/httpd.conf
done
N=${DIR[native]}
mkdir -p "$N/htdocs/files/bench" "$N/htdocs/files/cold" "$N/htdocs/files/put" "$N/davlock"
chown -R "$RUN_USER:$RUN_GROUP" "$N/htdocs/files/put" "$N/davlock"
subst "$BENCH/native.conf.in" "${CONF[native]}" DIR="$N" PORT="${PORT[native]}" \
    COMMON="$COMMON" MODULES="$MODULES"
P=${DIR[pull]}
mkdir -p "$P/htdocs" "$P/cache"
chown -R "$RUN_USER:$RUN_GROUP" "$P/cache"
subst "$BENCH/pull.conf.in" "${CONF[pull]}" DIR="$P" PORT="${PORT[pull]}" \
    COMMON="$COMMON" MODULES="$MODULES" ORIGIN="http://127.0.0.1:${PORT[native]}"
for s in A B; do
    d=${DIR[$s]}
    mkdir -p "$d/htdocs" "$d/root/files"
    chown -R "$RUN_USER:$RUN_GROUP" "$d/root"
    subst "$BENCH/node.conf.in" "${CONF[$s]}" DIR="$d" ROOT="$d/root" NAME="$s" \
        PORT="${PORT[$s]}" COMMON="$COMMON" MODULES="$MODULES" MODULE_SO="$MODULE_SO" \
        SECRET="$SECRET" MC_PORT="$CS_MC_PORT" DB_PORT="$CS_DB_PORT" \
        DB_USER="$CS_DB_USER" DB_PASS="$CS_DB_PASS" DB_NAME="$CS_DB_NAME" \
        LOCAL_CACHE="${CS_BENCH_LOCAL_CACHE:-On}"
done
A_ROOT=${DIR[A]}/root
B_ROOT=${DIR[B]}/root
URL_N=http://127.0.0.1:${PORT[native]}
URL_P=http://127.0.0.1:${PORT[pull]}
URL_A=http://127.0.0.1:${PORT[A]}
URL_B=http://127.0.0.1:${PORT[B]}

# -------------------------------------------------------------------- start
answers() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:${PORT[$1]}/" 2>/dev/null) || true
    [[ -n "$code" && "$code" != 000 ]]
}
answers_or_dead() { answers "$1" || ! server_pid "$1" >/dev/null; }
for s in "${SERVERS[@]}"; do
    say "starting $s on http://127.0.0.1:${PORT[$s]} (pinned to CPU 0)"
    taskset -c 0 "$HTTPD" -f "${CONF[$s]}" -k start ||
        die "$s did not start (log: ${DIR[$s]}/error_log)"
    wait_until "$START_TIMEOUT" answers_or_dead "$s" && answers "$s" ||
        { tail -n 20 "${DIR[$s]}/error_log" >&2; die "$s does not answer (log: ${DIR[$s]}/error_log)"; }
    echo "children: $(pgrep -P "$(server_pid "$s")" | tr '\n' ' ')"
done
both_live() {
    [[ "$(sql 'SELECT COUNT(*) FROM cs_nodes WHERE UNIX_TIMESTAMP() - heartbeat <= 3 * period' || echo 0)" == 2 ]]
}
wait_until 30 both_live || die "nodes A and B are not both live in cs_nodes after 30 s"
echo "A and B are live in the registry"

# --------------------------------------------------------------------- files
FILES=$STATE/files
mkdir -p "$FILES/cold"
head -c $((121 * 1024)) /dev/urandom >"$FILES/121k.bin"
head -c 4096 /dev/urandom >"$FILES/4k.bin"
head -c 4096 /dev/urandom >"$FILES/put4k.bin"

put_a() { # put_a FILE KEY: PUT FILE to node A, fail unless 2xx
    local code
    code=$(taskset -c 1 curl -sS -o /dev/null -w '%{http_code}' --max-time 120 --retry 5 \
        -H 'Content-Type: application/octet-stream' -T "$1" "$URL_A$2") || true
    [[ $code == 20? ]] || die "PUT $2 on A answered '$code'"
}
queue_empty() { # node $1's replication queue has no job
    [[ -z "$(find "${DIR[$1]}/root/.clusterstorage/queue" -maxdepth 1 -type f -name '*.job' -print -quit 2>/dev/null)" ]]
}
drain() { # wait for A's queue to empty; note it if it does not
    local t0=$SECONDS t=$DRAIN_TIMEOUT left=$((T_START + DRAIN_BY - SECONDS)) jobs ds0
    ds0=$(now_ds)
    jobs=$(find "$A_ROOT/.clusterstorage/queue" -name '*.job' | wc -l)
    ((left < t)) && t=$left
    ((t < 2)) && t=2
    if ! wait_until "$t" queue_empty A; then
        note "node A's replication queue was not empty ${t}s after $1 ($(find "$A_ROOT/.clusterstorage/queue" -name '*.job' | wc -l) jobs left)"
        return 1
    fi
    echo "  (A's replication queue: $jobs jobs drained in $((SECONDS - t0)) s after $1)"
    if [[ $1 == PUT* ]] && ((jobs >= 100)); then   # replication throughput
        record drain module "$(awk -v j="$jobs" -v t="$(($(now_ds) - ds0))" 'BEGIN { printf "%.1f", j * 10 / (t > 0 ? t : 1) }')"
    fi
}

if ((ROWS_EXTRA > 0)); then
    say "filling the registry with $ROWS_EXTRA more keys (SQL)"
    t0=$SECONDS
    sql "INSERT INTO cs_files (path, version, size, sha256, mtime, deleted, relpath, parent, acked)
         SELECT CONCAT('/files/scale/k', seq), 1, 4096, SHA2(seq, 256), 0, 0,
                CONCAT('/files/scale/k', seq), '/files/scale', 1
         FROM seq_1_to_$ROWS_EXTRA" || die "filling cs_files failed"
    for s in A B; do
        sql "INSERT INTO cs_replicas (path, node, version, stored_at)
             SELECT CONCAT('/files/scale/k', seq), '$s', 1, UNIX_TIMESTAMP()
             FROM seq_1_to_$ROWS_EXTRA" || die "filling cs_replicas failed"
    done
    echo "  $(sql 'SELECT COUNT(*) FROM cs_files') rows in cs_files, $(sql 'SELECT COUNT(*) FROM cs_replicas') in cs_replicas ($((SECONDS - t0)) s)"
fi

say "storing the test files on A (121 KB, 4 KB) and in the native DocumentRoot"
for f in 121k 4k; do
    put_a "$FILES/$f.bin" "/files/bench/$f.bin"
    cp "$FILES/$f.bin" "$N/htdocs/files/bench/$f.bin"
done
COLDLIST=$STATE/cold.list
: >"$COLDLIST"
CURLCFG=$STATE/cold.curl
: >"$CURLCFG"
for ((i = 1; i <= COLD_N; i++)); do
    k=$(printf 'c%05d.bin' "$i")
    head -c $((121 * 1024)) /dev/urandom >"$FILES/cold/$k"
    cp "$FILES/cold/$k" "$N/htdocs/files/cold/$k"
    echo "/files/cold/$k" >>"$COLDLIST"
    printf 'upload-file = "%s"\nurl = "%s"\noutput = "/dev/null"\n' \
        "$FILES/cold/$k" "$URL_A/files/cold/$k" >>"$CURLCFG"
done
echo "PUT $COLD_N distinct 121 KB keys under /files/cold/ on A"
# Sequential, with retries: concurrent PUTs of new keys can fail with 503
# (registry deadlocks, see the notes), which is not what this step measures.
codes=$(taskset -c 1 curl -sS --retry 5 --retry-max-time 60 -H 'Content-Type: application/octet-stream' \
    -w '%{http_code}\n' -K "$CURLCFG" --max-time 120 | sort | uniq -c | tr '\n' ' ')
[[ $codes =~ ^\ *$COLD_N\ 20[14]\ *$ ]] || die "PUT of the cold keys on A answered: $codes"
for f in 121k 4k; do
    cmp -s <(curl -sS --max-time 10 "$URL_A/files/bench/$f.bin") "$FILES/$f.bin" || die "GET /files/bench/$f.bin on A: wrong bytes"
    cmp -s <(curl -sS --max-time 10 "$URL_N/files/bench/$f.bin") "$FILES/$f.bin" || die "GET /files/bench/$f.bin on native: wrong bytes"
done
mkdir -p "$FILES/cold16" "$N/htdocs/files/cold16"
for ((i = 1; i <= BIG16_N; i++)); do
    k=$(printf 'b%03d.bin' "$i")
    head -c $((16 * 1024 * 1024)) /dev/urandom >"$FILES/cold16/$k"
    cp "$FILES/cold16/$k" "$N/htdocs/files/cold16/$k"
    put_a "$FILES/cold16/$k" "/files/cold16/$k"
done
echo "PUT $BIG16_N distinct 16 MiB keys under /files/cold16/ on A"
drain "the initial PUTs" || die "A's replication queue does not drain"
cold_on_b() { find "$B_ROOT/files/cold" -name '*.bin' 2>/dev/null | wc -l; }
[[ $(cold_on_b) == "$COLD_N" ]] || die "B holds $(cold_on_b) of the $COLD_N cold keys after replication"
echo "B holds all $COLD_N cold keys (replicated); their copies on B are deleted before each cold round"

if ((HOLD)); then
    say "--hold: set up; press Ctrl-C (or kill -TERM $$) to stop everything"
    echo "native  $URL_N   (DocumentRoot ${DIR[native]}/htdocs; mod_dav_fs on /files/put/)"
    echo "A       $URL_A   (root $A_ROOT, log ${DIR[A]}/error_log)"
    echo "B       $URL_B   (root $B_ROOT, log ${DIR[B]}/error_log)"
    echo "files   /files/bench/121k.bin /files/bench/4k.bin; cold keys listed in $COLDLIST"
    echo "sql     CS_STATE_DIR=$STATE bash scripts/services.sh sql \"SELECT ...\""
    trap 'exit 0' INT TERM
    sleep infinity &
    BG_PIDS+=($!)
    wait $! || true
    exit 0
fi

# ------------------------------------------------------------------ measure
declare -A VALS=()   # "measure/side" -> per-round values
record() { VALS[$1/$2]+="$3 "; }

LOGTAG=x   # names the log of the next wrk run (set by measure)
wrk_rate() { # wrk_rate EXPECT URL [SCRIPT ARGS...]: req/s of one wrk run
    local expect=$1 url=$2 log rate total non err cmd
    shift 2
    cmd=(wrk -t1 -c$CONNS -d${DUR}s)
    if (($#)); then
        cmd+=(-s "$1" "$url" --)
        shift
        cmd+=("$@")
    else
        cmd+=("$url")
    fi
    log=$LOGS/wrk-$LOGTAG.txt
    echo "${cmd[*]}" >"$log"
    taskset -c 1 "${cmd[@]}" >>"$log" 2>&1 || true
    rate=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
    total=$(awk '/requests in/ { print $1 }' "$log")
    non=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$log")
    err=$(grep -o 'Socket errors:.*' "$log" || true)
    [[ -n "$rate" && -n "$total" ]] || { note "wrk failed on $url (see $log)"; echo nan; return; }
    non=${non:-0}
    if [[ $expect == 2xx && $non != 0 ]]; then
        # Only the 2xx answers count: rate * (total - non) / total.
        note "$non of $total answers were not 2xx on $url (only the 2xx are counted)"
        rate=$(awk -v r="$rate" -v t="$total" -v n="$non" 'BEGIN { printf "%.2f", r * (t - n) / t }')
    elif [[ $expect == 404 && $non != "$total" ]]; then
        note "only $non of $total answers were errors on $url (404 expected)"
    fi
    [[ -n "$err" ]] && note "$url: $err"
    echo "$rate"
}

wrk_keys() { # wrk_keys URL: keys/s, each key of $COLDLIST GET once (keys.lua)
    local url=$1 mode=once res log bad
    log=$LOGS/wrk-$LOGTAG.txt
    res=$LOGS/wrk-$LOGTAG.res
    rm -f "$res"
    echo "wrk keys.lua $mode $url" >"$log"
    taskset -c 1 wrk -t1 -c$CONNS -d${COLD_MAX}s -s "$BENCH/keys.lua" "$url" \
        -- "$COLDLIST" "$mode" "$DUR" "$res" >>"$log" 2>&1 || true
    if [[ ! -s $res ]]; then
        note "keys.lua $mode on $url did not finish within ${COLD_MAX}s ($(grep -E 'requests in|Non-2xx' "$log" | tr -s ' ' | tr '\n' ';'))"
        echo nan
        return
    fi
    cat "$res" >>"$log"
    bad=$(awk '$1 == "bad" { print $2 }' "$res")
    [[ $bad == 0 ]] || note "keys.lua $mode on $url: $bad answers were not 200 ($(awk '$1 == "status" { printf "%s ", $2 }' "$res"))"
    awk '$1 == "rate" { print $2 }' "$res"
}

# ----------------------------------------------------------- CPU accounting
# CPU time per operation of the cold and put runs, per process group:
#   httpd      the side's servers (native, or A and B): each parent and
#              every process in its process group or with it as parent,
#              the pids read at each snapshot (children may change)
#   mariadbd,  (module runs only) the private instances of scripts/services.sh
#   memcached  (pid files in $STATE, checked against their command lines)
# utime + stime (fields 14 and 15 of /proc/PID/stat, in clock ticks) are read
# just before and just after the wrk run; a process is keyed by pid and start
# time, so one started during the run counts from 0 and one that exited is
# left out (noted).  Nothing here may fail the run: a pid whose /proc entry
# is gone is skipped, a run without an operation count is not recorded.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null) || true
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || CLK_TCK=100
declare -A CPU_T0=() CPU_T1=()   # GROUP/PID:STARTTIME -> utime + stime (ticks)

svc_pid() { # svc_pid PIDFILE MARKER: the pid in PIDFILE if alive and its command line has MARKER
    local pid cmd
    pid=$(tr -dc '0-9' 2>/dev/null <"$1") || return 0
    pid_alive "$pid" || return 0
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 0
    if [[ $cmd == *"$2"* ]]; then echo "$pid"; fi
}
cpu_groups() { # cpu_groups SIDE: the process groups accounted on side native|module
    if [[ $1 == native ]]; then echo httpd; else echo httpd mariadbd memcached; fi
}
CPU_PULL=0   # 1 while the native side is the pull-through (it and its peer)
cpu_pids() { # cpu_pids GROUP SIDE: the pids of GROUP now
    local s p servers=(native)
    case $1 in
    httpd)
        [[ $2 == module ]] && servers=(A B)
        [[ $2 == native ]] && ((CPU_PULL)) && servers=(pull native)
        for s in "${servers[@]}"; do
            p=$(server_pid "$s") || continue
            echo "$p"
            pgrep -g "$p" || true
            pgrep -P "$p" || true
        done | sort -un
        ;;
    mariadbd) svc_pid "$STATE/mariadb.pid" "--datadir=$STATE/mariadb-data" ;;
    memcached) svc_pid "$STATE/memcached.pid" "$STATE/memcached.pid" ;;
    esac
}
cpu_snap() { # cpu_snap ARRAY SIDE: ARRAY[GROUP/PID:STARTTIME] = utime + stime now
    local -n snap=$1
    local g p line f
    snap=()
    for g in $(cpu_groups "$2"); do
        for p in $(cpu_pids "$g" "$2"); do
            { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
            # fields from 3 on (field 2, the name in parentheses, may hold spaces)
            read -r -a f <<<"${line##*) }"
            [[ ${f[11]:-} =~ ^[0-9]+$ && ${f[12]:-} =~ ^[0-9]+$ ]] || continue
            # snap names an associative array (CPU_T0 or CPU_T1)
            # shellcheck disable=SC2034,SC2004
            snap[$g/$p:${f[19]:-0}]=$((f[11] + f[12]))
        done
    done
}
ops_done() { # ops_done LOG: operations completed by the wrk run logged in LOG:
    # keys.lua's "requests N" (mode once: keys fetched), else wrk's request
    # count minus the non-2xx answers (as wrk_rate counts)
    awk '$1 == "requests" && NF == 2 { k = $2 }
        / requests in / { t = $1 }
        /Non-2xx or 3xx responses:/ { n = $5 }
        END { if (k != "") print k; else if (t != "") print t - n }' "$1" 2>/dev/null || true
}
cpu_begin() { cpu_snap CPU_T0 "$1"; } # cpu_begin SIDE: snapshot before the run
cpu_end() { # cpu_end NAME SIDE RATE: snapshot after the run; record ms of CPU per operation per group
    local m=$1 side=$2 rate=$3 ops g k ticks gone found
    cpu_snap CPU_T1 "$side"
    [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || return 0   # the run failed (noted by wrk_rate/wrk_keys)
    ops=$(ops_done "$LOGS/wrk-$LOGTAG.txt")
    if ! [[ $ops =~ ^[0-9]+$ ]] || ((ops == 0)); then
        note "CPU accounting: no operation count in $LOGS/wrk-$LOGTAG.txt"
        return 0
    fi
    record "ops-$m" "$side" "$ops"
    for g in $(cpu_groups "$side"); do
        ticks=0 gone=0 found=0
        for k in "${!CPU_T1[@]}"; do
            if [[ $k == "$g"/* ]]; then
                ticks=$((ticks + ${CPU_T1[$k]} - ${CPU_T0[$k]:-0}))
                found=$((found + 1))
            fi
        done
        if ((found == 0)); then
            note "CPU accounting: no $g process found after round $ROUND $m $side"
            continue
        fi
        for k in "${!CPU_T0[@]}"; do
            if [[ $k == "$g"/* && -z ${CPU_T1[$k]+set} ]]; then gone=$((gone + 1)); fi
        done
        if ((gone)); then
            note "CPU accounting: $gone $g process(es) exited during round $ROUND $m $side (their CPU time is not counted)"
        fi
        record "cpu-$m-$g" "$side" "$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$ops" 'BEGIN { printf "%.4f", t * 1000 / hz / n }')"
    done
}

busy_pct() { # busy_pct: percent of all CPUs busy over the next 250 ms (/proc/stat)
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 0.25
    read -r -a b < <(head -n 1 /proc/stat)
    awk -v u0="${a[1]}" -v n0="${a[2]}" -v s0="${a[3]}" -v i0="${a[4]}" -v w0="${a[5]}" \
        -v q0="${a[6]}" -v f0="${a[7]}" -v u1="${b[1]}" -v n1="${b[2]}" -v s1="${b[3]}" \
        -v i1="${b[4]}" -v w1="${b[5]}" -v q1="${b[6]}" -v f1="${b[7]}" 'BEGIN {
        busy = (u1 - u0) + (n1 - n0) + (s1 - s0) + (q1 - q0) + (f1 - f0)
        all = busy + (i1 - i0) + (w1 - w0)
        printf "%d", (all > 0 ? 100 * busy / all : 0) }'
}
quiesce() { # wait (up to QUIET_MAX s) until the machine is nearly idle, so
    # that the database flushing what the previous PUT/cold runs wrote does
    # not take CPU 0 from one side of a GET measurement and not the other
    local t0=$SECONDS p
    while :; do
        p=$(busy_pct)
        ((p <= QUIET_PCT)) && return 0
        if ((SECONDS - t0 >= QUIET_MAX)); then
            note "the machine did not become idle within ${QUIET_MAX}s before $LOGTAG (${p}% busy)"
            return 0
        fi
    done
}

measure() { # measure NAME SIDE: one run of measure NAME on side native|module
    local m=$1 side=$2 v url
    LOGTAG=r$ROUND-$m-$side
    if [[ $side == native ]]; then url=$URL_N; else url=$URL_A; fi
    case "$m" in hit121 | hit4 | 404) quiesce ;; esac
    case "$m" in
    hit121) v=$(wrk_rate 2xx "$url/files/bench/121k.bin") ;;
    hit4) v=$(wrk_rate 2xx "$url/files/bench/4k.bin") ;;
    404) v=$(wrk_rate 404 "$url/files/bench/absent-$ROUND.bin") ;;
    cold | pull)
        # cold: native GETs the files from its disk; pull: the same keys
        # once each through the pull-through (its cache emptied first).
        # The module's side of both: each key once on B, fetched from A.
        if [[ $side == native && $m == cold ]]; then
            cpu_begin "$side" || true
            v=$(wrk_rate 2xx "$URL_N" "$BENCH/keys.lua" "$COLDLIST" loop 0 -)
        elif [[ $side == native ]]; then
            find "$P/cache" -mindepth 1 -delete
            CPU_PULL=1
            cpu_begin "$side" || true
            v=$(wrk_keys "$URL_P")
        else
            find "$B_ROOT/files/cold" -name '*.bin' -delete
            [[ $(cold_on_b) == 0 ]] || die "could not delete B's cold copies"
            cpu_begin "$side" || true
            v=$(wrk_keys "$URL_B")
        fi
        cpu_end "$m" "$side" "$v" || true
        CPU_PULL=0
        ;;
    put)
        local prefix=/files/put/r$ROUND-$side/
        if [[ $side == native ]]; then
            install -d -o "$RUN_USER" -g "$RUN_GROUP" "$N/htdocs$prefix"
        fi
        cpu_begin "$side" || true
        v=$(DUR=$PUT_DUR wrk_rate 2xx "$url" "$BENCH/put.lua" "$FILES/put4k.bin" "$prefix")
        cpu_end "$m" "$side" "$v" || true
        if [[ $side == module ]]; then
            drain "PUT round $ROUND" || true
            cpu_end putdrain "$side" "$v" || true   # the same PUTs, replicated
        fi
        ;;
    esac
    record "$m" "$side" "$v"
    printf '  round %d  %-7s %-7s %10s /s\n' "$ROUND" "$m" "$side" "$v"
}

say "warm-up (not measured)"
SAVE_DUR=$DUR
DUR=1
ROUND=0
for side in native module; do
    measure hit4 "$side" >/dev/null
    measure hit121 "$side" >/dev/null
done
DUR=$SAVE_DUR
VALS=()

MEASURES=(hit121 hit4 404 cold pull put)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    say "round $ROUND of $ROUNDS ($( ((ROUND % 2)) && echo 'native first' || echo 'module first'))"
    for m in "${MEASURES[@]}"; do
        if ((ROUND % 2)); then
            measure "$m" native
            measure "$m" module
        else
            measure "$m" module
            measure "$m" native
        fi
    done
done

# ------------------------------------------------------------- perf profile
# perf record of the server's children (node A, then native; other
# processes are left out: this machine may be shared) for PERF_SECS in the
# middle of a 4 KB hit wrk run;
# bench/perfdiff.pl turns both into CPU microseconds per request and ranks
# the differences (bench/out/perf-4k.txt).
if ((PERF)); then
    if command -v perf >/dev/null; then
        PERF_SECS=4
        declare -A PERF_REQ=()
        for side in module native; do
            say "perf record -g of the httpd children for ${PERF_SECS}s during the 4 KB hit ($side)"
            if [[ $side == native ]]; then url=$URL_N; else url=$URL_A; fi
            taskset -c 1 wrk -t1 -c$CONNS -d$((PERF_SECS + 2))s "$url/files/bench/4k.bin" \
                >"$LOGS/perf-wrk-$side.txt" 2>&1 &
            wpid=$!
            BG_PIDS+=("$wpid")
            sleep 1     # sample the steady state, not wrk's start
            if [[ $side == native ]]; then s=native; else s=A; fi
            pids=$(pgrep -P "$(server_pid $s)" | paste -sd, -)
            perf record -q -g -p "$pids" -o "$STATE/perf-$side.data" -- sleep "$PERF_SECS" \
                >/dev/null 2>"$LOGS/perf-$side.err" || note "perf record failed ($side)"
            wait "$wpid" || true
            PERF_REQ[$side]=$(awk -v s="$PERF_SECS" '/^Requests\/sec:/ { printf "%d", $2 * s }' "$LOGS/perf-wrk-$side.txt")
            grep -E '^Requests/sec' "$LOGS/perf-wrk-$side.txt" || true
        done
        {
            echo "# 4 KB GET hit, wrk -t1 -c$CONNS on CPU 1; perf record -g -p (the server's children) for ${PERF_SECS}s"
            echo "# module: $(grep -h '^Requests/sec' "$LOGS/perf-wrk-module.txt") native: $(grep -h '^Requests/sec' "$LOGS/perf-wrk-native.txt")"
            perl "$BENCH/perfdiff.pl" "$STATE/perf-module.data" "${PERF_REQ[module]}" \
                "$STATE/perf-native.data" "${PERF_REQ[native]}"
            echo
            echo "## module, top symbols (share of CPU 0 samples)"
            echo
            perf report -i "$STATE/perf-module.data" --no-children --stdio \
                --sort comm,dso,sym -g none --percent-limit 0.4 2>/dev/null | grep -v '^$' | grep -v '^#'
        } >"$OUT/perf-4k.txt" 2>&1
        echo "wrote $OUT/perf-4k.txt"
        sed -n '1,40p' "$OUT/perf-4k.txt"
    else
        note "--perf: perf not found (apt-get install linux-perf)"
    fi
fi

# ------------------------------------------------ cold GET latency, 1 client
# One client, one key after the other over one keep-alive connection
# (curl, on CPU 1), each key once: curl's time to the first byte of the
# body and to its last, per key; p50 / p99 over the keys.  Module: B,
# its copies deleted first, so each GET fetches from A.  Pull-through: its
# cache emptied first, so each GET goes to native.  Native: the same files
# from its disk (the floor).
lat_run() { # lat_run NAME BASEURL LIST: "p50first p99first p50total p99total" (ms)
    local cfg=$STATE/lat-$1.curl out=$LOGS/lat-$1.txt
    : >"$cfg"
    while read -r k; do
        printf 'url = "%s%s"\noutput = "/dev/null"\n' "$2" "$k" >>"$cfg"
    done <"$3"
    taskset -c 1 curl -sS --max-time 300 -w '%{http_code} %{time_starttransfer} %{time_total}\n' \
        -K "$cfg" >"$out" 2>"$out.err" || note "curl failed during latency run $1 ($(tail -n 1 "$out.err"))"
    local bad
    bad=$(awk '$1 != 200' "$out" | wc -l)
    ((bad == 0)) || note "latency run $1: $bad answers were not 200"
    echo "$(lat_pct 2 "$out") $(lat_pct 3 "$out")"
}
lat_pct() { # lat_pct COLUMN FILE: "p50 p99" in ms of that column of the 200s
    awk -v c="$1" '$1 == 200 { print $c * 1000 }' "$2" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan nan"; exit }
            i50 = int((NR + 1) / 2); i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
            printf "%.1f %.1f", v[i50], v[i99]
        }'
}
LATLIST=$STATE/lat121.list
head -n "$LAT_N" "$COLDLIST" >"$LATLIST"
LAT16LIST=$STATE/lat16.list
for ((i = 1; i <= BIG16_N; i++)); do printf '/files/cold16/b%03d.bin\n' "$i"; done >"$LAT16LIST"
declare -A LAT=()
say "cold GET latency, 1 client: $LAT_N keys of 121 KB, $BIG16_N of 16 MiB, each once"
find "$B_ROOT/files/cold" "$B_ROOT/files/cold16" -name '*.bin' -delete
find "$P/cache" -mindepth 1 -delete
LOGTAG=latency; quiesce || true
LAT[121/module]=$(lat_run m121 "$URL_B" "$LATLIST")
LAT[121/pull]=$(lat_run p121 "$URL_P" "$LATLIST")
LAT[121/native]=$(lat_run n121 "$URL_N" "$LATLIST")
LOGTAG=latency; quiesce || true
LAT[16/module]=$(lat_run m16 "$URL_B" "$LAT16LIST")
LAT[16/pull]=$(lat_run p16 "$URL_P" "$LAT16LIST")
LAT[16/native]=$(lat_run n16 "$URL_N" "$LAT16LIST")
for k in 121/module 121/pull 121/native 16/module 16/pull 16/native; do
    echo "  $k: first byte p50 p99, whole p50 p99 (ms): ${LAT[$k]}"
done
latv() { # latv SIZE/SIDE FIELD(1-4)
    awk -v i="$2" '{ print $i }' <<<"${LAT[$1]:-nan nan nan nan}"
}

# -------------------------------------------------------- replication lag
declare -A LAG_P50=() LAG_P99=() LAG_GOT=()
for rate in "${LAG_RATES[@]}"; do
    say "replication lag: $rate PUT/s of 4 KB for ${LAG_SECS}s on A, until B has each copy"
    mkdir -p "$B_ROOT/files/lag$rate"   # poller's directory (the node creates it too)
    chown "$RUN_USER:$RUN_GROUP" "$B_ROOT/files/lag$rate"
    LAGRES=$LOGS/lag-$rate.txt
    taskset -c 1 perl "$BENCH/lag.pl" "$URL_A" "/files/lag$rate/" "$B_ROOT/files/lag$rate" \
        "$rate" "$LAG_SECS" "$FILES/put4k.bin" >"$LAGRES" 2>"$LOGS/lag-$rate.err" ||
        note "lag.pl at $rate/s failed: $(tail -n 3 "$LOGS/lag-$rate.err")"
    cat "$LAGRES"
    lagv() { awk -v k="$1" '$1 == k { print $2 }' "$LAGRES"; }
    LAG_P50[$rate]=$(lagv p50) LAG_P99[$rate]=$(lagv p99) LAG_GOT[$rate]=$(lagv rate)
    [[ "$(lagv missing)" == 0 ]] || note "lag at $rate/s: $(lagv missing) copies never reached B within 20 s"
    [[ "$(lagv failed)" == 0 ]] || note "lag at $rate/s: $(lagv failed) PUTs failed"
    drain "the lag test at $rate/s" || true
done

# ---------------------------------------------------------------- status
say "status page of A (?format=json), 20 requests"
STATUS_MS=$(for i in $(seq 20); do
    taskset -c 1 curl -sS -o /dev/null -w '%{time_total}\n' --max-time 60 "$URL_A/cluster-status?format=json"
done | awk '{ print $1 * 1000 }' | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f %.1f", v[int((NR + 1) / 2)], v[NR] }')
echo "  median / max: $STATUS_MS ms"

# ----------------------------------------------------------------- adopt
ADOPT_N=$(((QUICK)) && echo 2000 || echo 5000)
say "adoption in place: $ADOPT_N files of 4 KB already on A's disk (scripts/cs-adopt)"
ADIR=$A_ROOT/files/adopt
for ((i = 0; i < ADOPT_N; i++)); do
    ((i % 100 == 0)) && mkdir -p "$ADIR/d$((i / 100))"
    head -c 4096 /dev/urandom >"$ADIR/d$((i / 100))/f$i.bin"
done
chown -R "$RUN_USER:$RUN_GROUP" "$ADIR"
sync
declare -A ADOPT_T0=() ADOPT_T1=()
cpu_snap ADOPT_T0 module
t0=$(now_ds)
taskset -c 1 bash "$REPO/scripts/cs-adopt" -s 30 "$URL_A" /files/adopt >"$LOGS/adopt.txt" 2>&1 ||
    note "cs-adopt failed: $(tail -n 2 "$LOGS/adopt.txt")"
t1=$(now_ds)
ADOPT_RATE=$(awk -v n="$ADOPT_N" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", n * 10 / (t > 0 ? t : 1) }')
tail -n 2 "$LOGS/adopt.txt"
grep -q " $ADOPT_N adopted," "$LOGS/adopt.txt" || note "cs-adopt did not adopt all $ADOPT_N files: $(tail -n 2 "$LOGS/adopt.txt" | head -n 1)"
cpu_snap ADOPT_T1 module
ADOPT_CPU=$(for k in "${!ADOPT_T1[@]}"; do
    if [[ $k == httpd/* ]]; then echo "$((ADOPT_T1[$k] - ${ADOPT_T0[$k]:-0}))"; fi
done | awk -v n="$ADOPT_N" -v hz="$CLK_TCK" '{ s += $1 } END { printf "%.3f", s * 1000 / hz / n }')
echo "  $ADOPT_RATE files/s; httpd CPU $ADOPT_CPU ms per file"
drain "the adoption" || true

# ------------------------------------------------------------------ RSS
say "peak RSS growth of httpd children: ${BIG_MIB} MiB PUT and cold GET"
BIG=$STATE/big.bin
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$BIG"
BIG_SIZE=$(stat -c %s "$BIG")

declare -A RSS0=()
rss_start() { # reset VmHWM of every child of the given servers, remember VmRSS
    local s p
    RSS0=()
    for s in "$@"; do
        for p in $(pgrep -P "$(server_pid "$s")"); do
            echo 5 >"/proc/$p/clear_refs" 2>/dev/null || note "cannot reset VmHWM of pid $p"
            RSS0[$p]=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
        done
    done
}
rss_growth() { # max over the remembered children of VmHWM now - VmRSS before (MiB)
    local p hwm max=0 g who=""
    for p in "${!RSS0[@]}"; do
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null) ||
            { note "child $p went away during the RSS test"; continue; }
        [[ -n "$hwm" ]] || continue
        g=$((hwm - RSS0[$p]))
        ((g > max)) && max=$g
    done
    awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}
big_on() { # node $1 holds the big key completely
    [[ -f "${DIR[$1]}/root/files/big/big.bin" && $(stat -c %s "${DIR[$1]}/root/files/big/big.bin") == "$BIG_SIZE" ]]
}
curl_code() { # curl_code ARGS...: the status code of one curl (CPU 1)
    taskset -c 1 curl -sS -o /dev/null -w '%{http_code}' --max-time 600 "$@" || true
}

# module PUT (answered + replicated to B)
rss_start A B
code=$(curl_code -H 'Content-Type: application/octet-stream' -T "$BIG" "$URL_A/files/big/big.bin")
if [[ $code == 20? ]]; then
    wait_until 120 big_on B || note "the big key did not reach B within 120 s"
    drain "the big PUT" || true
else
    note "big PUT on A answered $code"
fi
RSS_PUT_MOD=$(rss_growth)
echo "module PUT ${BIG_MIB} MiB: +$RSS_PUT_MOD MiB (max over A's and B's children)"
# native PUT (mod_dav_fs)
rss_start native
code=$(curl_code -H 'Content-Type: application/octet-stream' -T "$BIG" "$URL_N/files/put/big.bin")
[[ $code == 20? ]] || note "big PUT on native answered $code"
RSS_PUT_NAT=$(rss_growth)
echo "native PUT ${BIG_MIB} MiB: +$RSS_PUT_NAT MiB"
# module cold GET on B (B's copy deleted first)
rm -f "$B_ROOT/files/big/big.bin"
rss_start A B
code=$(curl_code "$URL_B/files/big/big.bin")
[[ $code == 200 ]] || note "cold GET of the big key on B answered $code"
RSS_GET_MOD=$(rss_growth)
echo "module cold GET ${BIG_MIB} MiB: +$RSS_GET_MOD MiB"
rss_start native
code=$(curl_code "$URL_N/files/put/big.bin")
[[ $code == 200 ]] || note "GET of the big file on native answered $code"
RSS_GET_NAT=$(rss_growth)
echo "native GET ${BIG_MIB} MiB: +$RSS_GET_NAT MiB"
rm -f "$BIG"

# ------------------------------------------------------------------- table
median() { tr ' ' '\n' | awk '/^[0-9]+(\.[0-9]+)?$/' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { if num "$1" && num "$2"; then awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "nan" }'; else echo nan; fi; }
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ge() { num "$1" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b) }'; }
le() { num "$1" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b) }'; }
lt() { num "$1" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b) }'; }
yes_no() { if "$@"; then echo yes; else echo "**no**"; fi; }
fmt() { if num "$1"; then awk -v v="$1" 'BEGIN { printf "%.0f", v }'; else echo nan; fi; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
declare -A LABEL=([hit121]="GET hit 121 KB (req/s)" [hit4]="GET hit 4 KB (req/s)"
    [404]="GET absent key, 404 (req/s)" [cold]="cold GET 121 KB on B, each of $COLD_N keys once (keys/s)"
    [pull]="cold GET 121 KB on B vs a pull-through (mod_proxy + mod_cache_disk) from native, each key once (keys/s)"
    [put]="PUT 4 KB, replicas 2 vs mod_dav_fs (req/s)")
declare -A GOAL=([hit121]=0.97 [hit4]=0.97 [404]=0.90 [cold]=0.30 [pull]=0.80 [put]=0.70)
paired_ratio() { # median over the rounds of module/native of the same round
    local nv mv i rr=""
    read -r -a nv <<<"${VALS[$1/native]:-}"
    read -r -a mv <<<"${VALS[$1/module]:-}"
    for ((i = 0; i < ${#nv[@]} && i < ${#mv[@]}; i++)); do
        rr+="$(ratio "${nv[$i]}" "${mv[$i]}") "
    done
    median <<<"$rr" | awk '/^[0-9.]+$/ { printf "%.2f\n", $1; next } { print }'
}
for m in "${MEASURES[@]}"; do
    nat=$(median <<<"${VALS[$m/native]:-}")
    mod=$(median <<<"${VALS[$m/module]:-}")
    r=$(paired_ratio "$m")
    row "${LABEL[$m]}" "$(fmt "$nat")" "$(fmt "$mod")" "$r" "≥ ${GOAL[$m]}" "$(yes_no ge "$r" "${GOAL[$m]}")"
done
PULL_CPU=$(median <<<"${VALS[cpu-pull-httpd/native]:-}")
MOD_CPU=$(awk -v h="$(median <<<"${VALS[cpu-pull-httpd/module]:-}")" \
    -v d="$(median <<<"${VALS[cpu-pull-mariadbd/module]:-}")" \
    'BEGIN { if (h ~ /^[0-9.]+$/ && d ~ /^[0-9.]+$/) printf "%.3f", h + d; else print "nan" }')
row "cold GET 121 KB, CPU per key: pull-through (its httpd + the peer's) vs module (httpd A+B + mariadbd) (ms)" \
    "$PULL_CPU" "$MOD_CPU" "$(ratio "$PULL_CPU" "$MOD_CPU")" "module ≤ pull-through" "$(yes_no le "$MOD_CPU" "${PULL_CPU:-nan}")"
lat_row() { # lat_row SIZE WHAT FIELD_P50 FIELD_P99
    local size="121 KB ($LAT_N keys)"
    [[ $1 == 16 ]] && size="16 MiB ($BIG16_N keys)"
    row "cold GET $size, 1 client, each key once: $2 p50 / p99 (ms), pull-through vs module (native from disk: $(latv "$1/native" "$3") / $(latv "$1/native" "$4"))" \
        "$(latv "$1/pull" "$3") / $(latv "$1/pull" "$4")" "$(latv "$1/module" "$3") / $(latv "$1/module" "$4")" \
        "$(ratio "$(latv "$1/pull" "$3")" "$(latv "$1/module" "$3")")" "reported" "–"
}
lat_row 121 "whole answer" 3 4
lat_row 16 "first byte" 1 2
lat_row 16 "whole answer" 3 4
row "replication throughput A → B, draining the queue left by a PUT round (copies/s)" "–" \
    "$(fmt "$(median <<<"${VALS[drain/module]:-}")")" "–" "–" "–"
for rate in "${LAG_RATES[@]}"; do
    row "replication lag at $rate PUT/s (${LAG_GOT[$rate]:-nan}/s achieved), PUT answered → B has it: p50 / p99 (ms)" \
        "–" "${LAG_P50[$rate]:-nan} / ${LAG_P99[$rate]:-nan}" "–" "p99 ≤ 200 ms" "$(yes_no le "${LAG_P99[$rate]:-nan}" 200)"
done
row "status page of A, ?format=json: median / max of 20 (ms)" "–" "${STATUS_MS/ / \/ }" "–" "max < 1000 ms" "$(yes_no lt "${STATUS_MS#* }" 1000)"
row "adoption in place of $ADOPT_N files of 4 KB on A, replication queued (files/s; httpd CPU ${ADOPT_CPU:-nan} ms per file)" "–" "${ADOPT_RATE:-nan}" "–" "≥ 2000" "$(yes_no ge "${ADOPT_RATE:-nan}" 2000)"
row "peak RSS growth of an httpd child, ${BIG_MIB} MiB PUT (MiB)" "$RSS_PUT_NAT" "$RSS_PUT_MOD" "–" "< 16 MiB" "$(yes_no lt "$RSS_PUT_MOD" 16)"
row "peak RSS growth of an httpd child, ${BIG_MIB} MiB cold GET (MiB)" "$RSS_GET_NAT" "$RSS_GET_MOD" "–" "< 16 MiB" "$(yes_no lt "$RSS_GET_MOD" 16)"

# CPU per operation: "label|measure-group/side" (see cpu_end)
CPU_ROWS=(
    "cold GET native httpd|cold-httpd/native"
    "cold GET module httpd (A+B)|cold-httpd/module"
    "cold GET mariadbd|cold-mariadbd/module"
    "cold GET memcached|cold-memcached/module"
    "cold GET pull-through httpd (proxy + its peer)|pull-httpd/native"
    "cold GET module httpd (A+B), run beside the pull-through|pull-httpd/module"
    "cold GET mariadbd, run beside the pull-through|pull-mariadbd/module"
    "PUT 4 KB native httpd (mod_dav_fs)|put-httpd/native"
    "PUT 4 KB module httpd (A+B)|put-httpd/module"
    "PUT 4 KB mariadbd|put-mariadbd/module"
    "PUT 4 KB memcached|put-memcached/module"
    "PUT 4 KB module httpd (A+B), until A's queue is drained|putdrain-httpd/module"
    "PUT 4 KB mariadbd, until A's queue is drained|putdrain-mariadbd/module"
)
cpu_table() { # the CPU per operation table (markdown)
    local r label key ops
    echo "| operation, process | ms CPU / op | per round | operations per run |"
    echo "|---|---|---|---|"
    for r in "${CPU_ROWS[@]}"; do
        label=${r%%|*} key=${r#*|}
        ops=ops-${key%%-*}/${key##*/}
        echo "| $label | $(median <<<"${VALS[cpu-$key]:-}" | awk '/^[0-9.]+$/ { printf "%.3f\n", $1; next } { print }') | ${VALS[cpu-$key]:-–} | ${VALS[$ops]:-–} |"
    done
}

FLAGS=""
((QUICK)) && FLAGS+=" --quick"
((PERF)) && FLAGS+=" --perf"
((ROWS_EXTRA)) && FLAGS+=" --rows $ROWS_EXTRA"
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
HEADER=(
    "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    "machine: $CPU, $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; kernel $(uname -r)"
    "httpd: $($HTTPD -v | sed -n 's/^Server version: //p'), mpm_event, 2 children x 25 threads, sendfile on, keep-alive unlimited; module commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- '*.c' '*.h' 2>/dev/null || echo ' + uncommitted changes')"
    "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on this machine compete for the same 2 CPUs)"
    "command: bash bench/run.sh$FLAGS; $ROUNDS rounds of ${DUR} s, wrk -t1 -c$CONNS, medians; httpd on CPU 0, load on CPU 1"
    "registry: $(sql 'SELECT COUNT(*) FROM cs_files') rows in cs_files, $(sql 'SELECT COUNT(*) FROM cs_replicas') in cs_replicas at the end"
)
{
    echo "# mod_clusterstorage benchmark"
    echo
    for h in "${HEADER[@]}"; do echo "- $h"; done
    echo
    echo "native and module: medians over the rounds; ratio: the median over the rounds"
    echo "of module / native measured back to back in the same round (robust"
    echo "against other load on the machine, which changes from round to round)."
    echo
    echo "| measure | native | module | ratio | goal | met |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "CPU per operation (ms, median of rounds): utime + stime of the processes"
    echo "(/proc/PID/stat, ticks of 1/$CLK_TCK s) from just before to just after each"
    echo "cold and PUT run, divided by the operations the run completed (keys"
    echo "fetched, or 2xx answers); mariadbd and memcached during the module runs."
    echo "The module PUT rows leave out the replication of those PUTs, drained after"
    echo "the run; the rows \"until A's queue is drained\" include it.  Resolution:"
    echo "one tick ($((1000 / CLK_TCK)) ms) / the operations per run."
    echo
    cpu_table
    echo
    echo "Per round:"
    echo
    echo "| measure | native | module | ratio per round | median ratio |"
    echo "|---|---|---|---|---|"
    for m in "${MEASURES[@]}" drain; do
        read -r -a nv <<<"${VALS[$m/native]:-}"
        read -r -a mv <<<"${VALS[$m/module]:-}"
        rr=""
        for ((i = 0; i < ${#nv[@]} && i < ${#mv[@]}; i++)); do
            rr+="$(ratio "${nv[$i]}" "${mv[$i]}") "
        done
        [[ -n $rr ]] || rr="– "
        echo "| $m | ${VALS[$m/native]:-–} | ${VALS[$m/module]:-–} | $rr | $(median <<<"$rr" | sed 's/^nan$/–/') |"
    done
    if grep -q -h -E 'CS[0-9]{3}:' "${DIR[A]}/error_log" "${DIR[B]}/error_log" 2>/dev/null; then
        echo
        echo "Module log messages during the run (count, node, tag and text up to the first detail):"
        echo
        echo '```'
        for s in A B; do
            grep -h -o -E '\[clusterstorage:[a-z0-9]+\] .*CS[0-9]{3}: .*' "${DIR[$s]}/error_log" |
                sed -E -e 's/^\[clusterstorage:([a-z0-9]+)\] .*(CS[0-9]{3}: )/\1 \2/' \
                    -e 's#/files/[^ :]*#KEY#g' -e 's/v[0-9]+/vN/g' -e 's/: [^:]*$//' |
                sort | uniq -c | sort -rn | head -n 12 | sed "s/^/$s /" || true
        done
        echo '```'
    fi
    if [[ -s $NOTES_FILE ]]; then
        echo
        echo "Notes:"
        echo
        sed 's/^/- /' "$NOTES_FILE"
    fi
} >"$OUT/latest.md"
say "results (also in bench/out/latest.md)"
cat "$OUT/latest.md"
