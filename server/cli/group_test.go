package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGroupCommands: group reset (dry run, then --execute on an empty group), list, describe
// with lag, delete, and the errors of a reset without one verb.
func TestGroupCommands(t *testing.T) {
	addr := startServe(t, "--node-name", "g0", "--data-dir", t.TempDir(), "--rpc-port", "-1", "--bind-addr", "127.0.0.1:0",
		"--log-level", "error", "--bootstrap-wait", "0s")
	mustRun(t, "produce", "--addr", addr, "a", "b", "c")

	out := mustRun(t, "group", "reset", "--addr", addr, "--topic", "default", "--to-offset", "2", "g")
	if !strings.Contains(out, "default  0          -         2") || !strings.Contains(out, "dry run") {
		t.Fatalf("reset dry run printed:\n%s", out)
	}
	if out := mustRun(t, "group", "list", "--addr", addr); strings.Contains(out, "g ") {
		t.Fatalf("a dry run created the group:\n%s", out)
	}
	out = mustRun(t, "group", "reset", "--addr", addr, "--topic", "default", "--to-offset", "2", "--execute", "g")
	if !strings.Contains(out, "offsets stored") {
		t.Fatalf("reset --execute printed:\n%s", out)
	}
	if out := mustRun(t, "group", "list", "--addr", addr); !strings.Contains(out, "g      empty  0        1") {
		t.Fatalf("group list printed:\n%s", out)
	}
	out = mustRun(t, "group", "describe", "--addr", addr, "g")
	if !strings.Contains(out, "group g: empty") || !strings.Contains(out, "default  0          2          3        1    -") {
		t.Fatalf("group describe printed:\n%s", out)
	}
	out = mustRun(t, "group", "reset", "--addr", addr, "--topic", "default", "--shift-by", "-5", "--execute", "g")
	if !strings.Contains(out, "default  0          2         0") {
		t.Fatalf("reset --shift-by -5 printed:\n%s", out)
	}
	for _, args := range [][]string{
		{"group", "reset", "--addr", addr, "--topic", "default", "g"},
		{"group", "reset", "--addr", addr, "--topic", "default", "--to-earliest", "--to-latest", "g"},
	} {
		if code, _, errOut := run(t, t.Context(), args...); code == 0 || !strings.Contains(errOut, "exactly one of") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	if out := mustRun(t, "group", "delete", "--addr", addr, "g"); !strings.Contains(out, "deleted group g") {
		t.Fatalf("group delete printed %q", out)
	}
	if code, _, errOut := run(t, t.Context(), "group", "describe", "--addr", addr, "g"); code == 0 || !strings.Contains(errOut, "unknown group") {
		t.Errorf("describe of a deleted group: exit %d, %q", code, errOut)
	}
}

// TestConsumeGroup: consume --group reads the partitions its group gives it from the group's
// committed offsets, and commits what it printed when it leaves.
func TestConsumeGroup(t *testing.T) {
	addr := startServe(t, "--node-name", "c0", "--data-dir", t.TempDir(), "--rpc-port", "-1", "--bind-addr", "127.0.0.1:0",
		"--log-level", "error", "--bootstrap-wait", "0s")
	mustRun(t, "produce", "--addr", addr, "a", "b", "c", "d")
	if out := mustRun(t, "consume", "--addr", addr, "--group", "cg", "--count", "3"); out != "a\nb\nc\n" {
		t.Fatalf("consume --group --count 3 printed %q", out)
	}
	// It committed 3 on leaving: the next member of the group starts at d.
	if out := mustRun(t, "consume", "--addr", addr, "--group", "cg", "--count", "1", "--offsets"); out != "0:3\td\n" {
		t.Fatalf("the group's next consume printed %q", out)
	}
	if out := mustRun(t, "group", "describe", "--addr", addr, "cg"); !strings.Contains(out, "default  0          4          4        0") {
		t.Fatalf("group describe after consuming everything:\n%s", out)
	}
}

// TestConsumeGroupPositionRemovedByRetention: a group whose committed offset retention removed
// reads on from the partition's start, as the SDK's consumer does (Kafka's
// auto.offset.reset=earliest); consume --group exited with the out-of-range error instead, on
// every run, and never read the partition again.
func TestConsumeGroupPositionRemovedByRetention(t *testing.T) {
	addr := startRetentionServer(t)
	mustRun(t, "group", "reset", "--addr", addr, "--topic", "default", "--to-offset", "0", "--execute", "cg")
	if code, _, errOut := runIn(t, strings.Repeat(strings.Repeat("v", 1000)+"\n", 100), "produce", "--addr", addr, "--quiet"); code != 0 {
		t.Fatalf("produce: exit %d: %s", code, errOut)
	}
	b := waitLogStartMoved(t, addr)
	code, out, errOut := run(t, t.Context(), "consume", "--addr", addr, "--group", "cg", "--count", "1", "--offsets")
	if code != 0 {
		t.Fatalf("consume --group with its committed offset removed: exit %d, stderr %q", code, errOut)
	}
	var part, off uint64
	if _, err := fmt.Sscanf(out, "%d:%d\t", &part, &off); err != nil || off < b.Lowest {
		t.Fatalf("consume --group printed %.40q; want a record at or after the log start %d", out, b.Lowest)
	}
}

// TestConsumeGroupUnknownTopic: consume --group of a topic that does not exist fails at once
// with the unknown topic, as consume without --group does, and joins no group; it waited
// silently forever instead (a member subscribed to nothing that exists), and a mistyped
// --topic looked like a topic without new records.
func TestConsumeGroupUnknownTopic(t *testing.T) {
	addr := startServe(t, "--node-name", "u0", "--data-dir", t.TempDir(), "--rpc-port", "-1", "--bind-addr", "127.0.0.1:0",
		"--log-level", "error", "--bootstrap-wait", "0s")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	code, _, errOut := run(t, ctx, "consume", "--addr", addr, "--group", "cg", "--topic", "nosuch", "--count", "1")
	if ctx.Err() != nil {
		t.Fatal("consume --group of an unknown topic still waits after 10 s")
	}
	if code == 0 || !strings.Contains(errOut, "unknown topic") || !strings.Contains(errOut, `"nosuch"`) {
		t.Errorf("consume --group of an unknown topic: exit %d, %q; want a failure naming the unknown topic", code, errOut)
	}
	if out := mustRun(t, "group", "list", "--addr", addr); strings.Contains(out, "cg") {
		t.Errorf("the refused consume left a group behind:\n%s", out)
	}
}

// TestConsumeGroupFlagErrors: --group "" was taken as no --group, and consume silently read
// partition 0 from its start instead of consuming as a group member; --auto-commit without
// --group was silently ignored. Both are refused, before any server is asked.
func TestConsumeGroupFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "", "--topic", "t"}, "--group needs a group name"},
		{[]string{"--group=", "--count", "1"}, "--group needs a group name"},
		{[]string{"--auto-commit", "5s", "--topic", "t"}, "--auto-commit goes with --group"},
	} {
		args := append([]string{"consume", "--addr", "127.0.0.1:1", "--timeout", "1s"}, tc.args...)
		code, _, errOut := run(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("consume %q: exit %d, stderr %q; want exit 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
