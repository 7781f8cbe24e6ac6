#!/usr/bin/env bash
# fuzz/run.sh - build the libFuzzer harnesses of the pure parsers (src/codec.c)
# with clang + AddressSanitizer + UBSan and run each for a bounded time.
#
#   bash fuzz/run.sh                 # every harness, 20 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh key entry
#   FUZZ_SECONDS=0 bash fuzz/run.sh  # only replay the seed corpora
#
# Harnesses: fuzz/fuzz_NAME.c, seeds: fuzz/corpus/NAME/.  The seeds are
# copied to a temporary directory, so whatever the fuzzer adds to its corpus
# never lands in the repository.  Binaries go to fuzz/out/ (ignored by git);
# a crashing input is copied to fuzz/out/NAME-crash-* and the command to
# replay it is printed.  Exit status: 0 when every harness ran clean, 1 when
# any crashed, leaked, hit an invariant or failed to build.
#
# Environment:
#   FUZZ_SECONDS  time per harness (-max_total_time), default 20; 0 = replay
#   FUZZ_JOBS     harnesses run at the same time, default min(nproc, count)
#   FUZZ_CC       compiler, default clang (needs libclang-rt-14-dev for the
#                 libFuzzer runtime; scripts/deps.sh installs both)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

SECONDS_EACH=${FUZZ_SECONDS:-20}
CC=${FUZZ_CC:-clang}
OUT=$REPO/fuzz/out
ALL=(entry http_head auth key u64 job meta)

# -max_len per harness: a little above the largest input the parser accepts,
# so the limits themselves (160-byte entries, 200-byte auth values,
# 2048-byte keys, 16384-byte heads) get crossed.
declare -A MAXLEN=([entry]=256 [http_head]=17000 [auth]=256 [key]=4200
                   [u64]=64 [job]=4300 [meta]=2300)

die() { echo "fuzz: ERROR: $*" >&2; exit 1; }

[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a number of seconds"
command -v "$CC" >/dev/null 2>&1 \
    || die "$CC not found (install clang and libclang-rt-14-dev: scripts/deps.sh)"

if (($# > 0)); then
    TARGETS=("$@")
else
    TARGETS=("${ALL[@]}")
fi
for t in "${TARGETS[@]}"; do
    [[ -f fuzz/fuzz_$t.c && -n "${MAXLEN[$t]:-}" ]] \
        || die "unknown harness '$t' (have: ${ALL[*]})"
done

JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_JOBS must be a positive number"
((JOBS > ${#TARGETS[@]})) && JOBS=${#TARGETS[@]}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cs-fuzz.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"

# ---------------------------------------------------------------- build
CFLAGS=(-g -O1 -Wall -Wextra -Werror
        "-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=all -I. -Isrc)
echo "== fuzz: building ${TARGETS[*]} with $CC"
for t in "${TARGETS[@]}"; do
    if ! "$CC" "${CFLAGS[@]}" -o "$OUT/fuzz_$t" "fuzz/fuzz_$t.c" src/codec.c \
            >"$WORK/build-$t.log" 2>&1; then
        cat "$WORK/build-$t.log"
        die "cannot build fuzz/fuzz_$t.c (is libclang-rt-14-dev installed? scripts/deps.sh)"
    fi
done

# ---------------------------------------------------------------- run
# Whatever the environment preloads (the suite's SANITIZE=address mode
# preloads gcc's libasan into httpd) must not reach the clang binaries.
unset LD_PRELOAD
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

run_one() { # run_one NAME (in a subshell, which becomes the fuzzer):
    # fuzz one harness; its output goes to $WORK/NAME.log
    local t=$1 limit
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
    cp -R "fuzz/corpus/$t/." "$WORK/corpus/$t/"
    if ((SECONDS_EACH == 0)); then
        limit=(-runs=0)
    else
        limit=(-max_total_time="$SECONDS_EACH")
    fi
    exec "$OUT/fuzz_$t" "${limit[@]}" -max_len="${MAXLEN[$t]}" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$t/" "$WORK/corpus/$t" \
        >"$WORK/$t.log" 2>&1
}

if ((SECONDS_EACH == 0)); then
    echo "== fuzz: replaying the seed corpora"
else
    echo "== fuzz: ${SECONDS_EACH}s per harness, $JOBS at a time"
fi
declare -A RC=()
declare -A PID_OF=()
start=$(date +%s)
next=0
running=0
while ((next < ${#TARGETS[@]} || running > 0)); do
    while ((running < JOBS && next < ${#TARGETS[@]})); do
        t=${TARGETS[next]}
        run_one "$t" &
        PID_OF[$t]=$!
        PIDS+=($!)
        next=$((next + 1))
        running=$((running + 1))
    done
    # Wait for whichever harness is first in line and still running.
    for t in "${TARGETS[@]}"; do
        if [[ -n "${PID_OF[$t]:-}" && -z "${RC[$t]:-}" ]]; then
            rc=0
            wait "${PID_OF[$t]}" || rc=$?
            RC[$t]=$rc
            running=$((running - 1))
            break
        fi
    done
done
PIDS=()
elapsed=$(($(date +%s) - start))

# ---------------------------------------------------------------- report
failed=()
for t in "${TARGETS[@]}"; do
    log=$WORK/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 || true)
    crashes=("$WORK/artifacts/$t"/*)
    if [[ "${RC[$t]}" == 0 && ! -e "${crashes[0]}" ]]; then
        printf 'fuzz %-10s ok      %s runs, %s\n' "$t" "${runs:-?}" "${cov:-cov: ?}"
        continue
    fi
    failed+=("$t")
    printf 'fuzz %-10s FAILED  (exit %s)\n' "$t" "${RC[$t]}"
    echo "---- fuzz/fuzz_$t.c: libFuzzer output (last 80 lines)"
    tail -n 80 "$log"
    for f in "${crashes[@]}"; do
        [[ -e "$f" ]] || continue
        dst=$OUT/$t-$(basename "$f")
        cp "$f" "$dst"
        echo "---- input ($(stat -c %s "$f") bytes), saved as ${dst#"$REPO"/}:"
        od -A d -c "$f" | head -n 40
        echo "---- replay: fuzz/out/fuzz_$t ${dst#"$REPO"/}"
    done
done

if ((${#failed[@]} > 0)); then
    echo "== fuzz: FAILED: ${failed[*]} (${elapsed}s)"
    exit 1
fi
echo "== fuzz: all ${#TARGETS[@]} harnesses clean (${elapsed}s)"
