#!/usr/bin/env bash
# Tidies every module of the workspace. Plain `go mod tidy` ignores go.work and would try to
# download unpublished sibling modules (github.com/commitlog-go/commitlog/<module> v0.1.0), so
# each module is tidied through a temporary copy of its go.mod that replaces every sibling with
# its local directory; the result is copied back without those replace lines (no replace
# directive is ever committed: it would break `go install …@version`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=github.com/commitlog-go/commitlog
modules=(storage consensus discovery transport authz client server tools deploy)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for m in "${@:-${modules[@]}}"; do
	dir="$root/$m"
	cp "$dir/go.mod" "$tmp/go.mod"
	[ -f "$dir/go.sum" ] && cp "$dir/go.sum" "$tmp/go.sum" || : >"$tmp/go.sum"
	for s in "${modules[@]}"; do
		[ "$s" = "$m" ] && continue
		go mod edit -replace="$prefix/$s=$root/$s" "$tmp/go.mod"
	done
	(cd "$dir" && GOWORK=off go mod tidy -modfile="$tmp/go.mod")
	for s in "${modules[@]}"; do
		go mod edit -dropreplace="$prefix/$s" "$tmp/go.mod"
	done
	cp "$tmp/go.mod" "$dir/go.mod"
	if [ -s "$tmp/go.sum" ]; then cp "$tmp/go.sum" "$dir/go.sum"; else rm -f "$dir/go.sum"; fi
	echo "tidied $m"
done
