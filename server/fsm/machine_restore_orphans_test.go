package fsm

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// TestTopicDirRemovalFailureIsLoggedNotFatal: removing the files of a topic no catalog names
// is housekeeping. When it fails (here EBUSY, injected: as root, permissions do not make
// os.RemoveAll fail), restoring the snapshot still succeeds and serves the topics it names, the
// failure is logged as a warning naming the directory and the cause, and the files stay (they
// are never read: no later command names a topic deleted at or before the snapshot). The next
// snapshot tries again (removeUnknown), logs its own failure, and removes them once removal
// works. Failing Restore instead would keep a node from catching up over leftover files.
func TestTopicDirRemovalFailureIsLoggedNotFatal(t *testing.T) {
	ctx := context.Background()
	leader := openMachineNode(t, t.TempDir())
	tp, err := leader.m.CreateTopic(ctx, leader, "gone", 1, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	leader.produce("gone", 0, recs("a")...)
	if _, err := leader.m.CreateTopic(ctx, leader, "kept", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	leader.produce("kept", 0, recs("k0")...)

	// The follower applies all of that and goes down; the cluster deletes the topic and
	// snapshots.
	fdir := t.TempDir()
	follower := openMachineNode(t, fdir)
	follower.m.Apply(leader.entries)
	follower.close()
	if _, err := leader.m.DeleteTopic(ctx, leader, "gone"); err != nil {
		t.Fatal(err)
	}
	manifest := leader.snapshot()
	data := leader.data(manifest)

	back := openMachineNode(t, fdir)
	var logs lockedBuffer
	back.m.logger = slog.New(slog.NewTextHandler(&logs, nil))
	goneDir := filepath.Join(fdir, "topics", tp.ID.String())
	busy := &os.PathError{Op: "unlinkat", Path: goneDir, Err: syscall.EBUSY}
	back.m.removeAll = func(path string) error {
		if path == goneDir {
			return busy
		}
		return os.RemoveAll(path)
	}
	if err := back.m.Restore(manifest, bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore with a topic directory that cannot be removed: %v, want success", err)
	}
	if got := back.partitionValues("kept", 0); len(got) != 1 || got[0] != "k0" {
		t.Fatalf("kept/0 after restore: %q, want [k0]", got)
	}
	if _, err := os.Stat(goneDir); err != nil {
		t.Fatalf("the deleted topic's directory, whose removal failed: %v; want it left", err)
	}
	wantWarn := func(msg string) {
		t.Helper()
		out := logs.String()
		if !strings.Contains(out, "level=WARN msg=\""+msg+"\" dir="+tp.ID.String()) || !strings.Contains(out, busy.Error()) {
			t.Fatalf("log does not warn %q for dir %s with the cause %q:\n%s", msg, tp.ID, busy, out)
		}
		if strings.Contains(out, "removed the files") {
			t.Fatalf("log claims a removal that failed:\n%s", out)
		}
	}
	wantWarn("could not remove a deleted topic's files")

	logs.Reset()
	back.snapshot()
	wantWarn("could not remove an unknown topic's files")
	if _, err := os.Stat(goneDir); err != nil {
		t.Fatalf("the deleted topic's directory after a snapshot whose removal failed: %v; want it left", err)
	}

	back.m.removeAll = os.RemoveAll
	back.snapshot()
	if _, err := os.Stat(goneDir); !os.IsNotExist(err) {
		t.Fatalf("the deleted topic's directory after a snapshot whose removal works: stat %v, want it removed", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for a logger's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
