package walvfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"

	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

func TestWriteAt(t *testing.T) {
	cfs := crashfs.New()
	w := New(cfs)
	f, err := w.Create("/d", "f", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string, off int64) {
		t.Helper()
		if n, err := f.WriteAt([]byte(s), off); err != nil || n != len(s) {
			t.Fatalf("WriteAt(%q, %d) = %d, %v", s, off, n, err)
		}
	}
	write("abc", 0) // at the end
	write("X", 1)   // inside
	write("YZW", 2) // straddles the end
	write("!", 7)   // past the end: zeros between
	want := []byte("aXYZW\x00\x00!")
	got, err := cfs.ReadFile("/d/f")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file holds %q (%v), want %q", got, err, want)
	}
	buf := make([]byte, 3)
	if n, err := f.ReadAt(buf, 1); err != nil || string(buf[:n]) != "XYZ" {
		t.Fatalf("ReadAt = %q, %v", buf[:n], err)
	}
	if _, err := w.Create("/d", "f", 0); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create of an existing file: %v, want ErrExist", err)
	}
	if _, err := w.OpenWriter("/d", "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenWriter of a missing file: %v, want ErrNotExist", err)
	}
	names, err := w.ListDir("/d")
	if err != nil || len(names) != 1 || names[0] != "f" {
		t.Fatalf("ListDir = %v, %v", names, err)
	}
}

// TestDurability: a created file's directory entry is durable after its first Sync; a Delete
// is durable when it returns.
func TestDurability(t *testing.T) {
	cfs := crashfs.New()
	w := New(cfs)
	a, _ := w.Create("/d", "a", 0)
	if _, err := a.WriteAt([]byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Create("/d", "b", 0); err != nil { // never synced
		t.Fatal(err)
	}
	cfs.Crash(crashfs.DropUnsynced, nil)
	if names, _ := w.ListDir("/d"); len(names) != 1 || names[0] != "a" {
		t.Fatalf("after a crash: %v, want [a]", names)
	}
	if err := w.Delete("/d", "a"); err != nil {
		t.Fatal(err)
	}
	cfs.Crash(crashfs.DropUnsynced, nil)
	if names, _ := w.ListDir("/d"); len(names) != 0 {
		t.Fatalf("after a delete and a crash: %v, want none", names)
	}
}

// tailFiler remembers the tail segment raft-wal writes to.
type tailFiler struct {
	*segment.Filer
	mu   sync.Mutex
	tail types.SegmentWriter
}

func (f *tailFiler) Create(info types.SegmentInfo) (types.SegmentWriter, error) {
	w, err := f.Filer.Create(info)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tail = w
	return w, err
}

func (f *tailFiler) RecoverTail(info types.SegmentInfo) (types.SegmentWriter, error) {
	w, err := f.Filer.RecoverTail(info)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tail = w
	return w, err
}

// settle waits until no segment rotation is pending: raft-wal rotates a sealed tail after the
// append that sealed it returned (consensus/raft completes a rotation a crash interrupted;
// this test runs raft-wal alone).
func (f *tailFiler) settle(t *testing.T) {
	t.Helper()
	for range 1000 {
		f.mu.Lock()
		sealed, _, _ := f.tail.Sealed()
		f.mu.Unlock()
		if !sealed {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the sealed tail segment was not rotated")
}

// TestWALPowerLoss runs raft-wal with its segments on crashfs (its BoltDB meta store on the
// real disk, which commits durably before it returns) and simulates power failures in every
// crash mode after each of many appends: every entry StoreLogs acknowledged reads back after
// reopening, and appending continues.
func TestWALPowerLoss(t *testing.T) {
	for _, mode := range []crashfs.CrashMode{crashfs.DropUnsynced, crashfs.TearUnsynced, crashfs.DropUnsyncedPages} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			dir := t.TempDir() // the meta store's, on the real disk; the segments' on crashfs
			cfs := crashfs.New()
			rng := rand.New(rand.NewPCG(uint64(mode), 1))
			var filer *tailFiler
			open := func() (*wal.WAL, *metadb.BoltMetaDB) {
				t.Helper()
				meta := &metadb.BoltMetaDB{}
				filer = &tailFiler{Filer: segment.NewFiler(dir, New(cfs))}
				w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithSegmentSize(2048), wal.WithLogger(hclog.NewNullLogger()),
					wal.WithSegmentFiler(filer))
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return w, meta
			}
			w, meta := open()
			next := uint64(1)
			for round := range 40 {
				var logs []*hraft.Log
				for range 1 + round%5 {
					logs = append(logs, &hraft.Log{Index: next, Term: 1, Data: bytes.Repeat([]byte{byte(next)}, 100+int(next%200))})
					next++
				}
				if err := w.StoreLogs(logs); err != nil {
					t.Fatalf("round %d: store: %v", round, err)
				}
				filer.settle(t)
				if round%3 == 0 {
					cfs.Crash(mode, rng)
					_ = w.Close()
					_ = meta.Close()
					w, meta = open()
				}
				for i := uint64(1); i < next; i++ {
					var l hraft.Log
					if err := w.GetLog(i, &l); err != nil {
						t.Fatalf("round %d: entry %d lost: %v", round, i, err)
					}
					if want := bytes.Repeat([]byte{byte(i)}, 100+int(i%200)); !bytes.Equal(l.Data, want) {
						t.Fatalf("round %d: entry %d corrupt", round, i)
					}
				}
			}
			if segs, _ := cfs.ReadDir(dir); len(segs) < 5 {
				t.Fatalf("%d segment files: the test should span several", len(segs))
			}
			_ = w.Close()
			_ = meta.Close()
		})
	}
}
