package server

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// forwarder sends writes that reached a follower to the leader over the API transport, so that
// any node accepts a produce from curl or grpcurl. It keeps one client per address it talked
// to (the leader, and peers the membership code asks), at most max: beyond that the least
// recently used one is closed (once no call uses it).
type forwarder struct {
	newClient transport.NewClientFunc
	cfg       transport.ClientConfig
	max       int

	mu      sync.Mutex
	clients map[string]*forwardClient
	lru     *list.List // of *forwardClient, most recently used first
	closed  bool
}

// forwardClient is one cached client and the calls using it.
type forwardClient struct {
	c       transport.Client
	addr    string
	elem    *list.Element
	refs    int  // calls using c
	evicted bool // no longer cached: closed when refs drops to 0
}

func newForwarder(newClient transport.NewClientFunc, cfg transport.ClientConfig, maxClients int) *forwarder {
	return &forwarder{newClient: newClient, cfg: cfg, max: maxClients, clients: map[string]*forwardClient{}, lru: list.New()}
}

// client returns the client for addr and a release the caller calls once done with it.
func (f *forwarder) client(addr string) (transport.Client, func(), error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, nil, errStopping
	}
	e, ok := f.clients[addr]
	var evict []transport.Client
	if ok {
		f.lru.MoveToFront(e.elem)
	} else {
		c, err := f.newClient(addr, f.cfg)
		if err != nil {
			f.mu.Unlock()
			return nil, nil, err
		}
		e = &forwardClient{c: c, addr: addr}
		e.elem = f.lru.PushFront(e)
		f.clients[addr] = e
		for f.lru.Len() > max(f.max, 1) {
			old := f.lru.Remove(f.lru.Back()).(*forwardClient)
			delete(f.clients, old.addr)
			old.evicted = true
			if old.refs == 0 {
				evict = append(evict, old.c)
			}
		}
	}
	e.refs++
	f.mu.Unlock()
	for _, c := range evict {
		_ = c.Close()
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			f.mu.Lock()
			e.refs--
			closeIt := e.evicted && e.refs == 0
			f.mu.Unlock()
			if closeIt {
				_ = e.c.Close()
			}
		})
	}
	return e.c, release, nil
}

// produceBatch forwards a ProduceBatch request (an atomic batch for a topic's partition,
// perhaps from an idempotent producer) to the leader at addr. A refusal by the leader
// (invalid, too large, denied, not leader) is passed through unchanged; a failure that may
// have happened after the leader proposed the batch (unavailable, deadline, canceled,
// unknown, internal) becomes Unavailable saying that the outcome is unknown.
func (f *forwarder) produceBatch(ctx context.Context, addr string, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	c, release, err := f.client(addr)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := c.ProduceBatch(ctx, req)
	if err != nil {
		return nil, forwardErr(addr, err)
	}
	return res, nil
}

// serviceClient returns the client of addr as C, one of the transport's service clients
// (Topics, Groups), and its release.
func serviceClient[C any](f *forwarder, addr string) (C, func(), error) {
	var none C
	c, release, err := f.client(addr)
	if err != nil {
		return none, nil, err
	}
	sc, ok := any(c).(C)
	if !ok {
		release()
		return none, nil, fmt.Errorf("server: the transport client %T has no %T service", c, (*C)(nil))
	}
	return sc, release, nil
}

// forwardErr maps the error of a forwarded write. The leader's own verdict (a refusal, a
// NotLeader or NotProposed detail, an OutcomeUnknown detail) passes through unchanged; a
// connection that could not be made is "not proposed"; any other failure may have happened
// after the leader proposed the batch, so its outcome is unknown.
func forwardErr(addr string, err error) error {
	if _, ok := transport.NotLeaderDetail(err); ok || transport.IsNotProposed(err) || transport.IsOutcomeUnknown(err) {
		return err
	}
	switch transport.CodeOf(err) {
	case transport.Unavailable, transport.DeadlineExceeded, transport.Canceled, transport.Unknown, transport.Internal:
		if transport.NeverSent(err) {
			return transport.Errorf(transport.Unavailable, "forwarding to the leader at %s: %w", addr, err).
				WithNotProposed("the leader could not be reached")
		}
		// The request may have reached the leader and been proposed there.
		return transport.Errorf(transport.Unavailable, "%s: forwarded to the leader at %s: %w", ErrOutcomeUnknownMessage, addr, err).
			WithOutcomeUnknown("forwarded to the leader, answer lost")
	}
	return err // the leader's answer, which decided the batch was not appended
}

// Close closes every client. Idempotent.
func (f *forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for addr, e := range f.clients {
		_ = e.c.Close()
		delete(f.clients, addr)
	}
	f.lru.Init()
	return nil
}

// bounds asks the server at addr for its bounds (GetBounds), as this server: a peer's own call,
// which reveals no records and is allowed on every topic. The API and Raft share one address.
func (f *forwarder) bounds(ctx context.Context, addr string, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	c, release, err := f.client(addr)
	if err != nil {
		return nil, err
	}
	defer release()
	return c.GetBounds(ctx, req)
}

// leaderAppliedIndex returns how far the leader at addr has applied after a linearizable read:
// at least every entry committed when it was called.
func (f *forwarder) leaderAppliedIndex(ctx context.Context, addr string) (uint64, error) {
	b, err := f.bounds(ctx, addr, &logv1.GetBoundsRequest{Linearizable: true})
	return b.GetAppliedIndex(), err
}

// leaderCommitIndex asks the leader for its commit index (telemetry's readiness target on a
// follower).
func (s *Server) leaderCommitIndex(ctx context.Context, leader consensus.Server) (uint64, error) {
	if s.forward == nil {
		return 0, errors.New("server: no forwarder to ask the leader")
	}
	b, err := s.forward.bounds(ctx, leader.Address, &logv1.GetBoundsRequest{})
	return b.GetCommitIndex(), err
}

// topicID asks the leader at addr for the ID of its topic named topic (DescribeTopic with
// require_leader: once it has applied every committed entry). A server at addr that is no
// longer the leader (a lagging one would name what it has applied) refuses it with NotLeader.
// Errors: the server's (NotFound when the leader does not know the topic).
func (f *forwarder) topicID(ctx context.Context, addr, topic string) (string, error) {
	c, release, err := f.client(addr)
	if err != nil {
		return "", err
	}
	defer release()
	tc, ok := c.(transport.TopicsClient)
	if !ok {
		return "", fmt.Errorf("server: the client to %s has no Topics service", addr)
	}
	res, err := tc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: topic, RequireLeader: true})
	return res.GetTopic().GetId(), err
}

// committedOffset asks the leader at addr, linearizably, for one past the last record it has
// committed: the commit point a follower must reach before it may call an offset out of range.
func (f *forwarder) committedOffset(ctx context.Context, addr, topic string, partition uint32) (uint64, error) {
	b, err := f.bounds(ctx, addr, &logv1.GetBoundsRequest{Linearizable: true, Topic: topic, Partition: partition})
	return b.GetNextOffset(), err
}
