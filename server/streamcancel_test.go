package server

import (
	"context"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestCancelledStreamsEndCanceled: a ProduceStream, and a ConsumeStream tailing the log,
// whose client cancels them while its side is open end Canceled in the server's own account
// of the call (the request duration metric, by code), never OK: OK says the server ended the
// call of its own accord with everything answered. Over Connect, the client's cancel of a
// ProduceStream used to reach the server not at all: its handler stayed open (the streams-open
// gauge at 1) until the client closed the stream, which then ended OK.
func TestCancelledStreamsEndCanceled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr, MetricsAddr: "127.0.0.1:0"})
			c := newClient(t, tr, s.Addr())
			ctx := ctxT(t, 20*time.Second)

			// A ProduceStream with one record answered, then cancelled.
			pctx, cancelProduce := context.WithCancel(ctx)
			defer cancelProduce()
			ps, err := c.ProduceStream(pctx)
			if err != nil {
				t.Fatalf("ProduceStream: %v", err)
			}
			defer ps.Close()
			if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r0")}}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if _, err := ps.Receive(); err != nil {
				t.Fatalf("Receive: %v", err)
			}
			cancelProduce()

			// A ConsumeStream that delivered the record and tails the log, then cancelled.
			cctx, cancelConsume := context.WithCancel(ctx)
			defer cancelConsume()
			cs, err := c.ConsumeStream(cctx, &logv1.ConsumeRequest{Offset: 0})
			if err != nil {
				t.Fatalf("ConsumeStream: %v", err)
			}
			defer cs.Close()
			if _, err := cs.Receive(); err != nil {
				t.Fatalf("ConsumeStream Receive: %v", err)
			}
			cancelConsume()

			counts := func(rpc, code string) uint64 {
				m, err := telemetrytest.Find(telemetrytest.Scrape(t, s.MetricsAddr()), "commitlog_request_duration_seconds", map[string]string{"rpc": rpc, "code": code})
				if err != nil {
					return 0
				}
				return m.GetHistogram().GetSampleCount()
			}
			defer func() {
				if t.Failed() {
					fams := telemetrytest.Scrape(t, s.MetricsAddr())
					for _, name := range []string{"commitlog_request_duration_seconds", "commitlog_streams_open"} {
						for _, m := range fams[name].GetMetric() {
							t.Logf("%s %v count %d gauge %v", name, m.GetLabel(), m.GetHistogram().GetSampleCount(), m.GetGauge().GetValue())
						}
					}
				}
			}()
			waitFor(t, 10*time.Second, "both streams to end", func() bool {
				return counts("ProduceStream", "canceled") == 1 && counts("ConsumeStream", "canceled") == 1
			})
			for _, rpc := range []string{"ProduceStream", "ConsumeStream"} {
				if n := counts(rpc, "ok"); n != 0 {
					t.Errorf("%d cancelled %s calls ended OK", n, rpc)
				}
			}
		})
	}
}
