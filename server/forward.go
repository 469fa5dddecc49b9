package server

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// forwarder sends writes that reached a follower to the leader over the API transport, so that
// any node accepts a produce from curl or grpcurl. It keeps one client per leader address.
type forwarder struct {
	newClient transport.NewClientFunc
	cfg       transport.ClientConfig

	mu      sync.Mutex
	clients map[string]transport.Client
	closed  bool
}

func newForwarder(newClient transport.NewClientFunc, cfg transport.ClientConfig) *forwarder {
	return &forwarder{newClient: newClient, cfg: cfg, clients: map[string]transport.Client{}}
}

func (f *forwarder) client(addr string) (transport.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errStopping
	}
	if c, ok := f.clients[addr]; ok {
		return c, nil
	}
	c, err := f.newClient(addr, f.cfg)
	if err != nil {
		return nil, err
	}
	f.clients[addr] = c
	return c, nil
}

// produceBatch forwards an atomic batch to the leader at addr. A refusal by the leader
// (invalid, too large, denied, not leader) is passed through unchanged; a failure that may have
// happened after the leader proposed the batch (unavailable, deadline, canceled, unknown,
// internal) becomes Unavailable saying that the outcome is unknown.
func (f *forwarder) produceBatch(ctx context.Context, addr string, records []*logv1.Record) (uint64, error) {
	c, err := f.client(addr)
	if err != nil {
		return 0, err
	}
	res, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: records})
	if err != nil {
		return 0, forwardErr(addr, err)
	}
	return res.GetBaseOffset(), nil
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
		if dialFailed(err) {
			return transport.Errorf(transport.Unavailable, "forwarding to the leader at %s: %w", addr, err).
				WithNotProposed("the leader could not be reached")
		}
		// The request may have reached the leader and been proposed there.
		return transport.Errorf(transport.Unavailable, "%s: forwarded to the leader at %s: %w", ErrOutcomeUnknownMessage, addr, err).
			WithOutcomeUnknown("forwarded to the leader, answer lost")
	}
	return err // the leader's answer, which decided the batch was not appended
}

// dialFailed reports whether err, returned by a local transport client, says that no
// connection to the server could be made, so no request was sent. Both transports report a
// failed dial only in the message of the error they build locally.
func dialFailed(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return true
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "connection refused") || strings.Contains(m, "while dialing")
}

// Close closes every client. Idempotent.
func (f *forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for addr, c := range f.clients {
		_ = c.Close()
		delete(f.clients, addr)
	}
	return nil
}

// committedOffset asks the leader at addr, linearizably, for one past the last record it has
// committed: the commit point a follower must reach before it may call an offset out of range.
// The call is the server's own (GetBounds reveals no records), not on a client's behalf.
func (f *forwarder) committedOffset(ctx context.Context, addr string) (uint64, error) {
	c, err := f.client(addr)
	if err != nil {
		return 0, err
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
	if err != nil {
		return 0, err
	}
	return b.GetNextOffset(), nil
}
