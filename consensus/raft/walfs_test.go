package raft

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// countingFS is raft-wal's OS file system, counting the segment files created through it.
type countingFS struct {
	*walfs.FS
	created atomic.Int32
}

func (c *countingFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	c.created.Add(1)
	return c.FS.Create(dir, name, size)
}

// countingMeta counts the meta store's commits and closes.
type countingMeta struct {
	WALMetaStore
	commits, closes *atomic.Int32
}

func (c countingMeta) CommitState(s types.PersistentState) error {
	c.commits.Add(1)
	return c.WALMetaStore.CommitState(s)
}

func (c countingMeta) Close() error {
	c.closes.Add(1)
	return c.WALMetaStore.Close()
}

// TestWALFSAndMeta: Raft's segment files are made through Config.WALFS and its meta store's
// commits go through the Config.WALMeta wrapper, whose Close the Node calls; the log reopens
// through them.
func TestWALFSAndMeta(t *testing.T) {
	dir := t.TempDir()
	vfs := &countingFS{FS: walfs.New()}
	var commits, closes atomic.Int32
	open := func() *Node {
		t.Helper()
		n, err := singleNode(t, dir, func(c *Config) {
			c.WALSegmentSize = 4096
			c.WALFS = vfs
			c.WALMeta = func(m WALMetaStore) WALMetaStore {
				return countingMeta{WALMetaStore: m, commits: &commits, closes: &closes}
			}
		})()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 30 {
		proposeWhenLeading(t, ctx, n, make([]byte, 200))
	}
	last, err := n.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if vfs.created.Load() < 2 || commits.Load() < 2 || closes.Load() != 1 {
		t.Fatalf("segments created %d, meta commits %d, meta closes %d: want several, several, 1",
			vfs.created.Load(), commits.Load(), closes.Load())
	}
	n = open()
	defer n.Close()
	if got, err := n.logs.LastIndex(); err != nil || got != last {
		t.Fatalf("after reopening, last index %d (%v), want %d", got, err, last)
	}
}
