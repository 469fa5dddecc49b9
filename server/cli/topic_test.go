package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// startOne starts a single-node in-process `commitlog serve` and returns its API address.
func startOne(t *testing.T) string {
	t.Helper()
	return startOneWith(t)
}

// startOneWith is startOne with extra serve flags.
func startOneWith(t *testing.T, extra ...string) string {
	t.Helper()
	args := append([]string{"--node-name", "n0", "--data-dir", t.TempDir(), "--rpc-port", "-1",
		"--gossip-profile", "test", "--log-level", "error", "--bind-addr", "127.0.0.1:" + strconv.Itoa(freePort(t))}, extra...)
	return startServe(t, args...)
}

// TestTopicCommands runs topic create, list, describe, alter and delete against a real
// in-process server.
func TestTopicCommands(t *testing.T) {
	addr := startOne(t)
	out := mustRun(t, "topic", "create", "--addr", addr, "--partitions", "3", "--retention-bytes", "1048576", "--timestamp-type", "append", "orders")
	if !strings.Contains(out, "created topic orders") || !strings.Contains(out, "3 partitions") {
		t.Fatalf("topic create printed %q", out)
	}
	if out := mustRun(t, "topic", "create", "--addr", addr, "single"); !strings.Contains(out, "with 1 partition\n") {
		t.Errorf("topic create of one partition printed %q", out)
	}
	code, _, errOut := run(t, t.Context(), "topic", "create", "--addr", addr, "orders")
	if code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("second create: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, t.Context(), "topic", "create", "--addr", addr, "bad/name")
	if code == 0 || !strings.Contains(errOut, "invalid") {
		t.Errorf("create bad/name: exit %d, %q", code, errOut)
	}

	list := mustRun(t, "topic", "list", "--addr", addr)
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(list), "\n")[1:] {
		f := strings.Fields(l)
		rows = append(rows, f[0])
		if f[0] == "orders" && (f[2] != "3" || f[3] != "1048576" || f[6] != "append") {
			t.Errorf("orders row %q", l)
		}
	}
	if strings.Join(rows, ",") != "default,orders,single" || !strings.HasPrefix(list, "NAME") {
		t.Fatalf("topic list:\n%s", list)
	}

	mustRun(t, "produce", "--addr", addr, "--topic", "orders", "--partition", "2", "x", "y")
	desc := mustRun(t, "topic", "describe", "--addr", addr, "orders")
	for _, want := range []string{"topic: orders", "partitions: 3", "retention bytes: 1048576", "retention ms: server", "timestamp type: append", "PARTITION", "2  "} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(desc), " "), "2 0 2 2") {
		t.Errorf("describe does not show partition 2 holding [0, 2):\n%s", desc)
	}

	out = mustRun(t, "topic", "alter", "--addr", addr, "--partitions", "5", "--retention-ms", "-1", "orders")
	if !strings.Contains(out, "5 partitions") || !strings.Contains(out, "retention ms unlimited") || !strings.Contains(out, "retention bytes 1048576") {
		t.Errorf("topic alter printed %q", out)
	}
	code, _, errOut = run(t, t.Context(), "topic", "alter", "--addr", addr, "orders")
	if code == 0 || !strings.Contains(errOut, "nothing to change") {
		t.Errorf("alter without a change: exit %d, %q", code, errOut)
	}

	if out := mustRun(t, "topic", "delete", "--addr", addr, "orders"); !strings.Contains(out, "deleted topic orders") {
		t.Errorf("topic delete printed %q", out)
	}
	code, _, errOut = run(t, t.Context(), "topic", "describe", "--addr", addr, "orders")
	if code == 0 || !strings.Contains(errOut, "unknown topic") {
		t.Errorf("describe after delete: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, t.Context(), "topic", "delete", "--addr", addr)
	if code == 0 || !strings.Contains(errOut, "one topic name") {
		t.Errorf("delete without a name: exit %d, %q", code, errOut)
	}
}

// TestProduceConsumeKeysHeaders: produce with --topic, --key and --header places records as
// Kafka would, and consume --format text and json print keys, headers and timestamps.
func TestProduceConsumeKeysHeaders(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "topic", "create", "--addr", addr, "--partitions", "4", "events")
	part := client.KeyPartition([]byte("user-7"), 4)
	out := mustRun(t, "produce", "--addr", addr, "--topic", "events", "--key", "user-7", "--header", "source=cli", "--header", "trace=abc", "one", "two")
	want := strconv.Itoa(int(part)) + "\t0\n" + strconv.Itoa(int(part)) + "\t1\n"
	if out != want {
		t.Fatalf("produce printed %q, want %q (partition of the key, offsets)", out, want)
	}
	// Standard input, the key's partition again.
	code, out, errOut := runIn(t, "three\n", "produce", "--addr", addr, "--topic", "events", "--key", "user-7")
	if code != 0 || out != strconv.Itoa(int(part))+"\t2\n" {
		t.Fatalf("produce from stdin: exit %d, %q, %q", code, out, errOut)
	}

	p := strconv.Itoa(int(part))
	if out := mustRun(t, "consume", "--addr", addr, "--topic", "events", "--partition", p); out != "one\ntwo\nthree\n" {
		t.Fatalf("consume printed %q", out)
	}
	text := mustRun(t, "consume", "--addr", addr, "--topic", "events", "--partition", p, "--format", "text", "--count", "1")
	f := strings.Split(strings.TrimSuffix(text, "\n"), "\t")
	if len(f) != 5 || f[0] != "0" || !strings.HasPrefix(f[1], "20") || f[2] != "user-7" || f[3] != "source=cli,trace=abc" || f[4] != "one" {
		t.Fatalf("consume --format text printed %q", text)
	}
	jsonOut := mustRun(t, "consume", "--addr", addr, "--topic", "events", "--partition", p, "--format", "json", "--from", "2")
	var rec struct {
		Topic     string `json:"topic"`
		Partition uint32 `json:"partition"`
		Offset    uint64 `json:"offset"`
		Timestamp string `json:"timestamp"`
		Key       string `json:"key"`
		Value     string `json:"value"`
		Headers   []struct {
			Key, Value string
		} `json:"headers"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &rec); err != nil {
		t.Fatalf("consume --format json printed %q: %v", jsonOut, err)
	}
	if rec.Topic != "events" || rec.Partition != part || rec.Offset != 2 || rec.Key != "user-7" || rec.Value != "three" || rec.Timestamp == "" || len(rec.Headers) != 0 {
		t.Fatalf("json record %+v", rec)
	}
	// --partition places records as given; the default topic keeps working as before.
	other := strconv.Itoa(int(part+1) % 4)
	if out := mustRun(t, "produce", "--addr", addr, "--topic", "events", "--partition", other, "--key", "user-7", "--header", "h=1", "p"); out != other+"\t0\n" {
		t.Fatalf("produce --partition %s printed %q", other, out)
	}
	if out := mustRun(t, "produce", "--addr", addr, "plain"); out != "0\n" {
		t.Fatalf("produce to the default topic printed %q", out)
	}
	if out := mustRun(t, "consume", "--addr", addr, "--format", "text"); !strings.HasSuffix(out, "\t-\t-\tplain\n") {
		t.Fatalf("consume of the default topic printed %q", out)
	}
	for _, bad := range [][]string{{"produce", "--addr", addr, "--header", "nokv", "v"}, {"consume", "--addr", addr, "--format", "xml"}} {
		if code, _, _ := run(t, t.Context(), bad...); code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
	}
}

// runIn runs the program with stdin as its standard input.
func runIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), append([]string{"commitlog"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestTopicCreateZeroPartitions: --partitions 0 silently created a 1-partition topic (the API
// reads 0 as 1); it is refused, and nothing is created.
func TestTopicCreateZeroPartitions(t *testing.T) {
	addr := startOne(t)
	code, out, errOut := run(t, t.Context(), "topic", "create", "--addr", addr, "--partitions", "0", "zero")
	if code == 0 || !strings.Contains(errOut, "at least one partition") {
		t.Fatalf("topic create --partitions 0: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if list := mustRun(t, "topic", "list", "--addr", addr); strings.Contains(list, "zero") {
		t.Errorf("topic list after the refusal:\n%s", list)
	}
}

// TestConsumeTextKeyDash: --format text prints "-" for a record without a key, and printed a
// key that is "-" the same way, so the two could not be told apart; that key is quoted.
func TestConsumeTextKeyDash(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "--key=-", "a")
	mustRun(t, "produce", "--addr", addr, "b")
	out := mustRun(t, "consume", "--addr", addr, "--format", "text")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("consume --format text printed %q, want two lines", out)
	}
	keyed, unkeyed := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	if len(keyed) != 5 || len(unkeyed) != 5 || keyed[2] != `"-"` || unkeyed[2] != "-" {
		t.Errorf("consume --format text printed %q; want the key \"-\" quoted, and - for no key", out)
	}
}

// TestProduceHeaderWithComma: --header takes KEY=VALUE, but its value was split at commas as a
// list flag's: --header tags=a,b was refused ("b": want KEY=VALUE), and --header q=x=1,y=2
// stored two headers, q=x=1 and y=2. A header's value may hold commas.
func TestProduceHeaderWithComma(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "--header", "tags=a,b", "--header", "q=x=1,y=2", "v")
	out := mustRun(t, "consume", "--addr", addr, "--format", "json")
	var rec struct {
		Headers []struct{ Key, Value string } `json:"headers"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("consume --format json printed %q: %v", out, err)
	}
	if fmt.Sprint(rec.Headers) != "[{tags a,b} {q x=1,y=2}]" {
		t.Errorf("headers %v, want tags=a,b and q=x=1,y=2", rec.Headers)
	}
}
