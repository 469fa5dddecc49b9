package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage/segment"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// gatedLeader is a leader whose proposals wait for the test to open its gate, then apply to
// the state machine at once (or fail with err). It counts proposals.
type gatedLeader struct {
	consensus.Consensus
	f    *fsm.FSM
	gate chan struct{} // closed: proposals go through

	mu       sync.Mutex
	index    uint64
	proposed [][]byte
	sizes    []uint64 // records per applied proposal
	waiting  int
	err      error
}

func (g *gatedLeader) IsLeader() bool                   { return true }
func (g *gatedLeader) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }

func (g *gatedLeader) Propose(ctx context.Context, cmd []byte) (any, error) {
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting--
	g.proposed = append(g.proposed, cmd)
	if g.err != nil {
		return nil, g.err
	}
	g.index++
	res := g.f.Apply([]consensus.Entry{{Index: g.index, Term: 1, Data: cmd}})[0]
	if r, ok := res.(fsm.AppendResult); ok {
		g.sizes = append(g.sizes, r.Count)
	}
	return res, nil
}

func (g *gatedLeader) counts() (waiting, proposed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting, len(g.proposed)
}

func newGatedService(t *testing.T, lim fsm.Limits) (*service, *gatedLeader) {
	t.Helper()
	lg, err := segment.Open(t.TempDir(), segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	f, err := fsm.New(fsm.Config{Log: lg, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	node := &gatedLeader{f: f, gate: make(chan struct{})}
	return &service{node: node, fsm: f, cfg: &Config{}, stop: make(chan struct{})}, node
}

func (s *service) queued() int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}

type produced struct {
	value string
	off   uint64
	err   error
}

// produceAll runs one unary-sized propose per value concurrently.
func produceAll(ctx context.Context, s *service, values []string, out chan<- produced) {
	for _, v := range values {
		go func() {
			off, err := s.propose(ctx, []*logv1.Record{{Value: []byte(v)}})
			out <- produced{v, off, err}
		}()
	}
}

// TestGroupCommitCoalesces: while the leader's proposals are in flight, concurrent callers
// queue and then share one Raft entry; each gets the offset its own record was stored at.
func TestGroupCommitCoalesces(t *testing.T) {
	s, node := newGatedService(t, fsm.Limits{})
	ctx := ctxT(t, 60*time.Second)
	out := make(chan produced, 64)
	// Two callers take the two slots; their proposals wait at the gate.
	produceAll(ctx, s, []string{"a0", "a1"}, out)
	waitFor(t, 30*time.Second, "two proposals in flight", func() bool { w, _ := node.counts(); return w == maxGroupsInFlight })
	var rest []string
	for i := range 30 {
		rest = append(rest, fmt.Sprintf("b%d", i))
	}
	produceAll(ctx, s, rest, out)
	waitFor(t, 30*time.Second, "30 queued callers", func() bool { return s.queued() == 30 })
	close(node.gate)
	seen := map[uint64]string{}
	for range 32 {
		p := <-out
		if p.err != nil {
			t.Fatalf("produce %s: %v", p.value, p.err)
		}
		if prev, dup := seen[p.off]; dup {
			t.Fatalf("%s and %s both at offset %d", prev, p.value, p.off)
		}
		seen[p.off] = p.value
	}
	for off, v := range seen {
		rec, err := s.fsm.Read(ctx, off)
		if err != nil || string(rec.Value) != v {
			t.Fatalf("offset %d holds %q (%v), want %q", off, rec.Value, err, v)
		}
	}
	if _, proposed := node.counts(); proposed != 3 {
		t.Fatalf("%d Raft proposals for 32 records, want 3 (two alone, then the 30 queued together)", proposed)
	}
	waitFor(t, 30*time.Second, "every group's slot given back", func() bool {
		s.group.mu.Lock()
		defer s.group.mu.Unlock()
		return s.group.inFlight == 0
	})
}

// TestGroupCommitLimitsAndErrors: a group never exceeds the command limits, a record beyond
// them is refused on its own (the others in the queue are stored), a proposal's failure is
// every one of its callers', and a caller whose context ends while queued is not proposed.
func TestGroupCommitLimitsAndErrors(t *testing.T) {
	s, node := newGatedService(t, fsm.Limits{MaxRecordBytes: 8, MaxBatchRecords: 4})
	ctx := ctxT(t, 60*time.Second)
	out := make(chan produced, 64)
	produceAll(ctx, s, []string{"x0", "x1"}, out)
	waitFor(t, 30*time.Second, "two proposals in flight", func() bool { w, _ := node.counts(); return w == maxGroupsInFlight })

	// Queued in this order: 3 small, one too large, 6 small, and one whose context ends.
	short, cancel := context.WithCancel(ctx)
	var values []string
	for i := range 3 {
		values = append(values, fmt.Sprintf("c%d", i))
	}
	values = append(values, "much too large")
	for i := range 6 {
		values = append(values, fmt.Sprintf("d%d", i))
	}
	for i, v := range values {
		produceAll(ctx, s, []string{v}, out)
		waitFor(t, 30*time.Second, "queued", func() bool { return s.queued() == i+1 })
	}
	gone := make(chan error, 1)
	go func() {
		_, err := s.propose(short, []*logv1.Record{{Value: []byte("gone")}})
		gone <- err
	}()
	waitFor(t, 30*time.Second, "queued", func() bool { return s.queued() == len(values)+1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller cancelled while queued: %v, want context.Canceled", err)
	}
	close(node.gate)
	stored := 0
	for range 2 + len(values) {
		p := <-out
		if p.value == "much too large" {
			if !errors.Is(p.err, fsm.ErrTooLarge) {
				t.Fatalf("too large record: %v, want ErrTooLarge", p.err)
			}
			continue
		}
		if p.err != nil {
			t.Fatalf("produce %s: %v", p.value, p.err)
		}
		stored++
	}
	if stored != 2+len(values)-1 {
		t.Fatalf("%d stored", stored)
	}
	_, next := s.fsm.Bounds()
	if next != uint64(stored) {
		t.Fatalf("log holds %d records, want %d (nothing of the cancelled caller)", next, stored)
	}
	node.mu.Lock()
	for i, n := range node.sizes {
		if n > 4 {
			t.Errorf("proposal %d holds %d records, limit 4", i, n)
		}
	}
	if len(node.sizes) < 4 { // 2 alone, then 3, then 4 and 2 (9 records queued, limit 4)
		t.Errorf("%d proposals applied (%v), want at least 4", len(node.sizes), node.sizes)
	}
	node.err = consensus.ErrOutcomeUnknown
	node.mu.Unlock()

	// A failed proposal fails every caller in it, with its error.
	node.gate = make(chan struct{})
	produceAll(ctx, s, []string{"e0", "e1"}, out)
	waitFor(t, 30*time.Second, "two proposals in flight", func() bool { w, _ := node.counts(); return w == maxGroupsInFlight })
	produceAll(ctx, s, []string{"f0", "f1", "f2"}, out)
	waitFor(t, 30*time.Second, "queued", func() bool { return s.queued() == 3 })
	close(node.gate)
	for range 5 {
		if p := <-out; !errors.Is(p.err, consensus.ErrOutcomeUnknown) {
			t.Fatalf("produce %s: %v, want ErrOutcomeUnknown", p.value, p.err)
		}
	}
}
