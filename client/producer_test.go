package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

func newProducer(t *testing.T, cl *client.Client, opts ...client.ProducerOption) *client.Producer {
	t.Helper()
	p, err := cl.NewProducer(append([]client.ProducerOption{client.ProducerIdempotence(false)}, opts...)...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProducerBatchesByCount(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		// A linger far beyond the test: only full batches (and Close)
		// send anything.
		p := newProducer(t, cl, client.ProducerBatchRecords(10), client.ProducerLinger(time.Hour))
		ctx := context.Background()
		var fs []*client.Future
		for i := range 30 {
			f, err := p.Send(ctx, fmt.Appendf(nil, "r%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		for i, f := range fs {
			off, err := f.Wait(ctx)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if off != uint64(i) {
				t.Errorf("record %d got offset %d: records must keep Send order", i, off)
			}
		}
		if got := c.nodes[0].called("ProduceBatch"); got != 3 {
			t.Errorf("ProduceBatch calls = %d, want 3 batches of 10", got)
		}
		if got := c.nodes[0].called("Produce"); got != 0 {
			t.Errorf("Produce calls = %d, want 0", got)
		}
	})
}

func TestProducerBatchesByBytes(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchBytes(100), client.ProducerLinger(time.Hour))
		ctx := context.Background()
		var last *client.Future
		for range 10 {
			f, err := p.Send(ctx, make([]byte, 50))
			if err != nil {
				t.Fatal(err)
			}
			last = f
		}
		if _, err := last.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.nodes[0].called("ProduceBatch"); got != 5 {
			t.Errorf("ProduceBatch calls = %d, want 5 batches of 2×50 bytes", got)
		}
		// A record larger than the cap travels alone.
		f, err := p.Send(ctx, make([]byte, 500))
		if err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 10 {
			t.Errorf("big record: offset %d, err %v; want 10, nil", off, err)
		}
	})
}

func TestProducerLingerSendsPartialBatch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchRecords(1000), client.ProducerLinger(5*time.Millisecond))
		ctx := context.Background()
		f1, _ := p.Send(ctx, []byte("a"))
		f2, err := p.Send(ctx, []byte("b"))
		if err != nil {
			t.Fatal(err)
		}
		// No Flush, no Close: the linger timer alone must send them.
		for _, f := range []*client.Future{f1, f2} {
			if _, err := f.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.values(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("log = %q, want [a b]", got)
		}
	})
}

func TestProducerFlush(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerLinger(time.Hour))
		ctx := context.Background()
		var fs []*client.Future
		for i := range 5 {
			f, err := p.Send(ctx, []byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		for i, f := range fs {
			select {
			case <-f.Done():
			default:
				t.Fatalf("record %d not complete after Flush returned", i)
			}
		}
		if got := c.nodes[0].called("ProduceBatch"); got != 1 {
			t.Errorf("ProduceBatch calls = %d, want 1", got)
		}
		// Flush with nothing pending returns at once.
		if err := p.Flush(ctx); err != nil {
			t.Fatalf("empty Flush: %v", err)
		}
	})
}

func TestProducerCloseDeliversPending(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p, err := cl.NewProducer(client.ProducerIdempotence(false), client.ProducerLinger(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var mu sync.Mutex
		var got []uint64
		for range 7 {
			err := p.SendFunc(ctx, []byte("x"), func(off uint64, err error) {
				if err != nil {
					t.Errorf("callback error: %v", err)
					return
				}
				mu.Lock()
				got = append(got, off)
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 7 {
			t.Fatalf("callbacks ran %d times, want 7", len(got))
		}
		for i, off := range got {
			if off != uint64(i) {
				t.Errorf("callback %d offset %d, want %d", i, off, i)
			}
		}
		if _, err := p.Send(ctx, []byte("late")); !errors.Is(err, client.ErrProducerClosed) {
			t.Errorf("Send after Close: err = %v, want ErrProducerClosed", err)
		}
		if err := p.Flush(ctx); !errors.Is(err, client.ErrProducerClosed) {
			t.Errorf("Flush after Close: err = %v, want ErrProducerClosed", err)
		}
	})
}

func TestProducerFollowsLeaderChange(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		p := newProducer(t, cl, client.ProducerLinger(0))
		ctx := context.Background()
		f, _ := p.Send(ctx, []byte("a"))
		if _, err := f.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		c.setLeader(2)
		f, _ = p.Send(ctx, []byte("b"))
		if off, err := f.Wait(ctx); err != nil || off != 1 {
			t.Fatalf("after leader change: offset %d err %v, want 1 nil", off, err)
		}
		if got := c.nodes[2].called("ProduceBatch"); got != 1 {
			t.Errorf("new leader saw %d batches, want 1", got)
		}
	})
}

func TestProducerOutcomeUnknownFailsTheBatch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerLinger(time.Hour))
		c.setFault(func(string, [][]byte) (bool, error) {
			return true, transport.Errorf(transport.Unavailable, "leadership lost: the write may have happened")
		})
		ctx := context.Background()
		f1, _ := p.Send(ctx, []byte("a"))
		f2, _ := p.Send(ctx, []byte("b"))
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, f := range []*client.Future{f1, f2} {
			if _, err := f.Wait(ctx); !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Errorf("err = %v, want ErrOutcomeUnknown", err)
			}
		}
		if got := c.nodes[0].called("ProduceBatch"); got != 1 {
			t.Errorf("ProduceBatch calls = %d, want 1 (never retried)", got)
		}
	})
}

func TestProducerSendBlocksAtMaxPending(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerMaxPending(2), client.ProducerLinger(time.Hour))
		release := make(chan struct{})
		c.setFault(func(string, [][]byte) (bool, error) {
			<-release
			return true, nil
		})
		ctx := context.Background()
		for range 2 {
			if _, err := p.Send(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		// The third Send must wait for room: give up after a short wait.
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := p.Send(short, []byte("y")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send over MaxPending: err = %v, want DeadlineExceeded", err)
		}
		flushed := make(chan error, 1)
		go func() { flushed <- p.Flush(ctx) }()
		close(release)
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		f, err := p.Send(ctx, []byte("z"))
		if err != nil {
			t.Fatalf("Send after room freed: %v", err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 2 {
			t.Errorf("offset %d err %v, want 2 nil (y was never sent)", off, err)
		}
	})
}

func TestProducerConcurrentSenders(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchRecords(16), client.ProducerMaxInFlight(3), client.ProducerLinger(time.Millisecond))
		ctx := context.Background()
		const goroutines, each = 8, 50
		var wg sync.WaitGroup
		offsets := make(chan uint64, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					f, err := p.Send(ctx, fmt.Appendf(nil, "%d-%d", g, i))
					if err != nil {
						t.Error(err)
						return
					}
					off, err := f.Wait(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					offsets <- off
				}
			})
		}
		wg.Wait()
		close(offsets)
		seen := make(map[uint64]bool)
		for off := range offsets {
			if seen[off] {
				t.Fatalf("offset %d delivered twice", off)
			}
			seen[off] = true
		}
		if len(seen) != goroutines*each || len(c.values()) != goroutines*each {
			t.Errorf("delivered %d offsets, log holds %d, want %d", len(seen), len(c.values()), goroutines*each)
		}
	})
}

func TestNewProducerRejectsBadOptions(t *testing.T) {
	c := newFakeCluster(t, "connect", 1)
	cl := newClient(t, c, nil)
	for _, opt := range []client.ProducerOption{
		client.ProducerBatchRecords(0),
		client.ProducerBatchBytes(-1),
		client.ProducerMaxInFlight(0),
		client.ProducerMaxPending(0),
		client.ProducerLinger(-time.Second),
	} {
		if _, err := cl.NewProducer(opt); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("err = %v, want ErrInvalidOption", err)
		}
	}
}

// A Producer that describes a topic again (its partition count went stale) holds no one up:
// Sends to other topics, and to that topic with the stale count, go on while it waits.
func TestProducerStaleCountRefreshBlocksNoOne(t *testing.T) {
	defer client.SetTopicCountTTL(time.Millisecond)()
	l := clienttest.New()
	var stall atomic.Pointer[chan struct{}]
	entered := make(chan string, 10)
	l.OnDescribeTopic = func(name string) {
		if ch := stall.Load(); ch != nil && name == "slow" {
			entered <- name
			<-*ch
		}
	}
	srv, err := l.Serve(clienttest.ServeOptions{Transport: "connect"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	cl, err := client.New(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, name := range []string{"slow", "fast"} {
		if _, err := cl.CreateTopic(ctx, name, 2, client.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := cl.NewProducer(client.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(topic string) error {
		_, err := p.SendRecord(ctx, client.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")})
		return err
	}
	for _, name := range []string{"slow", "fast"} { // learn both counts
		if err := send(name); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // both counts stale
	release := make(chan struct{})
	stall.Store(&release)
	blocked := make(chan error, 1)
	go func() { blocked <- send("slow") }()
	<-entered // that Send is describing "slow", and the server holds its answer

	done := make(chan error, 2)
	go func() { done <- send("fast") }()
	go func() { done <- send("slow") }()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a Send waited for another Send's DescribeTopic")
		}
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestProducerSendFromCallbackAtMaxPending: a callback may call Send (only
// Flush and Close are forbidden), e.g. to chain a follow-up record. With the
// pending bound reached, the record whose callback is running still holds its
// pending slot until the callback returns, so Send in the callback waits for
// itself: the sender goroutine deadlocks (here bounded by a 2 s context).
func TestProducerSendFromCallbackAtMaxPending(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		p, err := cl.NewProducer(client.ProducerIdempotence(false), client.ProducerLinger(0), client.ProducerMaxPending(1))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		inner := make(chan error, 1)
		err = p.SendFunc(context.Background(), []byte("first"), func(_ uint64, err error) {
			if err != nil {
				inner <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = p.Send(ctx, []byte("follow-up"))
			inner <- err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-inner; err != nil {
			t.Fatalf("Send from the first record's callback: %v (the callback holds the only pending slot)", err)
		}
	})
}

// A callback may wait for another record of its own batch: every result of a batch is known
// before its first callback runs.
func TestProducerCallbackWaitsForItsBatch(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		p, err := cl.NewProducer(client.ProducerIdempotence(false), client.ProducerLinger(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		type result struct {
			off uint64
			err error
		}
		inner := make(chan result, 1)
		var second *client.Future
		ready := make(chan struct{})
		err = p.SendFunc(context.Background(), []byte("first"), func(first uint64, err error) {
			<-ready
			if err != nil {
				inner <- result{err: err}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			off, err := second.Wait(ctx)
			inner <- result{off - first, err}
		})
		if err != nil {
			t.Fatal(err)
		}
		if second, err = p.Send(context.Background(), []byte("second")); err != nil {
			t.Fatal(err)
		}
		close(ready)
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := <-inner; r.err != nil || r.off != 1 {
			t.Fatalf("the second record's Wait in the first's callback: offset +%d, %v; want +1, nil", r.off, r.err)
		}
	})
}

// The Producer allocates a batch's records and futures in chunks sized after
// the partition's previous batch; batches that outgrow, fill or undershoot
// their first chunk must still carry every record once, in Send order, and
// each record's Future and callback must get its own offset.
func TestProducerBatchesOfChangingSizesKeepEveryRecord(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchRecords(7), client.ProducerLinger(time.Hour))
		ctx := context.Background()
		var (
			fs   []*client.Future
			want []string
			mu   sync.Mutex
			cbs  = map[int]uint64{} // record index → offset its callback got
		)
		// Between flushes: a batch of 3, then 20 (outgrowing the chunk of 3,
		// cut at 7 twice), then 1 (a chunk of 6 mostly unused), then 30.
		for _, n := range []int{3, 20, 1, 30} {
			for range n {
				i := len(want)
				v := fmt.Sprintf("r%03d", i)
				want = append(want, v)
				if i%3 == 0 {
					err := p.SendFunc(ctx, []byte(v), func(off uint64, err error) {
						if err != nil {
							t.Errorf("record %d: %v", i, err)
						}
						mu.Lock()
						defer mu.Unlock()
						if _, dup := cbs[i]; dup {
							t.Errorf("record %d: callback ran twice", i)
						}
						cbs[i] = off
					})
					if err != nil {
						t.Fatal(err)
					}
					fs = append(fs, nil)
					continue
				}
				f, err := p.Send(ctx, []byte(v))
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, f)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for i, f := range fs {
			if f == nil {
				mu.Lock()
				off, ok := cbs[i]
				mu.Unlock()
				if !ok || off != uint64(i) {
					t.Errorf("record %d: callback offset %d (ran: %v), want %d", i, off, ok, i)
				}
				continue
			}
			off, err := f.Wait(ctx)
			if err != nil || off != uint64(i) {
				t.Errorf("record %d: offset %d, err %v; want %d, nil", i, off, err, i)
			}
		}
		if got := c.values(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("log = %q, want %q", got, want)
		}
	})
}

// Sends blocked at ProducerMaxPending must each be woken when room frees,
// and never exceed the bound: with a bound of 1, every batch holds one
// record, however many goroutines wait.
func TestProducerMaxPendingWakesWaitingSends(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerMaxPending(1), client.ProducerLinger(0))
		var mu sync.Mutex
		sizes := map[int]int{} // batch size → batches
		c.setFault(func(_ string, values [][]byte) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			sizes[len(values)]++
			return true, nil
		})
		ctx := context.Background()
		const senders, each = 4, 25
		var wg sync.WaitGroup
		errs := make(chan error, senders*each)
		for range senders {
			wg.Go(func() {
				for range each {
					f, err := p.Send(ctx, []byte("x"))
					if err == nil {
						_, err = f.Wait(ctx)
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sizes) != 1 || sizes[1] != senders*each {
			t.Errorf("batch sizes (size → batches) = %v, want only %d batches of 1", sizes, senders*each)
		}
	})
}
