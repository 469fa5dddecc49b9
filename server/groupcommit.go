package server

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
)

// maxGroupsInFlight is how many coalesced proposals the leader keeps in Raft at once. While
// they are being written, fsynced and replicated, new proposals queue; the next group takes
// every one queued (within the command limits), so concurrent callers share one Raft entry —
// one encoding, one log entry, one apply — instead of one each. Nothing ever waits to fill a
// group: a lone caller finds a free slot and is proposed at once. Two keeps Raft's pipeline
// busy (one group's replication overlaps the next one's leader write).
const maxGroupsInFlight = 2

// Coalescing pays for small proposals, whose per-entry costs (encoding, log entry, apply,
// replication bookkeeping) dominate; large ones already amortize them, and merged they would
// only make Raft messages larger and serialize what Raft pipelines. A proposal of at least
// groupBypassBytes (encoded) is proposed directly, outside the groups; a group holds at most
// groupMaxBytes.
const (
	groupBypassBytes = 64 << 10
	groupMaxBytes    = 1 << 20
)

// groupCommit is the state of the leader's proposal coalescing (see maxGroupsInFlight). The
// zero value is ready.
type groupCommit struct {
	mu       sync.Mutex
	queue    []*proposal
	inFlight int
}

// proposal is one caller's batch waiting in, or proposed by, a group.
type proposal struct {
	records []fsm.AppendRecord
	alone   bool // beyond the limits by itself: proposed alone, so that its refusal is its own
	taken   bool // in a group handed to Raft (guarded by groupCommit.mu)
	done    chan struct{}
	first   uint64 // the offset of its first record, once done without err
	err     error
}

// groupPropose appends records as one atomic batch, in one Raft entry shared with the batches
// of concurrent callers (each keeps its records contiguous and in order), and returns where
// they went. Errors are those of fsm.FSM.Propose, for the whole entry; a caller whose ctx ends
// before its batch is handed to Raft gets ctx's error (nothing was proposed), after that
// consensus.ErrOutcomeUnknown, as fsm.FSM.Propose would.
func (s *service) groupPropose(ctx context.Context, records []fsm.AppendRecord) (fsm.AppendResult, error) {
	if fsm.EncodedAppendSize(records...) >= groupBypassBytes {
		return s.fsm.Propose(ctx, s.node, records...)
	}
	g := &s.group
	g.mu.Lock()
	if g.inFlight < maxGroupsInFlight {
		// A free slot means an empty queue (a finishing group takes what is queued before it
		// gives its slot back): this caller is alone and proposes itself, in its own goroutine
		// and under its own context, as without coalescing.
		g.inFlight++
		g.mu.Unlock()
		res, err := s.fsm.Propose(ctx, s.node, records...)
		g.mu.Lock()
		if next := g.takeLocked(s.fsm.Limits()); len(next) > 0 {
			go s.runGroups(next) // keeps the slot
		} else {
			g.inFlight--
		}
		g.mu.Unlock()
		return res, err
	}
	p := &proposal{records: records, alone: !withinLimits(s.fsm.Limits(), records), done: make(chan struct{})}
	g.queue = append(g.queue, p)
	g.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		g.mu.Lock()
		if !p.taken {
			if i := slices.Index(g.queue, p); i >= 0 {
				g.queue = slices.Delete(g.queue, i, i+1)
			}
			g.mu.Unlock()
			return fsm.AppendResult{}, ctx.Err()
		}
		g.mu.Unlock()
		select {
		case <-p.done:
		default:
			return fsm.AppendResult{}, fmt.Errorf("%w (%v)", consensus.ErrOutcomeUnknown, ctx.Err())
		}
	}
	if p.err != nil {
		return fsm.AppendResult{}, p.err
	}
	return fsm.AppendResult{First: p.first, Count: uint64(len(records))}, nil
}

// runGroups proposes group, answers its callers, and goes on with the next group while any
// proposal is queued; then it gives its slot back.
func (s *service) runGroups(group []*proposal) {
	g := &s.group
	var records []fsm.AppendRecord
	for len(group) > 0 {
		records = records[:0]
		for _, p := range group {
			records = append(records, p.records...)
		}
		// Not bound by any one caller's context: the entry is theirs together. Raft answers
		// every proposal, at the latest when it shuts down.
		res, err := s.fsm.Propose(context.Background(), s.node, records...)
		off := res.First
		for _, p := range group {
			p.first, p.err = off, err
			off += uint64(len(p.records))
			close(p.done)
		}
		clear(records) // the values belong to the callers, who now return
		g.mu.Lock()
		group = g.takeLocked(s.fsm.Limits())
		if len(group) == 0 {
			g.inFlight--
		}
		g.mu.Unlock()
	}
}

// takeLocked removes from the queue's front the proposals one command can hold within lim and
// groupMaxBytes (at least one; one alone if it is beyond lim by itself) and marks them taken.
func (g *groupCommit) takeLocked(lim fsm.Limits) []*proposal {
	if len(g.queue) == 0 {
		return nil
	}
	n, count, size := 0, 0, fsm.EncodedAppendSize()
	for _, p := range g.queue {
		if p.alone {
			if n == 0 {
				n = 1
			}
			break
		}
		c, sz := count+len(p.records), size+fsm.EncodedAppendSize(p.records...)-fsm.EncodedAppendSize()
		if n > 0 && (c > lim.MaxBatchRecords || sz > min(lim.MaxCommandBytes, groupMaxBytes)) {
			break
		}
		n, count, size = n+1, c, sz
	}
	group := slices.Clone(g.queue[:n])
	for _, p := range group {
		p.taken = true
	}
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return group
}

// withinLimits reports whether records make one command within lim (see fsm.EncodeAppendAt).
func withinLimits(lim fsm.Limits, records []fsm.AppendRecord) bool {
	if len(records) == 0 || len(records) > lim.MaxBatchRecords {
		return false
	}
	for _, r := range records {
		if len(r.Value) > lim.MaxRecordBytes {
			return false
		}
	}
	return fsm.EncodedAppendSize(records...) <= lim.MaxCommandBytes
}
