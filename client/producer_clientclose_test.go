package client_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
)

// TestClientCloseEndsActiveProducers closes the Client while Producers (plain
// and idempotent) are being fed and have records pending: Close must end
// them, as it ends calls and streams. Before, Send went on accepting records
// whose Futures failed with ErrClosed, forever, and each Producer's sending
// goroutines outlived the Client until Producer.Close.
func TestClientCloseEndsActiveProducers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			_, addr := clienttest.Start(t, tr) // serves idempotent producers
			testClientCloseEndsProducers(t, tr, []string{addr})
		})
		t.Run(tr+"/3-nodes", func(t *testing.T) {
			c := newFakeCluster(t, tr, 3)
			testClientCloseEndsProducers(t, tr, c.addrs(), client.ProducerIdempotence(false))
		})
	}
}

func testClientCloseEndsProducers(t *testing.T, tr string, addrs []string, opts ...client.ProducerOption) {
	cl, err := client.New(context.Background(), addrs, client.WithTransport(tr),
		client.WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type ended struct {
		send, wait error
	}
	done := make(chan ended, 2)
	for range 2 {
		p, err := cl.NewProducer(append([]client.ProducerOption{client.ProducerMaxPending(8)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var last *client.Future
			var err error
			for {
				var f *client.Future
				if f, err = p.Send(ctx, []byte("x")); err != nil {
					break
				}
				last = f
			}
			var werr error
			if last != nil {
				_, werr = last.Wait(ctx)
			}
			done <- ended{err, werr}
		}()
	}
	time.Sleep(100 * time.Millisecond) // records flowing, some pending
	closed := make(chan error, 1)
	go func() { closed <- cl.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Client.Close did not return within 5s while Producers were active")
	}
	for range 2 {
		select {
		case e := <-done:
			if !errors.Is(e.send, client.ErrClosed) {
				t.Errorf("Send after Client.Close: %v, want ErrClosed", e.send)
			}
			if e.wait != nil && !errors.Is(e.wait, client.ErrClosed) {
				t.Errorf("last record: %v, want nil or ErrClosed", e.wait)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Send went on accepting records 5s after Client.Close")
		}
	}
	// A sender that returned runs its deferred wg.Done before it exits: Close may return while
	// the goroutine is still in the dump, at the end of sender. Look again for a while, as
	// goleak does; one that stays (waiting on its cond, say) is the leak.
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(st, "client.(*Producer).sender") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a Producer's sending goroutine outlived Client.Close by 2s:\n%s", st)
		}
	}
	if _, err := cl.NewProducer(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("NewProducer after Close: %v, want ErrClosed", err)
	}
}

// TestClientCloseFromProducerCallback: a callback may close the Client (on a
// fatal error, say). Closing the Client closes its Producers, and waiting for
// their sending goroutines from one of them would wait forever.
func TestClientCloseFromProducerCallback(t *testing.T) {
	_, addr := clienttest.Start(t, "connect")
	cl, err := client.New(context.Background(), []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	if err := p.SendFunc(context.Background(), []byte("x"), func(uint64, error) { closed <- cl.Close() }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Client.Close from a callback: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Client.Close called from a Producer's callback did not return within 10s")
	}
	if _, err := p.Send(context.Background(), []byte("y")); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Send after the Client's Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Producer.Close after the Client's: %v", err)
	}
}
