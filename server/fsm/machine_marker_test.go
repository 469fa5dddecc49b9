package fsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
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

// TestDeletionMarkerKeptThroughDiscardedSnapshots: a snapshot the consensus takes but does not
// keep (hashicorp/raft discards it when the snapshot store cannot create it, say on a full disk,
// or when a configuration change is still being applied) must not count towards removing a
// deletion marker. They counted: after MarkerSnapshots discarded snapshots the marker of a topic
// deleted after the newest kept snapshot was gone, and the node could not restart: restoring
// that snapshot found the topic's files missing with nothing saying why, and asked for data a
// node restoring its own snapshot does not have.
func TestDeletionMarkerKeptThroughDiscardedSnapshots(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "gone", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	n.produce("gone", 0, recs("x")...)
	n.produce("", 0, recs("d0")...)
	kept := n.snapshot() // the newest snapshot the consensus keeps
	if _, err := n.m.DeleteTopic(ctx, n, "gone"); err != nil {
		t.Fatal(err)
	}
	n.produce("", 0, recs("d1")...)
	for range MarkerSnapshots + 1 {
		s, err := n.m.Snapshot() // taken, then discarded: never persisted
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	}
	entries := n.entries
	n.close()

	r := openMachineNode(t, dir)
	if err := r.m.Restore(kept, neverRead{t}); err != nil {
		t.Fatalf("restart: restoring the newest kept snapshot: %v", err)
	}
	mm, err := decodeMachineManifest(kept)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Index > mm.Index {
			r.m.Apply([]consensus.Entry{e})
		}
	}
	if err := r.m.Err(); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if _, err := r.m.Topic("gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("gone after the replay: %v, want ErrUnknownTopic", err)
	}
	if got := r.partitionValues("", 0); !slices.Equal(got, []string{"d0", "d1"}) {
		t.Errorf("default partition = %q", got)
	}
}

// TestManifestWithinMaxManifestBytes: the tables a snapshot's manifest holds outgrow
// consensus/raft's default bound on manifests (8 MiB), within the state machine's own limits:
// 25 groups' commits of 100 partitions with MaxOffsetMetadata each. Under that bound every
// snapshot failed to persist, for good (the Raft log never compacted). MaxManifestBytes, which
// the server sets, holds them.
func TestManifestWithinMaxManifestBytes(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 100, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	meta := strings.Repeat("m", MaxOffsetMetadata)
	for g := range 25 {
		offs := make([]GroupOffset, 100)
		for p := range offs {
			offs[p] = GroupOffset{Topic: "t", Partition: uint32(p), Metadata: meta}
		}
		mustCommit(t, n, fmt.Sprintf("g%d", g), offs...)
	}
	size := len(n.snapshot())
	if size <= craft.DefaultMaxManifestSize || size > MaxManifestBytes {
		t.Fatalf("manifest of %d bytes; want above consensus/raft's default bound %d (what this test is about) and within MaxManifestBytes %d",
			size, craft.DefaultMaxManifestSize, MaxManifestBytes)
	}
}
