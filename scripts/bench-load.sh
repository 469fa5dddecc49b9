#!/usr/bin/env bash
# Load benchmarks against real commitlog processes (make bench-load): a single node, then a
# 3-node cluster, each started fresh on loopback with fsync-durable Raft, driven by
# tools/cmd/commitlog-bench through the Go SDK for both transports and 100 B / 1 KiB records.
# Every server is stopped by its own pid at the end. DURATION (default 5s) sets each run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dur=${DURATION:-5s}
nodes=${NODES:-"1 3"}
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$root/server" && CGO_ENABLED=0 go build -o "$work/commitlog" ./cmd/commitlog)
(cd "$root/tools" && go build -o "$work/commitlog-bench" ./cmd/commitlog-bench)

start_cluster() { # n transport
	local n=$1 tr=$2
	pids=()
	for i in $(seq 1 "$n"); do
		local port=$((18400 + i * 10))
		local args=(serve --node-name "n$i" --data-dir "$work/$tr-$n/n$i" --bind-addr "127.0.0.1:$((port + 1))"
			--rpc-port "$port" --transport "$tr" --gossip-profile local --log-level warn --bootstrap-expect "$n")
		[ "$i" -gt 1 ] && args+=(--start-join-addrs 127.0.0.1:18411)
		"$work/commitlog" "${args[@]}" >"$work/$tr-$n-n$i.log" 2>&1 &
		pids+=($!)
	done
	for _ in $(seq 1 300); do
		if [ "$("$work/commitlog" cluster status --addr 127.0.0.1:18410 --transport "$tr" 2>/dev/null | grep -c voter)" = "$n" ]; then
			return 0
		fi
		sleep 0.1
	done
	echo "cluster of $n did not form" >&2
	cat "$work"/$tr-$n-*.log >&2
	return 1
}
stop_cluster() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	pids=()
}
bench() { # label, args...
	local label=$1
	shift
	printf '%-58s ' "$label"
	"$work/commitlog-bench" -progress -1s -duration "$dur" -warmup 1s "$@" | awk '/records\/s|p50/ {printf "%s  ", $0} END {print ""}'
}

for n in $nodes; do
	for tr in connect grpc; do
		start_cluster "$n" "$tr"
		addr=127.0.0.1:18410
		for size in 100 1024; do
			bench "$n node(s) $tr ${size}B unary 1 producer" -addr $addr -transport $tr -record-size $size -mode unary -producers 1
			bench "$n node(s) $tr ${size}B unary 16 producers" -addr $addr -transport $tr -record-size $size -mode unary -producers 16
			bench "$n node(s) $tr ${size}B batching producer x8" -addr $addr -transport $tr -record-size $size -mode batch -producers 8 -max-in-flight 8
			bench "$n node(s) $tr ${size}B read back: 16 unary consumers" -addr $addr -transport $tr -producers 0 -consumers 16 -warmup 0
			bench "$n node(s) $tr ${size}B read back: 1 stream consumer" -addr $addr -transport $tr -producers 0 -stream-consumers 1 -warmup 0
		done
		stop_cluster
	done
done
