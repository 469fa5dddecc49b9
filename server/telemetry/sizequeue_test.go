package telemetry

import (
	"context"
	"testing"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestSizeQueueOrderAndWindow: a stream's request sizes come back in the order they went in,
// across the queue moving what waits to its front, and at most produceStreamWindow wait (a
// request beyond it is not kept, and counted by RPC only).
func TestSizeQueueOrderAndWindow(t *testing.T) {
	var z sizeQueue
	in, out := 0, 0
	pop := func() {
		t.Helper()
		s, ok := z.pop()
		if !ok || s.size != out {
			t.Fatalf("pop: %v %v, want size %d", s, ok, out)
		}
		out++
	}
	// Interleaved, with a backlog that grows and shrinks: the queue wraps many times.
	for round := range 200 {
		for range round%7 + 1 {
			if !z.push(streamed{size: in}) {
				t.Fatalf("push %d refused with %d waiting", in, in-out)
			}
			in++
		}
		for range round % 5 {
			if out < in {
				pop()
			}
		}
	}
	for out < in {
		pop()
	}
	if _, ok := z.pop(); ok {
		t.Fatal("pop of an empty queue: ok")
	}
	for i := range produceStreamWindow {
		if !z.push(streamed{size: i}) {
			t.Fatalf("push %d refused under the window", i)
		}
	}
	if z.push(streamed{size: -1}) {
		t.Fatalf("push beyond %d waiting: kept", produceStreamWindow)
	}
	if s, ok := z.pop(); !ok || s.size != 0 {
		t.Fatalf("pop after the window filled: %v %v, want size 0", s, ok)
	}
	if !z.push(streamed{size: produceStreamWindow}) {
		t.Fatal("push after one left the full window: refused")
	}
}

// TestProduceStreamOpensSmall: the metrics a ProduceStream keeps cost little for a stream of
// one record (a channel of produceStreamWindow sizes cost every stream 128 KiB when it opened:
// 20,000 short streams allocated 2.5 GB).
func TestProduceStreamOpensSmall(t *testing.T) {
	tel := newTelemetry(t, Config{})
	svc := InstrumentLog(duplicateService{}, tel.Metrics())
	ctx := context.Background()
	res := testing.Benchmark(func(b *testing.B) {
		for range b.N {
			st := &bidi{reqs: []*logv1.ProduceRequest{{Record: &logv1.Record{Value: []byte("x")}}}}
			if err := svc.ProduceStream(ctx, st); err != nil {
				b.Fatal(err)
			}
		}
	})
	if per := res.AllocedBytesPerOp(); per > 16<<10 {
		t.Fatalf("a ProduceStream of one record allocates %d B, want under 16 KiB", per)
	}
}
