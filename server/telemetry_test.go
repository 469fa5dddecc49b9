package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// TestTelemetryMetricsAfterProduce produces through each transport and finds the produce
// counter, the latency histogram, the RPC metrics of the transport instrumentation and the
// node gauges in /metrics.
func TestTelemetryMetricsAfterProduce(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr, MetricsAddr: "127.0.0.1:0", RPCMetrics: true})
			c := newClient(t, tr, s.Addr())
			ctx := ctxT(t, 20*time.Second)
			const n = 5
			for i := range n {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "record-%d", i)}}); err != nil {
					t.Fatalf("Produce: %v", err)
				}
			}
			fams := telemetrytest.Scrape(t, s.MetricsAddr())
			m, err := telemetrytest.Find(fams, "commitlog_produce_records_total", map[string]string{"rpc": "Produce"})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.GetCounter().GetValue(); got != n {
				t.Errorf("produce records = %v, want %d", got, n)
			}
			m, err = telemetrytest.Find(fams, "commitlog_produce_bytes_total", map[string]string{"rpc": "Produce"})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.GetCounter().GetValue(); got != float64(n*len("record-0")) {
				t.Errorf("produce bytes = %v, want %d", got, n*len("record-0"))
			}
			m, err = telemetrytest.Find(fams, "commitlog_request_duration_seconds", map[string]string{"rpc": "Produce", "code": "ok"})
			if err != nil {
				t.Fatal(err)
			}
			h := m.GetHistogram()
			if h.GetSampleCount() != n || h.GetSampleSum() <= 0 {
				t.Errorf("Produce latency: %d samples summing to %v s, want %d positive", h.GetSampleCount(), h.GetSampleSum(), n)
			}
			if inf := h.GetBucket()[len(h.GetBucket())-1]; inf.GetCumulativeCount() != n {
				t.Errorf("last bucket holds %d samples, want all %d", inf.GetCumulativeCount(), n)
			}
			if _, err := telemetrytest.Find(fams, "rpc_server_call_duration_seconds", nil); err != nil {
				if _, err2 := telemetrytest.Find(fams, "rpc_server_duration_milliseconds", nil); err2 != nil {
					t.Errorf("no RPC metrics of the transport instrumentation: %v", err)
				}
			}
			for _, g := range []string{"commitlog_raft_commit_index", "commitlog_raft_applied_index", "commitlog_log_segments", "commitlog_log_size_bytes"} {
				m, err := telemetrytest.Find(fams, g, nil)
				if err != nil {
					t.Error(err)
					continue
				}
				if m.GetGauge().GetValue() <= 0 {
					t.Errorf("%s = %v, want positive after %d produces", g, m.GetGauge().GetValue(), n)
				}
			}
		})
	}
}

// TestTelemetryMeasuresTopicsAndGroups: the Topics and Groups services' calls (topic admin,
// consumer-group heartbeats and commits) were missing from commitlog_request_duration_seconds,
// failed ones included, so that an alert on its code!="ok" series never saw a refused commit
// or a failing heartbeat.
func TestTelemetryMeasuresTopicsAndGroups(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr, MetricsAddr: "127.0.0.1:0"})
			c := newClient(t, tr, s.Addr())
			ctx := ctxT(t, 20*time.Second)
			tc := c.(transport.TopicsClient)
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 1}); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "bad name"}); transport.CodeOf(err) != transport.InvalidArgument {
				t.Fatalf("CreateTopic of a bad name: %v, want InvalidArgument", err)
			}
			if _, err := groupsClient(t, c).ListGroups(ctx, &logv1.ListGroupsRequest{}); err != nil {
				t.Fatalf("ListGroups: %v", err)
			}
			fams := telemetrytest.Scrape(t, s.MetricsAddr())
			for _, want := range []map[string]string{
				{"rpc": "CreateTopic", "code": "ok"},
				{"rpc": "CreateTopic", "code": "invalid_argument"},
				{"rpc": "ListGroups", "code": "ok"},
			} {
				m, err := telemetrytest.Find(fams, "commitlog_request_duration_seconds", want)
				if err != nil {
					t.Error(err)
					continue
				}
				if n := m.GetHistogram().GetSampleCount(); n != 1 {
					t.Errorf("commitlog_request_duration_seconds%v counts %d calls, want 1", want, n)
				}
			}
		})
	}
}

// traced is a node with its own in-memory span recorder.
type traced struct {
	*testServer
	spans *tracetest.SpanRecorder
}

// startTracedPair starts a leader and a follower that joins it over Serf, each recording
// every span in memory.
func startTracedPair(t *testing.T, tr string) (leader, follower traced) {
	t.Helper()
	nodes := make([]traced, 2)
	for i := range nodes {
		rec := tracetest.NewSpanRecorder()
		cfg := Config{
			NodeName: fmt.Sprintf("node-%d", i), Transport: tr, GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			TraceSampleRatio: 1, TraceProcessors: []sdktrace.SpanProcessor{rec},
		}
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = traced{testServer: startNode(t, cfg, i == 0), spans: rec}
	}
	waitFor(t, 30*time.Second, "the follower knows the leader", func() bool {
		l, ok := nodes[1].node.Leader()
		return ok && l.ID == nodes[0].ID()
	})
	return nodes[0], nodes[1]
}

func endedSpan(t *testing.T, rec *tracetest.SpanRecorder, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	var seen []string
	for _, s := range rec.Ended() {
		if s.Name() == name && s.SpanKind() == kind {
			return s
		}
		seen = append(seen, fmt.Sprintf("%s(%v)", s.Name(), s.SpanKind()))
	}
	t.Fatalf("no ended %v span %q among %v", kind, name, seen)
	return nil
}

// TestTelemetryForwardedProduceIsOneTrace sends a produce to a follower, which forwards it
// to the leader: the follower's server and client spans and the leader's server span are
// one trace, each the parent of the next.
func TestTelemetryForwardedProduceIsOneTrace(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			leader, follower := startTracedPair(t, tr)
			c := newClient(t, tr, follower.Addr())
			if _, err := c.Produce(ctxT(t, 20*time.Second), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("forwarded")}}); err != nil {
				t.Fatalf("Produce on the follower: %v", err)
			}
			var fServer, fClient, lServer sdktrace.ReadOnlySpan
			// Server spans end after the response is on its way: wait for them.
			has := func(rec *tracetest.SpanRecorder, name string, kind trace.SpanKind) bool {
				for _, s := range rec.Ended() {
					if s.Name() == name && s.SpanKind() == kind {
						return true
					}
				}
				return false
			}
			waitFor(t, 10*time.Second, "the server spans of both nodes end", func() bool {
				return has(leader.spans, "log.v1.Log/ProduceBatch", trace.SpanKindServer) &&
					has(follower.spans, "log.v1.Log/Produce", trace.SpanKindServer)
			})
			fServer = endedSpan(t, follower.spans, "log.v1.Log/Produce", trace.SpanKindServer)
			fClient = endedSpan(t, follower.spans, "log.v1.Log/ProduceBatch", trace.SpanKindClient)
			lServer = endedSpan(t, leader.spans, "log.v1.Log/ProduceBatch", trace.SpanKindServer)
			id := fServer.SpanContext().TraceID()
			for name, s := range map[string]sdktrace.ReadOnlySpan{"follower client": fClient, "leader server": lServer} {
				if s.SpanContext().TraceID() != id {
					t.Errorf("%s span is in trace %v, want the follower's %v", name, s.SpanContext().TraceID(), id)
				}
			}
			if fClient.Parent().SpanID() != fServer.SpanContext().SpanID() {
				t.Errorf("forwarding client span's parent %v, want the follower's server span %v", fClient.Parent().SpanID(), fServer.SpanContext().SpanID())
			}
			if lServer.Parent().SpanID() != fClient.SpanContext().SpanID() || !lServer.Parent().IsRemote() {
				t.Errorf("leader server span's parent %v (remote %v), want the follower's client span %v",
					lServer.Parent().SpanID(), lServer.Parent().IsRemote(), fClient.SpanContext().SpanID())
			}
		})
	}
}

// TestTelemetryLongProduceStreamOnAFollowerBoundsItsTrace: a sampled ProduceStream sent to a
// follower made two spans for each of its proposals (the forward's client span, the leader's
// server span), in one trace, for as long as the stream lasted: a producer streaming one
// record at a time for an hour made a trace of millions of spans. Its first
// maxTracedStreamProposals are traced, the others not.
func TestTelemetryLongProduceStreamOnAFollowerBoundsItsTrace(t *testing.T) {
	leader, follower := startTracedPair(t, TransportConnect)
	c := newClient(t, TransportConnect, follower.Addr())
	ctx := ctxT(t, 60*time.Second)
	st, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = maxTracedStreamProposals + 20
	for i := range n { // one at a time: each record its own proposal, its own forward
		if err := st.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "r%d", i)}}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		if _, err := st.Receive(); err != nil {
			t.Fatalf("Receive %d: %v", i, err)
		}
	}
	_ = st.CloseSend()
	if _, err := st.Receive(); err != io.EOF {
		t.Fatalf("end of stream: %v, want EOF", err)
	}
	_ = st.Close()
	count := func(rec *tracetest.SpanRecorder, name string, kind trace.SpanKind) (n int) {
		for _, s := range rec.Ended() {
			if s.Name() == name && s.SpanKind() == kind {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "the follower's stream span ends", func() bool {
		return count(follower.spans, "log.v1.Log/ProduceStream", trace.SpanKindServer) == 1
	})
	if got := count(follower.spans, "log.v1.Log/ProduceBatch", trace.SpanKindClient); got != maxTracedStreamProposals {
		t.Errorf("the follower recorded %d forward spans for a stream of %d records sent one at a time, want the first %d", got, n, maxTracedStreamProposals)
	}
	if got := count(leader.spans, "log.v1.Log/ProduceBatch", trace.SpanKindServer); got > maxTracedStreamProposals {
		t.Errorf("the leader recorded %d spans of forwards for a stream of %d records, want at most %d", got, n, maxTracedStreamProposals)
	}
}

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := ggrpc.NewClient("passthrough:///"+addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// deadGossipAddr returns a loopback address where nothing gossips.
func deadGossipAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestTelemetryReadiness starts a node that cannot find its cluster: /readyz is 503 and the
// gRPC health service NOT_SERVING until the leader adds it (admin Join), then 200 and SERVING.
func TestTelemetryReadiness(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			leader := startServer(t, Config{NodeName: "leader", Transport: tr, GossipProfile: "test"})
			lone := startNode(t, Config{
				NodeName: "lone", Transport: tr, GossipProfile: "test", MetricsAddr: "127.0.0.1:0",
				StartJoinAddrs: []string{deadGossipAddr(t)},
			}, false)
			ctx := ctxT(t, 30*time.Second)
			hc := healthClient(t, lone.Addr())
			waitFor(t, 10*time.Second, "the API answers health checks", func() bool {
				_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				return err == nil
			})
			if code, body := telemetrytest.Get(t, lone.MetricsAddr(), "/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz without a leader = %d %q, want 503", code, body)
			}
			if code, _ := telemetrytest.Get(t, lone.MetricsAddr(), "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz without a leader = %d, want 200 (alive)", code)
			}
			for _, svc := range []string{"", "log.v1.Log"} {
				res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Errorf("health of %q without a leader = %v, %v; want NOT_SERVING", svc, res, err)
				}
			}

			if _, err := newClient(t, tr, leader.Addr()).Join(ctx, &logv1.JoinRequest{Id: lone.ID(), RaftAddr: lone.Addr()}); err != nil {
				t.Fatalf("Join: %v", err)
			}
			waitFor(t, 20*time.Second, "/readyz answers 200", func() bool {
				code, _ := telemetrytest.Get(t, lone.MetricsAddr(), "/readyz")
				return code == http.StatusOK
			})
			// /readyz asks Raft when it is called; the health status follows the leader
			// notification, which may come a moment later.
			waitFor(t, 10*time.Second, "health SERVING with a leader", func() bool {
				res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				return err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING
			})
		})
	}
}

// TestTelemetryHealthNotServingDuringShutdown watches the gRPC health status of a serving
// node and stops it: NOT_SERVING arrives before the watch ends.
func TestTelemetryHealthNotServingDuringShutdown(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr})
			ctx := ctxT(t, 30*time.Second)
			watch, err := healthClient(t, s.Addr()).Watch(ctx, &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			for {
				res, err := watch.Recv()
				if err != nil {
					t.Fatalf("Watch before shutdown: %v", err)
				}
				if res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
					break
				}
			}
			s.stop() // Run begins its graceful stop; the cleanup waits for it
			for {
				res, err := watch.Recv()
				if err != nil {
					t.Fatalf("the watch ended (%v) without reporting NOT_SERVING", err)
				}
				if res.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
					return
				}
			}
		})
	}
}

// BenchmarkTelemetry measures what telemetry costs: 100-byte produces from 16 concurrent
// callers against a single node, with telemetry off and on (default sampling, metrics
// endpoint serving, own instruments and transport instrumentation), on each transport. Besides
// wall time per produce it reports cpu-ns/op, the process's CPU time (server and client) per
// produce, which a loaded machine disturbs less. Compare the figures of one run:
// go test -run '^$' -bench Telemetry -count 5 .
func BenchmarkTelemetry(b *testing.B) {
	value := make([]byte, 100)
	for _, tr := range transports {
		for _, mode := range []string{"off", "on"} {
			b.Run(tr+"/"+mode, func(b *testing.B) {
				cfg := Config{
					NodeName: "bench", DataDir: b.TempDir(), BindAddr: "127.0.0.1:0", RPCPort: -1, Transport: tr,
					GossipProfile: "test", DisableTelemetry: mode == "off",
				}
				if mode == "on" {
					cfg.MetricsAddr = "127.0.0.1:0"
				}
				srv, err := New(cfg)
				if err != nil {
					b.Fatalf("New: %v", err)
				}
				ctx, stop := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- srv.Run(ctx) }()
				defer func() {
					stop()
					if err := <-done; err != nil {
						b.Errorf("Run: %v", err)
					}
				}()
				deadline := time.Now().Add(20 * time.Second)
				for !srv.node.IsLeader() {
					if time.Now().After(deadline) {
						b.Fatal("no leader after 20s")
					}
					time.Sleep(10 * time.Millisecond)
				}
				newc := tconnect.NewClient
				if tr == TransportGRPC {
					newc = tgrpc.NewClient
				}
				c, err := newc(srv.Addr(), transport.ClientConfig{})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				b.SetBytes(int64(len(value)))
				b.SetParallelism(8) // 16 callers on 2 cores
				b.ResetTimer()
				cpu0 := telemetrytest.ProcessCPU()
				defer func() { b.ReportMetric(float64(telemetrytest.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.Produce(context.Background(), &logv1.ProduceRequest{Record: &logv1.Record{Value: value}}); err != nil {
							b.Errorf("Produce: %v", err)
							return
						}
					}
				})
			})
		}
	}
}

// TestPartitionExists: what the telemetry asks before it drops a partition's series.
func TestPartitionExists(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 30*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	createTopicT(t, ctx, c, "t", 2)
	for _, tc := range []struct {
		topic string
		p     uint32
		want  bool
	}{{"default", 0, true}, {"t", 1, true}, {"t", 2, false}, {"nope", 0, false}} {
		if got := srv.partitionExists(tc.topic, tc.p); got != tc.want {
			t.Errorf("partitionExists(%q, %d) = %v, want %v", tc.topic, tc.p, got, tc.want)
		}
	}
	if _, err := c.(transport.TopicsClient).DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if srv.partitionExists("t", 0) {
		t.Error("a deleted topic's partition still exists")
	}
}
