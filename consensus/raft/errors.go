package raft

import (
	"context"
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// mapError translates an error of hashicorp/raft into the consensus contract's errors.
//
// proposed says whether the operation may have reached the log (the future was enqueued on a
// node that was not yet closing); it decides whether a shutdown means "closed, nothing done"
// or "closed, outcome unknown". leader reports the current leader for *NotLeaderError.
//
// Reading hashicorp/raft v1.8.0 (api.go, raft.go):
//   - ErrNotLeader: answered by a follower or candidate, or by a leader that is stepping
//     down, before the entry is dispatched: nothing was appended. → *NotLeaderError naming
//     the leader, or ErrNoLeader when none is known.
//   - ErrLeadershipTransferInProgress: the leader refuses new entries while it hands over
//     leadership; answered before dispatch, so nothing was appended. → ErrNoLeader (a new
//     leader is about to be chosen; safe to retry).
//   - ErrEnqueueTimeout: the entry never reached the leader loop. → the context's deadline
//     error (nothing proposed).
//   - ErrLeadershipLost, ErrAbortedByRestore: the entry was appended, then leadership was
//     lost (or the state replaced) before it was known to commit. → ErrOutcomeUnknown.
//   - errLogWrite (the leader's own log write failed; it answers the batch with the error and
//     steps down): the batch was not fsynced, but its bytes may be in the file and read back
//     as log by a restart that comes before the Node's recovery. → ErrOutcomeUnknown.
//   - ErrRaftShutdown: ErrClosed; if the entry may have been enqueued before the shutdown it
//     may also have committed, so the error is also ErrOutcomeUnknown.
func mapError(err error, proposed bool, leader func() (consensus.Server, bool)) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader):
		if l, ok := leader(); ok {
			return &consensus.NotLeaderError{Leader: l}
		}
		return fmt.Errorf("%w (%v)", consensus.ErrNoLeader, err)
	case errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: leadership transfer in progress", consensus.ErrNoLeader)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("consensus/raft: %v: %w", err, context.DeadlineExceeded)
	case errors.Is(err, hraft.ErrLeadershipLost), errors.Is(err, hraft.ErrAbortedByRestore),
		errors.Is(err, errLogWrite):
		return fmt.Errorf("%w (%v)", consensus.ErrOutcomeUnknown, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		if proposed {
			return fmt.Errorf("%w: %w", consensus.ErrClosed, consensus.ErrOutcomeUnknown)
		}
		return consensus.ErrClosed
	default:
		return fmt.Errorf("consensus/raft: %w", err)
	}
}
