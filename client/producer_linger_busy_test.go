package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestProducerLingerAccumulatesWhileBusy: records sent while the Producer's only request in
// flight is outstanding, spaced wider than the linger, still travel together once it is
// answered, as Kafka's accumulator keeps appending to a batch until it is drained. When each
// linger cut a batch of its own, a slow leader (a node restarting, a cluster under load) made
// the Producer send one tiny batch per round trip: its throughput fell below the rate of
// Sends, the backlog grew, and records failed with ErrDeliveryTimeout (seen across graceful
// restarts with keyed records over 8 partitions: 8391 records of 55 k).
//
// With no linger, the same: records accumulate only while every sender is busy, and go out
// together once one is free.
func TestProducerLingerAccumulatesWhileBusy(t *testing.T) {
	for _, linger := range []time.Duration{0, time.Millisecond} {
		t.Run(linger.String(), func(t *testing.T) { testLingerAccumulatesWhileBusy(t, linger) })
	}
}

func testLingerAccumulatesWhileBusy(t *testing.T, linger time.Duration) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerLinger(linger))
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		c.setFault(func(_ string, values [][]byte) (bool, error) {
			if string(values[0]) == "first" {
				entered <- struct{}{}
				<-release
			}
			return true, nil
		})
		ctx := context.Background()
		if _, err := p.Send(ctx, []byte("first")); err != nil {
			t.Fatal(err)
		}
		<-entered // the only sender is now busy with "first"
		var last *client.Future
		for i := range 5 {
			f, err := p.Send(ctx, []byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			last = f
			if linger > 0 {
				time.Sleep(10 * linger) // well past the linger
			}
		}
		close(release)
		if off, err := last.Wait(ctx); err != nil || off != 5 {
			t.Fatalf("last record: offset %d err %v, want 5 nil", off, err)
		}
		if got := c.nodes[0].called("ProduceBatch"); got != 2 {
			t.Errorf("ProduceBatch calls = %d, want 2: the 5 records sent while busy travel together", got)
		}
	})
}
