#!/usr/bin/env bash
# bench-vs-nats (make bench-vs-nats): the per-record and batched produce paths of a 3-node commitlog
# cluster side by side with a 3-node NATS JetStream cluster (R3, file storage, sync_interval
# always: both fsync before acknowledging), on this machine, with one load tool
# (commitlog-bench -target commitlog|nats). Prints one table: records/s, p50 latency and server
# CPU per acknowledged record (µs of user+system time, summed over the three server processes,
# warmup and drain included) for each, and the ratio.
#
# Every cluster runs at once, on loopback; the workloads run in turn against each (alternating,
# so that a noisy neighbour hurts both sides alike), BENCH_ROUNDS times, and the table shows the
# medians (the rounds' figures go to $work/rounds.tsv).
#
# Settings (environment):
#   COMMITLOG_BINS  "name=path[,bench[,transport]] ..." commitlog binaries to compare (default
#                   "commitlog=bin/commitlog"; e.g. "before=/tmp/old after=bin/commitlog" runs both,
#                   each its own cluster); ",bench" drives that cluster with another load tool
#                   (the SDK's client side is part of what is measured); ",,grpc" runs that
#                   cluster with `serve --transport grpc` (the grpc-go server instead of Connect's)
#                   and every workload against it over gRPC, e.g.
#                   "connect=bin/commitlog grpc=bin/commitlog,,grpc"
#   BENCH_BIN       the load tool (default bin/commitlog-bench)
#   BENCH_CACHE     where nats-server is installed (default .cache/bench)
#   BENCH_DURATION  measured phase per workload (default 10s); BENCH_WARMUP (default 2s)
#   BENCH_ROUNDS    rounds (default 1)
#   BENCH_WORKLOADS names of the workloads to run (default all: see the list below)
#   BENCH_PORT      first port used (default 17400; about 20 ports per cluster above it)
#   BENCH_SETTLE    1 (default): sync, and as root drop the page cache, before each run (settle)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
nats_version=v2.15.2
cache=${BENCH_CACHE:-$root/.cache/bench}
bench=${BENCH_BIN:-$root/bin/commitlog-bench}
bins=${COMMITLOG_BINS:-commitlog=$root/bin/commitlog}
duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
rounds=${BENCH_ROUNDS:-1}
port=${BENCH_PORT:-17400}

# name|title|flags (the same for every target)
all_workloads=(
	"unary1|unary, 1 client|-mode unary -producers 1 -clients 1"
	"unary16|unary, 16 clients|-mode unary -producers 16 -clients 16"
	"stream100|stream, 16 x 256 in flight, 100 B|-mode stream -producers 16 -clients 16 -window 256 -record-size 100"
	"stream1k|stream, 16 x 256 in flight, 1 KiB|-mode stream -producers 16 -clients 16 -window 256 -record-size 1024"
	"batch100|batch, 16 x 256, 100 B|-mode batch -producers 16 -clients 16 -window 256 -batch-records 256 -record-size 100"
	"batch1k|batch, 16 x 256, 1 KiB|-mode batch -producers 16 -clients 16 -window 256 -batch-records 256 -record-size 1024"
	"stream100g|stream, 16 x 256 in flight, 100 B, SDK over gRPC|-mode stream -producers 16 -clients 16 -window 256 -record-size 100 -transport grpc"
	"stream1kg|stream, 16 x 256 in flight, 1 KiB, SDK over gRPC|-mode stream -producers 16 -clients 16 -window 256 -record-size 1024 -transport grpc"
	"unary1g|unary, 1 client, SDK over gRPC|-mode unary -producers 1 -clients 1 -transport grpc"
	"unary16g|unary, 16 clients, SDK over gRPC|-mode unary -producers 16 -clients 16 -transport grpc"
)
want=${BENCH_WORKLOADS:-unary1 unary16 stream100 stream1k batch100 batch1k stream100g stream1kg}

if [ ! -x "$cache/nats-server" ]; then
	echo "bench-vs-nats: installing nats-server $nats_version into $cache" >&2
	mkdir -p "$cache"
	GOBIN="$cache" go install "github.com/nats-io/nats-server/v2@$nats_version"
fi
[ -x "$bench" ] || { echo "bench-vs-nats: no load tool at $bench (make bench-vs-nats builds it; or: cd tools && go build -o ../bin/commitlog-bench ./cmd/commitlog-bench)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-nats.XXXXXX")
pids=()
stop() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"/data-* "$work"/nats-*/js
}
trap stop EXIT
trap 'exit 130' INT TERM

# targets: name, kind (nats|commitlog), addrs, pids, load tool, extra load tool flags
t_names=() t_kinds=() t_addrs=() t_pids=() t_bench=() t_flags=()

start_nats() {
	local base=$port routes="" i p=()
	port=$((port + 20))
	for i in 1 2 3; do routes+="nats-route://127.0.0.1:$((base + 10 + i)),"; done
	for i in 1 2 3; do
		mkdir -p "$work/nats-$i"
		cat >"$work/nats-$i/nats.conf" <<-EOF
			server_name: n$i
			listen: 127.0.0.1:$((base + i))
			jetstream { store_dir: "$work/nats-$i/js", sync_interval: always }
			cluster { name: clbench, listen: 127.0.0.1:$((base + 10 + i)), routes: [${routes%,}] }
		EOF
		"$cache/nats-server" -c "$work/nats-$i/nats.conf" >"$work/nats-$i/log" 2>&1 &
		pids+=($!) p+=($!)
	done
	t_names+=(nats) t_kinds+=(nats) t_bench+=("$bench") t_flags+=("") t_addrs+=("127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))")
	t_pids+=("$(IFS=,; echo "${p[*]}")")
}

start_commitlog() { # name binary [load tool [transport]]
	local base=$port i p=() a=() flags=""
	[ -n "${4:-}" ] && flags="-transport $4"
	port=$((port + 40))
	for i in 1 2 3; do
		local rpc=$((base + (i - 1) * 10))
		local args=(serve --node-name "node-$i" --data-dir "$work/data-$1/node-$i" --bind-addr "127.0.0.1:$((rpc + 1))"
			--rpc-port "$rpc" --gossip-profile local --log-level warn --bootstrap-expect 3)
		[ "$i" -gt 1 ] && args+=(--start-join-addrs "127.0.0.1:$((base + 1))")
		[ -n "${4:-}" ] && args+=(--transport "$4")
		"$2" "${args[@]}" >"$work/$1-node-$i.log" 2>&1 &
		pids+=($!) p+=($!) a+=("127.0.0.1:$rpc")
	done
	t_names+=("$1") t_kinds+=(commitlog) t_bench+=("${3:-$bench}") t_flags+=("$flags") t_addrs+=("$(IFS=,; echo "${a[*]}")")
	t_pids+=("$(IFS=,; echo "${p[*]}")")
}

start_nats
for b in $bins; do
	IFS=, read -r path tool transport <<<"${b#*=}"
	start_commitlog "${b%%=*}" "$path" "$tool" "$transport"
done

# Wait until each target takes a record.
for i in "${!t_names[@]}"; do
	ok=""
	for _ in $(seq 60); do
		# shellcheck disable=SC2086 # t_flags is a list of flags
		if "${t_bench[$i]}" -target "${t_kinds[$i]}" -nats-replicas 3 -addr "${t_addrs[$i]}" -records 1 -warmup 0 -progress=-1s \
			-max-errors 1 ${t_flags[$i]} >/dev/null 2>&1; then ok=1; break; fi
		sleep 1
	done
	[ -n "$ok" ] || { echo "bench-vs-nats: ${t_names[$i]} never became ready; logs in $work" >&2; exit 1; }
done
echo "bench-vs-nats: clusters ready (${t_names[*]}); $rounds round(s) of ${duration} per workload; work dir $work" >&2

# settle: before each measured run, write every dirty page back and, where this may (root),
# drop the page cache, so that a run does not pay, in its servers' CPU time and in disk time,
# for the writeback and reclaim of what the runs before it wrote (the six clusters' logs grow by
# gigabytes over the batch rows, and a full cache is reclaimed by whoever writes next).
# BENCH_SETTLE=0: measure without it.
settle() {
	[ "${BENCH_SETTLE:-1}" = 1 ] || return 0
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

# run target workload-flags: prints "rec/s p50_ms cpu_us_per_record"
run() {
	local i=$1 flags=$2 out
	settle
	# shellcheck disable=SC2086
	out=$("${t_bench[$i]}" -target "${t_kinds[$i]}" -nats-replicas 3 -addr "${t_addrs[$i]}" -server-pids "${t_pids[$i]}" \
		-duration "$duration" -warmup "$warmup" -progress=-1s -max-errors -1 $flags ${t_flags[$i]} 2>>"$work/bench.err") || true
	awk '
		/^produce/ { for (j = 1; j <= NF; j++) if ($j == "records/s") r = $(j-1) }
		/latency p50/ { for (j = 1; j <= NF; j++) if ($j == "p50") p = $(j+1) }
		/^server +CPU/ { for (j = 1; j <= NF; j++) if ($j == "µs") c = $(j-1) }
		END {
			if (p ~ /µs$/) { sub(/µs$/, "", p); p = p / 1000 } else if (p ~ /ms$/) { sub(/ms$/, "", p) } else if (p ~ /s$/) { sub(/s$/, "", p); p = p * 1000 }
			printf "%s %s %s\n", (r == "" ? 0 : r), (p == "" ? 0 : p), (c == "" ? 0 : c)
		}' <<<"$out"
}

: >"$work/rounds.tsv"
for r in $(seq "$rounds"); do
	for w in "${all_workloads[@]}"; do
		IFS='|' read -r name title flags <<<"$w"
		[[ " $want " == *" $name "* ]] || continue
		for i in "${!t_names[@]}"; do
			read -r rate p50 cpu < <(run "$i" "$flags")
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "${t_names[$i]}" "$rate" "$p50" "$cpu" >>"$work/rounds.tsv"
			printf 'round %s %-10s %-10s %10.0f rec/s  p50 %7.2f ms  %6.1f µs CPU/rec\n' "$r" "$name" "${t_names[$i]}" "$rate" "$p50" "$cpu" >&2
		done
	done
done

# The table: medians over the rounds.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "bench-vs-nats: $(nproc) cores, $(uname -sr), commitlog 3 nodes vs NATS JetStream $nats_version R3 (file, sync_interval always),"
echo "$rounds round(s) of $duration (+ $warmup warmup), medians; CPU = µs of server CPU per acknowledged record, 3 nodes summed"
echo
header="| workload | NATS rec/s | NATS p50 | NATS CPU/rec |"
sep="|---|---|---|---|"
for n in "${t_names[@]:1}"; do header+=" $n rec/s | $n p50 | $n CPU/rec | $n ÷ NATS |"; sep+="---|---|---|---|"; done
echo "$header"
echo "$sep"
for w in "${all_workloads[@]}"; do
	IFS='|' read -r name title flags <<<"$w"
	[[ " $want " == *" $name "* ]] || continue
	col() { awk -F'\t' -v w="$name" -v t="$1" -v c="$2" '$2 == w && $3 == t { print $c }' "$work/rounds.tsv" | median; }
	nr=$(col nats 4)
	line=$(printf '| %s | %.0f | %.2f ms | %.1f µs |' "$title" "$nr" "$(col nats 5)" "$(col nats 6)")
	for n in "${t_names[@]:1}"; do
		cr=$(col "$n" 4)
		line+=$(printf ' %.0f | %.2f ms | %.1f µs | %.2f |' "$cr" "$(col "$n" 5)" "$(col "$n" 6)" "$(awk -v a="$cr" -v b="$nr" 'BEGIN { print (b > 0 ? a / b : 0) }')")
	done
	echo "$line"
done
