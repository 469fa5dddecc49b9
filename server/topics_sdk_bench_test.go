package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// BenchmarkSDKProducer measures the SDK's batching Producer against one node in one process
// (Connect, Raft with its fsynced WAL, the state machine, a segment log per partition): b.N
// records of 100 B with keys, idempotent or not, to a topic of 1 or 16 partitions. Batches of
// up to 1024 records, 5 ms linger, 16 batches in flight (an idempotent producer keeps one per
// partition). It reports records/s.
//
//	go test -run '^$' -bench BenchmarkSDKProducer -benchtime 200000x .
func BenchmarkSDKProducer(b *testing.B) {
	for _, parts := range []uint32{1, 16} {
		for _, idem := range []bool{false, true} {
			b.Run(fmt.Sprintf("partitions=%d/idempotent=%t", parts, idem), func(b *testing.B) {
				srv := startBenchServer(b, Config{})
				ctx := context.Background()
				cl, err := client.New(ctx, []string{srv.Addr()})
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				if _, err := cl.CreateTopic(ctx, "bench", parts, client.TopicConfig{}); err != nil {
					b.Fatal(err)
				}
				p, err := cl.NewProducer(client.ProducerIdempotence(idem), client.ProducerMaxInFlight(16))
				if err != nil {
					b.Fatal(err)
				}
				keys := make([][]byte, 256)
				for i := range keys {
					keys[i] = fmt.Appendf(nil, "key-%d", i)
				}
				value := make([]byte, 100)
				b.SetBytes(int64(len(value)))
				b.ResetTimer()
				var last *client.Future
				for i := range b.N {
					f, err := p.SendRecord(ctx, client.Record{Topic: "bench", Key: keys[i%len(keys)], Value: value})
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
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
