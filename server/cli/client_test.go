package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/server"
	"github.com/commitlog-go/commitlog/server/fsm"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClientCommandsAgainstACluster starts three in-process `commitlog serve` that form a
// cluster, then uses produce, consume and cluster status against it.
func TestClientCommandsAgainstACluster(t *testing.T) {
	seed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var addrs []string
	for i := range 3 {
		args := []string{"--node-name", "n" + strconv.Itoa(i), "--data-dir", t.TempDir(), "--rpc-port", "-1",
			"--gossip-profile", "test", "--log-level", "error"}
		if i == 0 {
			args = append(args, "--bind-addr", seed)
		} else {
			args = append(args, "--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--start-join-addrs", seed)
		}
		addrs = append(addrs, startServe(t, args...))
	}

	// Status, asked of any node, eventually shows three voters, one of them the leader.
	var status string
	deadline := time.Now().Add(40 * time.Second)
	for {
		code, out, _ := run(t, t.Context(), "cluster", "status", "--addr", addrs[2])
		status = out
		if code == 0 && strings.Count(out, " voter ") == 3 && strings.Count(out, " true ") == 1 && !strings.Contains(out, "unreachable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never showed three voters and a leader:\n%s", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The cluster id heads the table; every node reports the same one.
	idLine := regexp.MustCompile(`(?m)^cluster id: ([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$`)
	m := idLine.FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("cluster status shows no cluster id:\n%s", status)
	}
	if other := idLine.FindStringSubmatch(mustRun(t, "cluster", "status", "--addr", addrs[0])); other == nil || other[1] != m[1] {
		t.Errorf("cluster status asked of n0 shows cluster id %v, of n2 %s", other, m[1])
	}
	for _, want := range []string{"ID", "SUFFRAGE", "LEADER", "APPLIED", "LAG", "OFFSETS", "SIZE", "DIVERGED", "APPLYING", "SECURITY", "n0", "n1", "n2"} {
		if !strings.Contains(status, want) {
			t.Errorf("cluster status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "insecure") || strings.Count(status, " ok\n") != 3 {
		t.Errorf("cluster status of three loopback nodes should show each ok:\n%s", status)
	}

	// Produce through a follower-or-leader (the SDK finds the leader), values as arguments.
	if out := mustRun(t, "produce", "--addr", addrs[1], "a", "b", "c"); out != "0\n1\n2\n" {
		t.Fatalf("produce printed %q, want the offsets 0 1 2", out)
	}
	if out := mustRun(t, "produce", "--addr", addrs[0], "--transport", "connect", "d"); out != "3\n" {
		t.Fatalf("produce printed %q, want 3", out)
	}
	if out := mustRun(t, "consume", "--addr", addrs[2], "--from", "1"); out != "b\nc\nd\n" {
		t.Fatalf("consume --from 1 printed %q", out)
	}
	if out := mustRun(t, "consume", "--addr", addrs[0], "--from", "0", "--count", "2", "--offsets"); out != "0\ta\n1\tb\n" {
		t.Fatalf("consume --count 2 --offsets printed %q", out)
	}
	code, _, errOut := run(t, t.Context(), "cluster", "remove", "--addr", addrs[0])
	if code == 0 || !strings.Contains(errOut, "at least one server id") {
		t.Errorf("cluster remove without an id: exit %d, %q", code, errOut)
	}
}

// TestClusterStatusShowsInsecure runs a loopback node and one bound to every interface
// (0.0.0.0) without TLS: the latter warns at start, and `cluster status` asked of the loopback
// node shows it insecure and the loopback node ok.
func TestClusterStatusShowsInsecure(t *testing.T) {
	seed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var safeLogs, openLogs syncBuffer
	safe := startServeOutErr(t, &syncBuffer{}, &safeLogs, "--node-name", "safe", "--data-dir", t.TempDir(), "--rpc-port", "-1",
		"--gossip-profile", "test", "--bind-addr", seed)
	// Bound to every interface, but advertising loopback: the test's traffic stays on this host.
	startServeOutErr(t, &syncBuffer{}, &openLogs, "--node-name", "open", "--data-dir", t.TempDir(), "--rpc-port", "-1",
		"--gossip-profile", "test", "--bind-addr", "0.0.0.0:"+strconv.Itoa(freePort(t)), "--advertise-host", "127.0.0.1",
		"--start-join-addrs", seed)

	if logs := openLogs.String(); !strings.Contains(logs, "INSECURE") || !strings.Contains(logs, "the API has no TLS") {
		t.Errorf("the node bound to 0.0.0.0 without TLS did not warn:\n%s", logs)
	}
	if strings.Contains(safeLogs.String(), "INSECURE") {
		t.Errorf("the loopback node warned of insecurity:\n%s", safeLogs.String())
	}

	var status string
	deadline := time.Now().Add(40 * time.Second)
	for {
		code, out, _ := run(t, t.Context(), "cluster", "status", "--addr", safe)
		status = out
		if code == 0 && strings.Count(out, " voter ") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never showed two voters:\n%s", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows := 0
	header := false
	for _, line := range strings.Split(strings.TrimSpace(status), "\n") {
		fields := strings.Fields(line)
		if !header { // the table starts after its header (a cluster id line comes first)
			header = len(fields) > 0 && fields[0] == "ID"
			continue
		}
		rows++
		want := "ok"
		if fields[0] == "open" {
			want = "insecure"
		}
		if got := fields[len(fields)-1]; got != want {
			t.Errorf("cluster status shows %s as %q, want %q:\n%s", fields[0], got, want, status)
		}
	}
	if rows != 2 {
		t.Errorf("cluster status has %d server rows, want 2:\n%s", rows, status)
	}
}

// TestUsageErrorOnStderr: a usage error (a flag value that does not parse, an unknown flag) is
// one line on standard error with a hint to --help, and a non-zero exit; standard output, where
// a pipeline reads data, gets nothing (urfave/cli printed the whole help there).
func TestUsageErrorOnStderr(t *testing.T) {
	for _, args := range [][]string{
		{"consume", "--from", "abc"},
		{"produce", "--no-such-flag", "v"},
		{"topic", "create", "--partitions", "x", "t"},
		{"--no-such-flag"},
	} {
		code, out, errOut := run(t, t.Context(), args...)
		if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--help") {
			t.Errorf("%v: exit %d, stdout %d bytes starting %q, stderr %q; want a one-line error and a --help hint on stderr only",
				args, code, len(out), out[:min(len(out), 60)], errOut)
		}
	}
}

// TestProduceFlagAfterValue: the flag package stops reading flags at the first argument, so
// `produce hello --topic orders` stored "--topic" and "orders" as records of the default topic
// and exited 0. An argument naming one of the command's flags is refused, unless it comes
// after "--".
func TestProduceFlagAfterValue(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "topic", "create", "--addr", addr, "orders")
	code, out, errOut := run(t, t.Context(), "produce", "--addr", addr, "hello", "--topic", "orders")
	if code == 0 || out != "" || !strings.Contains(errOut, "put flags before") {
		t.Errorf("produce hello --topic orders: exit %d, stdout %q, stderr %q; want a refusal asking for flags before values", code, out, errOut)
	}
	if stored := mustRun(t, "consume", "--addr", addr); stored != "" {
		t.Fatalf("after the refusal the default topic holds %q", stored)
	}
	// After "--", as the first argument (the flag package's) or later (ours), anything is a value.
	mustRun(t, "produce", "--addr", addr, "--", "-q", "--topic")
	mustRun(t, "produce", "--addr", addr, "hello", "--", "--topic", "--")
	if stored := mustRun(t, "consume", "--addr", addr); stored != "-q\n--topic\nhello\n--topic\n--\n" {
		t.Errorf("the default topic holds %q", stored)
	}
	// A string flag's value "--" is not the end of the flags.
	code, _, errOut = run(t, t.Context(), "produce", "--addr", addr, "--header", "--", "v", "--quiet")
	if code == 0 || !strings.Contains(errOut, "put flags before") {
		t.Errorf("produce --header -- v --quiet: exit %d, stderr %q; want --quiet refused", code, errOut)
	}
	// Commands taking a name: the flag was read as a second name, or ignored.
	for _, args := range [][]string{
		{"topic", "create", "--addr", addr, "more", "--partitions", "3"},
		{"cluster", "transfer-leadership", "--addr", addr, "n0", "--timeout", "1s"},
	} {
		if code, _, errOut := run(t, t.Context(), args...); code == 0 || !strings.Contains(errOut, "put flags before") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestProducePartitionDefault: produce --help shows --partition's default as -1, and giving
// that value means the same as not giving the flag (it was refused); what produce prints
// (partition, tab, offset) depends on the flags given, not their values.
func TestProducePartitionDefault(t *testing.T) {
	_, help, _ := run(t, t.Context(), "produce", "--help")
	if !strings.Contains(help, "(default: -1)") || !strings.Contains(help, "--topic, --partition, --key or --header, its partition") {
		t.Errorf("produce --help:\n%s", help)
	}
	addr := startOne(t)
	mustRun(t, "topic", "create", "--addr", addr, "--partitions", "4", "events")
	part := strconv.Itoa(int(client.KeyPartition([]byte("k"), 4)))
	if out := mustRun(t, "produce", "--addr", addr, "--topic", "events", "--partition", "-1", "--key", "k", "v"); out != part+"\t0\n" {
		t.Errorf("produce --partition -1 --key k printed %q, want the key's partition %s and offset 0", out, part)
	}
	if out := mustRun(t, "produce", "--addr", addr, "--partition", "-1", "v"); out != "0\t0\n" {
		t.Errorf("produce --partition -1 to the default topic printed %q", out)
	}
	if code, _, errOut := run(t, t.Context(), "produce", "--addr", addr, "--partition", "-2", "v"); code == 0 || !strings.Contains(errOut, "--partition -2") {
		t.Errorf("produce --partition -2: exit %d, stderr %q", code, errOut)
	}
}

// TestProduceStdinOversizedLineReportsStored: a line over --max-record-bytes in the middle of
// standard input makes produce fail, yet the lines sent before and after it may be stored:
// produce waits for each and prints every stored record's offset (it printed none of those
// sent with or after the failed one), and names the failed line.
func TestProduceStdinOversizedLineReportsStored(t *testing.T) {
	addr := startOneWith(t, "--max-record-bytes", "1024")
	stdin := "before\n" + strings.Repeat("x", 4096) + "\nafter\n"
	// --batch 1: one record per request, as happens anyway when the oversized line is large
	// enough to go alone (2 MiB against the default 1 MiB limit, from the real binary).
	code, out, errOut := runIn(t, stdin, "produce", "--addr", addr, "--batch", "1")
	t.Logf("produce: exit %d, stdout %q, stderr %q", code, out, errOut)
	if code == 0 {
		t.Fatal("produce of an oversized line exited 0")
	}
	if !strings.Contains(errOut, "line 2: ") || !strings.Contains(errOut, "limit 1024") {
		t.Errorf("stderr %q does not name line 2 and the limit", errOut)
	}
	stored := mustRun(t, "consume", "--addr", addr, "--offsets")
	t.Logf("stored: %q", stored)
	for _, line := range strings.Split(strings.TrimSuffix(stored, "\n"), "\n") {
		if line == "" {
			continue
		}
		off, _, _ := strings.Cut(line, "\t")
		if !strings.Contains("\n"+out, "\n"+off+"\n") {
			t.Errorf("record %q was stored but produce never printed its offset %s (stdout %q)", line, off, out)
		}
	}
}

// TestProduceStdinTooLongLineReportsStored: a line over the 16 MiB a line may hold ended produce
// with "token too long", without printing the offsets of the lines stored before it. Those are
// printed; the error names the line and the limit, which produce --help documents.
func TestProduceStdinTooLongLineReportsStored(t *testing.T) {
	if _, help, _ := run(t, t.Context(), "produce", "--help"); !strings.Contains(help, "16 MiB") {
		t.Errorf("produce --help does not document the line limit:\n%s", help)
	}
	addr := startOne(t)
	stdin := "pre\n" + strings.Repeat("y", 17<<20) + "\npost\n"
	code, out, errOut := runIn(t, stdin, "produce", "--addr", addr)
	if stored := mustRun(t, "consume", "--addr", addr, "--offsets"); stored != "0\tpre\n" {
		t.Errorf("stored %q, want pre alone", stored)
	}
	if code == 0 || out != "0\n" || !strings.Contains(errOut, "line 2 ") || !strings.Contains(errOut, "16 MiB") {
		t.Errorf("produce: exit %d, stdout %q, stderr %q; want pre's offset 0, and an error naming line 2 and the 16 MiB limit", code, out, errOut)
	}
}

// TestProduceStdinCtrlC: Ctrl-C (the context ending) stops produce while it waits for the next
// line of standard input (an interactive terminal, a pipe from a slow producer); it waited for
// another line or EOF. The offset of a line is printed once its batch completes, without
// waiting for more input.
func TestProduceStdinCtrlC(t *testing.T) {
	addr := startOne(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"commitlog", "produce", "--addr", addr}, pr, &out, &errOut)
	}()
	if _, err := io.WriteString(pw, "typed\n"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); out.String() == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("produce did not print the offset of a typed line within 5s (stderr %q)", errOut.String())
		}
	}
	cancel() // Ctrl-C
	select {
	case code := <-done:
		if code == 0 || out.String() != "0\n" || !strings.Contains(errOut.String(), "interrupted") {
			t.Errorf("exit %d, stdout %q, stderr %q; want the offset 0 of \"typed\", and an interruption", code, out.String(), errOut.String())
		}
	case <-time.After(3 * time.Second):
		pw.Close()
		code := <-done
		t.Fatalf("produce did not stop within 3s of Ctrl-C while waiting for input; after EOF: exit %d, stdout %q, stderr %q",
			code, out.String(), errOut.String())
	}
}

// TestConsumeCountZero: --count's help says 0 means "up to the end of the log"; giving --count
// 0 explicitly tailed forever instead.
func TestConsumeCountZero(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a", "b")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"commitlog", "consume", "--addr", addr, "--count", "0"}, strings.NewReader(""), &out, &errOut)
	if code != 0 || time.Since(start) > 4*time.Second || out.String() != "a\nb\n" {
		t.Fatalf("consume --count 0: exit %d after %v (stdout %q, stderr %q); want a and b and exit 0 at the end of the log, as without --count",
			code, time.Since(start).Round(time.Millisecond), out.String(), errOut.String())
	}
}

// TestConsumePastTheEnd: --from past the end of the log printed nothing and exited 0, so a typo
// looked like an empty log; it is refused as an offset below the start is. At the end itself
// there is nothing to read yet, which is no error.
func TestConsumePastTheEnd(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a", "b")
	if code, out, errOut := run(t, t.Context(), "consume", "--addr", addr, "--from", "3"); code == 0 || out != "" ||
		!strings.Contains(errOut, "offset 3 is past the end of the log (next offset 2)") {
		t.Errorf("consume --from 3: exit %d, stdout %q, stderr %q; want the end's error", code, out, errOut)
	}
	if code, out, errOut := run(t, t.Context(), "consume", "--addr", addr, "--from", "2"); code != 0 || out != "" {
		t.Errorf("consume --from 2 (the end): exit %d, stdout %q, stderr %q; want nothing and exit 0", code, out, errOut)
	}
}

// TestConsumeFromLogStart: without --from, consume starts at the partition's lowest offset; it
// started at 0 and failed "offset 0 is below the log start" once retention had moved the start.
// An explicit --from below the start is still refused.
func TestConsumeFromLogStart(t *testing.T) {
	addr := startRetentionServer(t)
	code, _, errOut := runIn(t, strings.Repeat(strings.Repeat("v", 1000)+"\n", 100), "produce", "--addr", addr, "--quiet")
	if code != 0 {
		t.Fatalf("produce: exit %d: %s", code, errOut)
	}
	b := waitLogStartMoved(t, addr)
	// offsets returns the offsets consume --offsets printed.
	offsets := func(out string) []uint64 {
		var offs []uint64
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			off, err := strconv.ParseUint(strings.Split(line, "\t")[0], 10, 64)
			if err != nil {
				t.Fatalf("consume printed %.40q", line)
			}
			offs = append(offs, off)
		}
		return offs
	}
	if offs := offsets(mustRun(t, "consume", "--addr", addr, "--offsets", "--count", "1")); len(offs) != 1 || offs[0] < b.Lowest {
		t.Errorf("consume --count 1 printed offsets %v, want the record at the log start %d", offs, b.Lowest)
	}
	offs := offsets(mustRun(t, "consume", "--addr", addr, "--offsets"))
	if first, last := offs[0], offs[len(offs)-1]; first < b.Lowest || last != 99 || uint64(len(offs)) != last-first+1 {
		t.Errorf("consume printed offsets %d to %d (%d records); want those from the log start %d to 99", first, last, len(offs), b.Lowest)
	}
	if code, _, errOut := run(t, t.Context(), "consume", "--addr", addr, "--from", "0"); code == 0 || !strings.Contains(errOut, "below the log start") {
		t.Errorf("consume --from 0: exit %d, stderr %q; want the log start's error", code, errOut)
	}
}

// TestClusterRemoveUnknown: removing a server id that is not in the cluster reported success.
func TestClusterRemoveUnknown(t *testing.T) {
	addr := startOne(t)
	code, out, errOut := run(t, t.Context(), "cluster", "remove", "--addr", addr, "no-such-server")
	if code == 0 || out != "" || !strings.Contains(errOut, `"no-such-server" is not in the cluster`) {
		t.Fatalf("cluster remove no-such-server: exit %d, stdout %q, stderr %q; want an error naming the id", code, out, errOut)
	}
	if status := mustRun(t, "cluster", "status", "--addr", addr); !strings.Contains(status, "n0 ") {
		t.Errorf("cluster status after the refusal:\n%s", status)
	}
}

// startRetentionServer starts a one-node server whose retention keeps about 16 KiB per
// partition, run every 50ms (serve has no flag for the interval, a minute), and returns its
// address.
func startRetentionServer(t *testing.T) string {
	t.Helper()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), NodeName: "n0", BindAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		RPCPort: -1, GossipProfile: "test", SegmentBytes: 4 << 10, RetentionBytes: 16 << 10, RetentionInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv.Addr()
}

// waitLogStartMoved waits until retention moved the default partition's start past 0, and
// returns its bounds.
func waitLogStartMoved(t *testing.T, addr string) client.Bounds {
	t.Helper()
	cl, err := client.New(t.Context(), []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var b client.Bounds
	for deadline := time.Now().Add(20 * time.Second); b.Lowest == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("retention did not move the log start within 20s")
		}
		if b, err = cl.PartitionBounds(t.Context(), "", 0); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestProduceConsumeRecordAtLargestLimit: produce and consume move a record at the largest
// --max-record-bytes a server takes (4 MiB): the client they use bounded its messages at
// 4 MiB, so such a line was refused before it was sent, and such a record, produced by
// another client, could not be read back.
func TestProduceConsumeRecordAtLargestLimit(t *testing.T) {
	addr := startOneWith(t, "--max-record-bytes", strconv.Itoa(fsm.MaxRecordValueBytes))
	line := strings.Repeat("z", fsm.MaxRecordValueBytes)
	code, out, errOut := runIn(t, line+"\n", "produce", "--addr", addr)
	if code != 0 || out != "0\n" {
		t.Fatalf("produce of a %d-byte line: exit %d, stdout %q, stderr %q", len(line), code, out, errOut)
	}
	if got := mustRun(t, "consume", "--addr", addr); got != line+"\n" {
		t.Fatalf("consume returned %d bytes, want the %d-byte record", len(got), len(line)+1)
	}
}

// TestConsumeCountBeyondTheEnd: without --follow, consume reads up to the end of the log (or
// --count records); with a --count larger than what is left, it waited forever at the end, as
// --follow does, and --from past the end with --count waited instead of being refused.
func TestConsumeCountBeyondTheEnd(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a", "b", "c")
	// consume runs one consume, giving up after 5 seconds.
	consume := func(args ...string) (int, string, string, time.Duration) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		code, out, errOut := run(t, ctx, append([]string{"consume", "--addr", addr}, args...)...)
		return code, out, errOut, time.Since(start).Round(time.Millisecond)
	}
	if code, out, errOut, took := consume("--from", "1", "--count", "5"); code != 0 || out != "b\nc\n" {
		t.Errorf("consume --from 1 --count 5: exit %d after %v (stdout %q, stderr %q); want b and c and exit 0 at the end of the log",
			code, took, out, errOut)
	}
	if code, out, errOut, _ := consume("--from", "2", "--count", "1"); code != 0 || out != "c\n" {
		t.Errorf("consume --from 2 --count 1: exit %d, stdout %q, stderr %q; want c", code, out, errOut)
	}
	if code, out, errOut, took := consume("--from", "9", "--count", "1"); code == 0 || out != "" ||
		!strings.Contains(errOut, "past the end of the log") {
		t.Errorf("consume --from 9 --count 1: exit %d after %v, stdout %q, stderr %q; want the end's error", code, took, out, errOut)
	}
}

// TestPartitionFlagsBeyondUint32Refused: partition numbers, counts and record bounds are 32-bit
// on the wire, and the CLI cut a larger flag value to its low 32 bits: consume --partition
// 4294967296 read partition 0, and topic create --partitions 4294967297 made a topic of one
// partition. They are refused.
func TestPartitionFlagsBeyondUint32Refused(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a")
	for _, args := range [][]string{
		{"consume", "--addr", addr, "--partition", "4294967296"},
		{"topic", "create", "--addr", addr, "--partitions", "4294967297", "t1"},
		{"topic", "create", "--addr", addr, "--max-record-bytes", "4294967296", "t2"},
		{"topic", "alter", "--addr", addr, "--partitions", "4294967297", "default"},
		{"topic", "alter", "--addr", addr, "--max-record-bytes", "4294967296", "default"},
	} {
		code, out, errOut := run(t, t.Context(), args...)
		if code == 0 || !strings.Contains(errOut, "4294967295") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want it refused as beyond 4294967295", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestTimeoutZero: --timeout 0s failed every command at once with "cluster unavailable:
// context deadline exceeded", though the cluster was up (and the SDK's request timeout of 0
// means no bound); it means no deadline, as in the SDK.
func TestTimeoutZero(t *testing.T) {
	addr := startOne(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if code, out, errOut := run(t, ctx, "produce", "--addr", addr, "--timeout", "0s", "a"); code != 0 || out != "0\n" {
		t.Errorf("produce --timeout 0s: exit %d, stdout %q, stderr %q; want offset 0", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "cluster", "status", "--addr", addr, "--timeout", "0s"); code != 0 || strings.Contains(out, "unreachable") {
		t.Errorf("cluster status --timeout 0s: exit %d, stdout %q, stderr %q; want the server reachable", code, out, errOut)
	}
	if code, _, errOut := run(t, ctx, "produce", "--addr", addr, "--timeout", "-1s", "a"); code == 0 || !strings.Contains(errOut, "--timeout") {
		t.Errorf("produce --timeout -1s: exit %d, stderr %q; want --timeout refused", code, errOut)
	}
}
