package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
)

// TestStreamYieldsNothingAfterCancel: once the caller's context is cancelled (here from the
// loop body, at the first record), Stream yields no more records, only ctx's error. It went on
// yielding the records already received (a batch of up to 1024 per message, and the messages
// the transport had buffered: grpc-go and net/http hand those out after the cancellation)
// before it noticed.
func TestStreamYieldsNothingAfterCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 200)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n, after := 0, 0
		var end error
		for rec, err := range cl.Stream(ctx, 0) {
			if err != nil {
				end = err
				break
			}
			n++
			if ctx.Err() != nil {
				after++
				continue
			}
			if rec.Offset == 100 {
				cancel()
			}
		}
		if after > 0 || !errors.Is(end, context.Canceled) {
			t.Fatalf("after the cancellation the stream yielded %d records (%d in all), then %v; want none, then context.Canceled", after, n, end)
		}
	})
}

// TestStreamYieldsNothingAfterCancelWithinABatch: the same within one message of a batching
// server (clienttest puts every record it holds in one, up to the client's 1024): the rest of
// the batch was yielded after the cancellation, however the transport answered.
func TestStreamYieldsNothingAfterCancelWithinABatch(t *testing.T) {
	for _, tr := range []string{"connect", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			l := clienttest.New()
			srv, err := l.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			cl, err := client.New(context.Background(), []string{srv.Addr()}, client.WithTransport(tr))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			values := make([][]byte, 200)
			for i := range values {
				values[i] = []byte("v")
			}
			if _, err := cl.ProduceBatch(context.Background(), values...); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			after := 0
			var end error
			for rec, err := range cl.Stream(ctx, 0) {
				if err != nil {
					end = err
					break
				}
				if ctx.Err() != nil {
					after++
				} else if rec.Offset == 100 {
					cancel()
				}
			}
			if after > 0 || !errors.Is(end, context.Canceled) {
				t.Fatalf("after the cancellation the stream yielded %d records, then %v; want none, then context.Canceled", after, end)
			}
		})
	}
}
