package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// transports are the API transports every single-node test runs over.
var transports = []string{"connect", "grpc"}

// waitLeader polls the nodes (each asked alone) until one of them reports itself leader, and
// returns it.
func waitLeader(t testing.TB, nodes ...*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.Pid() == 0 {
				continue
			}
			if id := leaderSeenBy(n); id == n.Name() {
				return n
			}
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("no leader among %d nodes within %v", len(nodes), readyTimeout)
	return nil
}

// leaderSeenBy returns the id of the server n reports as leader, "" when none or no answer.
func leaderSeenBy(n *Node) string {
	tc := n.TransportClient()
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := tc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return ""
	}
	for _, s := range resp.GetServers() {
		if s.GetIsLeader() {
			return s.GetId()
		}
	}
	return ""
}

// newSDK returns a Go SDK client for addrs over transport tr, closed when the test ends.
func newSDK(t testing.TB, tr string, addrs ...string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cl, err := client.New(ctx, addrs, client.WithTransport(tr))
	if err != nil {
		t.Fatalf("client.New(%v, %s): %v", addrs, tr, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// clientArgs are the client commands' flags that reach node n.
func clientArgs(n *Node) []string { return []string{"--addr", n.Addr, "--transport", n.Transport()} }

// TestSingleNode is issue #4's "binary end to end": one `commitlog serve` process on a temp dir
// and free ports, written and read with the CLI (arguments, stdin, --from/--count, --follow),
// Connect JSON over HTTP/1.1 and curl (connect transport), and the Go SDK; stopped with SIGTERM
// (exit 0, with a tailing consumer still connected), restarted on the same data, and read back
// at the same offsets by every means.
func TestSingleNode(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testSingleNode(t, tr) })
	}
}

func testSingleNode(t *testing.T, tr string) {
	n := StartNode(t, NodeConfig{Name: "solo-" + tr, Transport: tr})
	waitLeader(t, n)
	led := newLedger()
	ack := func(offs []uint64, vals []string) {
		t.Helper()
		if len(offs) != len(vals) {
			t.Fatalf("%d offsets for %d values", len(offs), len(vals))
		}
		for i := range vals {
			led.ack(offs[i], vals[i])
		}
	}

	// CLI, values as arguments: one batch, consecutive offsets from 0.
	args := []string{tr + "-arg-0", tr + "-arg-1", tr + "-arg-2"}
	offs := parseOffsets(t, mustCLI(t, "", append(append([]string{"produce"}, clientArgs(n)...), args...)...).Stdout)
	if want := []uint64{0, 1, 2}; !slices.Equal(offs, want) {
		t.Fatalf("produce %v printed offsets %v, want %v", args, offs, want)
	}
	ack(offs, args)

	// CLI, one record per line of standard input.
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("%s-line-%02d with spaces", tr, i))
	}
	offs = parseOffsets(t, mustCLI(t, strings.Join(lines, "\n")+"\n", append([]string{"produce"}, clientArgs(n)...)...).Stdout)
	if len(offs) != len(lines) || offs[0] != 3 {
		t.Fatalf("produce from stdin printed %v, want %d offsets from 3", offs, len(lines))
	}
	ack(offs, lines)

	// CLI consume: --from/--count, then everything with offsets.
	got := mustCLI(t, "", append([]string{"consume", "--from", "2", "--count", "3"}, clientArgs(n)...)...).Stdout
	if want := strings.Join([]string{args[2], lines[0], lines[1]}, "\n") + "\n"; got != want {
		t.Fatalf("consume --from 2 --count 3 printed %q, want %q", got, want)
	}

	// Consume while following: records produced after the consumer started reach it.
	fol := startFollow(t, append([]string{"--from", "43", "--offsets"}, clientArgs(n)...)...)
	sdk := newSDK(t, tr, n.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		v := fmt.Sprintf("%s-sdk-%d", tr, i)
		led.attempt(v)
		off, err := sdk.Produce(ctx, []byte(v))
		if err != nil {
			t.Fatalf("SDK Produce: %v", err)
		}
		led.ack(off, v)
		if line, want := fol.next(t, 10*time.Second), fmt.Sprintf("%d\t%s", off, v); line != want {
			t.Fatalf("consume --follow printed %q, want %q", line, want)
		}
	}

	// The SDK's batch is atomic and consecutive.
	batch := [][]byte{[]byte(tr + "-batch-0"), []byte(tr + "-batch-1"), []byte(tr + "-batch-2"), []byte(tr + "-batch-3")}
	for _, v := range batch {
		led.attempt(string(v))
	}
	first, err := sdk.ProduceBatch(ctx, batch...)
	if err != nil {
		t.Fatalf("SDK ProduceBatch: %v", err)
	}
	for i, v := range batch {
		led.ack(first+uint64(i), string(v))
		if line, want := fol.next(t, 10*time.Second), fmt.Sprintf("%d\t%s", first+uint64(i), v); line != want {
			t.Fatalf("consume --follow printed %q, want %q", line, want)
		}
	}

	// Connect JSON over HTTP/1.1, and curl (connect transport only: grpc-go serves gRPC alone).
	if tr == "connect" {
		hc := newHTTPClient(t)
		var pr jsonProduceResponse
		connectJSON(t, hc, n.Addr, "Produce", jsonProduceRequest{Record: jsonRecord{Value: []byte("hi")}}, &pr)
		led.ack(pr.Offset, "hi")
		var cr jsonConsumeResponse
		connectJSON(t, hc, n.Addr, "Consume", jsonConsumeRequest(pr), &cr)
		if string(cr.Record.Value) != "hi" || cr.Record.Offset != pr.Offset {
			t.Fatalf("JSON Consume(%d) = %q at %d, want \"hi\" at %d", pr.Offset, cr.Record.Value, cr.Record.Offset, pr.Offset)
		}
		if line, want := fol.next(t, 10*time.Second), fmt.Sprintf("%d\thi", pr.Offset); line != want {
			t.Fatalf("consume --follow printed %q, want %q", line, want)
		}
		// curl -d '{"record":{"value":"Y3VybA=="}}' (base64 of "curl").
		t.Run("curl", func(t *testing.T) {
			var pr jsonProduceResponse
			curlJSON(t, n.Addr, "Produce", `{"record":{"value":"Y3VybA=="}}`, &pr)
			led.ack(pr.Offset, "curl")
			var cr jsonConsumeResponse
			curlJSON(t, n.Addr, "Consume", fmt.Sprintf(`{"offset":"%d"}`, pr.Offset), &cr)
			if string(cr.Record.Value) != "curl" || cr.Record.Offset != pr.Offset {
				t.Fatalf("curl Consume(%d) = %q at %d, want \"curl\"", pr.Offset, cr.Record.Value, cr.Record.Offset)
			}
		})
	}

	// The SDK reads everything back from 0 with Stream, at the acknowledged offsets.
	total := led.nextAfterAcked()
	if int(total) != led.size() {
		t.Fatalf("acknowledged %d records but offsets reach %d: not dense", led.size(), total)
	}
	var streamed []logRecord
	for rec, err := range sdk.Stream(ctx, 0) {
		if err != nil {
			t.Fatalf("SDK Stream after %d records: %v", len(streamed), err)
		}
		streamed = append(streamed, logRecord{rec.Offset, string(rec.Value)})
		if uint64(len(streamed)) == total {
			break
		}
	}
	requireInvariants(t, led, []nodeLog{{Node: "sdk-stream", Records: streamed}})

	// Everything through the CLI, with offsets.
	before := mustCLI(t, "", append([]string{"consume", "--offsets"}, clientArgs(n)...)...).Stdout
	if c := strings.Count(before, "\n"); uint64(c) != total {
		t.Fatalf("consume --offsets printed %d lines, want %d", c, total)
	}
	requireInvariants(t, led, []nodeLog{cliLog("cli-before", parseOffsetLines(t, before))})

	// SIGTERM with a tailing consumer still connected: a clean exit, within stopTimeout.
	if code := n.Stop(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
	fol.interrupt(t)

	// Restart on the same data dir and ports: everything is back at the same offsets.
	n.Restart()
	waitLeader(t, n)
	requireInvariants(t, led, readAllLogs(t, []*Node{n}, total))
	after := mustCLI(t, "", append([]string{"consume", "--offsets"}, clientArgs(n)...)...).Stdout
	if after != before {
		t.Fatalf("after restart consume --offsets printed\n%s\nwant (before restart)\n%s", after, before)
	}
	sdk2 := newSDK(t, tr, n.Addr)
	for _, off := range []uint64{0, total / 2, total - 1} {
		rec, err := sdk2.Consume(ctx, off)
		if err != nil {
			t.Fatalf("SDK Consume(%d) after restart: %v", off, err)
		}
		if want := led.byOffset[off]; string(rec.Value) != want || rec.Offset != off {
			t.Fatalf("SDK Consume(%d) after restart = %q at %d, want %q", off, rec.Value, rec.Offset, want)
		}
	}
	// New records continue the offsets.
	led.attempt(tr + "-after-restart")
	off, err := sdk2.Produce(ctx, []byte(tr+"-after-restart"))
	if err != nil {
		t.Fatalf("SDK Produce after restart: %v", err)
	}
	if off != total {
		t.Fatalf("first offset after restart = %d, want %d", off, total)
	}
	led.ack(off, tr+"-after-restart")
	requireInvariants(t, led, readAllLogs(t, []*Node{n}, total+1))
	if code := n.Stop(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
}

// cliLog turns `consume --offsets` lines into a nodeLog for the checker.
func cliLog(name string, ovs []offsetValue) nodeLog {
	nl := nodeLog{Node: name}
	for _, ov := range ovs {
		nl.Records = append(nl.Records, logRecord(ov))
	}
	return nl
}

// TestCLIHelpAndVersion checks `commitlog version`, `commitlog --help`, and that
// `commitlog serve --help` documents every flag of DESIGN.md §6.
func TestCLIHelpAndVersion(t *testing.T) {
	t.Parallel()
	v := mustCLI(t, "", "version").Stdout
	if !strings.HasPrefix(v, "commitlog ") || !strings.Contains(v, "go: go1.") {
		t.Errorf("commitlog version printed %q, want \"commitlog <version>\" and the Go version", v)
	}
	help := mustCLI(t, "", "--help").Stdout
	for _, cmd := range []string{"serve", "produce", "consume", "cluster", "version"} {
		if !strings.Contains(help, "   "+cmd) {
			t.Errorf("commitlog --help does not list the %s command:\n%s", cmd, help)
		}
	}
	serveHelp := mustCLI(t, "", "serve", "--help").Stdout
	for _, flag := range []string{
		"data-dir", "node-name", "bind-addr", "rpc-port", "start-join-addrs", "bootstrap", "transport",
		"acl-model-file", "acl-policy-file",
		"server-tls-cert-file", "server-tls-key-file", "server-tls-ca-file",
		"peer-tls-cert-file", "peer-tls-key-file", "peer-tls-ca-file", "config-file",
	} {
		if !strings.Contains(serveHelp, "--"+flag+" ") && !strings.Contains(serveHelp, "--"+flag+"\t") {
			t.Errorf("commitlog serve --help does not list --%s", flag)
			continue
		}
		if env := "COMMITLOG_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")); !strings.Contains(serveHelp, env) {
			t.Errorf("commitlog serve --help does not name --%s's environment variable %s", flag, env)
		}
	}
	if t.Failed() {
		t.Logf("serve --help:\n%s", serveHelp)
	}
	for _, sub := range []string{"produce", "consume"} {
		h := mustCLI(t, "", sub, "--help").Stdout
		for _, flag := range []string{"--addr", "--transport"} {
			if !strings.Contains(h, flag) {
				t.Errorf("commitlog %s --help does not list %s", sub, flag)
			}
		}
	}
}

// TestServeBadTransport: an unknown --transport is refused at once, with a message naming it.
func TestServeBadTransport(t *testing.T) {
	t.Parallel()
	n := NewNode(t, NodeConfig{Name: "bogus", Transport: "bogus"})
	n.Start()
	code, ok := n.WaitExit(stopTimeout)
	if !ok {
		t.Fatalf("serve --transport bogus still runs after %v", stopTimeout)
	}
	log := n.Log()
	if code == 0 {
		t.Fatalf("serve --transport bogus exited 0%s", n.logTail())
	}
	if !strings.Contains(log, "bogus") || !strings.Contains(log, "transport") || strings.Contains(log, "panic") {
		t.Fatalf("serve --transport bogus exited %d without a clear message naming the transport%s", code, n.logTail())
	}
}

// TestServeSameDataDir: a second server on a data dir in use fails clearly (the storage engine
// locks the directory), and the first keeps serving with its data intact.
func TestServeSameDataDir(t *testing.T) {
	first := StartNode(t, NodeConfig{Name: "owner"})
	waitLeader(t, first)
	led := newLedger()
	vals := []string{"kept-0", "kept-1", "kept-2"}
	offs := parseOffsets(t, mustCLI(t, "", append(append([]string{"produce"}, clientArgs(first)...), vals...)...).Stdout)
	for i, v := range vals {
		led.ack(offs[i], v)
	}

	second := NewNode(t, NodeConfig{Name: "intruder", DataDir: first.DataDir()})
	second.Start()
	code, ok := second.WaitExit(readyTimeout)
	if !ok {
		t.Fatalf("a second serve on %s still runs after %v", first.DataDir(), readyTimeout)
	}

	// The first is unharmed: it still serves its records and takes new ones, and they survive
	// its restart.
	if exited, c := first.Exited(); exited {
		t.Fatalf("the first server exited (%d)", c)
	}
	more := []string{"kept-3"}
	offs = parseOffsets(t, mustCLI(t, "", append(append([]string{"produce"}, clientArgs(first)...), more...)...).Stdout)
	led.ack(offs[0], more[0])
	requireInvariants(t, led, readAllLogs(t, []*Node{first}, uint64(len(vals)+1)))
	if code := first.Stop(); code != 0 {
		t.Fatalf("first serve exited %d after SIGTERM", code)
	}
	first.Restart()
	requireInvariants(t, led, readAllLogs(t, []*Node{first}, uint64(len(vals)+1)))

	// The second failed clearly.
	log := second.Log()
	second.knownBug()
	if code == 0 || strings.Contains(log, "panic") {
		t.Fatalf("a second serve on the same data dir exited %d%s", code, second.logTail())
	}
	if !strings.Contains(strings.ToLower(log), "lock") && !strings.Contains(log, "in use") {
		t.Errorf("a second serve on the same data dir exited %d without saying the directory is locked or in use%s", code, second.logTail())
	}
}
