#!/usr/bin/env bash
# Runs every module's tests with the race detector (`make test`), prints each package's result,
# the output of what failed, every skipped test with its reason, and a closing count line.
#
# With COMMITLOG_STRICT set (.ci/run sets it), a skipped test fails the run: in CI a test that
# could not run must not read as "ok". Tests that depend on the machine (curl, Docker compose,
# root) fail instead of skipping under the same variable.
#
# Usage: scripts/test.sh [module...]   (default: every module); GOTESTFLAGS adds go test flags.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t modules < <("$root/scripts/modules.sh")
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

failed_modules=()
for m in "${@:-${modules[@]}}"; do
	echo "== test $m"
	log="$logs/$m.log"
	# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
	(cd "$root/$m" && go test -race -count=1 -timeout 25m -v ${GOTESTFLAGS:-} ./...) >"$log" 2>&1
	rc=$?
	grep -E '^(ok |FAIL|\? |panic:)' "$log"
	if [ $rc -ne 0 ]; then
		failed_modules+=("$m")
		echo "-- $m failed; its output without the lines of passing tests' progress:"
		grep -vE '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS)' "$log"
	fi
done

passed=$(cat "$logs"/*.log | grep -cE '^\s*--- PASS' || true)
failed=$(cat "$logs"/*.log | grep -cE '^\s*--- FAIL' || true)
skipped=$(cat "$logs"/*.log | grep -cE '^\s*--- SKIP' || true)
if [ "$skipped" -gt 0 ]; then
	echo "== skipped tests (${skipped}):"
	for f in "$logs"/*.log; do
		# The SKIP line, then the test's log lines (go test -v streams a test's t.Log and t.Skip
		# output before its result line).
		awk -v mod="$(basename "$f" .log)" '
			/^=== (RUN|NAME|CONT)/ { n = 0; next }
			/^[[:space:]]*--- SKIP/ { print mod ": " $0; for (i = 0; i < n; i++) print mod ":     " buf[i]; n = 0; next }
			/^[[:space:]]+[^[:space:]]+\.go:[0-9]+: / { if (n < 20) buf[n++] = $0 }' "$f"
	done
else
	echo "== skipped tests: none"
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"

if [ ${#failed_modules[@]} -gt 0 ]; then
	echo "FAILED modules: ${failed_modules[*]}"
	exit 1
fi
if [ -n "${COMMITLOG_STRICT:-}" ] && [ "$skipped" -gt 0 ]; then
	echo "COMMITLOG_STRICT is set and ${skipped} tests were skipped: failing (every test must run in CI)"
	exit 1
fi
