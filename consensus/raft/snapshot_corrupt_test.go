package raft

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCorruptSnapshotRefusedWithRepair: a node whose only snapshot is damaged refused to start
// with hashicorp/raft's "failed to load any existing snapshots", which names neither the
// snapshots nor what to do. The error now names the snapshot dir and the repair. raft itself
// produces its error here, so the text New matches (raftNoSnapshotLoads) is pinned to the raft
// version in go.mod.
func TestCorruptSnapshotRefusedWithRepair(t *testing.T) {
	sm := &plainSM{manifest: []byte("m")}
	store, f, dir := newStore(t, sm, 1<<10)
	f.setApplied(42)
	id := takeSnapshot(t, store, f, 42)
	state := filepath.Join(dir, "snapshots", id, "state.bin")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	stream, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{ID: "n1", DataDir: dir, StreamLayer: stream,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond}, &plainSM{})
	if err == nil {
		n.Close()
		t.Fatal("a node started on a data dir whose only snapshot is corrupt")
	}
	// raft's own error, from its FileSnapshotStore and NewRaft at the version in go.mod: the
	// text New matches.
	if !strings.Contains(err.Error(), raftNoSnapshotLoads) {
		t.Fatalf("error %q lacks hashicorp/raft's %q, which New matches to add the repair hint: raft's text changed; "+
			"update raftNoSnapshotLoads", err, raftNoSnapshotLoads)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "snapshots")) || !strings.Contains(err.Error(), repairHint("n1")) {
		t.Fatalf("error %q does not name the snapshot dir and the repair", err)
	}
}

// TestSnapshotMetaFlipRefused: meta.json has no checksum of its own (its CRC covers state.bin).
// On real processes a bit flipped in a follower's meta.json Index (20890 to 20891) or Term (4 to
// 5) was taken at its word: the node restored the snapshot as covering an entry it does not hold
// and started. Open now refuses a meta.json that disagrees with the snapshot's name.
func TestSnapshotMetaFlipRefused(t *testing.T) {
	for _, field := range []string{"Index", "Term"} {
		t.Run(field, func(t *testing.T) {
			sm := &plainSM{manifest: []byte("m")}
			store, f, dir := newStore(t, sm, 1<<10)
			f.setApplied(42)
			id := takeSnapshot(t, store, f, 42)
			if _, _, err := readAllOpen(t, store, id); err != nil {
				t.Fatalf("intact snapshot: %v", err)
			}
			path := filepath.Join(dir, "snapshots", id, "meta.json")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var meta map[string]any
			if err := json.Unmarshal(b, &meta); err != nil {
				t.Fatal(err)
			}
			meta[field] = meta[field].(float64) + 1 // a flipped low bit of an even number
			if b, err = json.Marshal(meta); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := readAllOpen(t, store, id); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Open of a snapshot whose meta.json %s was changed: %v, want ErrBadSnapshot", field, err)
			}
		})
	}
}
