package client_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// The benchmarks measure the client and transport against the in-process
// fake cluster (an in-memory log: no Raft, no fsync), so they bound what the
// SDK adds to a request, not what the service achieves.

func benchClient(b *testing.B, tr string) (*fakeCluster, *client.Client) {
	b.Helper()
	c := newFakeCluster(b, tr, 3)
	cl, err := client.New(context.Background(), c.addrs(), client.WithTransport(tr))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return c, cl
}

var value100 = make([]byte, 100)

func BenchmarkProduce(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			_, cl := benchClient(b, tr)
			ctx := context.Background()
			b.SetBytes(int64(len(value100)))
			for b.Loop() {
				if _, err := cl.Produce(ctx, value100); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkProduceParallel(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			_, cl := benchClient(b, tr)
			ctx := context.Background()
			b.SetBytes(int64(len(value100)))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cl.Produce(ctx, value100); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkProducer(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			_, cl := benchClient(b, tr)
			p, err := cl.NewProducer(client.ProducerIdempotence(false))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(int64(len(value100)))
			var last *client.Future
			for b.Loop() {
				f, err := p.Send(ctx, value100)
				if err != nil {
					b.Fatal(err)
				}
				last = f
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if _, err := last.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkProducerParallel is many goroutines sharing one Producer through
// SendFunc, as the load generator's batch mode does: it shows the cost of
// Send's locks and channel operations under contention.
func BenchmarkProducerParallel(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			_, cl := benchClient(b, tr)
			p, err := cl.NewProducer(client.ProducerIdempotence(false))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var failed atomic.Int64
			cb := func(_ uint64, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			b.SetBytes(int64(len(value100)))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := p.SendFunc(ctx, value100, cb); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d records failed", n)
			}
		})
	}
}

func BenchmarkStream(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			_, cl := benchClient(b, tr)
			ctx := context.Background()
			const n = 10_000
			values := make([][]byte, 1000)
			for i := range values {
				values[i] = value100
			}
			for range n / len(values) {
				if _, err := cl.ProduceBatch(ctx, values...); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(value100)) * n)
			for b.Loop() {
				read := 0
				for rec, err := range cl.Stream(ctx, 0) {
					if err != nil {
						b.Fatal(err)
					}
					read++
					if rec.Offset == n-1 {
						break
					}
				}
				if read != n {
					b.Fatalf("read %d records, want %d", read, n)
				}
			}
		})
	}
}
