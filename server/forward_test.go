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
	f := newForwarder(tconnect.NewClient, transport.ClientConfig{}, DefaultMaxForwardClients)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	batch := func(records ...*logv1.Record) *logv1.ProduceBatchRequest {
		return &logv1.ProduceBatchRequest{Records: records}
	}
	if _, err := f.produceBatch(ctx, leader.Addr(), batch()); transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("empty batch forwarded: %v, want the leader's InvalidArgument", err)
	}
	res, err := f.produceBatch(ctx, leader.Addr(), batch(&logv1.Record{Value: []byte("x")}))
	if err != nil || res.GetBaseOffset() != 0 {
		t.Fatalf("forwarded batch = %v, %v", res, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, err = f.produceBatch(ctx, dead, batch(&logv1.Record{Value: []byte("x")}))
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
	_, err = f.produceBatch(sctx, hung.Addr().String(), batch(&logv1.Record{Value: []byte("x")}))
	scancel()
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), ErrOutcomeUnknownMessage) {
		t.Errorf("leader silent: %v, want Unavailable with the OutcomeUnknown detail and %q", err, ErrOutcomeUnknownMessage)
	}

	_ = f.Close()
	if _, err := f.produceBatch(ctx, leader.Addr(), batch(&logv1.Record{Value: []byte("x")})); err == nil {
		t.Error("a closed forwarder forwarded")
	}
}

// fakeClient is a transport.Client that only records its Close.
type fakeClient struct {
	transport.Client
	addr   string
	closed *map[string]int
}

func (c fakeClient) Close() error {
	(*c.closed)[c.addr]++
	return nil
}

// TestForwarderEvictsLRU: the forwarder keeps at most its limit of clients; a new address
// closes the least recently used client, at once when no call uses it, else when the last
// call using it releases it; every client is closed exactly once.
func TestForwarderEvictsLRU(t *testing.T) {
	closed := map[string]int{}
	created := map[string]int{}
	f := newForwarder(func(addr string, _ transport.ClientConfig) (transport.Client, error) {
		created[addr]++
		return fakeClient{addr: addr, closed: &closed}, nil
	}, transport.ClientConfig{}, 2)
	use := func(addr string) func() {
		t.Helper()
		_, release, err := f.client(addr)
		if err != nil {
			t.Fatalf("client(%s): %v", addr, err)
		}
		return release
	}
	use("a")()
	use("b")()
	use("a")() // a is now the most recently used
	use("c")() // evicts b
	if closed["b"] != 1 || closed["a"] != 0 || closed["c"] != 0 {
		t.Fatalf("after a third address: closed %v, want only b", closed)
	}
	use("a")()
	if created["a"] != 1 {
		t.Errorf("a created %d times, want 1 (still cached)", created["a"])
	}
	// An evicted client in use is closed when its call releases it, not before.
	releaseA := use("a")
	use("b")() // evicts c (a was used last)
	use("d")() // evicts a, which a call still uses
	if closed["a"] != 0 {
		t.Fatalf("a closed while a call used it")
	}
	releaseA()
	releaseA() // idempotent
	if closed["a"] != 1 || closed["c"] != 1 {
		t.Fatalf("closed %v, want a and c once each", closed)
	}
	if n := len(f.clients); n != 2 {
		t.Errorf("%d clients cached, want 2", n)
	}
	_ = f.Close()
	for _, addr := range []string{"a", "b", "c", "d"} {
		if closed[addr] != created[addr] {
			t.Errorf("client %s created %d times, closed %d", addr, created[addr], closed[addr])
		}
	}
}
