#!/usr/bin/env bash
# bench/dav.sh - the WebDAV space (SPEC section 8) beside mod_dav_fs, in one
# run, as ratios.
#
#   bash bench/dav.sh [--quick] [--keep]
#     --quick  2,000 members instead of 10,000, 3 s of appends instead of 5
#     --keep   keep the state directory (configs, logs)
#
# As root on Debian 12 with at least 2 CPUs.  Like bench/run.sh: a private
# MariaDB + memcached (scripts/services.sh), three Debian apache2 pinned to
# CPU 0 (bench/common.conf.in), every client on CPU 1:
#   native  mod_dav_fs (DAV On) on /dav, the files on its own disk
#   A, B    cluster nodes (bench/node.conf.in + a `DAV clusterstorage`
#           space on /dav), ClusterStorageReplicas 2
# The same N small files (64 bytes each) are PUT into /dav/big/ on native
# and on A (B receives A's replicas).  Measured:
#   PROPFIND Depth 1 of /dav/big/ (N members), median of 5, on native and
#     on B: with a property list (resourcetype, getcontentlength,
#     getlastmodified, getetag: what rclone and davfs2 ask for) and allprop
#   MOVE of /dav/big/ to /dav/moved/ (once; N files): seconds, and the
#     replicas B received during the MOVE (each one a file's bytes sent
#     again between the nodes)
#   PATCH appends (X-Update-Range: append) of 32 bytes to one key on A for
#     D seconds, 4 clients: appends/s, then the time until B holds the
#     final version (replication lag of the last append)
# The table goes to stdout and bench/out/dav-latest.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/bench
OUT=$BENCH/out
cd "$REPO"
QUICK=0 KEEP=0
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dav.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then N=2000 APPEND_SECS=3; else N=10000 APPEND_SECS=5; fi
HTTPD=/usr/sbin/apache2
T_START=$SECONDS

die() { echo "dav.sh: ERROR: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

STATE="" SERVICES_STARTED=0
SERVERS=(native A B)
declare -A CONF=() PORT=() DIR=()
cleanup() {
    local rc=$? args=() s
    trap - EXIT INT TERM
    set +e
    for s in "${SERVERS[@]}"; do
        [[ -n "${CONF[$s]:-}" ]] && args+=("$s" "${CONF[$s]}" "${DIR[$s]}/httpd.pid")
    done
    ((${#args[@]})) && stop_httpds "$HTTPD" 30 dav.sh "${args[@]}"
    ((SERVICES_STARTED)) && CS_STATE_DIR=$STATE bash scripts/services.sh stop --purge >/dev/null 2>&1
    if [[ -n "$STATE" ]]; then
        if ((KEEP)) || ((rc != 0)); then echo "dav.sh: state kept in $STATE"; else rm -rf "$STATE"; fi
    fi
    echo "dav.sh: finished in $((SECONDS - T_START)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $(id -u) -eq 0 ]] || die "run as root"
(($(nproc) >= 2)) || die "needs at least 2 CPUs"
mkdir -p "$OUT"
say "installing what is missing, building"
bash scripts/deps.sh >/dev/null
make -f Makefile.apxs >"$OUT/dav-build.log" 2>&1 || { tail -n 30 "$OUT/dav-build.log"; die "build failed"; }
MODULE_SO=$REPO/.libs/mod_clusterstorage.so
MODULES=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)

STATE=$(mktemp -d /tmp/cs-davbench.XXXXXX)
chmod 755 "$STATE"
export CS_STATE_DIR=$STATE
SERVICES_STARTED=1
bash scripts/services.sh start >"$STATE/services.log" 2>&1 || { cat "$STATE/services.log"; die "services.sh start failed"; }
eval "$(bash scripts/services.sh env)"
sql() { bash scripts/services.sh sql "$1" 2>/dev/null; }

subst() { # subst TEMPLATE OUT NAME=VALUE...
    local tmpl=$1 out=$2 args=() kv
    shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|$(sed_escape "${kv#*=}")|g"); done
    sed "${args[@]}" "$tmpl" >"$out"
}
COMMON=$STATE/common.conf
subst "$BENCH/common.conf.in" "$COMMON" MODULES="$MODULES" USER=www-data GROUP=www-data
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
for s in "${SERVERS[@]}"; do
    DIR[$s]=$STATE/$s
    PORT[$s]=$(pick_port "${PORT[@]}" "$CS_DB_PORT" "$CS_MC_PORT")
    CONF[$s]=$STATE/$s/httpd.conf
done
N_DIR=${DIR[native]}
mkdir -p "$N_DIR/htdocs/dav" "$N_DIR/davlock"
chown -R www-data:www-data "$N_DIR/htdocs/dav" "$N_DIR/davlock"
subst "$BENCH/native.conf.in" "${CONF[native]}" DIR="$N_DIR" PORT="${PORT[native]}" \
    COMMON="$COMMON" MODULES="$MODULES"
cat >>"${CONF[native]}" <<EOF
<Directory "$N_DIR/htdocs/dav">
    Dav On
</Directory>
EOF
for s in A B; do
    d=${DIR[$s]}
    mkdir -p "$d/htdocs" "$d/root/files" "$d/root/dav"
    chown -R www-data:www-data "$d/root"
    subst "$BENCH/node.conf.in" "${CONF[$s]}" DIR="$d" ROOT="$d/root" NAME="$s" \
        PORT="${PORT[$s]}" COMMON="$COMMON" MODULES="$MODULES" MODULE_SO="$MODULE_SO" \
        SECRET="$SECRET" MC_PORT="$CS_MC_PORT" DB_PORT="$CS_DB_PORT" \
        DB_USER="$CS_DB_USER" DB_PASS="$CS_DB_PASS" DB_NAME="$CS_DB_NAME" LOCAL_CACHE=On
    cat >>"${CONF[$s]}" <<EOF
LoadModule dav_module $MODULES/mod_dav.so
Alias /dav "$d/root/dav"
<Location /dav>
    Require all granted
    ClusterStorage On
    ClusterStorageWrite On
    DAV clusterstorage
</Location>
EOF
done
for s in "${SERVERS[@]}"; do
    taskset -c 0 "$HTTPD" -f "${CONF[$s]}" -k start || die "$s did not start (${DIR[$s]}/error_log)"
done
url() { echo "http://127.0.0.1:${PORT[$1]}"; }
up() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(url "$1")/" || true)" =~ ^[2-5] ]]; }
for s in "${SERVERS[@]}"; do wait_until 30 up "$s" || die "$s does not answer"; done
nodes_up() { [[ "$(sql 'SELECT COUNT(*) FROM cs_nodes')" == 2 ]]; }
wait_until 30 nodes_up || die "the nodes did not register"

# ------------------------------------------------------------------ the tree
say "PUT $N files of 64 bytes into /dav/big/ on native and on A"
fill() { # fill SERVER: MKCOL /dav/big/, then N PUTs from 8 clients
    local base
    base=$(url "$1")/dav
    curl -s -o /dev/null -X MKCOL "$base/big/"
    taskset -c 1 perl -MHTTP::Tiny -e '
        my ($base, $n) = @ARGV; my @kids;
        for my $k (0 .. 7) {
            my $pid = fork // die; if (!$pid) {
                my $h = HTTP::Tiny->new(keep_alive => 1);
                for (my $i = $k; $i < $n; $i += 8) {
                    my $r = $h->put("$base/big/f$i.txt", { content => sprintf("%063d\n", $i) });
                    die "PUT f$i: $r->{status}\n" unless $r->{success};
                }
                exit 0;
            } push @kids, $pid }
        waitpid $_, 0 for @kids; exit(grep({ $? } 1) ? 1 : 0);' "$base" "$N"
}
t0=$SECONDS; fill native; echo "native: $((SECONDS - t0)) s"
t0=$SECONDS; fill A; echo "A: $((SECONDS - t0)) s"
held() { [[ "$(sql "SELECT COUNT(*) FROM cs_replicas WHERE node = 'B' AND path LIKE '/dav/big/%'")" == "$N" ]]; }
wait_until 300 held || echo "dav.sh: B holds only $(sql "SELECT COUNT(*) FROM cs_replicas WHERE node = 'B' AND path LIKE '/dav/big/%'") of $N"

# ----------------------------------------------------------------- PROPFIND
PROPS='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>'
ALLPROP='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
propfind() { # propfind SERVER BODY: seconds of one Depth 1 PROPFIND (checks the member count)
    local out t
    out=$(mktemp "$STATE/pf.XXXXXX")
    t=$(taskset -c 1 curl -s -o "$out" -w '%{time_total}' -X PROPFIND -H 'Depth: 1' \
        -H 'Content-Type: application/xml' --data-binary "$2" "$(url "$1")/dav/big/")
    local got
    got=$(grep -o '<D:href>' "$out" | wc -l)
    ((got == N + 1)) || echo "dav.sh: PROPFIND on $1 listed $got hrefs, not $((N + 1))" >&2
    rm -f "$out"
    echo "$t"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A R=()
for kind in props allprop; do
    body=$PROPS
    [[ $kind == allprop ]] && body=$ALLPROP
    for s in native B; do
        propfind "$s" "$body" >/dev/null     # warm up
        R[$kind/$s]=$(for _ in 1 2 3 4 5; do propfind "$s" "$body"; done | median)
    done
    echo "PROPFIND $kind: native ${R[$kind/native]} s, B ${R[$kind/B]} s"
done

# --------------------------------------------------------------------- MOVE
say "MOVE /dav/big/ -> /dav/moved/ ($N files)"
counter() { curl -s "$(url "$1")/cluster-status?format=json" | perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); print $j->{counters}{$ARGV[0]} // 0' "$2"; }
move() { # move SERVER: seconds, and the status
    taskset -c 1 curl -s -o /dev/null -w '%{time_total} %{http_code}\n' -X MOVE \
        -H "Destination: $(url "$1")/dav/moved/" "$(url "$1")/dav/big/"
}
read -r R[move/native] code < <(move native)
[[ $code == 201 ]] || echo "dav.sh: native MOVE answered $code" >&2
before=$(counter B replicas_received)
read -r R[move/A] code < <(move A)
[[ $code == 201 ]] || echo "dav.sh: cluster MOVE answered $code" >&2
moved_held() { [[ "$(sql "SELECT COUNT(*) FROM cs_replicas WHERE node = 'B' AND path LIKE '/dav/moved/%'")" == "$N" ]]; }
wait_until 600 moved_held || true
R[move/bytes]=$(($(counter B replicas_received) - before))
echo "MOVE: native ${R[move/native]} s, cluster ${R[move/A]} s; B received ${R[move/bytes]} replicas"

# ------------------------------------------------------------------ appends
say "PATCH appends to one key on A for $APPEND_SECS s (4 clients)"
curl -s -o /dev/null -T /dev/null "$(url A)/dav/log.txt"
cat >"$STATE/append.lua" <<'EOF'
local headers = { ["Content-Type"] = "application/x-sabredav-partialupdate",
                  ["X-Update-Range"] = "append" }
local body = string.rep("a", 31) .. "\n"
function request() return wrk.format("PATCH", "/dav/log.txt", headers, body) end
EOF
wout=$(taskset -c 1 wrk -t1 -c4 -d"${APPEND_SECS}s" -s "$STATE/append.lua" "$(url A)" 2>&1)
R[append/rate]=$(awk '/Requests\/sec/ { print $2 }' <<<"$wout")
non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$wout")
t_end=$(date +%s.%N)
cur=$(sql "SELECT version FROM cs_files WHERE path = '/dav/log.txt'")
caught_up() { [[ "$(sql "SELECT version FROM cs_replicas WHERE node = 'B' AND path = '/dav/log.txt'")" == "$cur" ]]; }
wait_until 60 caught_up || echo "dav.sh: B did not catch up with the appends" >&2
R[append/lag]=$(awk -v a="$t_end" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
size=$(curl -s "$(url B)/dav/log.txt" | wc -c)
echo "appends: ${R[append/rate]}/s (${non2xx:-0} not 2xx), $size bytes; B caught up ${R[append/lag]} s after the last"

# -------------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
{
    echo "# WebDAV benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $N members, module $(git rev-parse --short HEAD))"
    echo
    echo "| measure | mod_dav_fs | cluster | native/cluster | goal |"
    echo "|---|---|---|---|---|"
    echo "| PROPFIND Depth 1, 4 live props, on a node (B) | ${R[props/native]} s | ${R[props/B]} s | $(ratio "${R[props/native]}" "${R[props/B]}") | >= 1 |"
    echo "| PROPFIND Depth 1, allprop, on B | ${R[allprop/native]} s | ${R[allprop/B]} s | $(ratio "${R[allprop/native]}" "${R[allprop/B]}") | >= 1 |"
    echo "| MOVE of the collection | ${R[move/native]} s | ${R[move/A]} s | $(ratio "${R[move/native]}" "${R[move/A]}") | cluster < 1 s |"
    echo "| files re-sent to B by the MOVE | – | ${R[move/bytes]} of $N | | 0 |"
    echo "| PATCH appends of 32 bytes, one key, 4 clients | (no PATCH) | ${R[append/rate]}/s | | |"
    echo "| B holds the last append after | | ${R[append/lag]} s | | |"
} | tee "$OUT/dav-latest.md"
