package connect

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// TestAwaitReset: after a body's read error connect-go could not name, the read waits for the
// call's context (ended by a client's reset just after the body), up to its grace; an error
// connect-go named is returned at once.
func TestAwaitReset(t *testing.T) {
	returns := func(name string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: awaitReset did not return", name)
		}
	}
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	reset := errors.New("stream error: stream ID 3; CANCEL")
	// A grace of an hour: each of these must return without it.
	returns("named error", func() { awaitReset(live, connect.NewError(connect.CodeResourceExhausted, reset), time.Hour) })
	returns("reset, context ended", func() { awaitReset(ended, reset, time.Hour) })
	returns("Unknown, context ended", func() { awaitReset(ended, connect.NewError(connect.CodeUnknown, reset), time.Hour) })
	// A context that never ends: the grace bounds the wait.
	returns("reset, context live", func() { awaitReset(live, reset, time.Millisecond) })
}
