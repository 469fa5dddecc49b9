package loadgen

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/client/clienttest"
)

// BenchmarkRun measures the load generator itself, over the real SDK and transports, against the
// in-memory fake server: its records/s are the ceiling the tool can drive on this machine, to
// compare with what a real cluster gives. b.N records are produced per run.
func BenchmarkRun(b *testing.B) {
	for _, tr := range transports {
		for _, mode := range []Mode{ModeUnary, ModeBatch, ModeStream} {
			b.Run(tr+"/"+string(mode), func(b *testing.B) {
				log := clienttest.New()
				srv, err := log.Serve(clienttest.ServeOptions{Transport: tr})
				if err != nil {
					b.Fatal(err)
				}
				addr, stop := srv.Addr(), func() { _ = srv.Close() }
				defer stop()
				cfg := testConfig(tr, addr)
				cfg.Mode = mode
				cfg.Producers = 4
				cfg.Records = uint64(b.N)
				b.ResetTimer()
				res, err := Run(context.Background(), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if res.Produce.Records != uint64(b.N) {
					b.Fatalf("produced %d of %d", res.Produce.Records, b.N)
				}
				b.ReportMetric(res.Produce.RecordsPerSec, "records/s")
				b.ReportMetric(float64(res.Produce.Latency.P99.Microseconds()), "p99-µs")
			})
		}
	}
}
