package raft

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLeftoverTempSnapshotsRemovedAtStart: hashicorp/raft's FileSnapshotStore writes a snapshot
// (a local one, or one received in InstallSnapshot) into "<id>.tmp" and renames it on a
// successful Close; a failed install (disk full) or a crash mid-snapshot left the .tmp
// directory behind forever, as raft skips but never removes it. A node now removes them when
// it starts, logging each, and keeps its real snapshots.
func TestLeftoverTempSnapshotsRemovedAtStart(t *testing.T) {
	sm := &plainSM{manifest: []byte("m")}
	store, f, dir := newStore(t, sm, 1<<10)
	f.setApplied(42)
	id := takeSnapshot(t, store, f, 42)
	snapDir := filepath.Join(dir, "snapshots")
	real := filepath.Join(snapDir, id)

	// A partial snapshot as a failed install leaves it: raft's own name with the suffix, and a
	// (here complete-looking) meta.json and state.bin, which must not make it count.
	tmpDir := filepath.Join(snapDir, "2-99-1700000000000.tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"meta.json", "state.bin"} {
		b, err := os.ReadFile(filepath.Join(real, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmpDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmpFile := filepath.Join(snapDir, "stray.tmp")
	if err := os.WriteFile(tmpFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	n, logs, err := newLoggedNode(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	for _, p := range []string{tmpDir, tmpFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("leftover temporary snapshot %s still there after start (stat: %v)", p, err)
		}
		if !strings.Contains(logs.String(), p) {
			t.Errorf("removal of %s not logged", p)
		}
	}
	metas, err := n.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].ID != id {
		t.Fatalf("snapshots after start = %v, want only the real one %s", metas, id)
	}
	if _, err := os.Stat(filepath.Join(real, "state.bin")); err != nil {
		t.Fatalf("real snapshot damaged: %v", err)
	}
}

// TestLeftoverTempSnapshotUnremovableRefusesStart: a leftover temporary snapshot that cannot
// be removed (or a snapshots directory that cannot be read) means a data dir the node cannot
// write as it must: snapshots and their installs would fail there too. As for any data dir
// it cannot use, the node refuses to start with an error naming the path, rather than log it
// and run on a data dir that fails later (and keeps the partial copy forever).
func TestLeftoverTempSnapshotUnremovableRefusesStart(t *testing.T) {
	t.Run("remove fails", func(t *testing.T) {
		dir := t.TempDir()
		tmpDir := filepath.Join(dir, "snapshots", "2-99-1700000000000.tmp")
		if err := os.MkdirAll(tmpDir, 0o700); err != nil {
			t.Fatal(err)
		}
		stuck := filepath.Join(tmpDir, "state.bin")
		if err := os.WriteFile(stuck, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		makeUnremovable(t, stuck)
		n, logs, err := newLoggedNode(t, dir)
		if err == nil {
			n.Close()
			t.Fatalf("New started with an unremovable leftover snapshot %s; logs:\n%s", tmpDir, logs.String())
		}
		if !strings.Contains(err.Error(), "remove incomplete snapshot "+tmpDir) {
			t.Fatalf("New: %v; want it to name the leftover snapshot %s", err, tmpDir)
		}
	})
	t.Run("read fails", func(t *testing.T) {
		// The snapshots "directory" is a file: reading it fails (ENOTDIR), as root too.
		notDir := filepath.Join(t.TempDir(), "snapshots")
		if err := os.WriteFile(notDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		err := removeTempSnapshots(notDir, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "read snapshot dir") {
			t.Fatalf("removeTempSnapshots of an unreadable dir: %v, want the read error", err)
		}
		// A snapshots directory not made yet is no error.
		if err := removeTempSnapshots(filepath.Join(t.TempDir(), "none"), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("removeTempSnapshots of a missing dir: %v", err)
		}
	})
}

// newLoggedNode starts a single node n1 on dir whose log goes to the returned buffer.
func newLoggedNode(t *testing.T, dir string) (*Node, *syncBuffer, error) {
	t.Helper()
	stream, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	n, err := New(Config{ID: "n1", DataDir: dir, StreamLayer: stream,
		Logger:           slog.New(slog.NewTextHandler(logs, nil)),
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond}, &plainSM{})
	return n, logs, err
}

// makeUnremovable makes the file at p impossible to remove until the test ends: its directory
// read-only, or, as root (whom permissions do not stop), p immutable (chattr +i); the test is
// skipped where neither works.
func makeUnremovable(t *testing.T, p string) {
	t.Helper()
	if os.Geteuid() != 0 {
		parent := filepath.Dir(p)
		if err := os.Chmod(parent, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(parent, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s immutable as root: %v: %s", p, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", p).Run() })
}

// TestAbandonedTempSnapshotRemovedByNextCreate: a follower whose disk filled during
// InstallSnapshot (the audit's 150 MiB tmpfs under a 250 MiB log) kept each failed install's
// partial copy ("<id>.tmp": FileSnapshotSink.Cancel removes it only once its writes flush, and
// FileSnapshotStore.Create leaves its directory when it cannot write the metadata) until it
// restarted, so the disk stayed full and the leader's retries failed even once the disk had
// grown enough for the snapshot. The next Create now removes every temporary snapshot that no
// live sink writes, and keeps those being written.
func TestAbandonedTempSnapshotRemovedByNextCreate(t *testing.T) {
	store, _, dir := newStore(t, &plainSM{manifest: []byte("m")}, 1<<10)
	store.dir = filepath.Join(dir, "snapshots")
	var conf hraft.Configuration
	live, err := store.Create(hraft.SnapshotVersionMax, 10, 1, conf, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Write([]byte("being written")); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(store.dir, "2-99-1700000000000.tmp")
	if err := os.MkdirAll(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stray, "state.bin"), make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	next, err := store.Create(hraft.SnapshotVersionMax, 20, 1, conf, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("a temporary snapshot no sink writes is still there after the next Create (stat: %v)", err)
	}
	liveDir := filepath.Join(store.dir, live.ID()+tempSnapshotSuffix)
	if _, err := os.Stat(liveDir); err != nil {
		t.Fatalf("the snapshot being written was removed: %v", err)
	}
	if err := next.Cancel(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store.dir, next.ID()+tempSnapshotSuffix)); !os.IsNotExist(err) {
		t.Errorf("a cancelled snapshot is still there (stat: %v)", err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	metas, err := store.List()
	if err != nil || len(metas) != 1 || metas[0].ID != live.ID() {
		t.Fatalf("snapshots %v, %v; want the one closed, %s", metas, err, live.ID())
	}
}
