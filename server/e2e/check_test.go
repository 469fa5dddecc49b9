package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// ledger is what the clients of a test were told: every value they tried to append (values
// are unique by construction) and the offset of every acknowledged one. Safe for concurrent
// use.
type ledger struct {
	mu        sync.Mutex
	attempted map[string]bool
	acked     map[string]uint64 // value → acknowledged offset
	byOffset  map[uint64]string // acknowledged offset → value
	problems  []string          // contradictions between acknowledgements
	// retention is set by a test that turned retention on: only then may a node's log start
	// above offset 0, and acknowledged offsets below a node's lowest offset count as deleted.
	retention bool
}

func newLedger() *ledger {
	return &ledger{attempted: map[string]bool{}, acked: map[string]uint64{}, byOffset: map[uint64]string{}}
}

// attempt records that a client is about to send value (acknowledged or not, it may appear).
func (l *ledger) attempt(value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempted[value] = true
}

// ack records that value was acknowledged at offset. Two acknowledgements of one offset, or
// of one value, are recorded as problems.
func (l *ledger) ack(offset uint64, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempted[value] = true
	if prev, ok := l.byOffset[offset]; ok && prev != value {
		l.problems = append(l.problems, fmt.Sprintf("offset %d acknowledged for %q and for %q", offset, prev, value))
	}
	if prev, ok := l.acked[value]; ok && prev != offset {
		l.problems = append(l.problems, fmt.Sprintf("value %q acknowledged at offsets %d and %d", value, prev, offset))
	}
	l.byOffset[offset] = value
	l.acked[value] = offset
}

// size returns how many records were acknowledged.
func (l *ledger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// nextAfterAcked returns one past the highest acknowledged offset (0 when none).
func (l *ledger) nextAfterAcked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next uint64
	for off := range l.byOffset {
		next = max(next, off+1)
	}
	return next
}

// nodeLog is one node's whole log as read back from it.
type nodeLog struct {
	Node    string
	Lowest  uint64 // first offset the node still holds
	Records []logRecord
}

// logRecord is one record as read back.
type logRecord struct {
	Offset uint64
	Value  string
}

// checkInvariants checks RELIABILITY.md's invariants 1–3 (and 4 for producers that never
// retry an unknown outcome) on the logs read back from every node, against what clients were
// told, and returns every violation found (nil: none):
//
//   - each node's log starts at offset 0 (unless the test turned retention on);
//   - each node's offsets are dense and increasing from its lowest offset;
//   - every node that holds an offset holds the same value there;
//   - every acknowledged record is on every node, at its acknowledged offset;
//   - no value appears twice (on one node, or at two offsets across nodes);
//   - no phantom: every value read was sent by a client.
func checkInvariants(l *ledger, logs []nodeLog) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.problems)
	at := map[uint64]string{}      // offset → value, across nodes
	where := map[uint64]string{}   // offset → first node seen holding it
	valueAt := map[string]uint64{} // value → offset, across nodes
	for _, nl := range logs {
		if nl.Lowest != 0 && !l.retention {
			out = append(out, fmt.Sprintf("%s: log starts at offset %d, want 0 (prefix lost; retention is off)", nl.Node, nl.Lowest))
		}
		held := map[uint64]string{}
		seen := map[string]uint64{}
		for i, r := range nl.Records {
			if want := nl.Lowest + uint64(i); r.Offset != want {
				out = append(out, fmt.Sprintf("%s: record %d has offset %d, want %d (offsets not dense from %d)", nl.Node, i, r.Offset, want, nl.Lowest))
			}
			held[r.Offset] = r.Value
			if prev, ok := seen[r.Value]; ok {
				out = append(out, fmt.Sprintf("%s: value %q at offsets %d and %d (duplicate)", nl.Node, r.Value, prev, r.Offset))
			}
			seen[r.Value] = r.Offset
			if v, ok := at[r.Offset]; ok && v != r.Value {
				out = append(out, fmt.Sprintf("offset %d: %s has %q, %s has %q (replicas disagree)", r.Offset, where[r.Offset], v, nl.Node, r.Value))
			} else if !ok {
				at[r.Offset], where[r.Offset] = r.Value, nl.Node
			}
			if off, ok := valueAt[r.Value]; ok && off != r.Offset {
				out = append(out, fmt.Sprintf("%s: value %q at offset %d, elsewhere at %d", nl.Node, r.Value, r.Offset, off))
			} else if !ok {
				valueAt[r.Value] = r.Offset
			}
			if !l.attempted[r.Value] {
				out = append(out, fmt.Sprintf("%s: offset %d holds %q, which no client sent (phantom)", nl.Node, r.Offset, r.Value))
			}
		}
		offs := make([]uint64, 0, len(l.byOffset))
		for off := range l.byOffset {
			offs = append(offs, off)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for _, off := range offs {
			if off < nl.Lowest && l.retention {
				continue // deleted by retention
			}
			want := l.byOffset[off]
			got, ok := held[off]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s: acknowledged offset %d (%q) missing (lost)", nl.Node, off, want))
			case got != want:
				out = append(out, fmt.Sprintf("%s: acknowledged offset %d holds %q, want %q", nl.Node, off, got, want))
			}
		}
	}
	return out
}

// requireInvariants fails the test with every violation checkInvariants finds (the first 30).
func requireInvariants(t testing.TB, l *ledger, logs []nodeLog) {
	t.Helper()
	v := checkInvariants(l, logs)
	for i, s := range v {
		if i == 30 {
			t.Errorf("… and %d more violations", len(v)-i)
			break
		}
		t.Errorf("invariant violated: %s", s)
	}
	if len(v) == 0 {
		total := 0
		for _, nl := range logs {
			total += len(nl.Records)
		}
		t.Logf("invariants hold: %d acknowledged records, %d records read back from %d nodes", l.size(), total, len(logs))
	}
}

// readNodeLog reads node n's whole log from n alone (no redirect to another node), after
// waiting (bounded by ctx) until n has applied at least up to offset atLeast-1.
func readNodeLog(ctx context.Context, n *Node, atLeast uint64) (nodeLog, error) {
	tc := n.TransportClient()
	defer tc.Close()
	var b *logv1.GetBoundsResponse
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := tc.GetBounds(actx, &logv1.GetBoundsRequest{})
		cancel()
		if err == nil && resp.GetNextOffset() >= atLeast {
			b = resp
			break
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("next offset %d, want at least %d", resp.GetNextOffset(), atLeast)
			}
			return nodeLog{}, fmt.Errorf("%s: bounds: %w (%w)", n.Name(), err, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
	nl := nodeLog{Node: n.Name(), Lowest: b.GetLowestOffset()}
	if b.GetNextOffset() <= b.GetLowestOffset() {
		return nl, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := tc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: nl.Lowest})
	if err != nil {
		return nl, fmt.Errorf("%s: consume stream: %w", n.Name(), err)
	}
	defer st.Close()
	last := b.GetNextOffset() - 1
	for {
		resp, err := st.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nl, fmt.Errorf("%s: consume stream after %d records: %w", n.Name(), len(nl.Records), err)
		}
		recs := resp.GetRecords()
		if len(recs) == 0 && resp.GetRecord() != nil {
			recs = []*logv1.Record{resp.GetRecord()}
		}
		for _, r := range recs {
			nl.Records = append(nl.Records, logRecord{Offset: r.GetOffset(), Value: string(r.GetValue())})
			if r.GetOffset() >= last {
				return nl, nil
			}
		}
	}
}

// readAllLogs reads every node's log (see readNodeLog), waiting for each to reach atLeast.
func readAllLogs(t testing.TB, nodes []*Node, atLeast uint64) []nodeLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := make([]nodeLog, 0, len(nodes))
	for _, n := range nodes {
		nl, err := readNodeLog(ctx, n, atLeast)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		logs = append(logs, nl)
	}
	return logs
}

// TestCheckInvariants shows the checker catches each kind of violation (and passes a clean
// history), so that a green end-to-end test means something.
func TestCheckInvariants(t *testing.T) {
	recs := func(vals ...string) []logRecord {
		out := make([]logRecord, len(vals))
		for i, v := range vals {
			out[i] = logRecord{Offset: uint64(i), Value: v}
		}
		return out
	}
	ackAll := func(vals ...string) *ledger {
		l := newLedger()
		for i, v := range vals {
			l.ack(uint64(i), v)
		}
		return l
	}
	withAttempt := func(l *ledger, v string) *ledger { l.attempt(v); return l }
	tests := []struct {
		name   string
		ledger *ledger
		logs   []nodeLog
		want   string // substring of a violation; "" for none
	}{
		{"clean", ackAll("a", "b", "c"), []nodeLog{{Node: "n1", Records: recs("a", "b", "c")}, {Node: "n2", Records: recs("a", "b", "c")}}, ""},
		{"unacknowledged but sent record may appear", withAttempt(ackAll("a", "b"), "c"), []nodeLog{{Node: "n1", Records: recs("a", "b", "c")}}, ""},
		{"retention start", func() *ledger { l := ackAll("a", "b", "c"); l.retention = true; return l }(), []nodeLog{{Node: "n1", Lowest: 2, Records: []logRecord{{2, "c"}}}}, ""},
		{"prefix lost without retention", ackAll("a", "b", "c"), []nodeLog{{Node: "n1", Lowest: 2, Records: []logRecord{{2, "c"}}}}, "prefix lost"},
		{"prefix lost: acknowledged offsets below lowest", ackAll("a", "b", "c"), []nodeLog{{Node: "n1", Lowest: 2, Records: []logRecord{{2, "c"}}}}, "offset 0 (\"a\") missing"},
		{"empty node reset past acknowledged records", ackAll("a", "b"), []nodeLog{{Node: "n1", Lowest: 2}}, "prefix lost"},
		{"gap", ackAll("a", "b", "c"), []nodeLog{{Node: "n1", Records: []logRecord{{0, "a"}, {2, "c"}}}}, "not dense"},
		{"lost on one node", ackAll("a", "b", "c"), []nodeLog{{Node: "n1", Records: recs("a", "b", "c")}, {Node: "n2", Records: recs("a", "b")}}, "missing"},
		{"replicas disagree", withAttempt(ackAll("a", "b"), "x"), []nodeLog{{Node: "n1", Records: recs("a", "b")}, {Node: "n2", Records: recs("a", "x")}}, "disagree"},
		{"duplicate", ackAll("a", "b"), []nodeLog{{Node: "n1", Records: recs("a", "b", "b")}}, "duplicate"},
		{"phantom", ackAll("a"), []nodeLog{{Node: "n1", Records: recs("a", "zzz")}}, "phantom"},
		{"wrong offset", ackAll("a", "b"), []nodeLog{{Node: "n1", Records: recs("b", "a")}}, "holds"},
		{"contradicting acks", func() *ledger { l := ackAll("a", "b"); l.ack(0, "c"); return l }(), []nodeLog{{Node: "n1", Records: recs("a", "b")}}, "acknowledged for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := checkInvariants(tt.ledger, tt.logs)
			if tt.want == "" {
				if len(v) != 0 {
					t.Fatalf("violations %q, want none", v)
				}
				return
			}
			for _, s := range v {
				if strings.Contains(s, tt.want) {
					return
				}
			}
			t.Fatalf("violations %q, want one mentioning %q", v, tt.want)
		})
	}
}
