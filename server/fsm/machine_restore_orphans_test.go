package fsm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreRemovesTopicsDeletedWhileDown: a node that was down while a topic was deleted, and
// that catches up by installing the leader's snapshot (its own log compacted away), removes the
// deleted topic's files when it restores the snapshot. It starts with only the default topic in
// its catalog, so the snapshot's reconcile never sees the topic; before, its files stayed on
// disk until the node took a snapshot of its own (8192 entries later, perhaps never).
func TestRestoreRemovesTopicsDeletedWhileDown(t *testing.T) {
	ctx := context.Background()
	leader := openMachineNode(t, t.TempDir())
	tp, err := leader.m.CreateTopic(ctx, leader, "gone", 2, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	leader.produce("gone", 0, recs("a", "b")...)
	leader.produce("gone", 1, recs("c")...)
	empty, err := leader.m.CreateTopic(ctx, leader, "gone-empty", 3, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.m.CreateTopic(ctx, leader, "kept", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	leader.produce("kept", 0, recs("k0")...)

	// The follower applies all of that, then goes down.
	fdir := t.TempDir()
	follower := openMachineNode(t, fdir)
	for i, res := range follower.m.Apply(leader.entries) {
		if err, ok := res.(error); ok {
			t.Fatalf("follower apply of entry %d: %v", i+1, err)
		}
	}
	follower.close()
	goneDir := filepath.Join(fdir, "topics", tp.ID.String())
	if _, err := os.Stat(goneDir); err != nil {
		t.Fatalf("the follower has no files of the topic before its deletion: %v", err)
	}

	// The cluster deletes the topic and snapshots.
	for _, name := range []string{"gone", "gone-empty"} {
		if _, err := leader.m.DeleteTopic(ctx, leader, name); err != nil {
			t.Fatal(err)
		}
	}
	leader.produce("kept", 0, recs("k1")...)
	manifest := leader.snapshot()
	data := leader.data(manifest)

	// The follower restarts and installs the snapshot.
	back := openMachineNode(t, fdir)
	if err := back.m.Restore(manifest, bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if _, err := os.Stat(goneDir); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(goneDir)
		t.Fatalf("after restoring a snapshot that lacks the deleted topic, its files are still on disk (%d partition dirs, stat: %v)", len(ents), err)
	}
	if _, err := os.Stat(filepath.Join(fdir, "topics", empty.ID.String())); !os.IsNotExist(err) {
		t.Fatalf("after restoring a snapshot that lacks the deleted topic of no records, its files are still on disk (stat: %v)", err)
	}
	if got := back.partitionValues("kept", 0); len(got) != 2 || got[0] != "k0" || got[1] != "k1" {
		t.Fatalf("kept/0 after restore: %q, want [k0 k1]", got)
	}
}
