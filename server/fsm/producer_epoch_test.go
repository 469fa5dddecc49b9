package fsm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
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
	p, old := spendEpochs(t, n)
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

// TestRetiredProducerIsEvictedLikeAnyOther: a retired ID (its epochs spent) counts against
// the table's cap and is evicted by age like any other, so retired IDs cannot fill the table;
// once evicted, its last instance is told the ID is unknown (no longer fenced), and
// re-initialising it hands out a new ID, never the old one again.
func TestRetiredProducerIsEvictedLikeAnyOther(t *testing.T) {
	const expiry, maxProducers = 1000, 3
	var tab producerTable
	init := func(id uint64, ts int64) InitProducerResult {
		return tab.init(initProducerBody{ID: id, ExpiryMs: expiry, MaxProducers: maxProducers}, ts)
	}
	retired := init(0, 1)
	tab.ByID[retired.ID].Epoch = math.MaxUint16
	last := ProducerRef{ID: retired.ID, Epoch: math.MaxUint16}
	if r := init(retired.ID, 2); r.ID == retired.ID || !tab.ByID[retired.ID].Retired {
		t.Fatalf("re-init at the last epoch = %+v; want a new ID and the old one retired", r)
	}
	if _, err := tab.check(last, Target{}, 1); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("the retired ID's last instance: %v, want ErrProducerFenced", err)
	}
	// The table holds the retired ID and its successor; a third and a fourth producer bring it
	// over the cap of 3, and the retired ID is the least recently used.
	init(0, 3)
	init(0, 4)
	if _, ok := tab.ByID[retired.ID]; ok || tab.Len() != maxProducers {
		t.Fatalf("at the cap, the table holds %d producers, the retired ID among them: %v; want %d, without it",
			tab.Len(), ok, maxProducers)
	}
	if _, err := tab.check(last, Target{}, 1); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("the evicted retired ID's last instance: %v, want ErrUnknownProducer", err)
	}
	if r := init(retired.ID, 5); r.ID == retired.ID || r.Epoch != 0 {
		t.Fatalf("re-init of the evicted retired ID = %+v; want a new ID at epoch 0", r)
	}
}

// TestProducerEvictionOrder: expireAndEvict removes exactly the producers the sort over the
// whole table removed (every replica must remove the same ones): the idle ones, then the lowest
// (LastTS, ID) first, with ties in LastTS, one over the cap (the single pass) and several over a
// lowered cap (the sort).
func TestProducerEvictionOrder(t *testing.T) {
	reference := func(byID map[uint64]*producerState, cutoff int64, keep int) []uint64 {
		var ids []uint64
		for id, st := range byID {
			if st.LastTS >= cutoff {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, func(a, b uint64) int {
			if c := cmp.Compare(byID[a].LastTS, byID[b].LastTS); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		if over := len(ids) - keep; over > 0 {
			ids = ids[over:]
		}
		slices.Sort(ids)
		return ids
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		n := 1 + r.IntN(60)
		tab := producerTable{ByID: map[uint64]*producerState{}}
		for range n {
			tab.ByID[1+r.Uint64N(200)] = &producerState{LastTS: r.Int64N(20)} // ties in LastTS
		}
		cutoff := r.Int64N(6)
		keep := max(0, len(tab.ByID)-r.IntN(4)) // 0 to 3 over, before expiry
		if round%5 == 0 {
			keep = r.IntN(len(tab.ByID) + 1) // a lowered cap: many over
		}
		want := reference(tab.ByID, cutoff, keep)
		tab.expireAndEvict(cutoff, keep)
		got := slices.Sorted(maps.Keys(tab.ByID))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (cutoff %d, keep %d): kept %v, want %v", round, cutoff, keep, got, want)
		}
	}
}

// BenchmarkInitProducerAtCap: one InitProducer on a table at its cap (DefaultMaxProducers),
// which evicts the least recently used producer. It runs in the apply loop every partition's
// writes wait on.
func BenchmarkInitProducerAtCap(b *testing.B) {
	tab := producerTable{ByID: map[uint64]*producerState{}}
	for i := range DefaultMaxProducers {
		tab.init(initProducerBody{}, int64(i))
	}
	ts := int64(DefaultMaxProducers)
	for b.Loop() {
		tab.init(initProducerBody{}, ts)
		ts++
	}
}

// spendEpochs initialises a producer on n and re-initialises it until its epoch is the last
// one (MaxUint16): it returns the first instance and the last.
func spendEpochs(t *testing.T, n *machineNode) (first, last InitProducerResult) {
	t.Helper()
	ctx := context.Background()
	first, err := n.m.InitProducer(ctx, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range math.MaxUint16 {
		if last, err = n.m.InitProducer(ctx, n, first.ID); err != nil {
			t.Fatal(err)
		}
	}
	if last.ID != first.ID || last.Epoch != math.MaxUint16 {
		t.Fatalf("re-init = %+v; want epoch %d", last, math.MaxUint16)
	}
	return first, last
}
