// Package lifecycle holds what both transport servers need to end streams
// on Stop: a stop signal that request contexts can be bound to.
package lifecycle

import (
	"context"
	"sync"
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
