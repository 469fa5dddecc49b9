package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// BenchmarkProduceBatch measures a single node end to end in one process (transport, Raft with
// its fsynced WAL, the state machine, the segment log): batches of 512 records of 100 B from 4
// concurrent callers. It reports records/s; profile with -cpuprofile.
func BenchmarkProduceBatch(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			srv := startBenchServer(b, Config{Transport: tr})
			newc := tconnect.NewClient
			if tr == TransportGRPC {
				newc = tgrpc.NewClient
			}
			c, err := newc(srv.Addr(), transport.ClientConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			records := make([]*logv1.Record, 512)
			for i := range records {
				records[i] = &logv1.Record{Value: make([]byte, 100)}
			}
			const callers = 4
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + callers - 1) / callers
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if _, err := c.ProduceBatch(context.Background(), &logv1.ProduceBatchRequest{Records: records}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*callers*len(records))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// startBenchServer runs a single-node server with cfg (its data dir, name and addresses filled
// in) until the benchmark ends, and returns it once it leads.
func startBenchServer(b *testing.B, cfg Config) *Server {
	b.Helper()
	cfg.DataDir, cfg.NodeName, cfg.BindAddr, cfg.RPCPort = b.TempDir(), "bench", "127.0.0.1:0", -1
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	for !srv.node.IsLeader() {
		time.Sleep(5 * time.Millisecond)
	}
	return srv
}
