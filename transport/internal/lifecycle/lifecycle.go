// Package lifecycle holds what both transport servers need to end streams
// on Stop: a stop signal that request contexts can be bound to.
package lifecycle

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Stopper is a stop signal. Its zero value is not usable; use NewStopper.
// All methods are safe for concurrent use.
type Stopper struct {
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// NewStopper returns a Stopper that has not stopped.
func NewStopper() *Stopper {
	ctx, cancel := context.WithCancel(context.Background())
	return &Stopper{ctx: ctx, cancel: cancel}
}

// Bind returns a child of ctx that is also canceled when s stops. The
// caller must call the returned cancel function when done with the context.
func (s *Stopper) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// Stop fires the signal; it reports whether this call was the first.
func (s *Stopper) Stop() bool {
	first := false
	s.once.Do(func() {
		first = true
		s.cancel()
	})
	return first
}

// Stopped reports whether Stop has been called.
func (s *Stopper) Stopped() bool { return s.ctx.Err() != nil }

// Done is closed once Stop has been called.
func (s *Stopper) Done() <-chan struct{} { return s.ctx.Done() }

// BindWatch is Bind for a stream that reports a status, a health watch: after Stop its
// context ends only once the stream has sent a final status (see Watch.Sent), or grace after
// Stop, so that a watcher learns the server stopped serving before its stream ends. (Ending
// it at Stop races the status update: the stream's loop may see its context end first.)
func (s *Stopper) BindWatch(ctx context.Context) (context.Context, *Watch, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{sent: make(chan struct{}, 1)}
	stop := context.AfterFunc(s.ctx, func() {
		t := time.NewTimer(WatchGrace)
		defer t.Stop()
		for !w.final.Load() {
			select {
			case <-w.sent:
			case <-t.C:
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
		cancel()
	})
	return ctx, w, func() {
		stop()
		cancel()
	}
}

// WatchGrace bounds how long a watch bound by BindWatch outlives Stop without sending a final
// status (a client not reading, a watch of an unknown service that never was SERVING).
const WatchGrace = time.Second

// Watch is what BindWatch needs to know of a stream: the last status it sent.
type Watch struct {
	final atomic.Bool
	sent  chan struct{}
}

// Sent records that the stream sent a status; final says the stream may end after it.
func (w *Watch) Sent(final bool) {
	w.final.Store(final)
	select {
	case w.sent <- struct{}{}:
	default:
	}
}

// FinalHealthStatus reports whether m is a grpc.health.v1.HealthCheckResponse whose status
// is not SERVING: the last a health watch of a stopping server sends. The message is known by
// its name, not its full name: connectrpc.com/grpchealth generates it in its own package
// (connectext.grpc.health.v1), wire-compatible.
func FinalHealthStatus(m any) bool {
	pm, ok := m.(proto.Message)
	if !ok {
		return false
	}
	r := pm.ProtoReflect()
	if r.Descriptor().Name() != "HealthCheckResponse" {
		return false
	}
	f := r.Descriptor().Fields().ByName("status")
	return f != nil && f.Kind() == protoreflect.EnumKind && r.Get(f).Enum() != servingStatus
}

// servingStatus is grpc.health.v1.HealthCheckResponse.ServingStatus SERVING.
const servingStatus = 1
