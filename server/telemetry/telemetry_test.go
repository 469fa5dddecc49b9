package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTelemetry(t *testing.T, cfg Config) *Telemetry {
	t.Helper()
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	tel, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tel
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		env  map[string]string
	}{
		{"ratio above 1", Config{SampleRatio: 1.5}, nil},
		{"ratio NaN", Config{SampleRatio: math.NaN()}, nil},
		{"bad metrics address", Config{MetricsAddr: "no-port"}, nil},
		{"unknown OTLP protocol", Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tel, err := New(context.Background(), tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				if tel != nil {
					_ = tel.Close(context.Background())
				}
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestMetricsOff(t *testing.T) {
	for _, addr := range []string{"", MetricsOff} {
		tel, err := New(context.Background(), Config{MetricsAddr: addr})
		if err != nil {
			t.Fatalf("New(%q): %v", addr, err)
		}
		if got := tel.MetricsAddr(); got != "" {
			t.Errorf("MetricsAddr with %q = %q, want none", addr, got)
		}
		if err := tel.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := tel.Close(context.Background()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

// TestOTLPExporterFromEnvironment checks that an endpoint in the environment makes New build
// an OTLP exporter of the protocol asked for: the first bytes the exporter sends to a listener
// at that endpoint are an HTTP/2 preface for grpc and an HTTP/1.1 POST for http/protobuf (the
// default).
func TestOTLPExporterFromEnvironment(t *testing.T) {
	for _, tt := range []struct{ proto, want string }{
		{"grpc", "PRI * HTTP/2.0"},
		{"http/protobuf", "POST / HTTP/1.1"}, // a signal endpoint is used as given: its path is /
		{"", "POST / HTTP/1.1"},
	} {
		t.Run(tt.proto, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			first := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					first <- "accept: " + err.Error()
					return
				}
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, len(tt.want))
				n, err := io.ReadFull(c, buf)
				if err != nil {
					first <- fmt.Sprintf("read %q: %v", buf[:n], err)
					return
				}
				first <- string(buf)
			}()
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+ln.Addr().String())
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tt.proto)
			tel := newTelemetry(t, Config{MetricsAddr: MetricsOff})
			exp, err := tel.otlpExporter(context.Background())
			if err != nil || exp == nil {
				t.Fatalf("otlpExporter = %v, %v; want an exporter", exp, err)
			}
			// The listener never answers: the export fails on its deadline, after sending.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			exported := make(chan struct{})
			go func() {
				defer close(exported)
				_ = exp.ExportSpans(ctx, tracetest.SpanStubs{{Name: "probe"}}.Snapshots())
			}()
			select {
			case got := <-first:
				if got != tt.want {
					t.Fatalf("protocol %q: exporter sent %q first, want %q", tt.proto, got, tt.want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("protocol %q: the exporter never connected", tt.proto)
			}
			cancel()
			<-exported
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			_ = exp.Shutdown(sctx)
		})
	}
}

// TestServiceMetrics calls an instrumented service directly and reads the Prometheus
// exposition: counters by RPC, the latency histogram by RPC and code, batch sizes, streams.
func TestServiceMetrics(t *testing.T) {
	tel := newTelemetry(t, Config{})
	inner := transporttest.NewService()
	svc := InstrumentLog(inner, tel.Metrics())
	ctx := t.Context()

	for _, v := range []string{"a", "bcd"} {
		if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	if _, err := svc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("12345")}, {Value: []byte("6")}, {}}}); err != nil {
		t.Fatalf("ProduceBatch: %v", err)
	}
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: 1}); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: 99}); transport.CodeOf(err) != transport.OutOfRange {
		t.Fatalf("Consume past the end: %v, want OutOfRange", err)
	}
	// A stream that is open while we scrape, then ends.
	streamCtx, endStream := context.WithCancel(ctx)
	sent := make(chan struct{}, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = svc.ConsumeStream(streamCtx, &logv1.ConsumeRequest{Offset: 0}, sendFunc(func(*logv1.ConsumeResponse) error {
			sent <- struct{}{}
			return nil
		}))
	})
	for range 5 { // every record of the log
		<-sent
	}

	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	counter := func(name string, labels map[string]string) float64 {
		t.Helper()
		m, err := telemetrytest.Find(fams, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"commitlog_produce_records_total", map[string]string{"rpc": "Produce"}, 2},
		{"commitlog_produce_bytes_total", map[string]string{"rpc": "Produce"}, 4},
		{"commitlog_produce_records_total", map[string]string{"rpc": "ProduceBatch"}, 3},
		{"commitlog_produce_bytes_total", map[string]string{"rpc": "ProduceBatch"}, 6},
		{"commitlog_consume_records_total", map[string]string{"rpc": "Consume"}, 1},
		{"commitlog_consume_bytes_total", map[string]string{"rpc": "Consume"}, 3},
		{"commitlog_consume_records_total", map[string]string{"rpc": "ConsumeStream"}, 5},
		{"commitlog_streams_open", map[string]string{"rpc": "ConsumeStream"}, 1},
	}
	for _, c := range checks {
		if got := counter(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	hist := func(name string, labels map[string]string) (uint64, float64) {
		t.Helper()
		m, err := telemetrytest.Find(fams, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	if n, sum := hist("commitlog_request_duration_seconds", map[string]string{"rpc": "Produce", "code": "ok"}); n != 2 || sum <= 0 {
		t.Errorf("Produce ok latency: %d samples summing to %v, want 2 positive", n, sum)
	}
	if n, _ := hist("commitlog_request_duration_seconds", map[string]string{"rpc": "Consume", "code": "out_of_range"}); n != 1 {
		t.Errorf("Consume out_of_range latency: %d samples, want 1", n)
	}
	if n, sum := hist("commitlog_produce_batch_size", map[string]string{"rpc": "ProduceBatch"}); n != 1 || sum != 3 {
		t.Errorf("ProduceBatch batch size: %d samples summing to %v, want 1 of 3", n, sum)
	}

	endStream()
	wg.Wait()
	fams = telemetrytest.Scrape(t, tel.MetricsAddr())
	if got := counter("commitlog_streams_open", map[string]string{"rpc": "ConsumeStream"}); got != 0 {
		t.Errorf("open ConsumeStream streams after it ended = %v, want 0", got)
	}
	if n, _ := hist("commitlog_request_duration_seconds", map[string]string{"rpc": "ConsumeStream", "code": "canceled"}); n != 1 {
		t.Errorf("ConsumeStream (ended by its ctx) latency samples = %d, want 1", n)
	}
}

// sendFunc is a transport.ServerStream.
type sendFunc func(*logv1.ConsumeResponse) error

func (f sendFunc) Send(r *logv1.ConsumeResponse) error { return f(r) }

// TestProduceStreamMetrics checks that ProduceStream counts what it acknowledges.
func TestProduceStreamMetrics(t *testing.T) {
	tel := newTelemetry(t, Config{})
	svc := InstrumentLog(transporttest.NewService(), tel.Metrics())
	reqs := []*logv1.ProduceRequest{{Record: &logv1.Record{Value: []byte("xx")}}, {Record: &logv1.Record{Value: []byte("yyy")}}}
	st := &bidi{reqs: reqs}
	if err := svc.ProduceStream(t.Context(), st); err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	if st.sent != 2 {
		t.Fatalf("sent %d responses, want 2", st.sent)
	}
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	for name, want := range map[string]float64{"commitlog_produce_records_total": 2, "commitlog_produce_bytes_total": 5} {
		m, err := telemetrytest.Find(fams, name, map[string]string{"rpc": "ProduceStream"})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

type bidi struct {
	reqs []*logv1.ProduceRequest
	sent int
}

func (b *bidi) Receive() (*logv1.ProduceRequest, error) {
	if len(b.reqs) == 0 {
		return nil, io.EOF
	}
	r := b.reqs[0]
	b.reqs = b.reqs[1:]
	return r, nil
}

func (b *bidi) Send(*logv1.ProduceResponse) error { b.sent++; return nil }

// TestNodeMetrics checks the observable gauges from consensus and storage, and the leader
// change counter.
func TestNodeMetrics(t *testing.T) {
	tel := newTelemetry(t, Config{})
	node := newFakeNode("a")
	node.set(func(s *consensus.Status) {
		s.State, s.Term, s.CommitIndex, s.AppliedIndex, s.LastIndex = "leader", 3, 40, 38, 41
		s.Leader = consensus.Server{ID: "a", Address: "a:1"}
		s.Fenced = "divergence alarm: test"
		s.LogWriteFailures = 7
	})
	node.setServers([]consensus.ServerStatus{
		{Server: consensus.Server{ID: "a"}, Leader: true},
		{Server: consensus.Server{ID: "b"}, MatchIndex: 30},
		{Server: consensus.Server{ID: "c"}, MatchIndex: 40},
	})
	if err := tel.Observe(Sources{Consensus: node, Segments: fakeSegments{}}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	node.set(func(s *consensus.Status) { s.Leader = consensus.Server{} })                        // lost
	node.set(func(s *consensus.Status) { s.Leader = consensus.Server{ID: "a", Address: "a:1"} }) // regained

	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"commitlog_raft_commit_index", nil, 40},
		{"commitlog_raft_applied_index", nil, 38},
		{"commitlog_raft_last_index", nil, 41},
		{"commitlog_raft_term", nil, 3},
		{"commitlog_raft_leader", nil, 1},
		{"commitlog_raft_fenced", nil, 1},
		{"commitlog_raft_log_write_failures_total", nil, 7},
		{"commitlog_raft_follower_lag", map[string]string{"follower": "b"}, 10},
		{"commitlog_raft_follower_lag", map[string]string{"follower": "c"}, 0},
		{"commitlog_raft_leader_changes_total", nil, 2},
		{"commitlog_log_segments", nil, 3},
		{"commitlog_log_size_bytes", nil, 12345},
	}
	for _, tt := range tests {
		m, err := telemetrytest.Find(fams, tt.name, tt.labels)
		if err != nil {
			t.Error(err)
			continue
		}
		got := m.GetGauge().GetValue()
		if m.GetCounter() != nil {
			got = m.GetCounter().GetValue()
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if _, err := telemetrytest.Find(fams, "commitlog_raft_follower_lag", map[string]string{"follower": "a"}); err == nil {
		t.Errorf("the leader reports a lag for itself")
	}
	if err := tel.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := node.subscribers(); n != 0 {
		t.Errorf("%d leader subscriptions left after Close", n)
	}
}

// TestRuntimeMetrics: /metrics served no series of the Go runtime or of the process, so a
// node's goroutines, heap, resident memory and open files under load (a leak) could not be
// watched where its other metrics are.
func TestRuntimeMetrics(t *testing.T) {
	tel := newTelemetry(t, Config{})
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	names := []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_threads"}
	if runtime.GOOS == "linux" {
		names = append(names, "process_resident_memory_bytes", "process_open_fds")
	}
	for _, name := range names {
		m, err := telemetrytest.Find(fams, name, nil)
		if err != nil {
			t.Error(err)
			continue
		}
		if v := m.GetGauge().GetValue(); v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if err := tel.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestReadinessAndHealth walks a node through no leader, a leader while behind, caught up,
// leader lost and drain, checking /readyz, /healthz and the gRPC health status each time.
// TestLeaderChangesCounterStartsAtZero: commitlog_raft_leader_changes_total (and
// commitlog_raft_snapshots_total) was missing until the first change, so that it first appeared at 1 and Prometheus' increase() over it (an alert
// on leader changes) never saw that first change: a node that started without a leader, then
// found one, showed no change at all.
func TestLeaderChangesCounterStartsAtZero(t *testing.T) {
	tel := newTelemetry(t, Config{})
	if err := tel.Observe(Sources{Consensus: newFakeNode("a")}); err != nil { // no leader yet
		t.Fatalf("Observe: %v", err)
	}
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	for _, name := range []string{"commitlog_raft_leader_changes_total", "commitlog_raft_snapshots_total"} {
		m, err := telemetrytest.Find(fams, name, nil)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := m.GetCounter().GetValue(); got != 0 {
			t.Errorf("%s = %v before any, want 0", name, got)
		}
	}
}

// TestLastContactOfAFollowerThatNeverHeardALeader: a follower that had not heard from any
// leader since it started (waiting for --bootstrap-expect, restarted into a partition)
// reported commitlog_raft_last_contact_seconds 0, as a follower that just heard one does, so
// that an alert on it never fired for a node that had no contact at all.
func TestLastContactOfAFollowerThatNeverHeardALeader(t *testing.T) {
	tel := newTelemetry(t, Config{})
	if err := tel.Observe(Sources{Consensus: newFakeNode("a")}); err != nil { // follower, no contact
		t.Fatalf("Observe: %v", err)
	}
	m, err := telemetrytest.Find(telemetrytest.Scrape(t, tel.MetricsAddr()), "commitlog_raft_last_contact_seconds", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetGauge().GetValue(); got <= 0 {
		t.Fatalf("commitlog_raft_last_contact_seconds = %v on a follower that never heard a leader, want the time since it started", got)
	}
}

func TestReadinessAndHealth(t *testing.T) {
	tel := newTelemetry(t, Config{})
	addr := tel.MetricsAddr()
	if code, body := telemetrytest.Get(t, addr, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Observe = %d %q, want 503", code, body)
	}
	node := newFakeNode("b")
	var (
		mu     sync.Mutex
		status []transport.HealthStatus
	)
	lastStatus := func() transport.HealthStatus {
		mu.Lock()
		defer mu.Unlock()
		if len(status) == 0 {
			return transport.HealthUnknown
		}
		return status[len(status)-1]
	}
	var liveErr error
	if err := tel.Observe(Sources{
		Consensus: node,
		Live:      func() error { return liveErr },
		SetHealth: func(s transport.HealthStatus) { mu.Lock(); status = append(status, s); mu.Unlock() },
	}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	steps := []struct {
		name       string
		change     func(*consensus.Status)
		wantReady  bool
		wantReason string
		wantHealth transport.HealthStatus
	}{
		{"no leader", func(*consensus.Status) {}, false, "no leader", transport.HealthNotServing},
		{"leader learned while behind", func(s *consensus.Status) {
			s.Term, s.CommitIndex, s.AppliedIndex = 2, 10, 4
			s.Leader = consensus.Server{ID: "a", Address: "a:1"}
		}, false, "catching up", transport.HealthServing},
		{"still behind the target", func(s *consensus.Status) { s.AppliedIndex = 9 }, false, "catching up", transport.HealthServing},
		{"caught up (commit index moved on)", func(s *consensus.Status) { s.AppliedIndex, s.CommitIndex = 10, 12 }, true, "ready", transport.HealthServing},
		{"leader lost", func(s *consensus.Status) { s.Leader = consensus.Server{} }, false, "no leader", transport.HealthNotServing},
		{"new leader in a new term, already applied", func(s *consensus.Status) {
			s.Term, s.AppliedIndex, s.CommitIndex = 3, 12, 12
			s.Leader = consensus.Server{ID: "c", Address: "c:1"}
		}, true, "ready", transport.HealthServing},
	}
	for _, st := range steps {
		node.set(st.change)
		code, body := telemetrytest.Get(t, addr, "/readyz")
		if ready := code == http.StatusOK; ready != st.wantReady || !strings.Contains(body, st.wantReason) {
			t.Errorf("%s: /readyz = %d %q, want ready=%v with %q", st.name, code, body, st.wantReady, st.wantReason)
		}
		if got := lastStatus(); got != st.wantHealth {
			t.Errorf("%s: gRPC health %v, want %v", st.name, got, st.wantHealth)
		}
		if code, _ := telemetrytest.Get(t, addr, "/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz = %d, want 200", st.name, code)
		}
	}

	liveErr = errors.New("state machine failed")
	if code, body := telemetrytest.Get(t, addr, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "state machine failed") {
		t.Errorf("/healthz after a failure = %d %q, want 503 naming it", code, body)
	}
	// A node whose state machine stopped (its disk full under the commit log's segments) and
	// whose Raft log lags too (the same full disk) answered "catching up", which goes away by
	// itself; the failure that needs an operator (a restart) is the reason to give.
	node.set(func(s *consensus.Status) { s.AppliedIndex = 5 })
	if code, body := telemetrytest.Get(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "state machine failed") {
		t.Errorf("/readyz after a failure, behind = %d %q, want 503 naming the failure", code, body)
	}
	node.set(func(s *consensus.Status) { s.AppliedIndex = 12 })
	liveErr = nil

	tel.Drain()
	if code, body := telemetrytest.Get(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after Drain = %d %q, want 503 shutting down", code, body)
	}
	node.set(func(s *consensus.Status) { s.Leader = consensus.Server{} })
	node.set(func(s *consensus.Status) { s.Leader = consensus.Server{ID: "a", Address: "a:1"} })
	if got := lastStatus(); got != transport.HealthNotServing {
		t.Errorf("gRPC health after Drain and a new leader = %v, want NOT_SERVING", got)
	}
}

// TestSnapshotMetrics checks InstrumentStateMachine: optional interfaces are kept exactly,
// and a persisted snapshot is counted and timed.
func TestSnapshotMetrics(t *testing.T) {
	tel := newTelemetry(t, Config{})
	plain := InstrumentStateMachine(plainSM{}, tel.Metrics())
	if _, ok := plain.(consensus.SnapshotSource); ok {
		t.Errorf("a plain state machine became a SnapshotSource")
	}
	sized := InstrumentStateMachine(sizedSM{}, tel.Metrics())
	if _, ok := sized.(consensus.SnapshotSizer); !ok {
		t.Errorf("a SnapshotSizer lost its interface")
	}
	if n, err := sized.(consensus.SnapshotSizer).SnapshotDataSize(nil); n != 7 || err != nil {
		t.Errorf("SnapshotDataSize = %d, %v; want the inner 7", n, err)
	}
	for range 2 {
		snap, err := sized.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := snap.Persist(&b); err != nil || b.String() != "manifest" {
			t.Fatalf("Persist = %q, %v", b.String(), err)
		}
		snap.Release()
	}
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	m, err := telemetrytest.Find(fams, "commitlog_raft_snapshots_total", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Errorf("snapshots = %v, want 2", got)
	}
	m, err = telemetrytest.Find(fams, "commitlog_raft_snapshot_duration_seconds", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("snapshot durations = %v, want 2", got)
	}
}

type plainSM struct{}

func (plainSM) Apply(e []consensus.Entry) []any               { return make([]any, len(e)) }
func (plainSM) Snapshot() (consensus.Snapshot, error)         { return manifestSnap{}, nil }
func (plainSM) Restore(manifest []byte, data io.Reader) error { return nil }

type sizedSM struct{ plainSM }

func (sizedSM) SnapshotData([]byte) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("7 bytes")), nil
}
func (sizedSM) SnapshotDataSize([]byte) (int64, error) { return 7, nil }

type manifestSnap struct{}

func (manifestSnap) Persist(w io.Writer) error { _, err := io.WriteString(w, "manifest"); return err }
func (manifestSnap) Release()                  {}

// TestCertExpiryMetric checks the gauge of seconds until each certificate expires, labelled by
// role, kind and subject, and that it follows what the source reports (a reload).
func TestCertExpiryMetric(t *testing.T) {
	tel := newTelemetry(t, Config{})
	var mu sync.Mutex
	now := time.Now()
	certs := []CertExpiry{
		{Role: "server", Kind: "cert", Subject: "node-1", NotAfter: now.Add(10 * 24 * time.Hour)},
		{Role: "server", Kind: "ca", Subject: "test CA", NotAfter: now.Add(-time.Hour)},
	}
	src := func() []CertExpiry { mu.Lock(); defer mu.Unlock(); return slices.Clone(certs) }
	if err := tel.Observe(Sources{Certificates: src}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	check := func(subject, kind string, want time.Duration) {
		t.Helper()
		upper := (want - time.Since(now)).Seconds()
		fams := telemetrytest.Scrape(t, tel.MetricsAddr())
		lower := (want - time.Since(now)).Seconds()
		m, err := telemetrytest.Find(fams, "commitlog_tls_cert_expiry_seconds", map[string]string{"role": "server", "kind": kind, "subject": subject})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.GetGauge().GetValue(); got > upper || got < lower {
			t.Errorf("%s %s: %v s until expiry, want between %v and %v s", kind, subject, got, lower, upper)
		}
	}
	check("node-1", "cert", 10*24*time.Hour)
	check("test CA", "ca", -time.Hour)

	mu.Lock()
	certs[0] = CertExpiry{Role: "server", Kind: "cert", Subject: "node-1b", NotAfter: now.Add(90 * 24 * time.Hour)}
	mu.Unlock()
	check("node-1b", "cert", 90*24*time.Hour)
	if _, err := telemetrytest.Find(telemetrytest.Scrape(t, tel.MetricsAddr()), "commitlog_tls_cert_expiry_seconds", map[string]string{"subject": "node-1"}); err == nil {
		t.Error("the replaced certificate is still reported")
	}
}

// TestReadinessWaitsForTheLeadersCommitIndex: a follower whose own commit index lags the
// leader's (it learns the leader's with the next entries) is ready only once it has applied up
// to the leader's commit index, asked once per term; a follower that cannot ask is not ready.
func TestReadinessWaitsForTheLeadersCommitIndex(t *testing.T) {
	tel := newTelemetry(t, Config{})
	node := newFakeNode("b")
	var (
		mu       sync.Mutex
		commit   uint64 = 3002
		askErr   error
		asked    []consensus.Server
		answered = func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return commit, askErr }
	)
	if err := tel.Observe(Sources{Consensus: node, LeaderCommitIndex: func(_ context.Context, leader consensus.Server) (uint64, error) {
		mu.Lock()
		asked = append(asked, leader)
		mu.Unlock()
		return answered()
	}}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	check := func(what string, wantReady bool, wantReason string) {
		t.Helper()
		if ready, reason := tel.Ready(); ready != wantReady || !strings.Contains(reason, wantReason) {
			t.Errorf("%s: Ready = %v %q, want %v with %q", what, ready, reason, wantReady, wantReason)
		}
	}
	leader := consensus.Server{ID: "a", Address: "a:1"}
	mu.Lock()
	askErr = errors.New("unreachable")
	mu.Unlock()
	node.set(func(s *consensus.Status) { s.Term, s.Leader, s.CommitIndex, s.AppliedIndex = 2, leader, 0, 0 })
	check("the leader cannot be asked", false, "cannot learn the leader's commit index: unreachable")
	mu.Lock()
	askErr = nil
	mu.Unlock()
	check("a new follower, its own commit index 0", false, "catching up: applied index 0 of 3002")
	node.set(func(s *consensus.Status) { s.CommitIndex, s.AppliedIndex = 3002, 3001 })
	check("one entry behind", false, "catching up: applied index 3001 of 3002")
	node.set(func(s *consensus.Status) { s.AppliedIndex = 3002 })
	check("caught up", true, "ready")
	mu.Lock()
	n := len(asked)
	mu.Unlock()
	if n != 2 || asked[1] != leader {
		t.Errorf("asked %v, want the leader twice (once failing, once answering in term 2)", asked)
	}
	// The leader itself is its own target.
	node.set(func(s *consensus.Status) {
		s.Term, s.State, s.Leader = 3, "leader", consensus.Server{ID: "b", Address: "b:1"}
	})
	check("leader", true, "ready")
	mu.Lock()
	got := len(asked)
	mu.Unlock()
	if got != n {
		t.Errorf("a leader asked itself: %d questions, want %d", got, n)
	}
}

// TestReadinessKeepsTheLeadersCommitIndex: the leader event of a term can arrive after a
// readiness check has already asked the leader (Status shows the leader first). It must not
// lower the target to the follower's own commit index: a server joining a cluster with 3002
// committed entries was ready with none applied (TestReadyzWaitsForLeaderCommit, in CI).
func TestReadinessKeepsTheLeadersCommitIndex(t *testing.T) {
	tel := newTelemetry(t, Config{})
	node := newFakeNode("b")
	if err := tel.Observe(Sources{Consensus: node, LeaderCommitIndex: func(context.Context, consensus.Server) (uint64, error) {
		return 3002, nil
	}}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	node.setQuietly(func(s *consensus.Status) { s.Term, s.Leader = 2, consensus.Server{ID: "a", Address: "a:1"} })
	if ready, reason := tel.Ready(); ready || !strings.Contains(reason, "applied index 0 of 3002") {
		t.Fatalf("before the leader event: Ready = %v %q, want catching up to 3002", ready, reason)
	}
	node.notify()
	if ready, reason := tel.Ready(); ready || !strings.Contains(reason, "applied index 0 of 3002") {
		t.Fatalf("after the leader event: Ready = %v %q, want catching up to 3002", ready, reason)
	}
	node.setQuietly(func(s *consensus.Status) { s.CommitIndex, s.AppliedIndex = 3002, 3002 })
	if ready, reason := tel.Ready(); !ready {
		t.Fatalf("caught up: Ready = false %q", reason)
	}
}

// TestReadinessAsksAgainAfterTheLeaderWasLost: a follower cut off from its leader for a while
// (a partition) learns the same leader again in the same term: with pre-vote, a follower that
// could reach no one never raised its term, and the leader, which kept a quorum, committed on.
// The readiness target of that term, the leader's commit index asked before the partition,
// says nothing of what was committed meanwhile: the node must ask again, not be ready while
// it is far behind.
func TestReadinessAsksAgainAfterTheLeaderWasLost(t *testing.T) {
	tel := newTelemetry(t, Config{})
	node := newFakeNode("b")
	var (
		mu     sync.Mutex
		commit uint64 = 100
	)
	if err := tel.Observe(Sources{Consensus: node, LeaderCommitIndex: func(context.Context, consensus.Server) (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		return commit, nil
	}}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	leader := consensus.Server{ID: "a", Address: "a:1"}
	node.set(func(s *consensus.Status) { s.Term, s.Leader, s.CommitIndex, s.AppliedIndex = 2, leader, 100, 100 })
	if ready, reason := tel.Ready(); !ready {
		t.Fatalf("caught up: Ready = false %q", reason)
	}
	// Partitioned: the leader is lost, the term stays (pre-vote failed), the others commit on.
	node.set(func(s *consensus.Status) { s.Leader = consensus.Server{} })
	if ready, reason := tel.Ready(); ready || !strings.Contains(reason, "no leader") {
		t.Fatalf("partitioned: Ready = %v %q, want no leader", ready, reason)
	}
	mu.Lock()
	commit = 5000
	mu.Unlock()
	// Healed: the same leader, the same term; the follower has applied nothing new yet.
	node.set(func(s *consensus.Status) { s.Leader = leader })
	if ready, reason := tel.Ready(); ready || !strings.Contains(reason, "applied index 100 of 5000") {
		t.Fatalf("the leader learned again, 4900 entries behind: Ready = %v %q, want catching up to 5000", ready, reason)
	}
	node.set(func(s *consensus.Status) { s.CommitIndex, s.AppliedIndex = 5000, 5000 })
	if ready, reason := tel.Ready(); !ready {
		t.Fatalf("caught up again: Ready = false %q", reason)
	}
}

// TestReadinessFollowsTheDivergenceAlarm: a node whose divergence alarm is raised answers every
// read DATA_LOSS; it was ready (a Service kept sending it readers) and now is not, while it
// stays alive (a restart keeps the alarm).
func TestReadinessFollowsTheDivergenceAlarm(t *testing.T) {
	tel := newTelemetry(t, Config{})
	node := newFakeNode("a")
	var (
		mu    sync.Mutex
		alarm string
	)
	if err := tel.Observe(Sources{Consensus: node, Diverged: func() string { mu.Lock(); defer mu.Unlock(); return alarm }}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	node.set(func(s *consensus.Status) {
		s.Term, s.State, s.Leader, s.CommitIndex, s.AppliedIndex = 2, "leader", consensus.Server{ID: "a", Address: "a:1"}, 5, 5
	})
	if ready, reason := tel.Ready(); !ready {
		t.Fatalf("Ready = false %q, want ready", reason)
	}
	mu.Lock()
	alarm = "at offset 7 its chained checksum is 00000001, the cluster majority's 00000002"
	mu.Unlock()
	if ready, reason := tel.Ready(); ready || !strings.Contains(reason, "divergence alarm: at offset 7") {
		t.Errorf("alarm raised: Ready = %v %q, want not ready, naming the alarm", ready, reason)
	}
}
