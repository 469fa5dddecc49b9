package transporttest

import (
	"context"
	"strings"
	"sync"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// telemetryRig is one side's OpenTelemetry SDK, recording in memory.
type telemetryRig struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	cfg    *transport.Telemetry
}

func newTelemetryRig(t *testing.T, public bool) *telemetryRig {
	r := &telemetryRig{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	r.cfg = &transport.Telemetry{TracerProvider: tp, MeterProvider: mp, PublicEndpoint: public}
	return r
}

// spanNamed returns the ended span whose name contains name.
func (r *telemetryRig) spanNamed(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var names []string
	for _, s := range r.spans.Ended() {
		if strings.Contains(s.Name(), name) {
			return s
		}
		names = append(names, s.Name())
	}
	t.Fatalf("no ended span named like %q among %q", name, names)
	return nil
}

// metricNames returns the names of the instruments that recorded something.
func (r *telemetryRig) metricNames(t *testing.T) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	return names
}

// testTelemetry checks ServerConfig.Telemetry and ClientConfig.Telemetry:
// a client call inside a span continues that trace on the server (the
// handler's ctx carries it), both sides record RPC metrics (none
// WithoutMetrics), health checks make no spans, and a PublicEndpoint server
// starts a new trace linked to the caller's.
func testTelemetry(t *testing.T, h Harness) {
	cases := []struct {
		name                   string
		public, withoutMetrics bool
	}{
		{"Trusted", false, false},
		{"PublicEndpoint", true, false},
		{"WithoutMetrics", false, true},
	}
	for _, tc := range cases {
		public := tc.public
		t.Run(tc.name, func(t *testing.T) {
			srvRig, cliRig := newTelemetryRig(t, public), newTelemetryRig(t, false)
			srvRig.cfg.WithoutMetrics, cliRig.cfg.WithoutMetrics = tc.withoutMetrics, tc.withoutMetrics
			var (
				mu      sync.Mutex
				handled trace.SpanContext
			)
			svc := NewService()
			s := Start(t, h, transport.ServerConfig{
				Log: svc, Cluster: svc, Telemetry: srvRig.cfg,
				Intercept: func(ctx context.Context, method string, _ transport.Peer) (context.Context, error) {
					if method == transport.MethodProduce {
						mu.Lock()
						handled = trace.SpanContextFromContext(ctx)
						mu.Unlock()
					}
					return nil, nil
				},
			})
			c := Dial(t, h, s.Addr, transport.ClientConfig{Telemetry: cliRig.cfg})

			ctx, parent := cliRig.cfg.TracerProvider.Tracer("test").Start(ctxT(t), "parent")
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("traced")}}); err != nil {
				t.Fatalf("Produce: %v", err)
			}
			parent.End()
			_ = c.Close()
			s.Stop(t) // server spans end when the handler returns; Stop waits for that

			client := cliRig.spanNamed(t, "Produce")
			if client.SpanKind() != trace.SpanKindClient || client.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("client span kind %v parent %v; want client span under %v", client.SpanKind(), client.Parent().SpanID(), parent.SpanContext().SpanID())
			}
			server := srvRig.spanNamed(t, "Produce")
			if server.SpanKind() != trace.SpanKindServer {
				t.Errorf("server span kind %v, want server", server.SpanKind())
			}
			mu.Lock()
			got := handled
			mu.Unlock()
			if got.SpanID() != server.SpanContext().SpanID() {
				t.Errorf("handler ctx carries span %v, want the server span %v", got.SpanID(), server.SpanContext().SpanID())
			}
			if !public {
				if server.SpanContext().TraceID() != parent.SpanContext().TraceID() || server.Parent().SpanID() != client.SpanContext().SpanID() {
					t.Errorf("server span trace %v parent %v; want trace %v under the client span %v",
						server.SpanContext().TraceID(), server.Parent().SpanID(), parent.SpanContext().TraceID(), client.SpanContext().SpanID())
				}
			} else {
				if server.SpanContext().TraceID() == parent.SpanContext().TraceID() {
					t.Errorf("public endpoint continued the caller's trace %v", server.SpanContext().TraceID())
				}
				linked := false
				for _, l := range server.Links() {
					linked = linked || l.SpanContext.TraceID() == parent.SpanContext().TraceID()
				}
				if !linked {
					t.Errorf("public endpoint span has links %v, want one to the caller's trace", server.Links())
				}
			}
			for _, sp := range srvRig.spans.Ended() {
				if strings.Contains(sp.Name(), "grpc.health") || strings.Contains(sp.Name(), "reflection") {
					t.Errorf("span %q for a health or reflection call", sp.Name())
				}
			}
			for side, rig := range map[string]*telemetryRig{"server": srvRig, "client": cliRig} {
				names := rig.metricNames(t)
				found := false
				for _, n := range names {
					found = found || strings.HasPrefix(n, "rpc."+side+".")
				}
				if found == tc.withoutMetrics {
					t.Errorf("%s recorded metrics %q; want rpc.%s.* instruments: %v", side, names, side, !tc.withoutMetrics)
				}
			}
		})
	}
}

// WithTelemetry returns h with tel set in every server and client config it builds.
func WithTelemetry(h Harness, tel *transport.Telemetry) Harness {
	return Harness{
		NewServer: func(cfg transport.ServerConfig) (transport.Server, error) {
			cfg.Telemetry = tel
			return h.NewServer(cfg)
		},
		NewClient: func(addr string, cfg transport.ClientConfig) (transport.Client, error) {
			cfg.Telemetry = tel
			return h.NewClient(addr, cfg)
		},
	}
}

// BenchTelemetry returns instrumentation as a production server would have it: the
// OpenTelemetry SDK sampling 10% of new traces (parent-based) into a no-op processor and,
// with metrics, RPC metrics aggregated for a reader that is never collected. Its providers
// shut down when b ends. Compare BenchmarkTransport with and without it to see what
// telemetry costs a call.
func BenchTelemetry(b testing.TB, metrics bool) *transport.Telemetry {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return &transport.Telemetry{TracerProvider: tp, MeterProvider: mp, WithoutMetrics: !metrics}
}
