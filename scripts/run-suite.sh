#!/usr/bin/env bash
# Runs as an unprivileged user (scripts/test.sh arranges that): build, unit
# tests, private services, Apache::Test.  Everything started here is stopped
# on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

echo "== build${SANITIZE:+ (SANITIZE=$SANITIZE)}"
[ -n "${SANITIZE:-}" ] && make -f Makefile.apxs clean >/dev/null
make -f Makefile.apxs ${SANITIZE:+SANITIZE=$SANITIZE} >build.log 2>&1 || { cat build.log; exit 1; }
grep -E "(warning|error):" build.log && { echo "build has warnings"; exit 1; }
echo "== source checks and C unit tests"
bash scripts/check-schema.sh
bash scripts/check-layers.sh
bash scripts/check-log-tags.sh
make -f Makefile.apxs unit
if [ -z "${CS_SKIP_FUZZ:-}" ]; then
    echo "== fuzzing the parsers (${FUZZ_SECONDS:-20} s each)"
    bash fuzz/run.sh
fi

export CS_STATE_DIR=$(mktemp -d /tmp/cs-test-state.XXXXXX)
cleanup() {
    set +e
    [ -x t/TEST ] && t/TEST -stop >/dev/null 2>&1
    perl -Mlib=t/lib -MCSTest -e 'CSTest::stop_all_nodes()' >/dev/null 2>&1
    bash scripts/services.sh stop --purge >/dev/null 2>&1
    if [ -n "${CS_KEEP_WORK:-}" ]; then
        echo "state (node logs) kept in $CS_STATE_DIR"
    else
        rm -rf "$CS_STATE_DIR"
    fi
}
trap cleanup EXIT

echo "== private services"
bash scripts/services.sh start >/dev/null
eval "$(bash scripts/services.sh env)"
export CS_REPO="$REPO"
export CS_APACHE_MODULES=$(apxs -q LIBEXECDIR)
# Apache::Test reads Debian's apache2.conf for its LoadModule lines; give
# the variables that file expects harmless private values.
export APACHE_RUN_DIR=$CS_STATE_DIR APACHE_LOCK_DIR=$CS_STATE_DIR \
       APACHE_LOG_DIR=$CS_STATE_DIR APACHE_PID_FILE=$CS_STATE_DIR/system.pid \
       APACHE_RUN_USER=$(id -un) APACHE_RUN_GROUP=$(id -gn)

echo "== Apache::Test"
HTTPD=/usr/sbin/apache2
if [ "${SANITIZE:-}" = address ]; then
    # httpd itself is not instrumented: every httpd of the suite (the
    # Apache::Test server and the extra nodes) starts through a wrapper that
    # preloads the runtime.  Reports go to $CS_STATE_DIR/asan.* and fail
    # the run below.
    HTTPD=$REPO/scripts/httpd-asan
    export ASAN_OPTIONS="detect_leaks=0:log_path=$CS_STATE_DIR/asan:abort_on_error=0"
fi
export CS_HTTPD=$HTTPD
rm -rf t/storage
perl -MApache::TestMM=test -e 'Apache::TestMM::generate_script("t/TEST")'
rc=0
t/TEST -apxs "$(command -v apxs)" -httpd "$HTTPD" \
    -httpd_conf /etc/apache2/apache2.conf -port select "$@" || rc=$?
if [ "${SANITIZE:-}" = address ]; then
    if ls "$CS_STATE_DIR"/asan.* >/dev/null 2>&1; then
        echo "== AddressSanitizer reports"
        cat "$CS_STATE_DIR"/asan.*
        rc=1
    else
        echo "== AddressSanitizer: no reports"
    fi
fi
exit "$rc"
