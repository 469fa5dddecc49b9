#!/usr/bin/env bash
# Tidies every module of the workspace (modules.txt), buildtools and the examples. Plain `go mod tidy` ignores
# go.work and would try to download the siblings' required versions, which the workspace has not
# released yet (github.com/commitlog-go/commitlog/<module> at a version from modules.txt), so each
# module is tidied through a temporary copy of its go.mod that replaces every sibling with its
# local directory; the result is copied back without those replace lines (no replace directive
# is ever committed: it would break `go install …@version`).
#
# Usage: scripts/tidy.sh [-check] [module...]
#   -check: change nothing; print what tidying would change and fail if anything would.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=github.com/commitlog-go/commitlog
check=
if [ "${1:-}" = -check ]; then check=1; shift; fi
mapfile -t modules < <("$root/scripts/modules.sh")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

stale=()
for m in "${@:-${modules[@]}}" buildtools; do
	dir="$root/$m"
	if [ "$m" = buildtools ]; then
		[ $# -gt 0 ] && continue # only with the default list
		if [ -n "$check" ]; then
			(cd "$dir" && GOWORK=off go mod tidy -diff) || stale+=("$m")
		else
			(cd "$dir" && GOWORK=off go mod tidy) && echo "tidied $m"
		fi
		continue
	fi
	cp "$dir/go.mod" "$tmp/go.mod"
	[ -f "$dir/go.sum" ] && cp "$dir/go.sum" "$tmp/go.sum" || : >"$tmp/go.sum"
	for s in "${modules[@]}"; do
		[ "$s" = "$m" ] && continue
		go mod edit -replace="$prefix/$s=$root/$s" "$tmp/go.mod"
	done
	if [ -n "$check" ]; then
		# The diff is between the temporary copies: the replace lines are on both sides.
		(cd "$dir" && GOWORK=off go mod tidy -diff -modfile="$tmp/go.mod") || stale+=("$m")
		continue
	fi
	(cd "$dir" && GOWORK=off go mod tidy -modfile="$tmp/go.mod")
	for s in "${modules[@]}"; do
		go mod edit -dropreplace="$prefix/$s" "$tmp/go.mod"
	done
	cp "$tmp/go.mod" "$dir/go.mod"
	if [ -s "$tmp/go.sum" ]; then cp "$tmp/go.sum" "$dir/go.sum"; else rm -f "$dir/go.sum"; fi
	echo "tidied $m"
done
# The examples, as a stranger tidies them (against a module proxy of this tree; see
# buildtools/internal/modules TidyExamples): only with the default list.
if [ $# -eq 0 ]; then
	GOWORK=off go -C "$root/buildtools" run ./cmd/modules -root "$root" tidy-examples ${check:+-check} || stale+=(examples)
fi
if [ ${#stale[@]} -gt 0 ]; then
	echo "not tidy: ${stale[*]} (run make tidy and commit)" >&2
	exit 1
fi
