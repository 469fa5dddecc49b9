package fsm

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
)

// TestProducerEpochExhaustedFencesOldInstance: re-initialising a producer whose epoch is the
// last one (MaxUint16) hands out a new ID, as Kafka does; the instance that held the last
// epoch of the old ID is fenced by it, as by any re-initialisation: its batches are refused
// with ErrProducerFenced, never stored next to the new instance's. It stays so after a
// replay and in a snapshot.
func TestProducerEpochExhaustedFencesOldInstance(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	p, err := n.m.InitProducer(ctx, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	var old InitProducerResult
	for range math.MaxUint16 {
		if old, err = n.m.InitProducer(ctx, n, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err != nil || old.ID != p.ID || old.Epoch != math.MaxUint16 {
		t.Fatalf("re-init = %+v, %v; want epoch %d", old, err, math.MaxUint16)
	}
	if _, err := n.idem("", 0, old, 0, "a"); err != nil {
		t.Fatal(err)
	}
	// Another instance re-initialises the ID: the epochs are spent, so it gets a new ID.
	cur, err := n.m.InitProducer(ctx, n, p.ID)
	if err != nil || cur.ID == p.ID {
		t.Fatalf("re-init at the last epoch = %+v, %v; want a new ID", cur, err)
	}
	if _, err := n.idem("", 0, cur, 0, "b"); err != nil {
		t.Fatal(err)
	}
	manifest := n.snapshot()
	entries := n.entries
	check := func(what string, n *machineNode) {
		t.Helper()
		if _, err := n.idem("", 0, old, 1, "zombie"); !errors.Is(err, ErrProducerFenced) {
			t.Errorf("%s: the fenced instance's next batch: %v, want ErrProducerFenced", what, err)
		}
		// Re-initialising the retired ID does not bring it back either.
		if r, err := n.m.InitProducer(ctx, n, p.ID); err != nil || r.ID == p.ID {
			t.Errorf("%s: re-init of the retired ID = %+v, %v; want a new ID", what, r, err)
		}
	}
	check("live", n)
	replayed := openMachineNode(t, t.TempDir())
	replayed.m.Apply(entries)
	replayed.index = uint64(len(entries))
	check("replayed", replayed)
	restored := openMachineNode(t, t.TempDir())
	if err := restored.m.Restore(manifest, bytes.NewReader(n.data(manifest))); err != nil {
		t.Fatal(err)
	}
	restored.index = uint64(len(entries))
	check("restored from a snapshot", restored)
}
