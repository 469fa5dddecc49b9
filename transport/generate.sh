#!/usr/bin/env bash
# generate.sh regenerates transport/gen from transport/proto with buf and the
# protoc plugins pinned by `tool` directives in ../buildtools/go.mod. Nothing
# is fetched from the Buf Schema Registry. Run from anywhere:
#
#	transport/generate.sh          # regenerate gen/
#	transport/generate.sh -check   # fail if gen/ differs from what it would generate
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$(cd "$here/../buildtools" && pwd)"

bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
for t in buf protoc-gen-go protoc-gen-go-grpc protoc-gen-connect-go; do
	path="$(GOWORK=off go -C "$tools" tool -n "$t")"
	ln -s "$path" "$bin/$t"
done
export PATH="$bin:$PATH"

cd "$here"
buf lint
if [[ "${1:-}" == "-check" ]]; then
	out="$(mktemp -d)"
	trap 'rm -rf "$bin" "$out"' EXIT
	cp -r "$here/buf.yaml" "$here/buf.gen.yaml" "$here/proto" "$out/"
	(cd "$out" && buf generate)
	if ! diff -r "$here/gen" "$out/gen"; then
		echo "transport/gen is stale: run transport/generate.sh" >&2
		exit 1
	fi
	exit 0
fi
buf generate
