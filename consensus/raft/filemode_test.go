package raft

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// TestFileModes checks that everything a Node stores is private to its owner, even with a
// permissive umask: directories 0700, files 0600 — raft-wal's segments and meta database
// (the log and stable store) and the snapshots.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "raft")
	n, err := singleNode(t, dir, func(c *Config) { c.WALSegmentSize = 4096 })() // several raft-wal segments
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 50 {
		proposeWhenLeading(t, ctx, n, make([]byte, 200))
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

// failingPrealloc creates segment files as raft-wal's OS file system does (0644), then fails
// to preallocate them, as on a full disk.
type failingPrealloc struct{ types.VFS }

func (f failingPrealloc) Create(dir, name string, _ uint64) (types.WritableFile, error) {
	wf, err := f.VFS.Create(dir, name, 0)
	if err == nil {
		_ = wf.Close()
	}
	return nil, syscall.ENOSPC
}

// TestPrivateWALFSFailedCreate: a segment file whose preallocation failed is kept by raft-wal
// (the reopened WAL goes on with it as its tail) and must be private too. Found on tmpfs: a
// WAL that filled left its next segment 0644 until the node restarted.
func TestPrivateWALFSFailedCreate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	p := privateWALFS{failingPrealloc{walfs.New()}}
	if _, err := p.Create(dir, "seg.wal", 4096); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create: %v, want ENOSPC", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "seg.wal"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != fileMode {
		t.Fatalf("mode %v after a failed preallocation, want %v", fi.Mode().Perm(), fileMode)
	}
}
