package fsm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDeletionMarkersCollected: a deleted topic's marker is kept while a snapshot taken before
// the deletion may still be restored, and removed after MarkerSnapshots snapshots taken after
// it, so that markers do not pile up; a restart from the newest snapshot then neither needs
// it nor brings the topic back.
func TestDeletionMarkersCollected(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	var deleted []TopicID
	for _, name := range []string{"gone-1", "gone-2"} {
		tp, err := n.m.CreateTopic(ctx, n, name, 2, TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		n.produce(name, 1, recs("x")...)
		deleted = append(deleted, tp.ID)
	}
	if _, err := n.m.CreateTopic(ctx, n, "kept", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	n.produce("kept", 0, recs("k0")...)
	marker := func(id TopicID) string { return filepath.Join(dir, "topics", id.String()+deletedSuffix) }
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	}

	if _, err := n.m.DeleteTopic(ctx, n, "gone-1"); err != nil {
		t.Fatal(err)
	}
	for i := range MarkerSnapshots - 1 {
		n.snapshot()
		if !exists(marker(deleted[0])) {
			t.Fatalf("marker removed after %d snapshots, want it kept for %d", i+1, MarkerSnapshots)
		}
		if i == 0 {
			// A marker made later counts its own snapshots.
			if _, err := n.m.DeleteTopic(ctx, n, "gone-2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.snapshot()
	if exists(marker(deleted[0])) {
		t.Fatalf("marker still there after %d snapshots", MarkerSnapshots)
	}
	if !exists(marker(deleted[1])) {
		t.Fatalf("the second marker went with the first, after %d snapshots of its own", MarkerSnapshots-1)
	}
	manifest := n.snapshot()
	if exists(marker(deleted[1])) {
		t.Fatalf("second marker still there after %d snapshots", MarkerSnapshots)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "topics"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) == deletedSuffix {
			t.Errorf("left in the topics directory: %s", e.Name())
		}
	}
	index := n.index
	n.close()

	// A restart restores the newest snapshot: the deleted topics stay deleted.
	r := openMachineNode(t, dir)
	if err := r.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := r.m.AppliedIndex(); got != index {
		t.Errorf("applied index = %d, want %d", got, index)
	}
	for _, name := range []string{"gone-1", "gone-2"} {
		if _, err := r.m.Topic(name); !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("%s after the restart: %v, want ErrUnknownTopic", name, err)
		}
	}
	if got := r.partitionValues("kept", 0); !slices.Equal(got, []string{"k0"}) {
		t.Errorf("kept/0 = %q", got)
	}
}
