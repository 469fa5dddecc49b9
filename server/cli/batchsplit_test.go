package cli

import (
	"fmt"
	"strings"
	"testing"
)

// TestProduceSplitsBatchOverServerLimit: with more lines (or arguments) than the server's
// --max-batch-records, produce failed every line with "a ProduceBatch may carry at most 3
// records" and stored nothing. As Kafka's producer does, a batch the server refuses as too
// large is split until it fits: every line is stored once, in order, and the offsets are
// printed one a line as before. The stdin path (the Producer, with and without a record flag)
// and the arguments path (one atomic batch) both split.
func TestProduceSplitsBatchOverServerLimit(t *testing.T) {
	addr := startOneWith(t, "--max-batch-records", "3")
	var stdin, want, wantOut strings.Builder
	for i := range 10 {
		fmt.Fprintf(&stdin, "line%d\n", i)
		fmt.Fprintf(&want, "%d\tline%d\n", i, i)
		fmt.Fprintf(&wantOut, "%d\n", i)
	}
	code, out, errOut := runIn(t, stdin.String(), "produce", "--addr", addr)
	if code != 0 || out != wantOut.String() {
		t.Fatalf("produce of 10 lines to a server taking 3 records a batch: exit %d, stdout %q, stderr %q; want offsets 0 to 9", code, out, errOut)
	}
	if got := mustRun(t, "consume", "--addr", addr, "--offsets"); got != want.String() {
		t.Fatalf("stored %q, want %q", got, want.String())
	}
	// Arguments: one atomic batch when it fits, split when it does not.
	code, out, errOut = run(t, t.Context(), "produce", "--addr", addr, "a", "b", "c", "d", "e", "f", "g")
	if code != 0 || out != "10\n11\n12\n13\n14\n15\n16\n" {
		t.Fatalf("produce of 7 arguments: exit %d, stdout %q, stderr %q; want offsets 10 to 16", code, out, errOut)
	}
	// With a record flag (the Producer with a topic).
	code, out, errOut = runIn(t, "p\nq\nr\ns\nt\n", "produce", "--addr", addr, "--topic", "default", "--partition", "0")
	if code != 0 || out != "0\t17\n0\t18\n0\t19\n0\t20\n0\t21\n" {
		t.Fatalf("produce --topic of 5 lines: exit %d, stdout %q, stderr %q; want partition 0, offsets 17 to 21", code, out, errOut)
	}
	got := mustRun(t, "consume", "--addr", addr, "--from", "10")
	if got != "a\nb\nc\nd\ne\nf\ng\np\nq\nr\ns\nt\n" {
		t.Fatalf("stored from 10: %q", got)
	}
}
