package raft

import (
	"fmt"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// logCacheBytes bounds the data of the entries logCache holds: MaxAppendBytes, what one
// AppendEntries carries, so that a leader sends a follower that keeps up from memory whatever
// the entries' size.
const logCacheBytes = MaxAppendBytes

// logCache is hraft.LogCache (the latest entries written, kept in memory so that the leader
// replicates them without reading them back from the WAL) bounded in bytes as well as in
// entries: hraft.LogCache holds its capacity in entries whatever their size, 64 commands of
// up to 16 MiB, and a node under large batches held ~250 MB in it for good.
//
// Like hraft.LogCache it answers GetLog from memory only for an entry whose index it holds, and
// from the store otherwise: what it evicts, and when, only decides what is read back from disk.
type logCache struct {
	store    hraft.LogStore
	maxBytes int

	mu    sync.RWMutex
	ring  []*hraft.Log // entry i in slot i % len(ring)
	bytes int          // the Data of the entries in ring
	// low is the lowest index that may still be in ring, high the highest stored (0: none).
	low, high uint64
}

func newLogCache(entries, maxBytes int, store hraft.LogStore) (*logCache, error) {
	if entries <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("consensus/raft: log cache of %d entries, %d bytes", entries, maxBytes)
	}
	return &logCache{store: store, maxBytes: maxBytes, ring: make([]*hraft.Log, entries)}, nil
}

// GetLog implements hraft.LogStore.
func (c *logCache) GetLog(idx uint64, log *hraft.Log) error {
	c.mu.RLock()
	cached := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == idx {
		*log = *cached
		return nil
	}
	return c.store.GetLog(idx, log)
}

// StoreLog implements hraft.LogStore.
func (c *logCache) StoreLog(log *hraft.Log) error { return c.StoreLogs([]*hraft.Log{log}) }

// StoreLogs implements hraft.LogStore: the store first, then, on success only, the cache.
func (c *logCache) StoreLogs(logs []*hraft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := uint64(len(c.ring))
	for _, l := range logs {
		slot := l.Index % n
		if old := c.ring[slot]; old != nil {
			c.bytes -= len(old.Data)
		}
		c.ring[slot] = l
		c.bytes += len(l.Data)
		c.high = max(c.high, l.Index)
	}
	if c.high >= n && c.low < c.high-n+1 {
		c.low = c.high - n + 1 // the slots below were overwritten
	}
	for ; c.bytes > c.maxBytes && c.low <= c.high; c.low++ {
		slot := c.low % n
		if old := c.ring[slot]; old != nil && old.Index == c.low {
			c.bytes -= len(old.Data)
			c.ring[slot] = nil
		}
	}
	return nil
}

// FirstIndex implements hraft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements hraft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// DeleteRange implements hraft.LogStore: it empties the cache, then deletes from the store.
func (c *logCache) DeleteRange(minIdx, maxIdx uint64) error {
	c.mu.Lock()
	clear(c.ring)
	c.bytes, c.low, c.high = 0, 0, 0
	c.mu.Unlock()
	return c.store.DeleteRange(minIdx, maxIdx)
}

// cached returns how many entries the cache holds and their bytes, for tests.
func (c *logCache) cached() (entries, bytes int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, l := range c.ring {
		if l != nil {
			entries++
		}
	}
	return entries, c.bytes
}
