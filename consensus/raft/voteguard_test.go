package raft

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// consumerTransport is a transport of which only Consumer is used.
type consumerTransport struct {
	hraft.Transport
	ch chan hraft.RPC
}

func (c consumerTransport) Consumer() <-chan hraft.RPC { return c.ch }

// TestVoteGuard: a node without Raft state answers itself, refusing, a vote or pre-vote for a
// candidate whose log goes past the founding entry; it hands Raft the votes of a founding
// candidate (last index 1) and every other RPC; once it holds state, it hands Raft everything.
func TestVoteGuard(t *testing.T) {
	var empty atomic.Bool
	empty.Store(true)
	in := make(chan hraft.RPC)
	g := newVoteGuard(consumerTransport{ch: in}, guardState{isEmpty: empty.Load,
		termAt: func(uint64) (uint64, bool) { return 0, false }, lastIndex: func() uint64 { return 0 },
		armed: func() bool { return false }, setArmed: func(bool) error { return errors.New("no stable store") }}, "")
	defer g.close()

	send := func(cmd any) (forwarded bool, resp hraft.RPCResponse) {
		t.Helper()
		respCh := make(chan hraft.RPCResponse, 1)
		in <- hraft.RPC{Command: cmd, RespChan: respCh}
		select {
		case rpc := <-g.Consumer():
			if rpc.Command != cmd {
				t.Fatalf("forwarded %T, want %T", rpc.Command, cmd)
			}
			return true, hraft.RPCResponse{}
		case r := <-respCh:
			return false, r
		case <-time.After(10 * time.Second):
			t.Fatalf("%T neither forwarded nor answered", cmd)
		}
		return false, hraft.RPCResponse{}
	}
	refused := func(what string, cmd any, term uint64) {
		t.Helper()
		fwd, r := send(cmd)
		if fwd {
			t.Fatalf("%s: handed to Raft, want refused by the guard", what)
		}
		switch v := r.Response.(type) {
		case *hraft.RequestVoteResponse:
			if v.Granted || v.Term != term || r.Error != nil {
				t.Fatalf("%s: answered %+v, %v; want not granted in term %d", what, v, r.Error, term)
			}
		case *hraft.RequestPreVoteResponse:
			if v.Granted || v.Term != term || r.Error != nil {
				t.Fatalf("%s: answered %+v, %v; want not granted in term %d", what, v, r.Error, term)
			}
		default:
			t.Fatalf("%s: answered %T", what, r.Response)
		}
	}
	forwarded := func(what string, cmd any) {
		t.Helper()
		if fwd, r := send(cmd); !fwd {
			t.Fatalf("%s: answered by the guard (%+v), want handed to Raft", what, r)
		}
	}

	refused("vote for a candidate with entries", &hraft.RequestVoteRequest{Term: 7, LastLogIndex: 42, LastLogTerm: 6}, 7)
	refused("pre-vote for a candidate with entries", &hraft.RequestPreVoteRequest{Term: 8, LastLogIndex: 42, LastLogTerm: 6}, 8)
	forwarded("vote for a founding candidate", &hraft.RequestVoteRequest{Term: 2, LastLogIndex: 1, LastLogTerm: 1})
	forwarded("pre-vote for a founding candidate", &hraft.RequestPreVoteRequest{Term: 2, LastLogIndex: 1, LastLogTerm: 1})
	forwarded("append entries", &hraft.AppendEntriesRequest{Term: 7, PrevLogEntry: 41})
	forwarded("install snapshot", &hraft.InstallSnapshotRequest{Term: 7, LastLogIndex: 40})
	if n := g.refused.Load(); n != 2 {
		t.Fatalf("refused %d, want 2", n)
	}

	empty.Store(false) // caught up from the leader (arming needs a stable store: this one has none)
	forwarded("vote once the node holds state", &hraft.RequestVoteRequest{Term: 9, LastLogIndex: 42, LastLogTerm: 6})
	empty.Store(true) // the guard does not look again
	forwarded("vote after state was seen once", &hraft.RequestVoteRequest{Term: 10, LastLogIndex: 42, LastLogTerm: 6})
}

// guardLog is a node's Raft state as the vote guard sees it: index -> term, and the armed flag
// of its stable store.
type guardLog struct {
	mu    sync.Mutex
	terms map[uint64]uint64
	armed bool
}

func (l *guardLog) state() guardState {
	return guardState{
		isEmpty: func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.terms) == 0 },
		termAt: func(i uint64) (uint64, bool) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t, ok := l.terms[i]
			return t, ok
		},
		lastIndex: func() uint64 {
			l.mu.Lock()
			defer l.mu.Unlock()
			last := uint64(0)
			for i := range l.terms {
				last = max(last, i)
			}
			return last
		},
		armed:    func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.armed },
		setArmed: func(on bool) error { l.mu.Lock(); defer l.mu.Unlock(); l.armed = on; return nil },
	}
}

// TestVoteGuardHoldsUntilCaughtUp: a wiped voter that has received only part of the log
// (the leader failed during its catch-up) must not vote for a candidate whose log is longer
// than that part but shorter than the commit point: that candidate lacks entries the wiped
// node may have acknowledged before it lost them. It votes freely once it holds a commit
// point covering an entry of its leader's term, and is still held after a restart midway.
func TestVoteGuardHoldsUntilCaughtUp(t *testing.T) {
	// The leader's log, term 5: entries 1-90 of terms 1-3, 91-100 its own (91: its no-op);
	// 100 committed (on the leader and, before the wipe, this node).
	term := func(i uint64) uint64 {
		switch {
		case i == 1:
			return 1
		case i <= 90:
			return 3
		}
		return 5
	}
	entries := func(from, to uint64) []*hraft.Log {
		var out []*hraft.Log
		for i := from; i <= to; i++ {
			out = append(out, &hraft.Log{Index: i, Term: term(i)})
		}
		return out
	}
	node := &guardLog{terms: map[uint64]uint64{}} // wiped: empty

	in := make(chan hraft.RPC)
	start := func() *voteGuard { return newVoteGuard(consumerTransport{ch: in}, node.state(), "") }
	g := start()
	// appendEntries hands req to the guard; Raft (the test) appends its entries.
	appendEntries := func(req *hraft.AppendEntriesRequest) {
		t.Helper()
		in <- hraft.RPC{Command: req, RespChan: make(chan hraft.RPCResponse, 1)}
		select {
		case <-g.Consumer():
		case <-time.After(10 * time.Second):
			t.Fatal("append entries not handed to Raft")
		}
		node.mu.Lock()
		for _, e := range req.Entries {
			node.terms[e.Index] = e.Term
		}
		node.mu.Unlock()
	}
	vote := func(req *hraft.RequestVoteRequest) (granted bool) {
		t.Helper()
		respCh := make(chan hraft.RPCResponse, 1)
		in <- hraft.RPC{Command: req, RespChan: respCh}
		select {
		case <-g.Consumer():
			return true // Raft decides: this candidate's log (longer than the node's) wins
		case r := <-respCh:
			return r.Response.(*hraft.RequestVoteResponse).Granted
		case <-time.After(10 * time.Second):
			t.Fatal("vote neither handed to Raft nor answered")
		}
		return false
	}
	// A lagging candidate: entries up to 70, none of 71-100 (committed).
	lagging := &hraft.RequestVoteRequest{Term: 6, LastLogIndex: 70, LastLogTerm: 3}

	appendEntries(&hraft.AppendEntriesRequest{Term: 5, Entries: entries(1, 64), LeaderCommitIndex: 100})
	if vote(lagging) {
		t.Fatal("a wiped node holding entries 1-64 of a log committed to 100 helps elect a candidate without 71-100")
	}

	// It restarts before catching up: still held.
	g.close()
	g = start()
	appendEntries(&hraft.AppendEntriesRequest{Term: 5, PrevLogEntry: 64, PrevLogTerm: 3, Entries: entries(65, 66), LeaderCommitIndex: 100})
	if vote(lagging) {
		t.Fatal("after a restart midway, the node helps elect a candidate without 71-100")
	}

	appendEntries(&hraft.AppendEntriesRequest{Term: 5, PrevLogEntry: 66, PrevLogTerm: 3, Entries: entries(67, 100), LeaderCommitIndex: 100})
	if !vote(&hraft.RequestVoteRequest{Term: 6, LastLogIndex: 100, LastLogTerm: 5}) {
		t.Fatal("caught up, the node still refuses its vote")
	}
	g.close()
	if node.armed {
		t.Fatal("caught up, the node is still armed in its stable store")
	}
}

// preVoteTransport is a consumerTransport that answers RequestPreVote.
type preVoteTransport struct {
	consumerTransport
	calls atomic.Int32
}

func (p *preVoteTransport) RequestPreVote(_ hraft.ServerID, _ hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	p.calls.Add(1)
	resp.Term, resp.Granted = args.Term, true
	return nil
}

// TestVoteGuardPreVote: the guard passes a pre-vote request to the transport it wraps, and
// fails it when that transport has none, with the "unexpected command" error Raft counts as a
// pre-vote granted by a peer that does not know the RPC (as without the guard, where Raft runs
// no pre-vote); any other error, or a denial, would count as refused, and no election would
// ever pass its pre-vote.
func TestVoteGuardPreVote(t *testing.T) {
	st := guardState{isEmpty: func() bool { return false },
		termAt: func(uint64) (uint64, bool) { return 0, false }, lastIndex: func() uint64 { return 0 },
		armed: func() bool { return false }, setArmed: func(bool) error { return nil }}

	pv := &preVoteTransport{consumerTransport: consumerTransport{ch: make(chan hraft.RPC)}}
	g := newVoteGuard(pv, st, "")
	defer g.close()
	var resp hraft.RequestPreVoteResponse
	if err := g.RequestPreVote("n2", "addr2", &hraft.RequestPreVoteRequest{Term: 7}, &resp); err != nil {
		t.Fatalf("pre-vote through a transport that has it: %v", err)
	}
	if pv.calls.Load() != 1 || !resp.Granted || resp.Term != 7 {
		t.Fatalf("pre-vote reached the transport %d times, answer %+v; want once, granted in term 7", pv.calls.Load(), resp)
	}

	plain := newVoteGuard(consumerTransport{ch: make(chan hraft.RPC)}, st, "")
	defer plain.close()
	resp = hraft.RequestPreVoteResponse{}
	err := plain.RequestPreVote("n2", "addr2", &hraft.RequestPreVoteRequest{Term: 7}, &resp)
	if err == nil || !strings.Contains(err.Error(), "unexpected command") || resp.Granted {
		t.Fatalf("pre-vote through a transport without it: %v, answer %+v; want Raft's \"unexpected command\" error, not granted", err, resp)
	}
}

// TestCloseStopsTheGuardBeforeTheStores: the guard reads and writes the stores while it answers
// an RPC, so Close stops it before it closes them (CI saw the guard write to a meta store Close
// had closed).
func TestCloseStopsTheGuardBeforeTheStores(t *testing.T) {
	_, trans := hraft.NewInmemTransport("a")
	n, err := New(Config{ID: "a", DataDir: t.TempDir(), Transport: trans, Bootstrap: true}, &plainSM{})
	if err != nil {
		t.Fatal(err)
	}
	checked := false
	n.closers = append([]func() error{func() error {
		checked = true
		select {
		case <-n.votes.stop:
		default:
			t.Error("the stores close while the vote guard runs")
		}
		return nil
	}}, n.closers...)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("Close ran no closer")
	}
}
