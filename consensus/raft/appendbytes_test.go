package raft_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// entriesCounter is an in-memory transport that records the most entries one AppendEntries
// RPC carried (and, if mostBytes is set, the most bytes of commands), and sends every one of
// them alone (no pipeline), so that each is seen.
type entriesCounter struct {
	*hraft.InmemTransport
	most      *atomic.Int64
	mostBytes *atomic.Int64
}

func storeMax(most *atomic.Int64, v int64) {
	for {
		m := most.Load()
		if v <= m || most.CompareAndSwap(m, v) {
			return
		}
	}
}

func (t entriesCounter) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	storeMax(t.most, int64(len(args.Entries)))
	if t.mostBytes != nil {
		var n int64
		for _, e := range args.Entries {
			n += int64(len(e.Data))
		}
		storeMax(t.mostBytes, n)
	}
	return t.InmemTransport.AppendEntries(id, target, args, resp)
}

func (t entriesCounter) AppendEntriesPipeline(hraft.ServerID, hraft.ServerAddress) (hraft.AppendPipeline, error) {
	return nil, hraft.ErrPipelineReplicationNotSupported
}

// TestMaxEntryBytesBoundsAppendEntries: with MaxEntryBytes, a follower catching up receives
// the log in AppendEntries RPCs of at most MaxAppendBytes / MaxEntryBytes entries (16 here),
// not hashicorp/raft's default 512: with 4 MiB commands those made 2 GiB RPCs, and a follower
// catching up peaked at 8 GB of memory.
func TestMaxEntryBytesBoundsAppendEntries(t *testing.T) {
	const entryBytes = craft.MaxAppendBytes / 16 // the bound is 16 entries
	var most atomic.Int64
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(_ int, cfg *craft.Config) {
		cfg.MaxEntryBytes = entryBytes
		cfg.Transport = entriesCounter{InmemTransport: cfg.Transport.(*hraft.InmemTransport), most: &most}
	}})
	leader := c.WaitLeader()
	if got := c.Node(leader).MaxAppendEntries(); got != 16 {
		t.Fatalf("MaxAppendEntries with MaxEntryBytes %d: %d, want 16", entryBytes, got)
	}
	lagging := (leader + 1) % 3
	c.Partition(lagging)
	const missed = 100
	for k := range missed {
		c.Propose(fmt.Appendf(nil, "missed-%d", k))
	}
	most.Store(0)
	c.Heal()
	idx := c.Node(leader).Status().LastIndex
	c.WaitApplied(idx, lagging)
	if m := most.Load(); m != 16 {
		t.Fatalf("a follower catching up on %d entries received at most %d in one AppendEntries, want 16 (MaxAppendBytes / MaxEntryBytes)", missed, m)
	}
}

// TestAppendEntriesBytesBounded: with MaxEntryBytes, a follower catching up receives at most
// 32 MiB of commands in one AppendEntries. It stores and fsyncs an RPC before it answers
// anything, heartbeats included (their fast path is off), so one RPC must be written within
// the leader's lease: with 256 MiB RPCs (64 commands of 4 MiB) followers took 1.3–4.9 s per
// RPC, and a 3-node cluster under 48 clients writing 4 MB batches lost its leader 9 times in
// 90 s.
func TestAppendEntriesBytesBounded(t *testing.T) {
	const (
		entryBytes = 1 << 20
		maxRPC     = 32 << 20 // what one RPC may carry
		logged     = 40       // more than one RPC's worth
	)
	var most, mostBytes atomic.Int64
	c := consensustest.NewCluster(t, 1, consensustest.Options{Config: func(_ int, cfg *craft.Config) {
		cfg.MaxEntryBytes = entryBytes
		cfg.Transport = entriesCounter{InmemTransport: cfg.Transport.(*hraft.InmemTransport), most: &most, mostBytes: &mostBytes}
	}})
	leader := c.WaitLeader()
	for k := range logged {
		cmd := make([]byte, entryBytes) // Raft keeps it: one each
		cmd[0] = byte(k)
		c.Propose(cmd)
	}
	// A new node gets the whole log from the leader, which has been sending nothing (no
	// follower: no retry in backoff whose RPC was set up with fewer entries).
	n := c.AddNode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Node(leader).AddNonvoter(ctx, c.ID(n), c.Addr(n)); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	c.WaitApplied(c.Node(leader).Status().LastIndex, n)
	if m := mostBytes.Load(); m > maxRPC || m == 0 {
		t.Fatalf("a follower catching up on %d commands of %d B received %d B (%d entries) in one AppendEntries, want at most %d", logged, entryBytes, m, most.Load(), maxRPC)
	}
}

// TestMaxAppendEntriesFromMaxEntryBytes: the default MaxAppendEntries for an entry bound, and
// an explicit MaxAppendEntries kept.
func TestMaxAppendEntriesFromMaxEntryBytes(t *testing.T) {
	for _, tt := range []struct {
		entry, explicit, want int
	}{
		{0, 0, craft.DefaultMaxAppendEntries},
		{4 << 20, 0, 8},
		{16 << 20, 0, 2},
		{1 << 30, 0, 1},
		{64 << 10, 0, 512},
		{128 << 10, 0, 256},
		{1 << 10, 0, 512},
		{4 << 20, 300, 300},
	} {
		_, trans := hraft.NewInmemTransport("")
		n, err := craft.New(craft.Config{ID: "a", DataDir: t.TempDir(), Transport: trans, MaxEntryBytes: tt.entry, MaxAppendEntries: tt.explicit}, newListSM(t))
		if err != nil {
			t.Fatal(err)
		}
		got := n.MaxAppendEntries()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("MaxEntryBytes %d, MaxAppendEntries %d: effective %d, want %d", tt.entry, tt.explicit, got, tt.want)
		}
	}
	_, trans := hraft.NewInmemTransport("")
	if _, err := craft.New(craft.Config{ID: "a", DataDir: t.TempDir(), Transport: trans, MaxEntryBytes: -1}, newListSM(t)); err == nil {
		t.Fatal("New with a negative MaxEntryBytes: nil error")
	}
}

func newListSM(t *testing.T) *consensustest.ListSM {
	t.Helper()
	sm, err := consensustest.NewListSM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sm.Close() })
	return sm
}
