package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/commitlog-go/commitlog/transport"
)

// The errors of the client. Every error a call returns wraps one of them
// (and the transport's *transport.Error, when a server answered), or the
// caller's context error (context.Canceled, context.DeadlineExceeded) when
// its context had ended before the call sent anything, so test them with
// errors.Is.
var (
	// ErrOutOfRange: the offset is below the log's start (removed by
	// retention) or was not written before the request's deadline.
	ErrOutOfRange = errors.New("client: offset out of range")
	// ErrOutcomeUnknown: a write was sent and then failed in a way that
	// does not tell whether it was appended (leadership lost after it was
	// proposed, a timeout, a connection broken mid-request, the caller's
	// context ending mid-request). The client never retries such a write:
	// the caller decides, knowing a retry may append a duplicate.
	ErrOutcomeUnknown = errors.New("client: write outcome unknown, it may have been appended")
	// ErrUnavailable: no server could serve the request within the retry
	// budget (no leader, servers unreachable).
	ErrUnavailable = errors.New("client: cluster unavailable")
	// ErrNotLeader: the server that answered is not the leader. Returned
	// (as a *NotLeaderError) only when the retry budget ran out while
	// following redirects.
	ErrNotLeader = errors.New("client: not the leader")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrNoAddresses: New was given no server address.
	ErrNoAddresses = errors.New("client: no server addresses")
	// ErrInvalidAddress: New was given an address that is not "host:port" with a port from 1 to
	// 65535 or a service name (CheckAddress).
	ErrInvalidAddress = errors.New("client: invalid server address")
	// ErrInvalidOption: an option has an invalid value.
	ErrInvalidOption = errors.New("client: invalid option")
	// ErrInvalidRecord: a Producer was given a record that servers refuse
	// (a Timestamp before 1970): refused by Send alone, so that it does not
	// take the other records of its batch down with it.
	ErrInvalidRecord = errors.New("client: invalid record")
	// ErrGap: a stream received an offset past the one it expected, so
	// records would be skipped (the log was truncated under the reader).
	ErrGap = errors.New("client: gap in stream offsets")
	// ErrClusterMismatch: a server belongs to another cluster than the one
	// the client serves (a *ClusterMismatchError says which).
	ErrClusterMismatch = errors.New("client: server belongs to another cluster")
	// ErrTopicsUnsupported: the server does not serve the Topics service
	// (it answered Unimplemented): it is older than topics and partitions,
	// and holds one log only, the default topic's partition 0.
	ErrTopicsUnsupported = errors.New("client: server does not support topics")
	// ErrUnknownTopic: the topic, or the partition of the topic, does not
	// exist (the server answered NotFound).
	ErrUnknownTopic = errors.New("client: unknown topic or partition")
	// ErrTopicExists: CreateTopic named a topic that exists already (the
	// server answered AlreadyExists).
	ErrTopicExists = errors.New("client: topic already exists")
)

// ClusterMismatchError reports a server whose cluster ID differs from the
// one the client serves: the first one it saw, or WithClusterID's. The
// client never sends requests to such a server (e.g. a node whose data was
// lost and that founded a cluster of its own, or an address now used by
// another cluster). It matches ErrClusterMismatch with errors.Is.
type ClusterMismatchError struct {
	// Addr is the server's API address.
	Addr string
	// Want is the cluster ID the client serves; Got the server's.
	Want, Got string
}

// Error names both clusters.
func (e *ClusterMismatchError) Error() string {
	return fmt.Sprintf("client: server %s belongs to cluster %s, not to cluster %s", e.Addr, e.Got, e.Want)
}

// Is reports whether target is ErrClusterMismatch.
func (e *ClusterMismatchError) Is(target error) bool { return target == ErrClusterMismatch }

// NotLeaderError reports that a request reached a server that is not the
// leader; LeaderID and LeaderAddr name the leader the server pointed to, and
// are empty when it knew none. It matches ErrNotLeader with errors.Is and
// unwraps to the transport error the server sent.
type NotLeaderError struct {
	// LeaderID is the leader's server id, if known.
	LeaderID string
	// LeaderAddr is the leader's API address, if known.
	LeaderAddr string
	// Err is the error the server answered with.
	Err error
}

// Error describes the redirect.
func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "client: not the leader, leader unknown"
	}
	return fmt.Sprintf("client: not the leader, leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Unwrap returns the server's error.
func (e *NotLeaderError) Unwrap() error { return e.Err }

// outcomeMarkers are phrases with which servers older than the OutcomeUnknown
// error detail said an error left a write's outcome unknown. Matched
// case-insensitively, only on errors without any detail. (Such an error is
// treated as unknown for a write anyway; the markers matter for reads.)
var outcomeMarkers = []string{"may have happened", "may have been applied", "may have been appended", "outcome unknown", "outcome is unknown"}

// verdict is what the client makes of one failed attempt.
type verdict int

const (
	// fatal: return the error to the caller.
	fatal verdict = iota
	// redirect: a server named the leader; retry there at once.
	redirect
	// retry: safe to retry after a backoff (refused before any effect).
	retry
	// unknown: a write whose outcome is unknown; never retried.
	unknown
)

// classify maps the error of one attempt to what the caller sees, and says
// whether the attempt may be retried. write says whether the request
// changes the log: then anything that may have reached the state machine is
// an unknown outcome. callerCtx is the caller's context: its end is never
// retried.
func classify(callerCtx context.Context, err error, write bool) (verdict, error) {
	if errors.Is(err, ErrClosed) {
		return fatal, err
	}
	if _, ok := errors.AsType[*notSentError](err); ok {
		return retry, err
	}
	if cerr := callerCtx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			cerr = nil // already in the chain
		}
		if write && (refusedBeforeProposing(err) || neverSent(err)) {
			// The server answered, before the caller's context ended, that it did not propose
			// the write (a combiner taking a record back as the deadline neared answers just
			// before it), or the request never left the client (its connection was still
			// being set up when the caller's context ended): nothing was appended, the
			// caller's context only stops the retries.
			return fatal, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(cerr, err))
		}
		if write {
			return unknown, fmt.Errorf("%w: %w", ErrOutcomeUnknown, errors.Join(cerr, err))
		}
		return fatal, errors.Join(cerr, err)
	}
	// The server's error details decide (DESIGN.md §2), never its message text.
	if transport.IsOutcomeUnknown(err) {
		if write {
			return unknown, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return retry, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if nl, ok := transport.NotLeaderDetail(err); ok {
		e := &NotLeaderError{LeaderID: nl.LeaderID, LeaderAddr: nl.LeaderAddr, Err: err}
		if nl.LeaderAddr != "" {
			return redirect, e
		}
		// Refused before proposing, no leader known: an election.
		return retry, fmt.Errorf("%w: %w", ErrUnavailable, e)
	}
	if transport.IsNotProposed(err) {
		// Refused before it was proposed (leadership transfer, server stopping): nothing
		// was appended, so the write is retried after a backoff.
		return retry, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	code := transport.CodeOf(err)
	if te, ok := errors.AsType[*transport.Error](err); ok && code == transport.Unavailable && !hasDetails(te) {
		// Servers older than the details said "outcome unknown" only in the message.
		msg := strings.ToLower(te.Message())
		for _, m := range outcomeMarkers {
			if strings.Contains(msg, m) {
				if write {
					return unknown, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
				}
				return retry, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
	}
	switch code {
	case transport.DataLoss:
		if !write {
			// This replica cannot serve it (its divergence alarm is raised, or its copy is
			// corrupt): another may. Returned once every try failed.
			return retry, err
		}
		return fatal, err
	case transport.OutOfRange:
		return fatal, fmt.Errorf("%w: %w", ErrOutOfRange, err)
	case transport.NotFound:
		if _, group := transport.GroupErrorDetail(err); group {
			return fatal, err // a consumer group's, not a topic's
		}
		// A topic or partition not (or no longer) there.
		return fatal, fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case transport.AlreadyExists:
		return fatal, fmt.Errorf("%w: %w", ErrTopicExists, err)
	case transport.Unavailable, transport.DeadlineExceeded, transport.Aborted, transport.Unknown, transport.Internal, transport.Canceled:
		// A server refusing a write before proposing it because it
		// knows no leader sends the (empty) NotLeader detail, handled
		// above. Any other failure of a write may have happened after the
		// request reached the server, unless the connection was never
		// made.
		if !write || neverSent(err) {
			return retry, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return unknown, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	default:
		// OutOfRange aside, the other codes (InvalidArgument,
		// PermissionDenied, FailedPrecondition without a NotLeader
		// detail, …) are answers a retry would not change.
		return fatal, err
	}
}

// refusedBeforeProposing reports whether err carries a server's (or the transport's) word that
// the write was not proposed: the NotProposed detail, or a NotLeader detail (this server did
// not take it), and no OutcomeUnknown detail.
func refusedBeforeProposing(err error) bool {
	if transport.IsOutcomeUnknown(err) {
		return false
	}
	_, nl := transport.NotLeaderDetail(err)
	return nl || transport.IsNotProposed(err)
}

// neverSent reports whether err proves the request never left the client (see
// transport.NeverSent, which the server's forwarding reads too).
func neverSent(err error) bool { return transport.NeverSent(err) }

// notSentError marks a failure that happened before a request was sent (no
// connection could be set up), so retrying it is always safe.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// hasDetails reports whether a server's error carries any of the details
// that decide a write's fate (NotLeader, OutcomeUnknown, NotProposed).
func hasDetails(e *transport.Error) bool {
	_, nl := e.NotLeader()
	_, ou := e.OutcomeUnknown()
	_, np := e.NotProposed()
	return nl || ou || np
}

// errNotInCluster explains an ErrUnavailable when every server that answered lists no server at
// all: it has not bootstrapped a cluster nor been added to one yet.
var errNotInCluster = errors.New("the servers that answered are in no cluster yet: a new server waits for " +
	"the other servers of its cluster, or bootstraps one after serve's --bootstrap-wait (15 s by default); try again shortly")
