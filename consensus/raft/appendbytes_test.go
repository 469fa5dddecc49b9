package raft_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// entriesCounter is an in-memory transport that records the most entries one AppendEntries
// RPC carried, and sends every one of them alone (no pipeline), so that each is seen.
type entriesCounter struct {
	*hraft.InmemTransport
	most *atomic.Int64
}

func (t entriesCounter) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	for {
		m := t.most.Load()
		if int64(len(args.Entries)) <= m || t.most.CompareAndSwap(m, int64(len(args.Entries))) {
			break
		}
	}
	return t.InmemTransport.AppendEntries(id, target, args, resp)
}

func (t entriesCounter) AppendEntriesPipeline(hraft.ServerID, hraft.ServerAddress) (hraft.AppendPipeline, error) {
	return nil, hraft.ErrPipelineReplicationNotSupported
}

// TestMaxEntryBytesBoundsAppendEntries: with MaxEntryBytes, a follower catching up receives
// the log in AppendEntries RPCs of at most MaxAppendBytes / MaxEntryBytes entries (16 for the
// largest commands), not hashicorp/raft's default 512: with 4 MiB commands those made 2 GiB
// RPCs, and a follower catching up peaked at 8 GB of memory.
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

// TestMaxAppendEntriesFromMaxEntryBytes: the default MaxAppendEntries for an entry bound, and
// an explicit MaxAppendEntries kept.
func TestMaxAppendEntriesFromMaxEntryBytes(t *testing.T) {
	for _, tt := range []struct {
		entry, explicit, want int
	}{
		{0, 0, craft.DefaultMaxAppendEntries},
		{4 << 20, 0, 64},
		{16 << 20, 0, 16},
		{1 << 30, 0, 16},
		{512 << 10, 0, 512},
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
