#!/usr/bin/env bash
# package-test.sh - the Debian package, built and installed the way an
# operator does it (root; scripts/test.sh runs it before the suite):
#   dpkg-buildpackage -us -uc -b on a copy of the tree, dpkg -i, then what
#   the operator checks: the files in place, the module enabled by the
#   package, `a2dismod` / `a2enmod clusterstorage` (which enables mod_dbd
#   too), `apache2ctl configtest`, `apache2ctl -M` listing both modules; then
#   `dpkg --purge` leaves the module disabled and its files gone, and mod_dbd
#   as it was.  No service is started (policy-rc.d).  Prints one "ok" or
#   "not ok" line per check (TAP) and exits 1 if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
die() { echo "package-test.sh: ERROR: $*" >&2; exit 1; }
log() { echo "# package-test.sh: $*"; }
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

[[ $(id -u) -eq 0 ]] || die "run as root (it installs a package)"
PKG=libapache2-mod-clusterstorage
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed"; then
    die "$PKG is installed on this machine already; this test installs and purges it"
fi

BUILD=$(mktemp -d /tmp/cs-package.XXXXXX)
dbd_before=$(a2query -m dbd >/dev/null 2>&1 && echo enabled || echo disabled)
cleanup() {
    set +e
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "installed"; then
        dpkg --purge "$PKG" >/dev/null 2>&1
    fi
    [[ $dbd_before == disabled ]] && a2dismod -q -f dbd >/dev/null 2>&1
    restore_policy >/dev/null
    rm -rf "$BUILD"
}
trap cleanup EXIT

n=0 failed=0
check() { # check DESCRIPTION CMD...
    local what=$1
    shift
    n=$((n + 1))
    if "$@" >"$BUILD/out" 2>&1; then
        echo "ok $n - $what"
    else
        echo "not ok $n - $what"
        sed 's/^/#   /' "$BUILD/out" | tail -n 20
        failed=$((failed + 1))
    fi
}

mkdir "$BUILD/src"
tar -C "$REPO" --exclude=./.git --exclude=./.state --exclude=./t/logs \
    --exclude=./t/storage --exclude=./.libs --exclude=./src/.libs -cf - . |
    tar -C "$BUILD/src" -xf -
check "dpkg-buildpackage -us -uc -b builds $PKG" \
    bash -c "cd '$BUILD/src' && dpkg-buildpackage -us -uc -b"
deb=$(ls "$BUILD"/${PKG}_*.deb 2>/dev/null | head -n 1 || true)
[[ -n "$deb" ]] || { echo "1..$n"; die "no .deb was built"; }

forbid_service_starts >/dev/null
check "dpkg -i installs it" dpkg -i "$deb"
for f in /usr/lib/apache2/modules/mod_clusterstorage.so \
    /etc/apache2/mods-available/clusterstorage.load \
    /etc/apache2/mods-available/clusterstorage.conf \
    /usr/share/libapache2-mod-clusterstorage/schema.sql \
    /usr/share/libapache2-mod-clusterstorage/mariadb-client.cnf \
    /usr/share/libapache2-mod-clusterstorage/galera-check \
    /usr/sbin/cs-adopt \
    /usr/share/doc/$PKG/README.md.gz \
    /usr/share/doc/$PKG/examples/cluster-example.conf; do
    check "installs $f" test -s "$f"
done
check "the package enabled the module" a2query -m clusterstorage
check "a2dismod clusterstorage" a2dismod -q clusterstorage
check "... disables it" bash -c "! a2query -m clusterstorage"
check "a2enmod clusterstorage" a2enmod -q clusterstorage
check "... enables it and mod_dbd (# Depends: dbd)" \
    bash -c "a2query -m clusterstorage && a2query -m dbd"
check "apache2ctl configtest: Syntax OK" \
    bash -c "apache2ctl configtest 2>&1 | tee /dev/stderr | grep -q 'Syntax OK'"
apache2ctl -M >"$BUILD/modules" 2>&1 || true
check "apache2ctl -M lists clusterstorage_module" grep -q clusterstorage_module "$BUILD/modules"
check "apache2ctl -M lists dbd_module" grep -q dbd_module "$BUILD/modules"
check "dpkg --purge removes it" dpkg --purge "$PKG"
check "... the module is no longer enabled" \
    bash -c "! a2query -m clusterstorage && ! test -e /etc/apache2/mods-enabled/clusterstorage.load"
check "... and its files are gone" \
    bash -c "! test -e /usr/lib/apache2/modules/mod_clusterstorage.so && ! test -e /etc/apache2/mods-available/clusterstorage.load"
echo "1..$n"
((failed == 0)) || { echo "# $failed of $n package checks failed"; exit 1; }
echo "# all $n package checks passed"
