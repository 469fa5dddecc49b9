package fsm

import (
	"bytes"
	"context"
	"slices"
	"testing"
)

// producerTopics returns the topic IDs producer id has remembered batches for.
func (n *machineNode) producerTopics(id uint64) []TopicID {
	n.t.Helper()
	n.m.ownersMu.RLock()
	defer n.m.ownersMu.RUnlock()
	st := n.m.producers.ByID[id]
	if st == nil {
		n.t.Fatalf("producer %d is not in the table", id)
	}
	var out []TopicID
	for _, pp := range st.Partitions {
		out = append(out, pp.Topic)
	}
	return out
}

// TestDeleteTopicForgetsItsProducerState: deleting a topic drops what every idempotent producer
// remembered of its partitions, on the replica applying the delete, after a replay of the delete
// from a snapshot taken before it, and in snapshots taken after it. The windows of a deleted
// topic's partitions were kept until the producer's next epoch or its expiry: a producer that
// stays active (each append refreshes it) and writes to topics that come and go (one a day,
// say) kept a window per partition of every topic it ever wrote to, scanned on each append and
// written into every snapshot. A topic created again under the name has another ID, and the
// producer's batches to it start over at sequence 0: the new topic's first batch is stored, not
// taken for a retry of the old topic's.
func TestDeleteTopicForgetsItsProducerState(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	old, err := n.m.CreateTopic(ctx, n, "t", 2, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := n.m.CreateTopic(ctx, n, "keep", 1, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := n.m.InitProducer(ctx, n, 0)
	for _, c := range []struct {
		topic string
		part  uint32
	}{{"t", 0}, {"t", 1}, {"keep", 0}} {
		if _, err := n.idem(c.topic, c.part, p, 0, "old"); err != nil {
			t.Fatal(err)
		}
	}
	manifest := n.snapshot()
	snapIndex := n.index
	if got := n.producerTopics(p.ID); !slices.Contains(got, old.ID) {
		t.Fatalf("producer topics before the delete: %v, want %s among them", got, old.ID)
	}
	if _, err := n.m.DeleteTopic(ctx, n, "t"); err != nil {
		t.Fatal(err)
	}
	if got := n.producerTopics(p.ID); !slices.Equal(got, []TopicID{keep.ID}) {
		t.Errorf("producer topics after deleting %s: %v, want only %s", old.ID, got, keep.ID)
	}
	// The topic created again: the producer's first batch there is new, at sequence 0.
	if _, err := n.m.CreateTopic(ctx, n, "t", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	res, err := n.idem("t", 0, p, 0, "new")
	if err != nil || res.Duplicate {
		t.Fatalf("first batch to the topic created again = %+v, %v; want it stored", res, err)
	}
	if got := n.partitionValues("t", 0); !slices.Equal(got, []string{"new"}) {
		t.Errorf("t/0 of the new topic = %q", got)
	}
	// Restart from the snapshot taken before the delete, replaying the rest.
	entries := n.entries
	n.close()
	r := openMachineNode(t, dir)
	r.index = uint64(len(entries))
	if err := r.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatal(err)
	}
	r.m.Apply(entries[snapIndex:])
	if got := r.producerTopics(p.ID); slices.Contains(got, old.ID) || len(got) != 2 {
		t.Errorf("producer topics after a restart replaying the delete: %v, want %s and the new topic's", got, keep.ID)
	}
	// A replica installing a snapshot taken now does not learn the deleted topic's windows.
	m2 := r.snapshot()
	d := openMachineNode(t, t.TempDir())
	if err := d.m.Restore(m2, bytes.NewReader(r.data(m2))); err != nil {
		t.Fatal(err)
	}
	if got := d.producerTopics(p.ID); slices.Contains(got, old.ID) {
		t.Errorf("producer topics restored from a snapshot taken after the delete: %v, has the deleted %s", got, old.ID)
	}
}

// TestRestoreForgetsProducerStateOfDeletedTopics: a snapshot written by a server that kept a
// deleted topic's producer windows (before deletes dropped them) restores without them; those of
// the default topic and of the topics the snapshot holds stay. They stayed, and a producer that
// remained active kept them for good.
func TestRestoreForgetsProducerStateOfDeletedTopics(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	keep, err := n.m.CreateTopic(ctx, n, "keep", 1, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := n.m.InitProducer(ctx, n, 0)
	if _, err := n.idem("keep", 0, p, 0, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.idem("", 0, p, 0, "b"); err != nil {
		t.Fatal(err)
	}
	// What an older server left of a topic deleted before its snapshot.
	gone := NewTopicID()
	n.m.producers.ByID[p.ID].Partitions = append(n.m.producers.ByID[p.ID].Partitions,
		producerPartition{Topic: gone, Batches: []batchMeta{{FirstSeq: 0, LastSeq: 0, Offset: 0, Count: 1}}})
	manifest := n.snapshot()
	d := openMachineNode(t, t.TempDir())
	if err := d.m.Restore(manifest, bytes.NewReader(n.data(manifest))); err != nil {
		t.Fatal(err)
	}
	got := d.producerTopics(p.ID)
	if slices.Contains(got, gone) || !slices.Contains(got, keep.ID) || !slices.Contains(got, TopicID{}) {
		t.Errorf("producer topics restored: %v; want %s and the default topic's, not the deleted %s", got, keep.ID, gone)
	}
	// The kept windows still answer retries.
	if r, err := d.idem("keep", 0, p, 0, "a"); err != nil || !r.Duplicate {
		t.Errorf("retry after restore = %+v, %v; want a duplicate", r, err)
	}
}
