package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
)

// health tracks liveness and readiness and drives the gRPC health status from leader changes.
//
// Readiness: the node is not known to be out of every cluster (notMember), knows a leader and
// has applied every entry up to the commit index it knew when it learned of that leader (the
// target is taken per term: a new leader means a new target, and so does a leader learned again
// after it was lost, in the same term or not) and, on a follower with leaderCommit, up to the
// leader's commit index as the leader answered it once after it learned that leader: a
// follower's own commit index lags the leader's (it learns it with the next entries: a new,
// restarted or wiped follower would be ready at once, and so would a follower back from a
// partition). Before
// Observe, and after Drain, the node is not ready.
type health struct {
	mu           sync.Mutex
	node         consensus.Consensus
	live         func() error
	setHealth    func(transport.HealthStatus)
	leaderCommit func(ctx context.Context, leader consensus.Server) (uint64, error)
	diverged     func() string // the divergence alarm's message; nil: none
	notMember    func() string // why the node is part of no cluster; nil: never
	draining     bool
	term         uint64 // the term target belongs to; 0: none yet
	target       uint64 // commit index known when the leader of term was learned
	asked        uint64 // the term whose leader's commit index is in target; 0: none
	cancel       func() // unsubscribes from leader changes
}

func newHealth() *health { return &health{} }

// observe starts tracking node; setHealth (may be nil) is called with SERVING whenever a leader
// is known and NOT_SERVING whenever none is, from the consensus notification goroutine.
func (h *health) observe(node consensus.Consensus, live func() error, setHealth func(transport.HealthStatus),
	leaderCommit func(context.Context, consensus.Server) (uint64, error), diverged, notMember func() string) {
	h.mu.Lock()
	h.node, h.live, h.setHealth, h.leaderCommit, h.diverged, h.notMember = node, live, setHealth, leaderCommit, diverged, notMember
	h.mu.Unlock()
	cancel := node.SubscribeLeader(h.onLeader)
	h.mu.Lock()
	h.cancel = cancel
	h.mu.Unlock()
}

func (h *health) onLeader(ev consensus.LeaderEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	status := transport.HealthNotServing
	if ev.Leader.ID != "" {
		status = transport.HealthServing
		h.retarget(h.node.Status())
	} else {
		h.forget()
	}
	if h.draining || h.setHealth == nil {
		return
	}
	h.setHealth(status)
}

// retarget takes the commit index in st as the target when st starts a new term, and leaves
// the target alone within a term: the leader event can arrive after a readiness check has
// taken the target, and raised it to the leader's commit index. Called with mu held.
func (h *health) retarget(st consensus.Status) {
	if st.Term != h.term {
		h.term, h.target = st.Term, st.CommitIndex
	}
}

// forget drops the target once the leader is lost: a node cut off for a while (a partition)
// can learn the same leader again in the same term (with pre-vote its term did not move),
// after the leader committed on without it; the leader's commit index is then asked again.
// Called with mu held.
func (h *health) forget() {
	h.term, h.target, h.asked = 0, 0, 0
}

// drain makes the node unready and NOT_SERVING for good.
func (h *health) drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	if h.setHealth != nil {
		h.setHealth(transport.HealthNotServing)
	}
}

// stop unsubscribes from leader changes. Idempotent.
func (h *health) stop() {
	h.mu.Lock()
	cancel := h.cancel
	h.cancel = nil
	h.mu.Unlock()
	if cancel != nil {
		cancel() // outside mu: it waits for a running onLeader
	}
}

// alive returns nil while the process should be left running.
func (h *health) alive() error {
	h.mu.Lock()
	live := h.live
	h.mu.Unlock()
	if live == nil {
		return nil
	}
	return live()
}

// ready reports readiness and, when not ready, why.
func (h *health) ready() (bool, string) {
	h.mu.Lock()
	switch {
	case h.draining:
		h.mu.Unlock()
		return false, "shutting down"
	case h.node == nil:
		h.mu.Unlock()
		return false, "starting"
	}
	if h.notMember != nil {
		if why := h.notMember(); why != "" {
			h.mu.Unlock()
			return false, why
		}
	}
	node, ask := h.node, h.leaderCommit
	st := node.Status()
	if st.Leader.ID == "" {
		h.forget() // the leader event may not have arrived yet
		h.mu.Unlock()
		return false, "no leader"
	}
	h.retarget(st) // the leader event of this term may not have arrived yet
	askLeader := ask != nil && st.State != "leader" && h.asked != st.Term
	h.mu.Unlock()

	if askLeader {
		ctx, cancel := context.WithTimeout(context.Background(), leaderCommitTimeout)
		idx, err := ask(ctx, st.Leader)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("cannot learn the leader's commit index: %v", err)
		}
		h.mu.Lock()
		if h.term == st.Term {
			h.target, h.asked = max(h.target, idx), st.Term
		}
		h.mu.Unlock()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.term != st.Term {
		// The leader was lost (or a new term began) while its commit index was asked: the
		// target is gone, and 0 would say ready.
		return false, "no leader"
	}
	// A failure that needs an operator (a state machine stopped: a restart) before a lag that
	// ends by itself: a full disk causes both.
	if h.live != nil {
		if err := h.live(); err != nil {
			return false, err.Error()
		}
	}
	if applied := node.Status().AppliedIndex; applied < h.target {
		return false, fmt.Sprintf("catching up: applied index %d of %d", applied, h.target)
	}
	if h.diverged != nil {
		if msg := h.diverged(); msg != "" {
			return false, "divergence alarm: " + msg
		}
	}
	return true, "ready"
}

// leaderCommitTimeout bounds a readiness check's question to the leader.
const leaderCommitTimeout = time.Second
