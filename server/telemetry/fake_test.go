package telemetry

import (
	"context"
	"sync"

	"github.com/commitlog-go/commitlog/consensus"
)

// fakeNode is a consensus.Consensus whose status the test sets; only the methods telemetry
// calls are implemented (the embedded nil interface panics on the others).
type fakeNode struct {
	consensus.Consensus

	mu      sync.Mutex
	status  consensus.Status
	servers []consensus.ServerStatus
	subs    map[int]func(consensus.LeaderEvent)
	nextSub int
}

func newFakeNode(id string) *fakeNode {
	return &fakeNode{status: consensus.Status{ID: id, State: "follower"}, subs: map[int]func(consensus.LeaderEvent){}}
}

func (f *fakeNode) Status() consensus.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeNode) Servers(context.Context) ([]consensus.ServerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]consensus.ServerStatus(nil), f.servers...), nil
}

// SubscribeLeader delivers the current leader at once, as consensus/raft does, then every
// change made by setLeader, synchronously.
func (f *fakeNode) SubscribeLeader(fn func(consensus.LeaderEvent)) func() {
	f.mu.Lock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	ev := consensus.LeaderEvent{Leader: f.status.Leader, IsSelf: f.status.Leader.ID == f.status.ID && f.status.ID != ""}
	f.mu.Unlock()
	fn(ev)
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

func (f *fakeNode) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// set changes the status; when the leader changes, subscribers hear of it.
func (f *fakeNode) set(change func(*consensus.Status)) {
	f.mu.Lock()
	before := f.status.Leader
	change(&f.status)
	after := f.status.Leader
	ev := consensus.LeaderEvent{Leader: after, IsSelf: after.ID == f.status.ID && after.ID != ""}
	subs := make([]func(consensus.LeaderEvent), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	f.mu.Unlock()
	if before != after {
		for _, fn := range subs {
			fn(ev)
		}
	}
}

// setQuietly changes the status without telling subscribers, and notify tells them the
// current leader later: consensus/raft's Status shows a new leader before its observer
// delivers the event.
func (f *fakeNode) setQuietly(change func(*consensus.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.status)
}

func (f *fakeNode) notify() {
	f.mu.Lock()
	ev := consensus.LeaderEvent{Leader: f.status.Leader, IsSelf: f.status.Leader.ID == f.status.ID && f.status.ID != ""}
	subs := make([]func(consensus.LeaderEvent), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	f.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

func (f *fakeNode) setServers(servers []consensus.ServerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = servers
}

// fakeSegments is a SegmentStats.
type fakeSegments struct{}

func (fakeSegments) Segments() int { return 3 }
func (fakeSegments) Size() int64   { return 12345 }
