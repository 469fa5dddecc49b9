package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
)

// combiner is group commit at the proposal layer for single-record produces (Produce, and a
// follower's forward of one): while one proposal for a partition is in flight, the records
// that arrive for it wait, and the next proposal takes every one of them as one command. It
// never waits to fill a batch: a record that finds nothing in flight is proposed at once.
// What it saves is the per-entry work of every node: one log write and fsync on each replica,
// one AppendEntries, one apply, for a whole group instead of per record.
//
// Every member of a group gets the group's outcome: its own offset (the group's first plus its
// place), or the group's error. A group's refusal (nothing proposed: too large, invalid, not
// the leader) is re-tried member by member, so that each gets the answer it alone would have.
type combiner struct {
	propose func(ctx context.Context, to produceTarget, batch []fsm.AppendRecord) (fsm.AppendResult, error)
	fits    func(records int, cmdBytes int) bool // whether a group of this size makes one command

	mu    sync.Mutex
	parts map[partKey]*partQueue
}

type partKey struct {
	topic     string
	partition uint32
}

// partQueue holds one partition's waiting members and whether a proposal is in flight.
type partQueue struct {
	waiting  []*waiter
	inFlight bool
}

// waiter is one caller's record in a group.
type waiter struct {
	rec   fsm.AppendRecord
	size  int // its encoded size in a command
	taken bool
	done  chan struct{}
	res   fsm.AppendResult
	err   error
}

func newCombiner(fits func(int, int) bool,
	propose func(context.Context, produceTarget, []fsm.AppendRecord) (fsm.AppendResult, error)) *combiner {
	return &combiner{propose: propose, fits: fits, parts: map[partKey]*partQueue{}}
}

// errWithdrawn: a record waited behind a proposal in flight until its caller's deadline was
// near (or its context ended), and was taken back: it was never proposed.
var errWithdrawn = errors.New("server: the record waited behind a proposal in flight and was not proposed")

// withdrawMargin is how long before its caller's deadline a record still waiting is taken
// back (at most; a tenth of the time left when that is less), so that the answer that nothing
// was proposed reaches the caller while it still listens: told at the deadline, it would
// only know that the outcome is unknown.
const withdrawMargin = 200 * time.Millisecond

// nearDeadline returns when a caller waiting under ctx, from now, is to be answered that its
// write was not proposed rather than wait on (withdrawMargin, or a tenth of the time left,
// before ctx's deadline; already passed when the deadline has), and false when ctx has no
// deadline.
func nearDeadline(ctx context.Context) (time.Time, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}, false
	}
	return d.Add(-min(withdrawMargin, time.Until(d)/10)), true
}

// append proposes rec to to's partition (to has no producer) with whatever else is waiting
// there, and returns its offset. A caller whose record still waits when its deadline is near
// (withdrawMargin) or its ctx ends is answered errWithdrawn (nothing was proposed); once its
// record was proposed, it waits for the outcome until ctx ends, then ErrOutcomeUnknown.
func (c *combiner) append(ctx context.Context, to produceTarget, rec fsm.AppendRecord) (fsm.AppendResult, error) {
	m := &waiter{rec: rec, size: fsm.EncodedRecordSize(rec), done: make(chan struct{})}
	k := partKey{to.topic, to.partition}
	c.mu.Lock()
	q := c.parts[k]
	if q == nil {
		q = &partQueue{}
		c.parts[k] = q
	}
	q.waiting = append(q.waiting, m)
	start := !q.inFlight
	q.inFlight = true
	c.mu.Unlock()
	if start {
		go c.run(k, to)
	}
	var near <-chan time.Time
	if at, ok := nearDeadline(ctx); ok && !start {
		// Only a record behind a proposal in flight can wait long: one that started the run
		// is taken at once, and spares the unary path a timer.
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		near = t.C
	}
	cause := error(nil)
	select {
	case <-m.done:
		return m.res, m.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-near:
		cause = errors.New("its deadline is near")
	}
	c.mu.Lock()
	if !m.taken {
		// Still waiting: withdraw it, nothing was proposed.
		q.waiting = withdraw(q.waiting, m)
		c.mu.Unlock()
		return fsm.AppendResult{}, fmt.Errorf("%w: %w", errWithdrawn, cause)
	}
	c.mu.Unlock()
	select {
	case <-m.done:
		return m.res, m.err
	case <-ctx.Done():
	}
	select {
	case <-m.done:
		return m.res, m.err
	default:
		return fsm.AppendResult{}, fmt.Errorf("%w (%v)", consensus.ErrOutcomeUnknown, ctx.Err())
	}
}

func withdraw(ms []*waiter, m *waiter) []*waiter {
	for i, x := range ms {
		if x == m {
			return append(ms[:i], ms[i+1:]...)
		}
	}
	return ms
}

// run proposes k's waiting members, a group at a time, until none is left.
func (c *combiner) run(k partKey, to produceTarget) {
	for {
		c.mu.Lock()
		q := c.parts[k]
		group := c.take(q)
		if len(group) == 0 {
			q.inFlight = false
			delete(c.parts, k)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.proposeGroup(to, group)
	}
}

// take removes from q the longest run of waiting members that fits one command (at least
// one) and marks them taken. Called with c.mu held.
func (c *combiner) take(q *partQueue) []*waiter {
	n, bytes := 0, 0
	for n < len(q.waiting) {
		if n > 0 && !c.fits(n+1, bytes+q.waiting[n].size) {
			break
		}
		bytes += q.waiting[n].size
		n++
	}
	group := make([]*waiter, n)
	copy(group, q.waiting)
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	for _, m := range group {
		m.taken = true
	}
	return group
}

func (c *combiner) proposeGroup(to produceTarget, group []*waiter) {
	batch := make([]fsm.AppendRecord, len(group))
	for i, m := range group {
		batch[i] = m.rec
	}
	// No caller's context: the group is not any one caller's, and a caller that stops waiting
	// is answered by append. The proposal ends when Raft resolves it or the node closes.
	ctx := context.Background()
	res, err := c.propose(ctx, to, batch)
	if err != nil && len(group) > 1 && refusedAsAWhole(err) {
		// Refused as a whole: each member on its own gets the answer it would have had.
		for _, m := range group {
			m.res, m.err = c.propose(ctx, to, []fsm.AppendRecord{m.rec})
			close(m.done)
		}
		return
	}
	for i, m := range group {
		if err != nil {
			m.err = err
		} else {
			m.res = fsm.AppendResult{First: res.First + uint64(i), Count: 1, Duplicate: res.Duplicate}
		}
		close(m.done)
	}
}
