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
// Apply error (ErrFailed when this node could not store it, ErrInvalidCommand).
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
	if err := refuseStopped(c, f.Err()); err != nil {
		return AppendResult{}, err
	}
	res, err := c.Propose(ctx, cmd)
	if err != nil {
		return AppendResult{}, err
	}
	switch r := res.(type) {
	case AppendResult:
		return r, nil
	case error:
		return AppendResult{}, r
	default:
		return AppendResult{}, fmt.Errorf("fsm: unexpected apply result %T for an append", res)
	}
}

// ProposeRetention proposes a retain command: once applied, every replica serves nothing
// below first (see RetentionPoint for how the leader picks it) and returns the log's first
// offset after it.
//
// Errors: c's errors, as for Propose; the entry's Apply error (ErrInvalidCommand when first
// would empty the log, ErrFailed).
func (f *FSM) ProposeRetention(ctx context.Context, c Proposer, first uint64) (uint64, error) {
	if err := refuseStopped(c, f.Err()); err != nil {
		return 0, err
	}
	res, err := c.Propose(ctx, EncodeRetain(first, time.Now()))
	if err != nil {
		return 0, err
	}
	switch r := res.(type) {
	case RetainResult:
		return r.First, nil
	case error:
		return 0, r
	default:
		return 0, fmt.Errorf("fsm: unexpected apply result %T for a retain command", res)
	}
}
