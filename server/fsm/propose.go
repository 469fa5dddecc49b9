package fsm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
)

// Proposer is the part of consensus.Consensus that proposing needs.
type Proposer interface {
	// Propose replicates cmd and returns what the local Apply returned for it.
	Propose(ctx context.Context, cmd []byte) (any, error)
	// IsLeader reports whether this node believes it leads.
	IsLeader() bool
	// Leader returns the leader as this node knows it.
	Leader() (consensus.Server, bool)
}

var _ Proposer = consensus.Consensus(nil)

// Propose appends records as one atomic batch: it encodes the command, stamped with this
// node's clock (the leader's append time every replica stores), checks it against the FSM's
// Limits, proposes it through c and returns the offsets Apply gave the records.
//
// The limits are the leader's: on a node that does not lead, a batch above this node's own
// limits is not refused but answered with *consensus.NotLeaderError (nothing was proposed),
// so that the caller forwards it to the leader, whose limits decide.
//
// Errors: ErrEmptyBatch, ErrTooLarge, ErrStopped (on the leader; nothing was proposed); c's errors
// (consensus.ErrNotLeader, ErrNoLeader, ErrOutcomeUnknown, ErrClosed, ctx's); the entry's
// Apply error (ErrNotStored, wrapping ErrFailed, when this node could not store it;
// ErrInvalidCommand).
func (f *FSM) Propose(ctx context.Context, c Proposer, records ...AppendRecord) (AppendResult, error) {
	cmd, err := EncodeAppendAt(f.limits, time.Now(), records...)
	if errors.Is(err, ErrTooLarge) && !c.IsLeader() {
		if _, herr := EncodeAppendAt(hardLimits, time.Time{}, records...); herr == nil {
			leader, _ := c.Leader()
			return AppendResult{}, &consensus.NotLeaderError{Leader: leader}
		}
	}
	if err != nil {
		return AppendResult{}, err
	}
	return proposeAs[AppendResult](ctx, c, f.Err(), cmd, "an append")
}

// ProposeRetention proposes a retain command: once applied, every replica serves nothing
// below first (see RetentionPoint for how the leader picks it) and returns the log's first
// offset after it.
//
// Errors: c's errors, as for Propose; the entry's Apply error (ErrInvalidCommand when first
// would empty the log, ErrFailed).
func (f *FSM) ProposeRetention(ctx context.Context, c Proposer, first uint64) (uint64, error) {
	r, err := proposeAs[RetainResult](ctx, c, f.Err(), EncodeRetain(first, time.Now()), "a retain command")
	return r.First, err
}

// propose is the one place this package proposes a command: every proposal path goes through
// it, so that none misses its check. On a leader whose state machine stopped applying
// (stopped, the FSM's or Machine's sticky ErrFailed, is set) it proposes nothing and returns
// ErrStopped naming stopped: the write would be committed on the other nodes and fail here, its
// outcome unknown to its caller. A follower proposes whatever stopped is: c hands the write to
// the leader (or answers NotLeader), which may be healthy.
//
// It returns c's error, or the entry's Apply result (an error result as the error; ErrFailed
// as ErrNotStored: the entry was committed).
func propose(ctx context.Context, c Proposer, stopped error, cmd []byte) (any, error) {
	if stopped != nil && c.IsLeader() {
		return nil, fmt.Errorf("%w (%v)", ErrStopped, stopped)
	}
	res, err := c.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err, ok := res.(error); ok {
		if errors.Is(err, ErrFailed) {
			return nil, fmt.Errorf("%w: %w", ErrNotStored, err)
		}
		return nil, err
	}
	return res, nil
}

// proposeAs proposes cmd (see propose) and returns its Apply result as an R; what names the
// command in the error for a result of another type.
func proposeAs[R any](ctx context.Context, c Proposer, stopped error, cmd []byte, what string) (R, error) {
	var zero R
	res, err := propose(ctx, c, stopped, cmd)
	if err != nil {
		return zero, err
	}
	r, ok := res.(R)
	if !ok {
		return zero, fmt.Errorf("fsm: unexpected apply result %T for %s", res, what)
	}
	return r, nil
}
