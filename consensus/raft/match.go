package raft

import (
	"io"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// matchTransport wraps the leader's side of a raft.Transport to learn each follower's match
// index, which hashicorp/raft v1.8 keeps unexported: a successful AppendEntries proves the
// follower holds the log through the request's last entry (PrevLogEntry + len(Entries), the
// value raft itself records), and a successful InstallSnapshot through the snapshot's last
// index. Pipelined appends are observed as their responses are consumed. Heartbeats carry no
// log position and are ignored.
//
// Values are kept per term: a match learned in an earlier term is not reported, so a new
// leader reports nothing for a follower until it has replicated to it.
type matchTransport struct {
	hraft.Transport
	matches *matchIndexes
}

type matchIndexes struct {
	mu sync.Mutex
	m  map[hraft.ServerID]termMatch
}

type termMatch struct{ term, index uint64 }

func newMatchIndexes() *matchIndexes { return &matchIndexes{m: map[hraft.ServerID]termMatch{}} }

// record notes that id holds the log through index, as learned in term.
func (mi *matchIndexes) record(id hraft.ServerID, term, index uint64) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	cur := mi.m[id]
	if term > cur.term || (term == cur.term && index > cur.index) {
		mi.m[id] = termMatch{term: term, index: index}
	}
}

// get returns the match index of id learned in term, or 0.
func (mi *matchIndexes) get(id hraft.ServerID, term uint64) uint64 {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	if cur := mi.m[id]; cur.term == term {
		return cur.index
	}
	return 0
}

func (mi *matchIndexes) observeAppend(id hraft.ServerID, req *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) {
	if req == nil || resp == nil || !resp.Success || resp.Term != req.Term {
		return
	}
	last := req.PrevLogEntry
	if n := len(req.Entries); n > 0 {
		last = req.Entries[n-1].Index
	}
	if last == 0 {
		return // a heartbeat: no log position
	}
	mi.record(id, req.Term, last)
}

// wrapMatch returns t wrapped to record match indexes in mi. Close is passed through when t
// has one, so raft shuts the transport down as before.
func wrapMatch(t hraft.Transport, mi *matchIndexes) hraft.Transport {
	mt := &matchTransport{Transport: t, matches: mi}
	_, closes := t.(hraft.WithClose)
	_, preVotes := t.(hraft.WithPreVote)
	switch {
	case closes && preVotes:
		return &closingPreVoteMatchTransport{closingMatchTransport{mt}}
	case closes:
		return &closingMatchTransport{mt}
	case preVotes:
		return &preVoteMatchTransport{mt}
	}
	return mt
}

type closingMatchTransport struct{ *matchTransport }

func (c *closingMatchTransport) Close() error { return c.Transport.(hraft.WithClose).Close() }

// preVoteMatchTransport passes pre-votes through (hraft.WithPreVote: Raft runs pre-vote only
// when its transport has it).
type preVoteMatchTransport struct{ *matchTransport }

func (p *preVoteMatchTransport) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	return p.Transport.(hraft.WithPreVote).RequestPreVote(id, target, args, resp)
}

type closingPreVoteMatchTransport struct{ closingMatchTransport }

func (p *closingPreVoteMatchTransport) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	return p.Transport.(hraft.WithPreVote).RequestPreVote(id, target, args, resp)
}

func (t *matchTransport) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.matches.observeAppend(id, args, resp)
	}
	return err
}

func (t *matchTransport) InstallSnapshot(id hraft.ServerID, target hraft.ServerAddress, args *hraft.InstallSnapshotRequest, resp *hraft.InstallSnapshotResponse, data io.Reader) error {
	err := t.Transport.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success && resp.Term == args.Term {
		t.matches.record(id, args.Term, args.LastLogIndex)
	}
	return err
}

func (t *matchTransport) AppendEntriesPipeline(id hraft.ServerID, target hraft.ServerAddress) (hraft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	mp := &matchPipeline{AppendPipeline: p, id: id, matches: t.matches, out: make(chan hraft.AppendFuture), closed: make(chan struct{}), done: make(chan struct{})}
	go mp.forward()
	return mp, nil
}

// matchPipeline passes the inner pipeline's completed futures on to raft, recording the match
// index of each successful one on the way.
type matchPipeline struct {
	hraft.AppendPipeline
	id      hraft.ServerID
	matches *matchIndexes
	out     chan hraft.AppendFuture
	once    sync.Once
	closed  chan struct{}
	done    chan struct{}
}

func (p *matchPipeline) forward() {
	defer close(p.done)
	in := p.AppendPipeline.Consumer()
	for {
		select {
		case <-p.closed:
			return
		case f := <-in:
			if f.Error() == nil {
				p.matches.observeAppend(p.id, f.Request(), f.Response())
			}
			select {
			case p.out <- f:
			case <-p.closed:
				return
			}
		}
	}
}

func (p *matchPipeline) Consumer() <-chan hraft.AppendFuture { return p.out }

func (p *matchPipeline) Close() error {
	err := p.AppendPipeline.Close()
	p.once.Do(func() { close(p.closed) })
	<-p.done
	return err
}
