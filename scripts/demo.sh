#!/usr/bin/env bash
# demo.sh - a local three-node mod_clusterstorage cluster, on a fresh
# Debian 12 machine, as root, from a clone:
#
#   bash scripts/demo.sh          # start, show a PUT served by all nodes,
#                                 # keep running until Ctrl-C
#   bash scripts/demo.sh --once   # the same, then stop everything at once
#   bash scripts/demo.sh --keep   # (with either) keep the state directory
#                                 # (configs, logs, stored files) afterwards
#
# Steps: install what is missing (scripts/deps.sh), build the module
# (make -f Makefile.apxs), start a private MariaDB and memcached on free
# 127.0.0.1 ports (scripts/services.sh, state in a fresh directory under
# /tmp), then start three nodes n1, n2, n3 -- three separate
# /usr/sbin/apache2 processes on free 127.0.0.1 ports, each with its own
# configuration generated from conf/demo-node.conf.in.  On exit (Ctrl-C,
# TERM, an error, or --once) every process started here is stopped and the
# state directory is removed.  No system service is used or touched.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

ONCE=0
KEEP=0
for a in "$@"; do
    case "$a" in
    --once) ONCE=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

NODES=(n1 n2 n3)
HTTPD=/usr/sbin/apache2
START_TIMEOUT=${CS_DEMO_START_TIMEOUT:-30}   # seconds, per node
STOP_TIMEOUT=${CS_DEMO_STOP_TIMEOUT:-30}

die() { echo "demo.sh: ERROR: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

# ------------------------------------------------------------------ cleanup
STATE=""
SERVICES_STARTED=0
IDLE_PID=""
declare -A CONF=() PORT=() NODE_DIR=()

node_pid() { pidfile_pid "${NODE_DIR[$1]}/run/httpd.pid"; } # pid of node $1's apache2 parent, if running

# stop_nodes NODE...: stop each running node (scripts/lib.sh stop_httpds).
stop_nodes() {
    local n args=()
    for n in "$@"; do
        args+=("node $n" "${CONF[$n]}" "${NODE_DIR[$n]}/run/httpd.pid")
    done
    stop_httpds "$HTTPD" "$STOP_TIMEOUT" demo.sh "${args[@]}"
}

cleanup() {
    local rc=$? n
    trap - EXIT INT TERM
    set +e
    [[ -n "$IDLE_PID" ]] && kill "$IDLE_PID" 2>/dev/null
    local started=()
    for n in "${NODES[@]}"; do
        [[ -n "${CONF[$n]:-}" ]] && started+=("$n")
    done
    ((${#started[@]})) && stop_nodes "${started[@]}"
    if ((SERVICES_STARTED)); then
        echo "demo.sh: stopping MariaDB and memcached"
        CS_STATE_DIR=$STATE bash scripts/services.sh stop --purge
    fi
    if [[ -n "$STATE" && -d "$STATE" ]]; then
        if ((KEEP)) || ((rc != 0 && rc != 130 && rc != 143)); then
            echo "demo.sh: state kept in $STATE (configs, logs, stored files)"
        else
            rm -rf "$STATE"
        fi
    fi
    exit "$rc"
}
IDLE=0      # 1 while waiting for Ctrl-C: then Ctrl-C is the normal way out
trap cleanup EXIT
trap 'exit $((IDLE ? 0 : 130))' INT
trap 'exit $((IDLE ? 0 : 143))' TERM

# ------------------------------------------------------- packages and build
say "installing what is missing (scripts/deps.sh)"
bash scripts/deps.sh

say "building the module (make -f Makefile.apxs)"
make -f Makefile.apxs >build.log 2>&1 || { cat build.log; die "build failed (log: build.log)"; }
MODULE_SO=$REPO/.libs/mod_clusterstorage.so
[[ -f "$MODULE_SO" ]] || die "the build did not produce $MODULE_SO"
echo "built $MODULE_SO"

[[ -x "$HTTPD" ]] || die "$HTTPD not found"
command -v curl >/dev/null || die "curl not found"
MODULES=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)

if [[ $(id -u) -eq 0 ]]; then
    RUN_USER=www-data
    RUN_GROUP=www-data
else
    RUN_USER=$(id -un)
    RUN_GROUP=$(id -gn)
fi

# ------------------------------------------------------------------ services
STATE=$(mktemp -d /tmp/cs-demo.XXXXXX)
chmod 755 "$STATE"      # the nodes' children (www-data) must reach their roots
export CS_STATE_DIR=$STATE

say "starting private MariaDB + memcached (state in $STATE)"
SERVICES_STARTED=1
bash scripts/services.sh start >/dev/null
eval "$(bash scripts/services.sh env)"
echo "MariaDB on 127.0.0.1:$CS_DB_PORT, memcached on 127.0.0.1:$CS_MC_PORT"

# --------------------------------------------------------------------- nodes
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

for n in "${NODES[@]}"; do
    d=$STATE/$n
    NODE_DIR[$n]=$d
    PORT[$n]=$(pick_port "${PORT[@]}" "$CS_DB_PORT" "$CS_MC_PORT")
    CONF[$n]=$d/httpd.conf
    mkdir -p "$d/run" "$d/logs" "$d/htdocs" "$d/root/files" "$d/root/dav"
    chown -R "$RUN_USER:$RUN_GROUP" "$d/root"
    sed -e "s|@NODE_DIR@|$(sed_escape "$d")|g" \
        -e "s|@ROOT@|$(sed_escape "$d/root")|g" \
        -e "s|@PORT@|${PORT[$n]}|g" \
        -e "s|@NODE@|$n|g" \
        -e "s|@MODULES@|$(sed_escape "$MODULES")|g" \
        -e "s|@MODULE_SO@|$(sed_escape "$MODULE_SO")|g" \
        -e "s|@USER@|$(sed_escape "$RUN_USER")|g" \
        -e "s|@GROUP@|$(sed_escape "$RUN_GROUP")|g" \
        -e "s|@SECRET@|$SECRET|g" \
        -e "s|@MC_PORT@|$CS_MC_PORT|g" \
        -e "s|@DB_PORT@|$CS_DB_PORT|g" \
        -e "s|@DB_USER@|$(sed_escape "$CS_DB_USER")|g" \
        -e "s|@DB_PASS@|$(sed_escape "$CS_DB_PASS")|g" \
        -e "s|@DB_NAME@|$(sed_escape "$CS_DB_NAME")|g" \
        conf/demo-node.conf.in >"${CONF[$n]}"
    if grep -q '@[A-Z_]*@' "${CONF[$n]}"; then
        die "unsubstituted placeholder in ${CONF[$n]}: $(grep -o '@[A-Z_]*@' "${CONF[$n]}" | head -n 1)"
    fi
done

answers() { # node $1 answers HTTP at all (any status)
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:${PORT[$1]}/" 2>/dev/null) || true
    [[ -n "$code" && "$code" != 000 ]]
}
answers_or_dead() { answers "$1" || ! node_pid "$1" >/dev/null; }

for n in "${NODES[@]}"; do
    say "starting node $n on http://127.0.0.1:${PORT[$n]} (config ${CONF[$n]})"
    if ! "$HTTPD" -f "${CONF[$n]}" -k start; then
        tail -n 20 "${NODE_DIR[$n]}/logs/error_log" 2>/dev/null >&2 || true
        die "node $n failed to start"
    fi
    if ! wait_until "$START_TIMEOUT" answers_or_dead "$n" || ! answers "$n"; then
        tail -n 20 "${NODE_DIR[$n]}/logs/error_log" 2>/dev/null >&2 || true
        die "node $n does not answer on port ${PORT[$n]} (log: ${NODE_DIR[$n]}/logs/error_log)"
    fi
    echo "node $n answers (pid $(node_pid "$n"))"
done

# Each node records its URL and heartbeat in the registry from a background
# thread; wait (with a deadline) until all three are there.
sql() { bash scripts/services.sh sql "$1" 2>/dev/null; }
all_registered() { [[ "$(sql 'SELECT COUNT(*) FROM cs_nodes' || echo 0)" == "${#NODES[@]}" ]]; }
say "membership in the registry (cs_nodes)"
if ! wait_until 15 all_registered; then
    echo "(not all nodes have recorded a heartbeat yet)"
fi
sql 'SELECT name, url, heartbeat, period FROM cs_nodes ORDER BY name' |
    awk -F'\t' 'BEGIN { printf "%-5s %-28s %-12s %s\n", "node", "url", "heartbeat", "period" }
                { printf "%-5s %-28s %-12s %s\n", $1, $2, $3, $4 }' || true

# ---------------------------------------------------------------------- show
P1=${PORT[n1]}
KEY=/files/hello.txt
FILE=$STATE/hello.txt
printf 'Hello from mod_clusterstorage!\nStored on node n1 at %s.\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" >"$FILE"

say "PUT $KEY on n1"
echo "\$ curl -X PUT --data-binary @$FILE http://127.0.0.1:$P1$KEY"
curl -sS -i -X PUT --data-binary @"$FILE" "http://127.0.0.1:$P1$KEY" | tr -d '\r' || true

header_of() { # header_of HEADER_FILE NAME: the value, or "(none)"
    local v
    v=$(grep -i "^$2:" "$1" | head -n 1 | cut -d' ' -f2- | tr -d '\r' || true)
    echo "${v:-(none)}"
}

show_get() { # show_get NODE
    local n=$1 url="http://127.0.0.1:${PORT[$1]}$KEY" hdr body code
    hdr=$(mktemp "$STATE/hdr.XXXXXX")
    body=$(mktemp "$STATE/body.XXXXXX")
    say "GET $KEY from $n"
    echo "\$ curl $url"
    code=$(curl -sS -o "$body" -D "$hdr" -w '%{http_code}' --max-time 30 "$url") || true
    echo "status:                  ${code:-(no answer)}"
    printf 'X-ClusterStorage-Version: %s\n' "$(header_of "$hdr" X-ClusterStorage-Version)"
    printf 'ETag:                    %s\n' "$(header_of "$hdr" ETag)"
    local extra
    extra=$(grep -iE '^(Retry-After|X-ClusterStorage-Unverified):' "$hdr" | tr -d '\r' || true)
    [[ -n "$extra" ]] && echo "$extra"
    if [[ "$code" == 200 ]]; then
        echo "body:"
        sed 's/^/    /' "$body"
    elif [[ "$code" == 503 && "$n" != n1 ]]; then
        echo "(503: this node lacks the file and could not fetch it from a" \
            "peer; its error log says why)"
    fi
    rm -f "$hdr" "$body"
}
for n in "${NODES[@]}"; do
    show_get "$n"
done

# ---------------------------------------------------------------- WebDAV
P2=${PORT[n2]}
P3=${PORT[n3]}
say "WebDAV: a collection on n1, a file in it on n2, a listing on n3"
echo "\$ curl -X MKCOL http://127.0.0.1:$P1/dav/reports/"
curl -sS -o /dev/null -w '%{http_code}\n' -X MKCOL "http://127.0.0.1:$P1/dav/reports/" || true
echo "\$ curl -T $FILE http://127.0.0.1:$P2/dav/reports/draft.txt"
curl -sS -o /dev/null -w '%{http_code}\n' -T "$FILE" "http://127.0.0.1:$P2/dav/reports/draft.txt" || true
list_dav() { # list_dav PORT: the hrefs of a Depth 1 PROPFIND of /dav/reports/
    curl -sS -X PROPFIND -H 'Depth: 1' "http://127.0.0.1:$1/dav/reports/" |
        grep -o '<D:href>[^<]*</D:href>' | sed 's/<[^>]*>//g; s/^/    /' || true
}
echo "\$ curl -X PROPFIND -H 'Depth: 1' http://127.0.0.1:$P3/dav/reports/"
list_dav "$P3"
say "WebDAV: MOVE on n3, then every node serves the new name only"
echo "\$ curl -X MOVE -H 'Destination: http://127.0.0.1:$P3/dav/reports/final.txt' http://127.0.0.1:$P3/dav/reports/draft.txt"
curl -sS -o /dev/null -w '%{http_code}\n' -X MOVE \
    -H "Destination: http://127.0.0.1:$P3/dav/reports/final.txt" \
    "http://127.0.0.1:$P3/dav/reports/draft.txt" || true
for n in "${NODES[@]}"; do
    old=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$n]}/dav/reports/draft.txt" || true)
    new=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$n]}/dav/reports/final.txt" || true)
    echo "$n: draft.txt $old, final.txt $new"
done
echo "\$ curl -X PROPFIND -H 'Depth: 1' http://127.0.0.1:$P1/dav/reports/"
list_dav "$P1"

say "holders of $KEY in the registry (cs_replicas)"
sql "SELECT node, version FROM cs_replicas WHERE path = '$KEY' ORDER BY node" |
    awk -F'\t' 'BEGIN { printf "%-5s %s\n", "node", "version" } { printf "%-5s %s\n", $1, $2 }' || true

say "cluster status pages (allowed from localhost only)"
for n in "${NODES[@]}"; do
    echo "$n: http://127.0.0.1:${PORT[$n]}/cluster-status   (?format=json, ?format=prometheus, ?path=$KEY)"
done

say "logs"
for n in "${NODES[@]}"; do
    echo "$n: ${NODE_DIR[$n]}/logs/error_log"
done

if ((ONCE)); then
    say "--once: stopping everything"
    exit 0
fi

say "the cluster is running; try for example:"
cat <<EOF
  curl -X PUT --data-binary @/etc/os-release http://127.0.0.1:$P1/files/os-release
  curl -i http://127.0.0.1:${PORT[n2]}/files/os-release
  curl -X DELETE http://127.0.0.1:$P1/files/os-release
Press Ctrl-C to stop the nodes, MariaDB and memcached.
EOF
IDLE=1
sleep infinity &
IDLE_PID=$!
wait "$IDLE_PID"
