package telemetry

import (
	"fmt"
	"sync"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
)

// health tracks liveness and readiness and drives the gRPC health status from leader changes.
//
// Readiness: the node knows a leader and has applied every entry up to the commit index it
// knew when it learned of that leader (the target is taken per term: a new leader means a new
// target). Before Observe, and after Drain, the node is not ready.
type health struct {
	mu        sync.Mutex
	node      consensus.Consensus
	live      func() error
	setHealth func(transport.HealthStatus)
	draining  bool
	term      uint64 // the term target belongs to; 0: none yet
	target    uint64 // commit index known when the leader of term was learned
	cancel    func() // unsubscribes from leader changes
}

func newHealth() *health { return &health{} }

// observe starts tracking node; setHealth (may be nil) is called with SERVING whenever a leader
// is known and NOT_SERVING whenever none is, from the consensus notification goroutine.
func (h *health) observe(node consensus.Consensus, live func() error, setHealth func(transport.HealthStatus)) {
	h.mu.Lock()
	h.node, h.live, h.setHealth = node, live, setHealth
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
		st := h.node.Status()
		h.term, h.target = st.Term, st.CommitIndex
	}
	if h.draining || h.setHealth == nil {
		return
	}
	h.setHealth(status)
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
	defer h.mu.Unlock()
	switch {
	case h.draining:
		return false, "shutting down"
	case h.node == nil:
		return false, "starting"
	}
	st := h.node.Status()
	if st.Leader.ID == "" {
		return false, "no leader"
	}
	if st.Term != h.term {
		// The leader event of this term has not arrived yet: what we know now is the target.
		h.term, h.target = st.Term, st.CommitIndex
	}
	if st.AppliedIndex < h.target {
		return false, fmt.Sprintf("catching up: applied index %d of %d", st.AppliedIndex, h.target)
	}
	if h.live != nil {
		if err := h.live(); err != nil {
			return false, err.Error()
		}
	}
	return true, "ready"
}
