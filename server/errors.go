package server

import (
	"context"
	"errors"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// ErrOutcomeUnknownMessage starts the message of every Unavailable error whose write may have
// happened; clients (the SDK) must not retry such a write automatically.
const ErrOutcomeUnknownMessage = "outcome unknown: the write may have happened"

// toWire is the one place where errors of the lower layers become wire status codes and error
// details (DESIGN.md §2), for both transports. Errors that already are *transport.Error pass
// through unchanged. Details: OutcomeUnknown when a write may have been appended; NotProposed
// (and, without a known leader, an empty NotLeader) when a write was refused before it was
// proposed; NotLeader naming the leader when one is known.
func toWire(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*transport.Error](err); ok {
		return e
	}
	if ge, ok := errors.AsType[*groupError](err); ok {
		// Consumer groups: the coordinator's refusals, each with its reason as a detail.
		return transport.NewError(transport.FailedPrecondition, err).WithGroupError(ge.detail())
	}
	if nl, ok := errors.AsType[*consensus.NotLeaderError](err); ok && nl.Leader.ID != "" {
		// The API and Raft share one port, so the leader's Raft address is its API address.
		return transport.NotLeaderError(transport.NotLeader{LeaderID: nl.Leader.ID, LeaderAddr: nl.Leader.Address}, err.Error())
	}
	switch {
	case errors.Is(err, fsm.ErrNotStoredHere):
		// A read past what this node stored before it stopped applying: the record may be
		// committed and held by the other replicas, which can serve it.
		return transport.NewError(transport.Unavailable, err)
	case errors.Is(err, fsm.ErrNotStored):
		// A proposal committed (the other replicas store it) that this node could not store:
		// the write happened, at offsets this node does not know. The answer of every write
		// whose outcome its caller cannot know (DESIGN.md §2), as a follower forwarding it
		// answers too; not Internal, which a client that does not read details could take for
		// a failed write.
		return transport.Errorf(transport.Unavailable, "%s: %w", ErrOutcomeUnknownMessage, err).WithOutcomeUnknown(err.Error())
	case errors.Is(err, fsm.ErrFailed):
		// This node stopped applying committed entries: whatever the cause it wraps (a log
		// refusing a record as too large, say), the write was committed, nothing was refused.
		return transport.NewError(transport.Internal, err)
	case errors.Is(err, fsm.ErrStopped):
		// A leader that stopped applying refused the write before proposing it (it hands
		// leadership over): another server, or a later leader, may take it.
		return transport.NewError(transport.Unavailable, err).WithNotProposed(err.Error())
	case errors.Is(err, storage.ErrOutOfRange):
		return transport.NewError(transport.OutOfRange, err)
	case errors.Is(err, fsm.ErrUnknownTopic), errors.Is(err, fsm.ErrUnknownPartition):
		return transport.NewError(transport.NotFound, err)
	case errors.Is(err, fsm.ErrUnknownGroup):
		return transport.NewError(transport.NotFound, err).WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_UNKNOWN_GROUP})
	case errors.Is(err, fsm.ErrTooManyGroups):
		return transport.NewError(transport.ResourceExhausted, err)
	case errors.Is(err, fsm.ErrInvalidGroup):
		return transport.NewError(transport.InvalidArgument, err).WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_INVALID})
	case errors.Is(err, fsm.ErrTopicExists):
		return transport.NewError(transport.AlreadyExists, err)
	case errors.Is(err, fsm.ErrInvalidTopic):
		return transport.NewError(transport.InvalidArgument, err)
	// The idempotent producer's refusals: nothing was stored; the producer decides (re-initialise,
	// or give up) on the ProducerRejected detail's reason.
	case errors.Is(err, fsm.ErrUnknownProducer):
		return transport.ProducerRejectedError(transport.ProducerUnknown, err)
	case errors.Is(err, fsm.ErrProducerFenced):
		return transport.ProducerRejectedError(transport.ProducerFenced, err)
	case errors.Is(err, fsm.ErrOutOfOrderSequence):
		return transport.ProducerRejectedError(transport.ProducerOutOfOrder, err)
	case errors.Is(err, fsm.ErrDuplicateSequence):
		return transport.ProducerRejectedError(transport.ProducerDuplicate, err)
	case errors.Is(err, consensus.ErrOutcomeUnknown):
		// The message keeps the text older SDKs match; newer ones read the detail.
		return transport.Errorf(transport.Unavailable, "%s: %w", ErrOutcomeUnknownMessage, err).WithOutcomeUnknown(err.Error())
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrNoLeader):
		// No leader known (an election, a leadership transfer): refused before proposing.
		return transport.NewError(transport.Unavailable, err).WithNotLeader(transport.NotLeader{}).WithNotProposed(err.Error())
	case errors.Is(err, errWithdrawn):
		// Taken back before it was proposed (its caller's deadline near): another try, here or
		// on another server, cannot append it twice. Taken back because the caller cancelled,
		// it is the caller's Canceled (request metrics count it so), not the server's
		// unavailability.
		code := transport.Unavailable
		if errors.Is(err, context.Canceled) {
			code = transport.Canceled
		}
		return transport.NewError(code, err).WithNotProposed(err.Error())
	case errors.Is(err, consensus.ErrClosed), errors.Is(err, errStopping), errors.Is(err, errGroupBusy):
		// Closed without ErrOutcomeUnknown (handled above), or a group busy with an
		// administrator's change: nothing was proposed.
		return transport.NewError(transport.Unavailable, err).WithNotProposed(err.Error())
	case errors.Is(err, storage.ErrClosed), errors.Is(err, errLagging), errors.Is(err, errStoppedLeader):
		return transport.NewError(transport.Unavailable, err)
	case errors.Is(err, storage.ErrCorrupt):
		return transport.NewError(transport.DataLoss, err)
	case errors.Is(err, fsm.ErrTooLarge), errors.Is(err, storage.ErrTooLarge), errors.Is(err, errTooManyFiles), errors.Is(err, errGroupLimit):
		return transport.NewError(transport.ResourceExhausted, err)
	case errors.Is(err, fsm.ErrInvalidCommand), errors.Is(err, fsm.ErrEmptyBatch), errors.Is(err, storage.ErrEmptyBatch), errors.Is(err, errInvalid):
		return transport.NewError(transport.InvalidArgument, err)
	case errors.Is(err, storage.ErrFailed):
		return transport.NewError(transport.Internal, err)
	case errors.Is(err, context.DeadlineExceeded):
		return transport.NewError(transport.DeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return transport.NewError(transport.Canceled, err)
	}
	return transport.NewError(transport.Internal, err)
}

var (
	errStopping = errors.New("server: shutting down")
	errInvalid  = errors.New("server: invalid request")
	// errLagging: this replica could not catch up, in time, to the commit point it learned
	// from the leader; another replica (or a later retry) can serve the read.
	errLagging = errors.New("server: replica lagging behind the leader's commit point")
	// errStoppedLeader: a linearizable read refused by a leader whose state machine stopped
	// applying (service.stoppedLeaderRead); it hands leadership over, and reads resume then.
	errStoppedLeader = errors.New("server: linearizable read refused")
	// errTooManyFiles: partitions refused before they were proposed, since this server could
	// not open their files within its open-file limit (openFilesRoom).
	errTooManyFiles = errors.New("server: open-file limit too low for the partitions")
)
