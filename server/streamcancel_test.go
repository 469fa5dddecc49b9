package server

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"google.golang.org/protobuf/proto"
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

			defer func() {
				if t.Failed() {
					for _, rpc := range []string{"ProduceStream", "ConsumeStream"} {
						t.Logf("%s: %v, open: %v", rpc, requestCounts(t, s, rpc), streamsOpen(t, s, rpc))
					}
				}
			}()
			waitFor(t, 10*time.Second, "both streams to end", func() bool {
				return requestCounts(t, s, "ProduceStream")["canceled"] == 1 && requestCounts(t, s, "ConsumeStream")["canceled"] == 1
			})
			for _, rpc := range []string{"ProduceStream", "ConsumeStream"} {
				if n := requestCounts(t, s, rpc)["ok"]; n != 0 {
					t.Errorf("%d cancelled %s calls ended OK", n, rpc)
				}
			}
		})
	}
}

// streamsOpen returns the server's count of rpc's open streams.
func streamsOpen(t *testing.T, s *testServer, rpc string) float64 {
	t.Helper()
	m, err := telemetrytest.Find(telemetrytest.Scrape(t, s.MetricsAddr()), "commitlog_streams_open", map[string]string{"rpc": rpc})
	if err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

// requestCounts returns, for rpc, how many calls the server's request duration metric counts
// under each code.
func requestCounts(t *testing.T, s *testServer, rpc string) map[string]uint64 {
	t.Helper()
	counts := map[string]uint64{}
	for _, m := range telemetrytest.Scrape(t, s.MetricsAddr())["commitlog_request_duration_seconds"].GetMetric() {
		var r, code string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "rpc":
				r = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		if r == rpc {
			counts[code] += m.GetHistogram().GetSampleCount()
		}
	}
	return counts
}

// TestCancelledBusyStreamsEndCanceled: a stream the client cancels while the server is sending
// to it — a ConsumeStream catching up on many records, one whose client never reads, a
// ProduceStream whose client never reads its answers — ends Canceled in the server's account,
// as a stream cancelled while idle does. The server's Send fails then, with the transport's
// error for a stream the client reset, and the handlers made that Internal (toWire of an error
// it does not know): a server fault in the metrics, for every consumer that stopped reading.
func TestCancelledBusyStreamsEndCanceled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr, MetricsAddr: "127.0.0.1:0"})
			c := newClient(t, tr, s.Addr())
			ctx := ctxT(t, 60*time.Second)
			value := make([]byte, 100)
			for range 20 {
				recs := make([]*logv1.Record, 1000)
				for j := range recs {
					recs[j] = &logv1.Record{Value: value}
				}
				if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs}); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
			}
			defer func() {
				if t.Failed() {
					for _, rpc := range []string{"ConsumeStream", "ProduceStream"} {
						t.Logf("%s: %v", rpc, requestCounts(t, s, rpc))
					}
				}
			}()

			// Catching up: one record read of the 20,000, then cancelled.
			cctx, cancel := context.WithCancel(ctx)
			cs, err := c.ConsumeStream(cctx, &logv1.ConsumeRequest{Offset: 0})
			if err != nil {
				t.Fatalf("ConsumeStream: %v", err)
			}
			if _, err := cs.Receive(); err != nil {
				t.Fatalf("ConsumeStream Receive: %v", err)
			}
			cancel()
			_ = cs.Close()
			waitFor(t, 10*time.Second, "the catching-up stream to end", func() bool { return streamsOpen(t, s, "ConsumeStream") == 0 })

			// Never read: the server fills the flow-control windows and waits in Send.
			cctx, cancel = context.WithCancel(ctx)
			if cs, err = c.ConsumeStream(cctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
				t.Fatalf("ConsumeStream: %v", err)
			}
			waitFor(t, 10*time.Second, "the unread stream to open", func() bool { return streamsOpen(t, s, "ConsumeStream") == 1 })
			time.Sleep(500 * time.Millisecond)
			cancel()
			_ = cs.Close()
			waitFor(t, 10*time.Second, "the unread stream to end", func() bool { return streamsOpen(t, s, "ConsumeStream") == 0 })

			// A ProduceStream whose answers are never read, reset by its client while the
			// server waits in Send.
			produceStreamUnread(t, s.Addr(), tr)
			waitFor(t, 20*time.Second, "the ProduceStream to end", func() bool { return streamsOpen(t, s, "ProduceStream") == 0 })

			for rpc, want := range map[string]uint64{"ConsumeStream": 2, "ProduceStream": 1} {
				got := requestCounts(t, s, rpc)
				if got["canceled"] != want || len(got) != 1 {
					t.Errorf("%s calls by code: %v, want canceled: %d", rpc, got, want)
				}
			}
		})
	}
}

// produceStreamUnread opens a ProduceStream over h2c (in the protocol of transport tr) whose
// client offers a 64 KiB window for answers and reads none, sends records until the server,
// waiting in Send once that window is full, stops reading them (the sends stall), then resets
// the stream (closing the response body sends RST_STREAM), as a client that goes away does.
// (The SDK's client offers net/http's 4 MiB: hundreds of thousands of answers, too many to fill
// in a test's time on a slow machine.)
func produceStreamUnread(t *testing.T, addr, tr string) {
	t.Helper()
	msg, err := proto.Marshal(&logv1.ProduceRequest{Record: &logv1.Record{}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	var sent atomic.Int64
	go func() {
		for env := envelope(msg); ; sent.Add(1) {
			if _, err := pw.Write(env); err != nil {
				return
			}
		}
	}()
	ht := &http.Transport{Protocols: new(http.Protocols), HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10}}
	ht.Protocols.SetUnencryptedHTTP2(true)
	defer ht.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t, 60*time.Second), http.MethodPost, "http://"+addr+"/log.v1.Log/ProduceStream", pr)
	if err != nil {
		t.Fatal(err)
	}
	if tr == TransportConnect {
		req.Header.Set("Content-Type", "application/connect+proto")
		req.Header.Set("Connect-Protocol-Version", "1")
	} else {
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
	}
	res, err := ht.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	last := int64(-1)
	waitFor(t, 30*time.Second, "the client's sends to stall", func() bool {
		time.Sleep(300 * time.Millisecond)
		n := sent.Load()
		defer func() { last = n }()
		return n == last
	})
	t.Logf("%d requests sent before the stall", last)
	_ = res.Body.Close()
}
