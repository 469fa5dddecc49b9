#!/usr/bin/env bash
# Runs a local 3-node commitlog cluster (make cluster): node-1 bootstraps on 127.0.0.1:8400
# (API + Raft), 127.0.0.1:8401 (Serf) and 127.0.0.1:8402 (/metrics, /healthz, /readyz); node-2 and
# node-3 join it on 8410-8412 and 8420-8422.
# Data lives in $DATA_DIR/node-N. A node that exits (killed, to watch the others fail over) is
# reported with the command that starts it again; the others keep running. Ctrl-C stops all three
# (each by its own pid) and exits; so does the last node's exit.
set -euo pipefail
bin=${BIN:-bin/commitlog}
data=${DATA_DIR:-data/cluster}
mkdir -p "$data"
declare -A names=() cmds=()
stop() {
	trap - INT TERM EXIT
	for pid in "${!names[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${!names[@]}"; do wait "$pid" 2>/dev/null || true; done
	echo "cluster stopped"
	exit 0
}
trap stop INT TERM EXIT
for i in 1 2 3; do
	port=$((8400 + (i - 1) * 10))
	args=(serve --node-name "node-$i" --data-dir "$data/node-$i" --bind-addr "127.0.0.1:$((port + 1))" --rpc-port "$port" --gossip-profile local
		--bootstrap-expect 3 --metrics-addr "127.0.0.1:$((port + 2))")
	[ "$i" -gt 1 ] && args+=(--start-join-addrs 127.0.0.1:8401)
	"$bin" "${args[@]}" "$@" >"$data/node-$i.log" 2>&1 &
	names[$!]=node-$i
	cmds[$!]="$(printf '%q ' "$bin" "${args[@]}" "$@")>>$(printf '%q' "$data/node-$i.log") 2>&1"
	echo "node-$i: API 127.0.0.1:$port, gossip 127.0.0.1:$((port + 1)), metrics http://127.0.0.1:$((port + 2))/metrics, log $data/node-$i.log (pid $!)"
done
echo "try: $bin cluster status; $bin produce hello; $bin consume   (Ctrl-C stops the cluster)"
while [ "${#names[@]}" -gt 0 ]; do
	status=0
	wait -n -p exited "${!names[@]}" || status=$?
	[ -n "${exited:-}" ] || continue
	echo "${names[$exited]} (pid $exited) exited with status $status; see its log. The others keep running; to start it again, in another terminal (its own pid, not stopped by Ctrl-C here):" >&2
	echo "  ${cmds[$exited]}" >&2
	unset "names[$exited]" "cmds[$exited]"
done
echo "every node exited" >&2
