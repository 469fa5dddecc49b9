package raft_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// trimTransport sends AppendEntries to one address with only the entries up to limit (when
// set), and without pipelining: that follower's catch-up stops at limit, as when its leader
// fails after the first batches.
type trimTransport struct {
	hraft.Transport
	to    hraft.ServerAddress
	limit atomic.Uint64
}

func (t *trimTransport) AppendEntriesPipeline(id hraft.ServerID, target hraft.ServerAddress) (hraft.AppendPipeline, error) {
	if target == t.to {
		return nil, hraft.ErrPipelineReplicationNotSupported
	}
	return t.Transport.AppendEntriesPipeline(id, target)
}

func (t *trimTransport) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	if lim := t.limit.Load(); target == t.to && lim > 0 {
		n := 0
		for n < len(args.Entries) && args.Entries[n].Index <= lim {
			n++
		}
		args.Entries = args.Entries[:n] // the leader sees what was sent
	}
	return t.Transport.AppendEntries(id, target, args, resp)
}

// TestWipedVoterCaughtUpPartlyCannotElectLaggingLeader: L and W commit entries C lacks; W's
// data dir is wiped and it restarts as the same voter; L sends it only the first part of the
// log, then stops. C's log is longer than W's part but lacks committed entries: W must not
// vote for it (the cluster waits for L), or the entries W acknowledged before the wipe are lost.
func TestWipedVoterCaughtUpPartlyCannotElectLaggingLeader(t *testing.T) {
	const L, W, C = 0, 1, 2
	trim := &trimTransport{to: "inmem-node-1"}
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(i int, cfg *craft.Config) {
		if i == L {
			trim.Transport = cfg.Transport
			cfg.Transport = trim
		}
	}})
	if l := c.WaitLeader(); l != L {
		if err := c.Node(l).TransferLeadership(ctxT(t), c.ID(L)); err != nil {
			t.Fatalf("transfer to %d: %v", L, err)
		}
		if got := c.WaitLeader(); got != L {
			t.Fatalf("leader %d after the transfer, want %d", got, L)
		}
	}
	var acked [][]byte
	propose := func(prefix string, n int) {
		for k := range n {
			cmd := fmt.Appendf(nil, "%s-%d", prefix, k)
			c.Propose(cmd)
			acked = append(acked, cmd)
		}
	}
	propose("all", 10)
	c.WaitApplied(c.Node(L).Status().CommitIndex)
	partLast := c.Node(L).Status().LastIndex // what W will get back
	propose("lagging", 10)
	c.WaitApplied(c.Node(L).Status().CommitIndex)
	c.Partition(C)
	propose("acked-by-L-and-W", 10) // committed on L and W only
	commit := c.Node(L).Status().CommitIndex
	if last := c.Node(C).Status().LastIndex; last <= partLast || last >= commit {
		t.Fatalf("C's last index %d, want between W's part %d and the commit %d", last, partLast, commit)
	}

	c.Stop(W)
	if err := os.RemoveAll(c.Dir(W)); err != nil {
		t.Fatal(err)
	}
	trim.limit.Store(partLast)
	c.Restart(W)
	c.WaitFor("W to hold the first part of the log", func() bool { return c.Node(W).Status().LastIndex == partLast })
	c.Stop(L)
	c.Heal()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c.Node(C).IsLeader() || c.Node(W).IsLeader() {
			t.Fatalf("a leader was elected without the committed entries past index %d (C leads: %v; commit was %d)",
				c.Node(C).Status().LastIndex, c.Node(C).IsLeader(), commit)
		}
	}
	trim.limit.Store(0)
	c.Restart(L)
	c.WaitFor("every node to apply every acknowledged entry", func() bool {
		for i := range 3 {
			if c.List(i).Len() < len(acked) {
				return false
			}
		}
		return true
	})
	checkSameRecords(t, c, acked, L, W, C)
}
