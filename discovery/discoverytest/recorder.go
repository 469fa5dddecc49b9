// Package discoverytest holds helpers for testing code that consumes discovery events: a
// Recorder that stores every event it is handed and lets a test wait, without sleeping, until
// the events it expects have arrived.
package discoverytest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/commitlog-go/commitlog/discovery"
)

// Recorder is a discovery.Handler that records every event in arrival order.
//
// Concurrency: safe for concurrent use; HandleEvent may run concurrently with Events and Wait.
// The zero value is ready to use; a Recorder must not be copied after first use.
type Recorder struct {
	mu      sync.Mutex
	events  []discovery.Event
	changed chan struct{} // closed and replaced on every event; nil until first needed
}

var _ discovery.Handler = (*Recorder)(nil)

// HandleEvent records e (a deep copy of it).
func (r *Recorder) HandleEvent(e discovery.Event) {
	e.Member = e.Member.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Events returns a copy of the events recorded so far, in arrival order.
func (r *Recorder) Events() []discovery.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Wait blocks until cond, called with the events recorded so far, returns true, or until ctx
// ends. It returns ctx's error, annotated with the events seen, if the condition never held.
// cond must not retain or modify the slice.
func (r *Recorder) Wait(ctx context.Context, cond func([]discovery.Event) bool) error {
	for {
		r.mu.Lock()
		if cond(r.events) {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		seen := slices.Clone(r.events)
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("discoverytest: condition not met (events so far: %v): %w", seen, ctx.Err())
		}
	}
}

// WaitFor blocks until an event of type t about the member named name has been recorded, or
// ctx ends. It returns that event.
func (r *Recorder) WaitFor(ctx context.Context, t discovery.EventType, name string) (discovery.Event, error) {
	var found discovery.Event
	err := r.Wait(ctx, func(evs []discovery.Event) bool {
		i := slices.IndexFunc(evs, func(e discovery.Event) bool { return e.Type == t && e.Member.Name == name })
		if i < 0 {
			return false
		}
		found = evs[i]
		found.Member = found.Member.Clone()
		return true
	})
	if err != nil {
		return discovery.Event{}, fmt.Errorf("wait for %s of %q: %w", t, name, err)
	}
	return found, nil
}
