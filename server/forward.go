package server

import (
	"context"
	"sync"

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
		switch transport.CodeOf(err) {
		case transport.Unavailable, transport.DeadlineExceeded, transport.Canceled, transport.Unknown, transport.Internal:
			// The request may have reached the leader and been proposed there.
			return 0, transport.Errorf(transport.Unavailable, "%s: forwarded to the leader at %s: %w", ErrOutcomeUnknownMessage, addr, err)
		}
		return 0, err // the leader's answer, which decided the batch was not appended
	}
	return res.GetBaseOffset(), nil
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
