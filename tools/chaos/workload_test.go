package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// TestWriteStatus: a write is unknown exactly when the SDK says its outcome is unknown (or the
// op's own deadline ended it); any other error is a definite failure.
func TestWriteStatus(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, StatusOK},
		{fmt.Errorf("produce: %w: leadership lost", client.ErrOutcomeUnknown), StatusUnknown},
		{fmt.Errorf("produce: %w", context.DeadlineExceeded), StatusUnknown},
		{fmt.Errorf("produce: %w: no leader known", client.ErrUnavailable), StatusFail},
		{fmt.Errorf("produce: %w", client.ErrNotLeader), StatusFail},
		{errors.New("invalid argument: record too large"), StatusFail},
	}
	for _, c := range cases {
		if got := writeStatus(c.err); got != c.want {
			t.Errorf("writeStatus(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	if st, found := readStatus(fmt.Errorf("consume: %w", client.ErrOutOfRange)); st != StatusOK || found {
		t.Errorf("out of range read: %s found=%v, want ok, not found", st, found)
	}
	if st, _ := readStatus(fmt.Errorf("consume: %w", client.ErrUnavailable)); st != StatusFail {
		t.Errorf("unavailable read: %s, want fail", st)
	}
}

// TestNodeWriteStatus: a write sent with the transport alone is refused only when the server
// says so (a NotLeader or NotProposed detail, or an answer a retry would not change); a
// broken connection, a deadline or an Unavailable without detail may have appended.
func TestNodeWriteStatus(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, StatusOK},
		{transport.Errorf(transport.Unavailable, "forwarded, answer lost").WithOutcomeUnknown("answer lost"), StatusUnknown},
		{transport.Errorf(transport.FailedPrecondition, "not the leader").WithNotLeader(transport.NotLeader{LeaderID: "n1"}), StatusFail},
		{transport.Errorf(transport.Unavailable, "no leader").WithNotLeader(transport.NotLeader{}), StatusFail},
		{transport.Errorf(transport.Unavailable, "stepping down").WithNotProposed("transfer"), StatusFail},
		{transport.Errorf(transport.InvalidArgument, "too large"), StatusFail},
		{transport.Errorf(transport.Unavailable, "connection reset"), StatusUnknown},
		{transport.Errorf(transport.Canceled, "connection reset by peer"), StatusUnknown},
		{fmt.Errorf("produce: %w", context.DeadlineExceeded), StatusUnknown},
	}
	for _, c := range cases {
		if got := nodeWriteStatus(c.err); got != c.want {
			t.Errorf("nodeWriteStatus(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestWriteReport: the page names each checker's verdict and first anomaly, shades each
// nemesis window in its fault's colour (a window of two faults in two bands), numbers the
// windows, and labels the axes.
func TestWriteReport(t *testing.T) {
	h, logs := good()
	for i := range logs {
		logs[i].Records[1].Value = "zz" // "b" lost: acknowledged-not-lost fails
	}
	res := Result{Seed: 7, Schedule: "seed 7: kill", Ops: len(h.ops)}
	res.Verdicts = Check(CheckConfig{}, h.ops, logs)
	res.Failed = Failed(res.Verdicts)
	path := filepath.Join(t.TempDir(), "report.html")
	nem := []NemesisEvent{{Name: "kill", Detail: "kill -9 n2", Start: 10e6, End: 30e6},
		{Name: "slow+pause-leader", Detail: "slow links of [n1]; SIGSTOP n1", Start: 40e6, End: 50e6}}
	if err := WriteReport(path, res, h.ops, nem); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{"ANOMALIES FOUND", "acknowledged-not-lost", "FAIL", "&#34;b&#34;", "#1 kill: kill -9 n2", "<rect", "<polyline",
		"#2 slow+pause-leader", nemesisColor("slow"), nemesisColor("pause-leader"), "seconds since the run began", "ops/s", "10 ms"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestStreamGapIsAnAnomaly: a stream that skips a record is not a pass: the record it yielded
// in the skipped one's place is what the op read there, and reads-match-log reports it.
func TestStreamGapIsAnAnomaly(t *testing.T) {
	stream := func(yield func(client.Record, error) bool) {
		for _, r := range []client.Record{{Offset: 0, Value: []byte("a")}, {Offset: 1, Value: []byte("b")}, {Offset: 3, Value: []byte("d")}} {
			if !yield(r, nil) {
				return
			}
		}
	}
	vals, serr := collectStream(context.Background(), 0, 20, stream)
	if serr == nil {
		t.Fatalf("a gap in the stream went unnoticed: %q", vals)
	}
	h, logs := good()
	h.add(KindReadStream, StatusOK, 0, true, 70, 80, vals...)
	if v := verdictOf(t, Check(CheckConfig{}, h.ops, logs), "reads-match-log"); v.OK {
		t.Fatalf("a stream that yielded %q from offset 0 of a log holding a, b, c, d passes reads-match-log: %+v", vals, v)
	}
}
