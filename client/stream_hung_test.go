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
		resumedElsewhere(t, recs, errc, 2, 5)
		c.nodes[0].hung.Store(false)
	})
}

// TestStreamProbeStopsOnAnOldServer: a tailing Stream silent for a probe interval asks its
// server GetBounds; a server that does not know it (Unimplemented, an older server) is alive
// and is not probed again, and the stream goes on reading from it, neither ended nor resumed
// elsewhere.
func TestStreamProbeStopsOnAnOldServer(t *testing.T) {
	const probe = 50 * time.Millisecond
	defer client.SetStreamProbeInterval(probe)()
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithRequestTimeout(500*time.Millisecond))
		produceN(t, cl, 2)
		for _, nd := range c.nodes {
			nd.noBounds.Store(true)
		}
		ctx, cancel := context.WithCancel(context.Background())
		recs, errc := collect(ctx, cl, 0, 4)
		// The stream and its probe end before the probe interval is restored.
		defer func() {
			cancel()
			for range recs {
			}
		}()
		checkDense(t, recs, 0, 2)
		// Silent for 20 probe intervals: one probe, answered Unimplemented, and no other.
		eventually(t, "the silent stream probes its server", func() bool { return boundsCalls(c) > 0 })
		time.Sleep(20 * probe)
		if n := boundsCalls(c); n != 1 {
			t.Fatalf("the stream probed its server %d times over %v of silence, want once: a server without GetBounds is not probed again", n, 20*probe)
		}
		produceValues(t, cl, 2, 2)
		select {
		case <-time.After(5 * time.Second):
			t.Fatal("the stream yielded nothing for 5s after its server answered the probe Unimplemented")
		case rec := <-recs:
			if rec.Offset != 2 {
				t.Fatalf("got offset %d after the probe, want 2", rec.Offset)
			}
		}
		checkDense(t, recs, 3, 1)
		if err := <-errc; err != nil {
			t.Fatalf("the stream ended with %v", err)
		}
		var streams int64
		for _, nd := range c.nodes {
			streams += nd.called("ConsumeStream")
		}
		if streams != 1 {
			t.Errorf("%d ConsumeStream calls, want 1: the stream was resumed after the probe", streams)
		}
		if n := boundsCalls(c); n != 1 {
			t.Errorf("%d GetBounds calls in all, want the one probe", n)
		}
	})
}

// boundsCalls is how many GetBounds calls reached c's nodes.
func boundsCalls(c *fakeCluster) int64 {
	var n int64
	for _, nd := range c.nodes {
		n += nd.called("GetBounds")
	}
	return n
}

// TestStreamLeavesAServerHungBeforeItsFirstRecord: a Stream opened at the end of the log, on a
// server that hangs before it has a record to send. Over Connect, opening the stream returns
// only with the response headers, which the server sends with its first message: the probe
// started after the open never ran, and the stream waited for the connection's keepalive
// (40 s) while another server led and the records were written there.
func TestStreamLeavesAServerHungBeforeItsFirstRecord(t *testing.T) {
	defer client.SetStreamProbeInterval(100 * time.Millisecond)()
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithRequestTimeout(500*time.Millisecond))
		produceN(t, cl, 2)
		c.nodes[0].hung.Store(true) // the leader the stream reads from
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		recs, errc := collect(ctx, cl, 2, 3)
		eventually(t, "the stream opened on the hung leader", func() bool { return c.nodes[0].called("ConsumeStream") >= 1 })
		c.setLeader(1)
		produceValues(t, cl, 2, 3)
		resumedElsewhere(t, recs, errc, 2, 5)
		c.nodes[0].hung.Store(false)
	})
}

// resumedElsewhere checks that a stream whose server hung yields offsets from..to-1 (values
// "v<offset>", written on another server) within 5 s, and then ends without an error.
func resumedElsewhere(t *testing.T, recs <-chan client.Record, errc <-chan error, from, to uint64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for off := from; off < to; off++ {
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
}
