#!/usr/bin/env bash
# Run the test suite against every HAProxy version we ship for (the README's test command).
#
#   scripts/test-matrix.sh [PYTEST ARGS...]
#
# Leg 1: the whole suite against the haproxy on PATH (Debian 12: 2.6). A recording
#        `haproxy` first on PATH notes every test that starts haproxy.
# Leg 2: the haproxy-dependent tests (`-m haproxy`: those noted in leg 1, plus every test
#        tests/conftest.py marks) against HAProxy 3.0 built from Debian 13's source package
#        by scripts/build-haproxy.sh (cached under /var/cache/lbsync, so built once).
#        If 3.0 cannot be fetched or built, leg 2 reports "skipped: HAProxy 3.0 unavailable".
# The last lines name both versions and their counts; the exit status is non-zero when
# either leg fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
REAL="$(command -v haproxy)" || { echo "test-matrix: no haproxy on PATH" >&2; exit 2; }
TMP="$(mktemp -d /tmp/lbsync-matrix.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/record" "$TMP/v3"
export TEST_HAPROXY_RECORD="$TMP/haproxy-tests"
: >"$TEST_HAPROXY_RECORD"
cat >"$TMP/record/haproxy" <<EOF
#!/bin/sh
# records the running test's node id (PYTEST_CURRENT_TEST without its " (phase)")
[ -n "\${PYTEST_CURRENT_TEST:-}" ] && printf '%s\n' "\${PYTEST_CURRENT_TEST% (*)}" >>"$TEST_HAPROXY_RECORD"
exec "$REAL" "\$@"
EOF
chmod +x "$TMP/record/haproxy"

version_of() { "$1" -v 2>/dev/null | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p'; }

counts() {  # "N passed, N failed, N errors, N skipped" from a JUnit XML report
  "$PYTHON" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no report"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
print(f"{passed} passed, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped")
EOF
}

SUMMARY=()
leg() {  # leg NAME REPORT PATH-DIR PYTEST-ARGS...: run pytest, add a summary line, return its status
  local name="$1" report="$TMP/$2.xml" dir="$3" started rc; shift 3
  started=$(date +%s)
  echo "=== $name" >&2
  PATH="$dir:$PATH" "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$report" "$@"
  rc=$?
  SUMMARY+=("$name: $(counts "$report") in $(( $(date +%s) - started )) s, exit $rc")
  return $rc
}

status=0
V1="$(version_of "$REAL")"
leg "HAProxy $V1 ($REAL), all tests" leg1 "$TMP/record" "$@" || status=1

BUILT="$(scripts/build-haproxy.sh trixie 2>"$TMP/build.err")"
case $? in
  0) ln -s "$BUILT" "$TMP/v3/haproxy"
     V2="$(version_of "$BUILT")"
     leg "HAProxy $V2 ($BUILT), tests marked haproxy" leg2 "$TMP/v3" -m haproxy "$@" || status=1 ;;
  3) SUMMARY+=("HAProxy 3.0: skipped: HAProxy 3.0 unavailable ($(tail -n1 "$TMP/build.err" | sed "s/^unavailable: //"))") ;;
  *) cat "$TMP/build.err" >&2; SUMMARY+=("HAProxy 3.0: FAILED: scripts/build-haproxy.sh broke"); status=1 ;;
esac

echo
echo "=== HAProxy version matrix"
printf '%s\n' "${SUMMARY[@]}"
exit $status
