// Package discovery defines the contract of commitlog's cluster membership: which nodes are in
// the cluster, what they advertise about themselves (tags such as their Raft and API
// addresses), and the events that tell a caller when that changes.
//
// Discovery only suggests: it reports that a node joined, left gracefully or stopped
// answering, and the caller (commitlog's server, through a Handler it implements) decides what
// to do about it, for example adding the node to or removing it from the Raft configuration.
//
// Implementations: discovery/serf (gossip with hashicorp/serf, for real clusters) and
// discovery/static (a fixed member list from configuration, for tests and fixed deployments).
// This package imports nothing else from the commitlog repository.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// Errors returned by every implementation. Implementations wrap them with context; compare
// with errors.Is.
var (
	// ErrClosed: the membership was closed (by Close, or by Leave, which closes it once the
	// leave has been broadcast).
	ErrClosed = errors.New("discovery: membership closed")
	// ErrInvalidConfig: a Config field is malformed (bad address, bad key, oversized tags...).
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrNoAddrs: Join was called without any address.
	ErrNoAddrs = errors.New("discovery: no address to join")
	// ErrJoinFailed: no address given to Join could be contacted. The *JoinError that wraps it
	// says which addresses were tried and why they failed.
	ErrJoinFailed = errors.New("discovery: could not join any address")
	// ErrInvalidTags: the tags cannot be advertised (too large once encoded, for example).
	ErrInvalidTags = errors.New("discovery: invalid tags")
	// ErrNotSupported: the implementation cannot do this (a static membership cannot join
	// other nodes or change its tags).
	ErrNotSupported = errors.New("discovery: not supported by this implementation")
)

// JoinError reports a Join that reached none of its addresses. It matches ErrJoinFailed with
// errors.Is and unwraps to the underlying cause.
type JoinError struct {
	// Addrs are the addresses that were tried.
	Addrs []string
	// Err is the cause reported by the implementation (it may aggregate one error per address).
	Err error
}

// Error implements error.
func (e *JoinError) Error() string {
	return fmt.Sprintf("discovery: could not join any of %v: %v", e.Addrs, e.Err)
}

// Is reports whether target is ErrJoinFailed.
func (e *JoinError) Is(target error) bool { return target == ErrJoinFailed }

// Unwrap returns the underlying cause.
func (e *JoinError) Unwrap() error { return e.Err }

// Status is what the local node currently believes about a member.
type Status int

// The member statuses.
const (
	// StatusUnknown: the implementation reported a status this package does not know.
	StatusUnknown Status = iota
	// StatusAlive: the member answers.
	StatusAlive
	// StatusLeaving: the member announced a graceful leave that is still propagating.
	StatusLeaving
	// StatusLeft: the member left gracefully.
	StatusLeft
	// StatusFailed: the member stopped answering without leaving.
	StatusFailed
)

// String returns the lower-case name of the status ("alive", "failed"...).
func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return fmt.Sprintf("unknown(%d)", int(s))
	}
}

// Member is one node of the cluster as seen by the local node. A Member handed out by this
// package (in an Event, or by Members and LocalMember) is a copy: the caller owns it and its
// Tags map.
type Member struct {
	// Name is the node's unique name in the cluster (commitlog uses it as the Raft server id).
	Name string
	// Addr is the node's gossip address, host:port, as it advertises it.
	Addr string
	// Tags are the key/value pairs the node advertises (e.g. "rpc_addr", "raft_addr").
	Tags map[string]string
	// Status is the node's status as seen locally.
	Status Status
}

// Clone returns a deep copy of m (its Tags map is copied).
func (m Member) Clone() Member {
	m.Tags = maps.Clone(m.Tags)
	return m
}

// EventType says what happened to a member.
type EventType int

// The event types.
const (
	// EventJoin: a member joined (or was seen for the first time, including the local node).
	EventJoin EventType = iota + 1
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFailed: a member stopped answering without leaving (crash, partition, kill).
	// Gossip is not ordered: a member that left gracefully can be reported failed first
	// and left a moment later, and a failed member that comes back is reported joined.
	EventFailed
	// EventUpdate: a member changed its tags.
	EventUpdate
	// EventReap: a failed or left member was forgotten for good after the implementation's
	// reconnect or tombstone timeout. Not every implementation reports it.
	EventReap
)

// String returns the lower-case name of the event type ("join", "leave"...).
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	case EventUpdate:
		return "update"
	case EventReap:
		return "reap"
	default:
		return fmt.Sprintf("unknown(%d)", int(t))
	}
}

// Event is one change to one member. Member carries the member's state as of the event.
type Event struct {
	Type   EventType
	Member Member
}

// String returns a short description such as "join node-1 127.0.0.1:8401".
func (e Event) String() string {
	return fmt.Sprintf("%s %s %s", e.Type, e.Member.Name, e.Member.Addr)
}

// Handler receives membership events. The caller supplies it to an implementation's
// constructor.
//
// Concurrency: an implementation calls HandleEvent from a single goroutine, one event at a
// time, in the order the implementation learned of the events. HandleEvent should return
// promptly: while it runs, later events wait. It must not call Close or Leave on the
// Membership that delivers to it (they wait for the delivering goroutine to stop). Once Close
// (or Leave) has returned, HandleEvent is never called again.
type Handler interface {
	HandleEvent(Event)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(Event)

// HandleEvent calls f(e).
func (f HandlerFunc) HandleEvent(e Event) { f(e) }

// Membership is a running membership agent: the local node's view of the cluster.
//
// Concurrency: every method is safe for concurrent use.
type Membership interface {
	// Members returns a point-in-time snapshot of every member known locally, the local node
	// included, in any order. Members that failed or left stay listed (with that status)
	// until they are reaped.
	Members() []Member

	// LocalMember returns the local node as it advertises itself.
	LocalMember() Member

	// Join contacts the given addresses (host:port of other members' gossip endpoints) and
	// merges their view of the cluster. It returns how many addresses were reached; reaching
	// one is enough. If ctx ends first Join returns ctx.Err() (the attempt may still complete
	// in the background).
	// Errors: ErrNoAddrs, *JoinError (errors.Is ErrJoinFailed), ErrClosed, ErrNotSupported.
	Join(ctx context.Context, addrs []string) (int, error)

	// Leave announces a graceful leave to the cluster (others see EventLeave rather than
	// EventFailed), waits for it to propagate, bounded by ctx, and then closes the membership
	// as Close does. Calling Leave after Close returns ErrClosed.
	Leave(ctx context.Context) error

	// SetTags replaces the local node's tags and advertises them; others see EventUpdate.
	// It returns once the update has been sent to the cluster, or when ctx ends (then
	// returning ctx.Err(): the new tags are set locally and may still spread).
	// Errors: ErrInvalidTags, ErrClosed, ErrNotSupported.
	SetTags(ctx context.Context, tags map[string]string) error

	// Close stops the membership without leaving (others eventually see EventFailed), stops
	// every goroutine it started and waits for them; no event is delivered after it returns.
	// Close is idempotent: later calls return nil.
	Close() error
}
