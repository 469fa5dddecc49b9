package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
)

// voteGuard keeps a node that holds no Raft state (a new node, or one whose data dir was wiped)
// from helping to elect a candidate that may lack committed entries. Raft's safety rests on each
// voter remembering its log and its votes: a wiped voter, still in the configuration, would
// grant its vote to any candidate (its empty log is never more up to date), so a lagging
// candidate and the wiped node could elect a leader missing an acknowledged write while the
// servers that hold it are down. So, until the node holds an entry or a snapshot, it refuses
// every vote and pre-vote for a candidate whose log goes past index 1 (the founding
// configuration, which hashicorp/raft's BootstrapCluster writes at index 1: the votes that
// found a cluster with bootstrap-expect are still granted, before any write can have been
// acknowledged).
//
// Holding some entries is not enough: a node that started empty and received only part of the
// log (a first batch, or a snapshot and not yet the entries after it) would, if the leader
// then failed, vote for a candidate whose log is longer than that part but lacks entries the
// wiped node had acknowledged before it lost them. So a node that received its state from a
// leader starting empty (armed; remembered in the stable store, across restarts) goes on
// refusing until it holds a commit point of a leader that covers an entry of that leader's
// own term: every entry committed in earlier terms lies below it. From then on, and on a node
// that held state when it first heard from a leader, Raft decides alone.
//
// The node's owner can also fence it (Node.Fence): a node that lost committed data (its
// divergence alarm, a damaged entry in its Raft log) must neither vote nor lead until it is
// repaired from its peers. While fenced, the guard refuses every vote and pre-vote it is asked
// for, whatever the candidate's log, and fails the node's own vote and pre-vote requests
// without sending them (the guard is also the transport Raft sends through): the node cannot
// collect a vote, so it is never elected. With pre-vote on (it always is: see RequestPreVote)
// such a node campaigns with pre-votes only, which change no term: hashicorp/raft v1.8's
// runCandidate starts a real election (electSelf, which increments and persists the term)
// only once a quorum granted the pre-vote, and the node's own pre-vote is the only one it gets.
// Only a leader's TimeoutNow (a leadership transfer to it) skips the pre-vote: the guard fails
// it, so the transfer fails at once and the leader keeps leading (an election started by it
// would raise this node's term, and its answers with that term depose the leader). A fenced
// node keeps receiving and acknowledging entries (its Raft log is whole, or the owner would
// not start it): only elections are closed to it. Its own vote for itself is Raft's, not an RPC: the only
// voter of a one-voter cluster still elects itself.
//
// It sits between the transport and Raft: Raft reads RPCs from Consumer, fed by run.
type voteGuard struct {
	hraft.Transport
	in      <-chan hraft.RPC
	out     chan hraft.RPC
	st      guardState
	held    atomic.Bool // caught up once: from then on, nothing is refused
	stop    chan struct{}
	wg      sync.WaitGroup
	refused atomic.Uint64 // votes and pre-votes refused, for tests and logs

	// fence is why the node is fenced (Node.Fence); nil while it is not.
	fence        atomic.Pointer[string]
	fenceRefused atomic.Uint64 // votes, pre-votes and TimeoutNows refused because the node is fenced
	fenceBlocked atomic.Uint64 // the node's own vote and pre-vote requests not sent because it is fenced

	// Used by run only (refuse and observe).
	heard  bool                               // a leader's AppendEntries or InstallSnapshot seen since the start
	armed  bool                               // the node received its state from a leader, starting empty
	term   uint64                             // the term of the latest leader heard
	own    uint64                             // the index of an entry of that leader's own term; 0: none seen yet
	target struct{ commit, own, term uint64 } // the latest commit point covering an own entry
}

// guardState is what the guard reads of the node's Raft state, and where it keeps whether it
// is armed.
type guardState struct {
	isEmpty func() bool // whether the node holds no entry and no snapshot
	// termAt returns the term of the entry the node holds at index (in its log, or as the last
	// entry of a snapshot), false when it holds none there.
	termAt    func(index uint64) (uint64, bool)
	lastIndex func() uint64
	armed     func() bool      // persisted: the node was armed and has not caught up yet
	setArmed  func(bool) error // persists armed
}

// newVoteGuard starts the guard of t; fenced, when not empty, fences it from the first RPC.
func newVoteGuard(t hraft.Transport, st guardState, fenced string) *voteGuard {
	g := &voteGuard{Transport: t, in: t.Consumer(), out: make(chan hraft.RPC), st: st, stop: make(chan struct{})}
	if fenced != "" {
		g.fence.Store(&fenced)
	}
	if st.armed() {
		g.heard, g.armed = true, true // restarted before it caught up
	}
	g.wg.Add(1)
	go g.run()
	return g
}

// Consumer implements hraft.Transport.
func (g *voteGuard) Consumer() <-chan hraft.RPC { return g.out }

// RequestPreVote implements hraft.WithPreVote, passed to the transport the guard wraps (every
// transport of hashicorp/raft v1.8 has it). Without it Raft turns pre-vote off: a server cut
// off from the leader, back after it campaigned, deposed a healthy leader with its higher term.
func (g *voteGuard) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	if err := g.fencedErr(); err != nil {
		return err
	}
	pv, ok := g.Transport.(hraft.WithPreVote)
	if !ok {
		// Raft counts a peer that does not know the RPC as granting it.
		return errors.New("unexpected command: this transport has no pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// RequestVote implements hraft.Transport: a fenced node's requests for votes fail unsent.
func (g *voteGuard) RequestVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestVoteRequest, resp *hraft.RequestVoteResponse) error {
	if err := g.fencedErr(); err != nil {
		return err
	}
	return g.Transport.RequestVote(id, target, args, resp)
}

// errFenced is what a fenced node's own vote and pre-vote requests fail with. Its text must
// not hold hashicorp/raft's "unexpected command", which counts a pre-vote as granted.
var errFenced = errors.New("consensus/raft: this node is fenced (it lost committed data): it neither votes nor campaigns")

// fencedErr returns, while the node is fenced, the error its own vote requests fail with (and
// counts them); nil otherwise.
func (g *voteGuard) fencedErr() error {
	r := g.fence.Load()
	if r == nil {
		return nil
	}
	g.fenceBlocked.Add(1)
	return fmt.Errorf("%w (%s)", errFenced, *r)
}

// SetHeartbeatHandler implements hraft.Transport by leaving the transport's heartbeat fast path
// off: heartbeats reach Raft through Consumer, and its main loop, like every other RPC.
// hashicorp/raft (v1.8.0, hashicorp/raft#695) handles a fast-path heartbeat on the transport's
// goroutine, where one carrying a newer term sets the node's term and makes it a follower while
// its main loop may be dispatching a write as leader: that write is then stored under the new
// term at an index where the new term's leader stored another entry, the two logs agree on the
// term there and are never reconciled, and this node applies a record the others never hold
// (found by commitlog-chaos: a leader paused with SIGSTOP, resumed with writes queued). The
// fast path saves a heartbeat waiting behind a disk write; a follower's main loop sets its last
// contact after each append, so the wait does not start elections. The leader, though, hears
// nothing from a follower while it writes one AppendEntries, and steps down when its lease
// passes without a quorum: MaxAppendBytes keeps that write short. It is here, not in a wrapper
// of its own, because the guard is the transport New always gives Raft, and a wrapper would have
// to forward WithPreVote and WithClose again, as the guard does (Raft turns pre-vote off for a
// transport without it); TestHeartbeatOfNewerTermWaitsForTheMainLoop goes through New.
func (g *voteGuard) SetHeartbeatHandler(func(hraft.RPC)) {}

// Close implements hraft.WithClose: Raft closes its transport at shutdown, as before the guard.
func (g *voteGuard) Close() error {
	if c, ok := g.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// close stops the guard (after Raft has shut down, before the stores close).
func (g *voteGuard) close() {
	close(g.stop)
	g.wg.Wait()
}

func (g *voteGuard) run() {
	defer g.wg.Done()
	for {
		select {
		case rpc := <-g.in:
			if g.refuse(rpc) {
				continue
			}
			if g.observe(rpc) && g.caughtUp() {
				g.held.Store(true)
			}
			select {
			case g.out <- rpc:
			case <-g.stop:
				return
			}
		case <-g.stop:
			return
		}
	}
}

// refuse answers rpc itself when it is a vote the guard refuses, and reports whether it did.
func (g *voteGuard) refuse(rpc hraft.RPC) bool {
	var term, last uint64
	switch req := rpc.Command.(type) {
	case *hraft.RequestVoteRequest:
		term, last = req.Term, req.LastLogIndex
	case *hraft.RequestPreVoteRequest:
		term, last = req.Term, req.LastLogIndex
	case *hraft.TimeoutNowRequest:
		// A leader handing leadership to this node: fenced, it could not win the election
		// that TimeoutNow starts (without a pre-vote), only raise its term, which deposes the
		// leader. Failing the RPC fails the transfer at once, and the leader keeps leading.
		if r := g.fence.Load(); r != nil {
			g.fenceRefused.Add(1)
			rpc.Respond(nil, fmt.Errorf("%w: it does not take leadership (%s)", errFenced, *r))
			return true
		}
		return false
	default:
		return false
	}
	if g.fence.Load() != nil {
		g.fenceRefused.Add(1)
		respondRefused(rpc, term)
		return true
	}
	if last <= 1 || g.held.Load() {
		return false
	}
	if g.caughtUp() {
		g.held.Store(true)
		return false
	}
	g.refused.Add(1)
	respondRefused(rpc, term)
	return true
}

// respondRefused answers the vote or pre-vote rpc, for term, not granted.
func respondRefused(rpc hraft.RPC, term uint64) {
	if _, pre := rpc.Command.(*hraft.RequestPreVoteRequest); pre {
		rpc.Respond(&hraft.RequestPreVoteResponse{Term: term, Granted: false}, nil)
	} else {
		rpc.Respond(&hraft.RequestVoteResponse{Term: term, Granted: false}, nil)
	}
}

// caughtUp reports whether the node may vote as Raft decides: it holds state, and either held
// it before any leader reached it, or holds a commit point covering an entry of its leader's
// own term (and that entry: its log is that leader's up to there).
func (g *voteGuard) caughtUp() bool {
	if g.st.isEmpty() {
		return false
	}
	if !g.armed {
		return true
	}
	t := g.target
	if t.commit == 0 || g.st.lastIndex() < t.commit {
		return false
	}
	if term, ok := g.st.termAt(t.own); !ok || term != t.term {
		return false
	}
	if err := g.st.setArmed(false); err != nil {
		return false
	}
	return true
}

// observe follows, while the node is not caught up, what the leaders send it: whether it
// received its state starting empty (armed), and the latest commit point that covers an
// entry of the sender's own term. It reports whether the node is armed and not caught up yet
// (the caller then looks whether it is now: what Raft applied of the RPCs before is in the
// stores).
func (g *voteGuard) observe(rpc hraft.RPC) bool {
	if g.held.Load() {
		return false
	}
	var term, commit, own uint64
	switch req := rpc.Command.(type) {
	case *hraft.AppendEntriesRequest:
		term, commit = req.Term, req.LeaderCommitIndex
		for _, e := range req.Entries {
			if e.Term == req.Term {
				own = e.Index // the first: a commit point lags the entries sent with it
				break
			}
		}
	case *hraft.InstallSnapshotRequest:
		// A snapshot holds committed entries only: its last one is committed.
		term, commit = req.Term, req.LastLogIndex
		if req.LastLogTerm == req.Term {
			own = req.LastLogIndex
		}
	default:
		return g.armed
	}
	if !g.heard {
		g.heard = true
		// Not armed when it cannot be remembered: as before the guard knew of catching up.
		g.armed = g.st.isEmpty() && g.st.setArmed(true) == nil
	}
	if !g.armed {
		return false
	}
	if term > g.term {
		g.term, g.own = term, 0
	}
	if term == g.term {
		if _, snap := rpc.Command.(*hraft.InstallSnapshotRequest); own != 0 && (g.own == 0 || snap) {
			g.own = own // a snapshot replaces the log, and the entry seen before with it
		}
		if g.own != 0 && commit >= g.own && commit > g.target.commit {
			g.target.commit, g.target.own, g.target.term = commit, g.own, term
		}
	}
	return true
}
