package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// collect runs a Stream from offset from in a goroutine and sends what it
// yields to the returned channels; the stream stops after want records.
func collect(ctx context.Context, cl *client.Client, from uint64, want int) (<-chan client.Record, <-chan error) {
	recs := make(chan client.Record, want)
	errc := make(chan error, 1)
	go func() {
		defer close(recs)
		n := 0
		for rec, err := range cl.Stream(ctx, from) {
			if err != nil {
				errc <- err
				return
			}
			recs <- rec
			n++
			if n == want {
				break
			}
		}
		errc <- nil
	}()
	return recs, errc
}

// checkDense reads want records from recs and checks they have consecutive
// offsets from `from` and the values produceN gives them.
func checkDense(t *testing.T, recs <-chan client.Record, from uint64, want int) {
	t.Helper()
	for i := range want {
		rec, ok := <-recs
		if !ok {
			t.Fatalf("stream ended after %d records, want %d", i, want)
		}
		off := from + uint64(i)
		if rec.Offset != off || string(rec.Value) != fmt.Sprintf("v%d", off) {
			t.Fatalf("record %d = offset %d %q, want offset %d v%d (no duplicate, no gap)", i, rec.Offset, rec.Value, off, off)
		}
	}
}

func TestStreamReadsThenTails(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 3)
		recs, errc := collect(context.Background(), cl, 1, 4)
		checkDense(t, recs, 1, 2)
		// Tail: the next record is yielded once written.
		if _, err := cl.Produce(context.Background(), []byte("v3")); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Produce(context.Background(), []byte("v4")); err != nil {
			t.Fatal(err)
		}
		checkDense(t, recs, 3, 2)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestStreamResumesAfterBrokenStream(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 5)
		// A sloppy server replays records on resume: the client must drop
		// what it already yielded.
		c.setReplay(3)
		recs, errc := collect(context.Background(), cl, 0, 8)
		checkDense(t, recs, 0, 5)
		c.nodes[0].breakStreams()
		eventually(t, "stream to be reopened", func() bool {
			return c.nodes[0].called("ConsumeStream")+c.nodes[1].called("ConsumeStream")+c.nodes[2].called("ConsumeStream") >= 2
		})
		produceValues(t, cl, 5, 3)
		checkDense(t, recs, 5, 3)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestStreamResumesOnAnotherServerAfterLeaderChange(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		produceN(t, cl, 4)
		recs, errc := collect(context.Background(), cl, 0, 10)
		checkDense(t, recs, 0, 4)
		// The leader the stream reads from dies; node 1 takes over.
		c.nodes[0].stop()
		c.setLeader(1)
		produceValues(t, cl, 4, 6)
		checkDense(t, recs, 4, 6)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if n := c.nodes[1].called("ConsumeStream") + c.nodes[2].called("ConsumeStream"); n == 0 {
			t.Errorf("no stream was reopened on a live server")
		}
	})
}

func TestStreamEndsWithContextError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		ctx, cancel := context.WithCancel(context.Background())
		recs, errc := collect(ctx, cl, 0, 100)
		eventually(t, "stream to open", func() bool { return c.nodes[0].called("ConsumeStream") == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if _, ok := <-recs; ok {
			t.Fatal("record yielded from an empty log")
		}
	})
}

func TestStreamEndsWhenClientCloses(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl, err := client.New(context.Background(), c.addrs(), client.WithTransport(c.transport))
		if err != nil {
			t.Fatal(err)
		}
		_, errc := collect(context.Background(), cl, 0, 100)
		eventually(t, "stream to open", func() bool { return c.nodes[0].called("ConsumeStream") == 1 })
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, client.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	})
}

func TestStreamGivesUpAfterRetryBudget(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithMaxRetries(3), client.WithRefreshInterval(0))
		produceN(t, cl, 1)
		recs, errc := collect(context.Background(), cl, 0, 100)
		checkDense(t, recs, 0, 1)
		c.stop()
		if err := <-errc; !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

// produceValues appends n records "v<from>", … through cl, one by one.
func produceValues(t *testing.T, cl *client.Client, from, n int) {
	t.Helper()
	for i := range n {
		off, err := cl.Produce(context.Background(), fmt.Appendf(nil, "v%d", from+i))
		if err != nil {
			t.Fatalf("Produce: %v", err)
		}
		if off != uint64(from+i) {
			t.Fatalf("offset %d, want %d", off, from+i)
		}
	}
}

func TestStreamReportsGap(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 5)
		c.setGap(2)
		recs, errc := collect(context.Background(), cl, 0, 5)
		checkDense(t, recs, 0, 2)
		if err := <-errc; !errors.Is(err, client.ErrGap) {
			t.Fatalf("err = %v, want ErrGap", err)
		}
		if _, ok := <-recs; ok {
			t.Fatal("a record after the gap was yielded")
		}
	})
}

// TestStreamTriesEveryServer: a broken stream resumes on any live server, not only the first two
// of the client's list: with the leader and a second server down and no leader elected, it
// reopens on the third and yields what follows without a gap.
func TestStreamTriesEveryServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithMaxRetries(50))
		produceN(t, cl, 4)
		recs, errc := collect(context.Background(), cl, 0, 6)
		checkDense(t, recs, 0, 4)
		c.setLeader(-1)
		c.nodes[0].stop()
		c.nodes[1].stop()
		eventually(t, "the stream to reopen on the third server", func() bool { return c.nodes[2].called("ConsumeStream") > 0 })
		c.setLeader(2)
		produceValues(t, cl, 4, 2)
		checkDense(t, recs, 4, 2)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

// TestStreamWaitsOutALeaderlessCluster: servers that know no leader end a
// tailing stream after an election's worth of time (so that it moves to a
// server that has one). When none has, that is no failed reconnection: the
// Stream goes on waiting, far past its retry budget, and yields what comes
// once a leader is back, without a gap.
func TestStreamWaitsOutALeaderlessCluster(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithMaxRetries(2), client.WithRefreshInterval(0))
		produceN(t, cl, 2)
		recs, errc := collect(context.Background(), cl, 0, 4)
		checkDense(t, recs, 0, 2)
		c.leaderlessStreams.Store(int64(50 * time.Millisecond))
		for _, nd := range c.nodes {
			nd.breakStreams() // the open stream reopens under the new rule
		}
		eventually(t, "streams ended leaderless well past the retry budget", func() bool {
			select {
			case err := <-errc:
				t.Fatalf("the stream ended while the cluster had no leader: %v", err)
			default:
			}
			var total int64
			for _, nd := range c.nodes {
				total += nd.called("ConsumeStream")
			}
			return total > 12
		})
		c.leaderlessStreams.Store(0)
		produceValues(t, cl, 2, 2)
		checkDense(t, recs, 2, 2)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

// TestStreamBacksOffFromServersWithoutALeader: a server that refuses every
// stream at once for want of a leader (the empty NotLeader detail) is not a
// failed reconnection, so the Stream waits on; but it must still back off as
// it would from failures, up to the backoff's maximum, rather than reopen a
// stream every base interval (25 ms) for as long as the cluster has no leader.
func TestStreamBacksOffFromServersWithoutALeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithMaxRetries(2), client.WithRefreshInterval(0),
			client.WithBackoff(client.DefaultBackoffBase, client.DefaultBackoffMax))
		c.leaderlessStreams.Store(1) // every stream ends at once
		ctx, cancel := context.WithCancel(context.Background())
		recs, errc := collect(ctx, cl, 0, 1)
		const watch = 3 * time.Second
		time.Sleep(watch)
		select {
		case err := <-errc:
			t.Fatalf("the stream ended while the cluster had no leader: %v", err)
		default:
		}
		var total int64
		for _, nd := range c.nodes {
			total += nd.called("ConsumeStream")
		}
		// Backing off as from failures (25 ms doubling, with jitter, up to 1 s):
		// about a dozen streams in 3 s. At the base interval: over a hundred.
		t.Logf("%d streams in %v", total, watch)
		if total > 25 {
			t.Errorf("%d streams opened in %v against servers without a leader: no growing backoff", total, watch)
		}
		cancel()
		for range recs {
		}
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("stream ended with %v, want context.Canceled", err)
		}
	})
}
