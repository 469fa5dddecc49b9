package fsm

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// idem appends vals as producer p's batch at sequence seq.
func (n *machineNode) idem(topic string, part uint32, p InitProducerResult, seq int32, vals ...string) (AppendResult, error) {
	return n.m.ProposeAppend(context.Background(), n, topic, part, ProducerRef{ID: p.ID, Epoch: p.Epoch, BaseSequence: seq}, recs(vals...)...)
}

func TestIdempotentProducer(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, err := n.m.InitProducer(ctx, n, 0)
	if err != nil || p.ID == 0 {
		t.Fatalf("InitProducer = %+v, %v", p, err)
	}
	first, err := n.idem("t", 0, p, 0, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	// A retry (the answer was lost) returns the original offsets and stores nothing.
	dup, err := n.idem("t", 0, p, 0, "a", "b")
	if err != nil || !dup.Duplicate || dup.First != first.First || dup.Count != 2 {
		t.Fatalf("retry = %+v, %v; want a duplicate of %+v", dup, err, first)
	}
	if got := n.partitionValues("t", 0); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("t/0 = %q", got)
	}
	// Sequences are per partition; the window holds the last ProducerWindow batches.
	if _, err := n.idem("t", 1, p, 0, "x"); err != nil {
		t.Fatal(err)
	}
	seq := int32(2)
	var results []AppendResult
	for i := range ProducerWindow {
		r, err := n.idem("t", 0, p, seq, "c")
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		results = append(results, r)
		seq++
	}
	for i, want := range results {
		r, err := n.idem("t", 0, p, int32(2+i), "c")
		if err != nil || !r.Duplicate || r.First != want.First {
			t.Errorf("retry of window batch %d = %+v, %v", i, r, err)
		}
	}
	// The first batch fell out of the window: its retry is out of order now.
	if _, err := n.idem("t", 0, p, 0, "a", "b"); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("retry outside the window: %v", err)
	}
	// A gap.
	if _, err := n.idem("t", 0, p, seq+1, "gap"); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("gap: %v", err)
	}
	// A new partition must start at 0.
	if _, err := n.idem("", 0, p, 3, "d"); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("first batch at 3: %v", err)
	}
	// Re-initialising fences the old epoch and restarts sequences.
	p2, err := n.m.InitProducer(ctx, n, p.ID)
	if err != nil || p2.ID != p.ID || p2.Epoch != p.Epoch+1 {
		t.Fatalf("re-init = %+v, %v", p2, err)
	}
	if _, err := n.idem("t", 0, p, seq, "old"); !errors.Is(err, ErrProducerFenced) {
		t.Errorf("old epoch: %v", err)
	}
	if _, err := n.idem("t", 0, p2, 0, "new"); err != nil {
		t.Errorf("new epoch at 0: %v", err)
	}
	if _, err := n.idem("t", 0, InitProducerResult{ID: 999}, 0, "who"); !errors.Is(err, ErrUnknownProducer) {
		t.Errorf("unknown producer: %v", err)
	}
	// Sequences wrap at MaxInt32.
	if got := lastSeq(math.MaxInt32, 2); got != 0 {
		t.Errorf("lastSeq(MaxInt32, 2) = %d", got)
	}
}

// TestIdempotentProducerSurvivesRestartAndSnapshot: the producer table is in snapshots and
// rebuilt by replay, so a retry after a restart, or on a node that installed a snapshot, is
// still recognised — with its original offsets, even when the batch was replayed into a log
// that already held it.
func TestIdempotentProducerSurvivesRestartAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	p, _ := n.m.InitProducer(ctx, n, 0)
	before, _ := n.idem("t", 0, p, 0, "a")
	manifest := n.snapshot()
	snapIndex := n.index
	n.produce("t", 0, recs("plain")...)
	after, _ := n.idem("t", 0, p, 1, "b", "c")
	entries := n.entries
	n.close()

	r := openMachineNode(t, dir)
	r.index = uint64(len(entries))
	if err := r.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatal(err)
	}
	r.m.Apply(entries[snapIndex:])
	for _, c := range []struct {
		seq  int32
		vals []string
		want AppendResult
	}{{0, []string{"a"}, before}, {1, []string{"b", "c"}, after}} {
		got, err := r.idem("t", 0, p, c.seq, c.vals...)
		if err != nil || !got.Duplicate || got.First != c.want.First {
			t.Errorf("retry of seq %d after restart = %+v, %v; want the offsets of %+v", c.seq, got, err, c.want)
		}
	}
	if got := r.partitionValues("t", 0); !slices.Equal(got, []string{"a", "plain", "b", "c"}) {
		t.Errorf("t/0 = %q", got)
	}
	// A node installing a snapshot taken now knows the producer too.
	m2 := r.snapshot()
	d := openMachineNode(t, t.TempDir())
	if err := d.m.Restore(m2, bytes.NewReader(r.data(m2))); err != nil {
		t.Fatal(err)
	}
	d.index = r.index
	if got, err := d.idem("t", 0, p, 1, "b", "c"); err != nil || !got.Duplicate || got.First != after.First {
		t.Errorf("retry on an installed node = %+v, %v", got, err)
	}
	if d.m.Producers() != 1 {
		t.Errorf("Producers = %d", d.m.Producers())
	}
}

func TestProducerExpiryAndCap(t *testing.T) {
	var tab producerTable
	t0 := time.UnixMilli(1_000_000_000).UnixMilli()
	a := tab.init(initProducerBody{ExpiryMs: 1000, MaxProducers: 2}, t0)
	b := tab.init(initProducerBody{ExpiryMs: 1000, MaxProducers: 2}, t0+10)
	c := tab.init(initProducerBody{ExpiryMs: 1000, MaxProducers: 2}, t0+20) // evicts a (least recently used)
	if tab.ByID[a.ID] != nil || tab.ByID[b.ID] == nil || tab.ByID[c.ID] == nil {
		t.Fatalf("after the cap: %v", tab.ByID)
	}
	d := tab.init(initProducerBody{ExpiryMs: 1000, MaxProducers: 10}, t0+5000) // b and c expired
	if tab.Len() != 1 || tab.ByID[d.ID] == nil {
		t.Fatalf("after expiry: %d producers", tab.Len())
	}
	if d.ID <= c.ID {
		t.Errorf("IDs are reused: %d after %d", d.ID, c.ID)
	}
}

// TestProducerOwner: the first claim of a producer ID records its owner and later claims
// keep it; an unknown ID records nothing; the owner survives a re-initialisation (epoch bump),
// a snapshot and a replay.
func TestProducerOwner(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	p, err := n.m.InitProducer(ctx, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	if owner, known := n.m.ProducerOwner(p.ID); !known || owner != "" {
		t.Fatalf("before a claim: owner %q known %v, want anyone's", owner, known)
	}
	for _, c := range []struct{ claimant, want string }{{"alice", "alice"}, {"mallory", "alice"}} {
		got, err := n.m.ClaimProducer(ctx, n, p.ID, c.claimant)
		if err != nil || got != (ClaimProducerResult{Owner: c.want, Known: true}) {
			t.Fatalf("%s claims: %+v, %v; want owner %s", c.claimant, got, err, c.want)
		}
	}
	if got, err := n.m.ClaimProducer(ctx, n, p.ID+1, "mallory"); err != nil || got.Known {
		t.Fatalf("claim of an unknown ID: %+v, %v", got, err)
	}
	if _, known := n.m.ProducerOwner(p.ID + 1); known {
		t.Fatal("an unknown ID became known by a claim")
	}
	if _, err := n.m.InitProducer(ctx, n, p.ID); err != nil {
		t.Fatal(err)
	}
	manifest := n.snapshot()
	entries := n.entries
	n.close()

	check := func(what string, m *Machine) {
		t.Helper()
		if owner, known := m.ProducerOwner(p.ID); !known || owner != "alice" {
			t.Errorf("%s: owner %q known %v, want alice", what, owner, known)
		}
	}
	replayed := openMachineNode(t, t.TempDir())
	replayed.m.Apply(entries)
	check("replayed", replayed.m)
	restored := openMachineNode(t, t.TempDir())
	if err := restored.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatal(err)
	}
	check("restored from a snapshot", restored.m)
}
