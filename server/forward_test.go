package server

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestForwarderErrors: a refusal by the leader passes through unchanged (nothing was
// appended); a leader that cannot be dialed gives NotProposed (safe to retry); a leader that
// took the request and did not answer gives OutcomeUnknown, so no client retries it blindly; a
// closed forwarder refuses.
func TestForwarderErrors(t *testing.T) {
	leader := startServer(t, Config{})
	f := newForwarder(tconnect.NewClient, transport.ClientConfig{})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := f.produceBatch(ctx, leader.Addr(), nil); transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("empty batch forwarded: %v, want the leader's InvalidArgument", err)
	}
	off, err := f.produceBatch(ctx, leader.Addr(), []*logv1.Record{{Value: []byte("x")}})
	if err != nil || off != 0 {
		t.Fatalf("forwarded batch = %d, %v", off, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, err = f.produceBatch(ctx, dead, []*logv1.Record{{Value: []byte("x")}})
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) || transport.IsOutcomeUnknown(err) {
		t.Errorf("leader unreachable (connection refused): %v, want Unavailable with the NotProposed detail", err)
	}

	// A leader that takes the request and never answers: the write may have happened.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = f.produceBatch(sctx, hung.Addr().String(), []*logv1.Record{{Value: []byte("x")}})
	scancel()
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), ErrOutcomeUnknownMessage) {
		t.Errorf("leader silent: %v, want Unavailable with the OutcomeUnknown detail and %q", err, ErrOutcomeUnknownMessage)
	}

	_ = f.Close()
	if _, err := f.produceBatch(ctx, leader.Addr(), []*logv1.Record{{Value: []byte("x")}}); err == nil {
		t.Error("a closed forwarder forwarded")
	}
}
