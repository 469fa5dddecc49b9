package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestForwarderErrors: a refusal by the leader passes through unchanged (nothing was
// appended); a failure to reach it is Unavailable saying the outcome is unknown, so no client
// retries it blindly; a closed forwarder refuses.
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
	if transport.CodeOf(err) != transport.Unavailable || !strings.Contains(err.Error(), ErrOutcomeUnknownMessage) {
		t.Errorf("leader unreachable: %v, want Unavailable with %q", err, ErrOutcomeUnknownMessage)
	}

	_ = f.Close()
	if _, err := f.produceBatch(ctx, leader.Addr(), []*logv1.Record{{Value: []byte("x")}}); err == nil {
		t.Error("a closed forwarder forwarded")
	}
}
