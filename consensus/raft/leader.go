package raft

import (
	"log/slog"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// leaderWatch owns the goroutine that turns raft's observations into LeaderEvents for
// subscribers and records followers' failed heartbeats. Raft's observer channel is
// non-blocking (a slow subscriber must never stall raft), so an observation only "kicks" the
// goroutine, which then reads raft's current leader: a dropped observation cannot lose the
// latest state, though a short-lived intermediate leader may be coalesced away. Should every
// observation of a change be dropped (the buffer full when it happened), the goroutine also
// reads the leader every recheckLeader, so that no change goes unreported for longer.
type leaderWatch struct {
	r      *hraft.Raft
	selfID string
	log    *slog.Logger

	obsCh    chan hraft.Observation
	observer *hraft.Observer
	kick     chan struct{} // a new subscriber waits for its first event
	stop     chan struct{}
	done     chan struct{}

	mu     sync.Mutex // guards subs, nextID, failed
	subs   map[uint64]*subscription
	nextID uint64
	failed map[string]time.Time // follower ID → last contact, while its heartbeats fail

	last consensus.Server // last delivered leader (goroutine only)
	sent bool
}

type subscription struct {
	mu     sync.Mutex // held while fn runs; cancel takes it to wait for a running call
	fn     func(consensus.LeaderEvent)
	active bool
	primed bool // has received its first event (goroutine only)
}

func newLeaderWatch(r *hraft.Raft, selfID string, log *slog.Logger) *leaderWatch {
	w := &leaderWatch{
		r: r, selfID: selfID, log: log,
		obsCh:  make(chan hraft.Observation, 64),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		subs:   make(map[uint64]*subscription),
		failed: make(map[string]time.Time),
	}
	w.observer = hraft.NewObserver(w.obsCh, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.LeaderObservation, hraft.FailedHeartbeatObservation, hraft.ResumedHeartbeatObservation,
			hraft.PeerObservation, hraft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(w.observer)
	go w.run()
	return w
}

// recheckLeader bounds how late a leader change is reported when raft's observations of it
// were dropped.
const recheckLeader = 500 * time.Millisecond

func (w *leaderWatch) run() {
	defer close(w.done)
	w.check() // the leader known at start (e.g. none)
	tick := time.NewTicker(recheckLeader)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
			w.check()
		case <-tick.C:
			w.check()
		case o := <-w.obsCh:
			switch d := o.Data.(type) {
			case hraft.FailedHeartbeatObservation:
				w.mu.Lock()
				w.failed[string(d.PeerID)] = d.LastContact
				w.mu.Unlock()
			case hraft.ResumedHeartbeatObservation:
				w.mu.Lock()
				delete(w.failed, string(d.PeerID))
				w.mu.Unlock()
			case hraft.PeerObservation:
				if d.Removed {
					w.mu.Lock()
					delete(w.failed, string(d.Peer.ID))
					w.mu.Unlock()
				}
			case hraft.RaftState:
				if d != hraft.Leader {
					w.mu.Lock()
					clear(w.failed)
					w.mu.Unlock()
				}
			}
			w.check()
		}
	}
}

// check delivers an event if raft's current leader differs from the last one delivered.
func (w *leaderWatch) check() {
	addr, id := w.r.LeaderWithID()
	cur := consensus.Server{}
	if id != "" {
		cur = consensus.Server{ID: string(id), Address: string(addr), Suffrage: consensus.Voter}
	}
	changed := !w.sent || cur != w.last
	w.last, w.sent = cur, true
	ev := consensus.LeaderEvent{Leader: cur, IsSelf: cur.ID != "" && cur.ID == w.selfID}
	if changed {
		w.log.Debug("leader changed", "leader_id", cur.ID, "leader_addr", cur.Address, "is_self", ev.IsSelf)
	}
	w.mu.Lock()
	subs := make([]*subscription, 0, len(w.subs))
	for _, s := range w.subs {
		subs = append(subs, s)
	}
	w.mu.Unlock()
	for _, s := range subs {
		if !changed && s.primed {
			continue
		}
		s.mu.Lock()
		if s.active {
			s.fn(ev)
		}
		s.primed = true
		s.mu.Unlock()
	}
}

func (w *leaderWatch) subscribe(fn func(consensus.LeaderEvent)) func() {
	s := &subscription{fn: fn, active: true}
	w.mu.Lock()
	id := w.nextID
	w.nextID++
	w.subs[id] = s
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
		s.mu.Lock()
		s.active = false
		s.mu.Unlock()
	}
}

func (w *leaderWatch) failedContact(id string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed[id]
}

// failing reports whether the last heartbeat to id failed (none succeeded since).
func (w *leaderWatch) failing(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.failed[id]
	return ok
}

// close stops the goroutine and waits for it. Call once, after raft has shut down.
func (w *leaderWatch) close() {
	w.r.DeregisterObserver(w.observer)
	close(w.stop)
	<-w.done
}
