#!/usr/bin/env bash
# Build HAProxy from a Debian release's own source package and cache the binary.
#
#   scripts/build-haproxy.sh [SUITE]          (SUITE defaults to trixie: HAProxy 3.0)
#
# On success prints the path of the cached `haproxy` binary on stdout, exit 0.
# The source comes through a private apt directory (own sources.list, lists and cache)
# so the machine's own apt sources are never touched; Debian 12's -dev packages are
# installed with the ordinary apt-get.  The binary is cached outside the clone, keyed by
# the source package version:
#   ${BUILD_HAPROXY_CACHE:-/var/cache/lbsync}/haproxy-<version>/haproxy
# so a second run on the same machine reuses it (no download, no build).
#
# When the source cannot be fetched or built, prints ONE line on stderr starting with
# "unavailable:" and exits 3, so callers can report the leg as skipped rather than
# passing silently.  Any other non-zero exit is a bug in this script.
set -euo pipefail

SUITE="${1:-trixie}"
MIRROR="${BUILD_HAPROXY_MIRROR:-http://deb.debian.org/debian}"
CACHE="${BUILD_HAPROXY_CACHE:-/var/cache/lbsync}"
APTDIR="$CACHE/apt-$SUITE"
LOG="$CACHE/build-$SUITE.log"
MAKE_OPTS=(TARGET=linux-glibc USE_OPENSSL=1 USE_PCRE2=1 USE_PCRE2_JIT=1 USE_LUA=1 USE_PROMEX=1)
BUILD_DEPS=(build-essential pkg-config libssl-dev libpcre2-dev liblua5.4-dev)

unavailable() { echo "unavailable: HAProxy from Debian $SUITE: $1 (log: $LOG)" >&2; exit 3; }

mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/sources.list.d"
exec 9>"$CACHE/.build-$SUITE.lock"
flock 9
: >"$LOG"

echo "deb-src $MIRROR $SUITE main" >"$APTDIR/sources.list"
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APTDIR/sources.list"
  -o "Dir::Etc::sourceparts=$APTDIR/sources.list.d"
  -o "Dir::State=$APTDIR" -o "Dir::State::lists=$APTDIR/lists"
  -o "Dir::State::status=/var/lib/dpkg/status"
  -o "Dir::Cache=$APTDIR" -o "Dir::Cache::archives=$APTDIR/archives"
  -o "APT::Get::List-Cleanup=0"
)

# apt-get update exits 0 when an index fails to download ("ignored"): look at what it said
if ! apt-get "${APT_OPTS[@]}" update >>"$LOG" 2>&1 || grep -q '^[EW]: Failed to fetch' "$LOG"; then
  prev="$(cat "$CACHE/latest-$SUITE" 2>/dev/null || true)"
  if [ -n "$prev" ] && [ -x "$CACHE/haproxy-$prev/haproxy" ]; then
    echo "note: apt-get update failed; reusing cached HAProxy $prev" >&2
    echo "$CACHE/haproxy-$prev/haproxy"; exit 0
  fi
  unavailable "apt-get update of the private deb-src list failed"
fi
VERSION="$( (apt-cache "${APT_OPTS[@]}" showsrc haproxy 2>>"$LOG" || true) \
  | awk '/^Version:/ {print $2}' | sort -V | tail -n1)"
[ -n "$VERSION" ] || unavailable "no haproxy source package in $SUITE"
BIN="$CACHE/haproxy-$VERSION/haproxy"
if [ -x "$BIN" ] && "$BIN" -v >/dev/null 2>&1; then
  echo "$BIN"; exit 0
fi

WORK="$CACHE/build-$VERSION"
rm -rf "$WORK" && mkdir -p "$WORK"
# Only the upstream (orig) tarball is needed: apt checks its hash against the signed
# Sources index, and a missing .dsc or Debian diff (some mirrors lag) is not fatal.
( cd "$WORK" && apt-get "${APT_OPTS[@]}" source --download-only "haproxy=$VERSION" ) >>"$LOG" 2>&1 \
  || echo "note: apt-get source reported errors; continuing if the orig tarball arrived" >>"$LOG"
ORIG="$(ls "$WORK"/haproxy_*.orig.tar.* 2>/dev/null | head -n1)"
[ -n "$ORIG" ] || unavailable "apt-get source --download-only haproxy=$VERSION fetched no orig tarball"
tar -xf "$ORIG" -C "$WORK" >>"$LOG" 2>&1 || unavailable "cannot unpack $ORIG"
SRC="$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'haproxy-*' | head -n1)"
[ -n "$SRC" ] || unavailable "unpacked tarball holds no haproxy-* directory"

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BUILD_DEPS[@]}" >>"$LOG" 2>&1 \
  || unavailable "cannot install build dependencies: ${BUILD_DEPS[*]}"
make -C "$SRC" -j"$(nproc)" "${MAKE_OPTS[@]}" >>"$LOG" 2>&1 || unavailable "make failed"
"$SRC/haproxy" -v >>"$LOG" 2>&1 || unavailable "the built binary does not run"

mkdir -p "$(dirname "$BIN")"
install -m 0755 "$SRC/haproxy" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
echo "$VERSION" >"$CACHE/latest-$SUITE"
rm -rf "$WORK"
echo "$BIN"
