package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// outlastCase is a case of TestOutlastStopDeadline.
type outlastCase struct {
	name     string
	timeout  time.Duration // ctx's deadline, from now
	stop     bool          // the server stops, ending ctx
	cancel   bool          // ctx canceled without a stop (the client gone)
	release  bool          // outlastStop's CancelFunc called
	min, max time.Duration // pctx ends within [min, max] after ctx (or the release)
	want     error         // pctx's error
	rounds   int           // runs of the case (0: one)
}

// TestOutlastStopDeadline: outlastStop's context, for a stream's ctx with a deadline, keeps
// ctx's values and deadline; it ends with ctx when ctx ends for another reason than the
// server's stop (its deadline: DeadlineExceeded, as ctx; the client gone: Canceled), grace
// after ctx when the stop ended ctx, but never after ctx's deadline (DeadlineExceeded then),
// and at once when released.
func TestOutlastStopDeadline(t *testing.T) {
	const grace = 300 * time.Millisecond
	for _, tc := range []outlastCase{
		// Canceling pctx when ctx's deadline passed raced pctx's own deadline and often won,
		// ending pctx Canceled: many rounds catch it.
		{name: "deadline passes", timeout: 20 * time.Millisecond, max: 150 * time.Millisecond, want: context.DeadlineExceeded, rounds: 30},
		{name: "client gone", timeout: time.Minute, cancel: true, max: 150 * time.Millisecond, want: context.Canceled},
		{name: "stop, deadline after the grace", timeout: time.Minute, stop: true, min: grace - 50*time.Millisecond, max: grace + time.Second, want: context.Canceled},
		{name: "stop, deadline before the grace ends", timeout: 100 * time.Millisecond, stop: true, max: 150 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "released", timeout: time.Minute, release: true, max: 150 * time.Millisecond, want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range max(tc.rounds, 1) {
				checkOutlastStop(t, grace, tc)
			}
		})
	}
}

// checkOutlastStop runs one round of tc.
func checkOutlastStop(t *testing.T, grace time.Duration, tc outlastCase) {
	t.Helper()
	type key struct{}
	stop := make(chan struct{})
	s := &service{stop: stop}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), tc.timeout)
	defer cancel()
	pctx, pcancel := s.outlastStop(ctx, grace)
	defer pcancel()
	want, _ := ctx.Deadline()
	if d, ok := pctx.Deadline(); !ok || !d.Equal(want) {
		t.Fatalf("outlastStop's deadline %v (%v), want ctx's %v", d, ok, want)
	}
	if pctx.Value(key{}) != "v" {
		t.Fatal("outlastStop's context lost ctx's values")
	}
	switch {
	case tc.stop:
		close(stop) // the server stops: it then ends its streams' contexts
		cancel()
	case tc.cancel:
		cancel()
	case tc.release:
		pcancel()
	}
	if !tc.release {
		<-ctx.Done()
	}
	ended := time.Now()
	select {
	case <-pctx.Done():
	case <-time.After(tc.max + 5*time.Second):
		t.Fatalf("outlastStop's context still alive %v after ctx ended (%v)", time.Since(ended), ctx.Err())
	}
	if d := time.Since(ended); d < tc.min || d > tc.max {
		t.Errorf("outlastStop's context ended %v after ctx, want within [%v, %v]", d, tc.min, tc.max)
	}
	if err := pctx.Err(); !errors.Is(err, tc.want) {
		t.Errorf("outlastStop's context ended with %v, want %v", err, tc.want)
	}
}
