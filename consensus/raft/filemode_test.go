package raft

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFileModes checks that everything a Node stores is private to its owner, even with a
// permissive umask: directories 0700, files 0600 — raft-wal's segments and meta database
// (the log and stable store) and the snapshots.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "raft")
	stream, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{
		ID: "n1", DataDir: dir, StreamLayer: stream, Bootstrap: true,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		WALSegmentSize: 4096, // several raft-wal segments
	}, &plainSM{manifest: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		for {
			if _, err := n.Propose(ctx, make([]byte, 200)); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatalf("propose: %v", err)
			}
			time.Sleep(10 * time.Millisecond) // no leader yet
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		want := fileMode
		if e.IsDir() {
			want = dirMode
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", path, got, want)
		}
		rel, _ := filepath.Rel(dir, path)
		seen[filepath.Dir(rel)]++
		if filepath.Base(path) == "wal-meta.db" {
			seen["meta"]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen["wal"] < 3 || seen["meta"] != 1 || seen["snapshots"] < 1 {
		t.Fatalf("files found per directory: %v; want raft-wal segments, its meta database and a snapshot", seen)
	}
}
