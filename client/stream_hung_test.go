package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestStreamLeavesAHungServer: the server a tailing Stream reads from hangs
// (a paused process: it neither sends nor closes the connection) and another
// server leads. The stream must resume there within about a probe interval
// and a probe timeout. Before, it waited for the connection's keepalive to
// fail (40 s), while writes had long failed over.
func TestStreamLeavesAHungServer(t *testing.T) {
	defer client.SetStreamProbeInterval(100 * time.Millisecond)()
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithRequestTimeout(500*time.Millisecond))
		produceN(t, cl, 2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		recs, errc := collect(ctx, cl, 0, 5)
		checkDense(t, recs, 0, 2)
		c.nodes[0].hung.Store(true) // the leader the stream reads from
		c.setLeader(1)
		produceValues(t, cl, 2, 3)
		deadline := time.After(5 * time.Second)
		for off := uint64(2); off < 5; off++ {
			select {
			case rec := <-recs:
				if rec.Offset != off || string(rec.Value) != fmt.Sprintf("v%d", off) {
					t.Fatalf("got offset %d %q, want offset %d v%d", rec.Offset, rec.Value, off, off)
				}
			case <-deadline:
				t.Fatalf("the stream yielded nothing past offset %d for 5s after its server hung, though another server led", off)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		c.nodes[0].hung.Store(false)
	})
}
