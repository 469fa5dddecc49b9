package raft

import (
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
	g := newVoteGuard(consumerTransport{ch: in}, empty.Load)
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

	empty.Store(false) // caught up from the leader
	forwarded("vote once the node holds state", &hraft.RequestVoteRequest{Term: 9, LastLogIndex: 42, LastLogTerm: 6})
	empty.Store(true) // the guard does not look again
	forwarded("vote after state was seen once", &hraft.RequestVoteRequest{Term: 10, LastLogIndex: 42, LastLogTerm: 6})
}
