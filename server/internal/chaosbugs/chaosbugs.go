// Package chaosbugs plants known bugs in the server, for the fault-injection suite
// (tools/chaos) to prove it catches them. The bugs exist only in a binary built with
// `-tags chaosbugs`, and only the one named by the environment variable COMMITLOG_CHAOS_BUG is
// on. In every other build On is a constant false and the compiler removes the hooks.
package chaosbugs

// Bug names a planted bug.
type Bug string

// The planted bugs.
const (
	// AckBeforeCommit: the leader acknowledges a write whose commit takes longer than 100 ms,
	// or fails, with the offset it guesses (its log's end).
	AckBeforeCommit Bug = "ack-before-commit"
	// FollowerUnappliedRead: a follower asked for an offset it has not applied answers at once
	// with its last applied record's value, as if it were the one asked for.
	FollowerUnappliedRead Bug = "follower-unapplied-read"
	// StaleLeaderRead: a leader serves linearizable reads without confirming its leadership
	// while a lease from its last committed write holds, the lease measured on a clock that
	// stops while the process is paused: a leader deposed during a pause serves stale reads.
	StaleLeaderRead Bug = "stale-leader-read"
	// SnapshotNoSync: the state machine writes a snapshot manifest without syncing the log
	// first (the manifest may cover records a power loss removes).
	SnapshotNoSync Bug = "snapshot-no-sync"
	// SnapshotRestoreOffByOne: installing a snapshot skips one record too many of the stream:
	// the first one the local log lacks (off <= have instead of off < have).
	SnapshotRestoreOffByOne Bug = "snapshot-restore-off-by-one"
)
