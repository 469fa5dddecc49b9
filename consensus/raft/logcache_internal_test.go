package raft

import (
	"bytes"
	"errors"
	"testing"

	hraft "github.com/hashicorp/raft"
)

// countingStore is an in-memory log store that counts the reads the cache sends it.
type countingStore struct {
	*hraft.InmemStore
	reads int
	fail  error // StoreLogs fails with it
}

func (s *countingStore) GetLog(idx uint64, log *hraft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(idx, log)
}

func (s *countingStore) StoreLogs(logs []*hraft.Log) error {
	if s.fail != nil {
		return s.fail
	}
	return s.InmemStore.StoreLogs(logs)
}

func sized(from, to uint64, size int) []*hraft.Log {
	var out []*hraft.Log
	for i := from; i <= to; i++ {
		out = append(out, &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return out
}

// TestLogCacheBoundedInBytes: the cache holds the latest entries within its entry count and its
// bytes, whichever binds first; it answers every index right, from memory or from the store.
// Before (hraft.LogCache), 64 entries of 1 MiB were all held: 64 MiB for a cache of 8.
func TestLogCacheBoundedInBytes(t *testing.T) {
	store := &countingStore{InmemStore: hraft.NewInmemStore()}
	c, err := newLogCache(64, 8<<20, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs(sized(1, 100, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if n, b := c.cached(); n != 8 || b != 8<<20 {
		t.Fatalf("after 100 entries of 1 MiB the cache holds %d entries, %d bytes; want the latest 8, 8 MiB", n, b)
	}
	get := func(idx uint64) (fromStore bool) {
		t.Helper()
		before := store.reads
		var l hraft.Log
		if err := c.GetLog(idx, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", idx, err)
		}
		if l.Index != idx || len(l.Data) == 0 || l.Data[0] != byte(idx) {
			t.Fatalf("GetLog(%d) = index %d, data %d bytes of %v", idx, l.Index, len(l.Data), l.Data[:min(1, len(l.Data))])
		}
		return store.reads > before
	}
	for idx := uint64(1); idx <= 100; idx++ {
		if fromStore, want := get(idx), idx <= 92; fromStore != want {
			t.Errorf("GetLog(%d) read the store: %v, want %v", idx, fromStore, want)
		}
	}

	// Small entries: the entry count binds, and the bytes follow what is held.
	if err := c.StoreLogs(sized(101, 300, 10)); err != nil {
		t.Fatal(err)
	}
	if n, b := c.cached(); n != 64 || b != 640 {
		t.Fatalf("after 200 entries of 10 B the cache holds %d entries, %d bytes; want 64, 640", n, b)
	}
	if !get(236) || get(237) || get(300) {
		t.Error("with small entries the cache does not hold exactly the latest 64")
	}

	// One entry over the bound is stored, not cached.
	if err := c.StoreLogs(sized(301, 301, 9<<20)); err != nil {
		t.Fatal(err)
	}
	if !get(301) {
		t.Error("an entry over the cache's bytes was answered from memory")
	}
	if _, b := c.cached(); b > 8<<20 {
		t.Errorf("cache holds %d bytes, over its 8 MiB", b)
	}

	// A failed store caches nothing; a tail cut empties the cache.
	store.fail = errors.New("disk full")
	if err := c.StoreLogs(sized(302, 302, 10)); !errors.Is(err, store.fail) {
		t.Fatalf("StoreLogs on a failing store: %v", err)
	}
	store.fail = nil
	var l hraft.Log
	if err := c.GetLog(302, &l); !errors.Is(err, hraft.ErrLogNotFound) {
		t.Fatalf("GetLog of the entry whose store failed: %v (index %d), want ErrLogNotFound", err, l.Index)
	}
	if err := c.DeleteRange(250, 301); err != nil {
		t.Fatal(err)
	}
	if n, b := c.cached(); n != 0 || b != 0 {
		t.Fatalf("after DeleteRange the cache holds %d entries, %d bytes", n, b)
	}
	if err := c.StoreLogs(sized(250, 260, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.cached(); n != 8 || !get(252) || get(253) {
		t.Errorf("after the cut and 11 new entries of 1 MiB: %d cached, want the latest 8", n)
	}
}
