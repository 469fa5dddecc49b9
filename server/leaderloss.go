package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
)

// leaderLoss tracks since when this node has known no leader, so that a tailing
// ConsumeStream does not wait forever on a node cut off from its cluster (partitioned,
// removed, or the last of its cluster still up): Raft sends such a node no entries, and the
// stream would stall without an error while the others go on committing. etcd ends a watch
// the same way (WithRequireLeader).
type leaderLoss struct {
	mu      sync.Mutex
	since   time.Time     // when the leader was lost; zero while one is known
	heard   bool          // a leader was known at some point since the start
	changed chan struct{} // closed, and replaced, at every change of since
	cancel  func()        // unsubscribes from leader changes
	// leader is the last leader known (its ID; "" before any), and reign ends (endReign)
	// once another is known: a time without a leader does not end it (it may come back).
	leader   string
	reign    context.Context
	endReign context.CancelFunc
}

// watchLeaderLoss follows node's leader changes until stop.
func watchLeaderLoss(node consensus.Consensus) *leaderLoss {
	l := &leaderLoss{since: time.Now(), changed: make(chan struct{})}
	l.cancel = node.SubscribeLeader(l.observe) // delivers the current leader at once
	return l
}

func (l *leaderLoss) observe(ev consensus.LeaderEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := ev.Leader.ID == ""
	l.heard = l.heard || !lost
	if !lost && ev.Leader.ID != l.leader {
		if l.endReign != nil {
			l.endReign()
		}
		l.leader = ev.Leader.ID
		l.reign, l.endReign = context.WithCancel(context.Background())
	}
	if lost == !l.since.IsZero() {
		return
	}
	l.since = time.Time{}
	if lost {
		l.since = time.Now()
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *leaderLoss) state() (since time.Time, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since, l.changed
}

// reignOf returns a context that ends once this node knows a leader other than id, nil when
// the last leader it knew is not id (it cannot tell when id is succeeded).
func (l *leaderLoss) reignOf(id string) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id == "" || id != l.leader {
		return nil
	}
	return l.reign
}

// unheardFor is how long this node has known no leader after it knew one since it started;
// 0 while it knows one, or never knew one (a new node, a node restarted that no leader reaches).
func (l *leaderLoss) unheardFor() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heard || l.since.IsZero() {
		return 0
	}
	return time.Since(l.since)
}

// stop unsubscribes. Idempotent.
func (l *leaderLoss) stop() {
	l.mu.Lock()
	cancel := l.cancel
	l.cancel = nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// errLeaderLost ends a stream whose node knew no leader for too long (Unavailable, with the
// empty NotLeader detail: clients resume on another server).
var errLeaderLost = errors.New("server: this node lost its leader")

// endWithoutLeader cancels ctx, with errLeaderLost as its cause, once this node has known no
// leader for d while the stream was open, or with errStopping once the server begins to stop.
// It returns when ctx ends. l may be nil (no tracking: only the stop ends it). behind (may be
// nil) reports whether the stream has records of this node left to send: those can be read
// however long the leader is away, so the stream is ended only once it has sent them all.
func endWithoutLeader(ctx context.Context, cancel context.CancelCauseFunc, l *leaderLoss, d time.Duration, stop <-chan struct{}, behind func() bool) {
	opened := time.Now()  // the leader loss counts from here at the earliest
	var recheck time.Time // while the stream still sends what its node holds: when to look again
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var changed <-chan struct{}
		var expired <-chan time.Time
		if timer != nil {
			timer.Stop()
		}
		if l != nil {
			var since time.Time
			since, changed = l.state()
			if !since.IsZero() {
				timer = time.NewTimer(time.Until(later(later(since, opened).Add(d), recheck)))
				expired = timer.C
			}
		}
		select {
		case <-stop:
			cancel(errStopping)
			return
		case <-ctx.Done():
			return
		case <-expired:
			if behind != nil && behind() {
				recheck = time.Now().Add(behindPoll)
				continue
			}
			cancel(fmt.Errorf("%w %v ago: %w", errLeaderLost, d, consensus.ErrNoLeader))
			return
		case <-changed:
		}
	}
}

// behindPoll is how often a stream still sending what its leaderless node holds looks again
// whether it has sent it all.
const behindPoll = 100 * time.Millisecond

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// streamEndCause is why a stream's context ended when the server ended it (errStopping,
// errLeaderLost, errLagging, errStreamTopicGone), or nil when the client did.
func streamEndCause(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStopping) || errors.Is(cause, errLeaderLost) || errors.Is(cause, errLagging) ||
		errors.Is(cause, errStreamTopicGone) {
		return cause
	}
	return nil
}
