package raft

import (
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
// acknowledged). Once the node has state, Raft decides alone.
//
// It sits between the transport and Raft: Raft reads RPCs from Consumer, fed by run.
type voteGuard struct {
	hraft.Transport
	in      <-chan hraft.RPC
	out     chan hraft.RPC
	isEmpty func() bool // whether the node holds no entry and no snapshot
	held    atomic.Bool // state seen once: from then on, nothing is refused
	stop    chan struct{}
	wg      sync.WaitGroup
	refused atomic.Uint64 // votes and pre-votes refused, for tests and logs
}

func newVoteGuard(t hraft.Transport, isEmpty func() bool) *voteGuard {
	g := &voteGuard{Transport: t, in: t.Consumer(), out: make(chan hraft.RPC), isEmpty: isEmpty, stop: make(chan struct{})}
	g.wg.Add(1)
	go g.run()
	return g
}

// Consumer implements hraft.Transport.
func (g *voteGuard) Consumer() <-chan hraft.RPC { return g.out }

// Close implements hraft.WithClose: Raft closes its transport at shutdown, as before the guard.
func (g *voteGuard) Close() error {
	if c, ok := g.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// close stops the guard (a Node closer, after Raft has shut down).
func (g *voteGuard) close() error {
	close(g.stop)
	g.wg.Wait()
	return nil
}

func (g *voteGuard) run() {
	defer g.wg.Done()
	for {
		select {
		case rpc := <-g.in:
			if g.refuse(rpc) {
				continue
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
	default:
		return false
	}
	if last <= 1 || g.held.Load() {
		return false
	}
	if !g.isEmpty() {
		g.held.Store(true)
		return false
	}
	g.refused.Add(1)
	if _, pre := rpc.Command.(*hraft.RequestPreVoteRequest); pre {
		rpc.Respond(&hraft.RequestPreVoteResponse{Term: term, Granted: false}, nil)
	} else {
		rpc.Respond(&hraft.RequestVoteResponse{Term: term, Granted: false}, nil)
	}
	return true
}
