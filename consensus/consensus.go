// Package consensus defines the contract of commitlog's replication layer: a replicated log of
// opaque commands applied, in the same order on every node, to a StateMachine.
//
// The package imports nothing from the rest of the repository. Implementation: consensus/raft
// (hashicorp/raft). Test harness: consensus/consensustest.
package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors. Implementations wrap them with context; compare with errors.Is.
var (
	// ErrNotLeader: this node is not the leader. Returned as *NotLeaderError, which names the
	// leader when one is known. A command refused with ErrNotLeader was not proposed: it is safe
	// to retry it on the leader.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrNoLeader: there is no known leader (an election is under way). Nothing was proposed.
	ErrNoLeader = errors.New("consensus: no leader")
	// ErrOutcomeUnknown: the command was proposed, then leadership was lost or the deadline
	// passed before it was known to commit. It may or may not have been committed and applied;
	// the caller must not blindly retry a non-idempotent command.
	ErrOutcomeUnknown = errors.New("consensus: outcome unknown: the command may have been committed")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("consensus: closed")
)

// NotLeaderError is returned when a call needs the leader and this node is not it.
// errors.Is(err, ErrNotLeader) holds for it.
type NotLeaderError struct {
	// Leader is the current leader as this node knows it; zero if unknown.
	Leader Server
}

func (e *NotLeaderError) Error() string {
	if e.Leader.ID == "" {
		return ErrNotLeader.Error() + " (leader unknown)"
	}
	return fmt.Sprintf("%s (leader is %s at %s)", ErrNotLeader, e.Leader.ID, e.Leader.Address)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Suffrage says whether a server votes.
type Suffrage int

const (
	// Voter votes in elections and counts toward the commit quorum.
	Voter Suffrage = iota
	// Nonvoter receives the log but does not vote (a new node catching up, or a read replica).
	Nonvoter
)

func (s Suffrage) String() string {
	switch s {
	case Voter:
		return "voter"
	case Nonvoter:
		return "nonvoter"
	default:
		return fmt.Sprintf("suffrage(%d)", int(s))
	}
}

// Server is one member of the consensus configuration.
type Server struct {
	ID       string
	Address  string // the consensus (Raft) address
	Suffrage Suffrage
}

// ServerStatus is a Server with what this node knows of it.
type ServerStatus struct {
	Server
	Leader bool
	// LastContact is when the leader last heard from this follower; zero when unknown or when
	// not asked on the leader.
	LastContact time.Time
	// MatchIndex is the last log index known replicated to it (on the leader only; 0 otherwise).
	MatchIndex uint64
}

// Status is this node's view of the cluster.
type Status struct {
	ID           string
	State        string // "leader", "follower", "candidate", "shutdown"
	Term         uint64
	Leader       Server // zero if unknown; its Address is the configuration's (see Leader)
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	// LastContact is when this node last heard from the leader (zero on the leader).
	LastContact time.Time
	// ClusterID identifies the cluster this node belongs to; "" while it belongs to none yet
	// (no state, not yet added to a cluster) or for implementations without cluster IDs.
	ClusterID string
	// Fenced is why this node is fenced (Fencer): it neither votes nor campaigns. "" while
	// it is not, and for implementations without fencing.
	Fenced string
	// LogWriteFailures counts the writes of this node's consensus log (appends, truncations)
	// that failed since it started — a full or failing disk: the entries were refused (a
	// leader steps down, a follower has them sent again) and the node recovers by itself once
	// writes succeed. 0 for implementations that do not count them.
	LogWriteFailures uint64
}

// LeaderEvent is delivered when this node's view of the leader changes.
type LeaderEvent struct {
	Leader Server // zero when there is no leader
	IsSelf bool   // this node became leader
}

// Entry is one committed command delivered to the StateMachine.
type Entry struct {
	Index uint64 // the consensus log index; increasing, not dense (other entries are skipped)
	Term  uint64
	Data  []byte // valid only during the Apply call
}

// StateMachine is what a Consensus replicates into. Apply, Snapshot and Restore are called from
// one goroutine, never concurrently with each other; Snapshot.Persist and SnapshotData may run
// concurrently with Apply.
type StateMachine interface {
	// Apply applies committed entries in index order and returns one result per entry; the
	// result of an entry proposed on this node is what its Propose returns. Apply must be
	// deterministic: every node applies the same entries to the same state.
	Apply(entries []Entry) []any

	// Snapshot captures the state as of the last applied entry. It must be cheap: the heavy
	// work goes in the returned Snapshot's Persist, or, for a state machine that keeps its own
	// data (a log), in SnapshotData.
	Snapshot() (Snapshot, error)

	// Restore replaces the state with a snapshot's: the manifest written by Persist and, where
	// the state machine implements SnapshotSource, the data stream its SnapshotData produced on
	// the node that sent the snapshot. The data stream is opened lazily: a Restore that reads
	// nothing from data (because the local state already holds it, as when a node restores
	// its own snapshot at startup) costs nothing. data is empty for state machines that do not
	// implement SnapshotSource.
	Restore(manifest []byte, data io.Reader) error
}

// SnapshotSource is implemented by a StateMachine whose snapshot manifest only describes data
// it keeps itself. When a snapshot must be sent to another node, the consensus sends the
// manifest followed by the stream SnapshotData returns for it.
//
// A snapshot received from another node carries that data, stored with it until the
// StateMachine has restored it. Then the consensus may replace it by one of the StateMachine's
// own: it calls Snapshot right after Restore (nothing applied in between), Persist (which makes
// the restored state durable) and SnapshotData's size, stores that manifest at the received
// snapshot's index, and only then deletes the received data, so a node does not keep a second
// copy of the state. consensus/raft does.
type SnapshotSource interface {
	SnapshotData(manifest []byte) (io.ReadCloser, error)
}

// SnapshotSizer is optionally implemented by a SnapshotSource. SnapshotDataSize reports, without
// reading it, the exact number of bytes SnapshotData(manifest) will yield. Raft must announce a
// snapshot's size before streaming it to a follower; with a SnapshotSizer the data stream stays
// lazy (opened only when a follower consumes it). Without one, the implementation has to read the
// data once to count it when the snapshot is opened. A stream that yields a different number of
// bytes than announced fails the transfer.
type SnapshotSizer interface {
	SnapshotDataSize(manifest []byte) (int64, error)
}

// CommittedConfiguration is optionally implemented by a Consensus that knows which of its
// configurations committed. Servers answers the latest configuration this node holds, which may
// not have committed yet: an entry adding a server reaches that server before it commits, and a
// leader lost before the commit takes it with it (the next leader's log does not have it, and
// the server's latest configuration rolls back to one without it). Only a committed
// configuration says that a server was a member of the cluster.
type CommittedConfiguration interface {
	// CommittedServers returns the latest configuration this node knows to have committed (the
	// last configuration entry its state machine was handed, or the configuration of the
	// snapshot it last restored), and its log index, also across a restart; ok is false while
	// it knows none (a new node, before a leader told it what committed).
	CommittedServers() (servers []Server, index uint64, ok bool)
}

// Fencer is optionally implemented by a Consensus that can keep a node out of elections: a
// node that lost committed data (its state machine's copy of the log is damaged) must neither
// vote nor lead until it is repaired from its peers. A fenced node still receives, stores and
// acknowledges the log, so it still counts toward the commit quorum; only its votes are gone,
// so a cluster that needs its vote to elect a leader has none until it is repaired (or a
// healthy voter comes back).
type Fencer interface {
	// Fence keeps this node from voting and from being elected, for reason (logged, and
	// shown in Status.Fenced), until Unfence. A node that leads when fenced keeps leading
	// until it transfers leadership or loses it. Idempotent; a later reason replaces the
	// earlier one.
	Fence(reason string)
	// Unfence lifts Fence.
	Unfence()
	// Fenced returns why the node is fenced; ok is false while it is not.
	Fenced() (reason string, ok bool)
}

// Snapshot is a point-in-time snapshot returned by StateMachine.Snapshot.
type Snapshot interface {
	// Persist writes the snapshot's manifest to w. Manifests are small (implementations may
	// bound them, e.g. to a few MiB). When it returns nil, the state the manifest describes must
	// be durable: the consensus then drops what it would need to rebuild that state (it compacts
	// its log behind the snapshot, and deletes the data of a snapshot received from another
	// node that the StateMachine restored: see SnapshotSource).
	Persist(w io.Writer) error
	// Release is called when the consensus is done with the snapshot.
	Release()
}

// Consensus replicates commands to a StateMachine on every node.
//
// Every method is safe for concurrent use. Methods that need the leader return
// *NotLeaderError (ErrNotLeader) on a follower and ErrNoLeader when there is none.
type Consensus interface {
	// Propose replicates cmd and returns what the local StateMachine's Apply returned for it
	// once it is committed and applied. Errors: ErrNotLeader, ErrNoLeader (nothing was
	// proposed; safe to retry), ErrOutcomeUnknown (it may have committed), ErrClosed, and
	// ctx.Err() only when nothing was proposed yet.
	Propose(ctx context.Context, cmd []byte) (any, error)

	// LinearizableRead returns nil once this node has confirmed it is still the leader after
	// the call began and its StateMachine has applied every entry committed before that. A
	// read of the StateMachine after it returns is linearizable.
	LinearizableRead(ctx context.Context) error

	// Leader returns the current leader as this node knows it; ok is false when unknown. Its
	// Address is the one the configuration holds for it (the address it was added with, which
	// peers and clients dial and its certificate names), also in NotLeaderError.
	Leader() (leader Server, ok bool)

	// IsLeader reports whether this node believes it is the leader.
	IsLeader() bool

	// Servers returns the current configuration, with the leader marked and, on the leader,
	// each follower's last contact and match index.
	Servers(ctx context.Context) ([]ServerStatus, error)

	// Status returns this node's view of the cluster.
	Status() Status

	// AddVoter adds a voting server, or promotes a non-voter. Leader only.
	AddVoter(ctx context.Context, id, address string) error
	// AddNonvoter adds a non-voting server. Leader only.
	AddNonvoter(ctx context.Context, id, address string) error
	// RemoveServer removes a server from the configuration. Leader only.
	RemoveServer(ctx context.Context, id string) error
	// TransferLeadership hands leadership to the server with the given id, or to the most
	// up-to-date voter when id is empty. Leader only.
	TransferLeadership(ctx context.Context, id string) error

	// SubscribeLeader calls fn on every change of leader, from a single goroutine, in order.
	// fn must not block for long. The returned function unsubscribes.
	SubscribeLeader(fn func(LeaderEvent)) (cancel func())

	// Close stops this node (without leaving the configuration). It is idempotent.
	Close() error
}
