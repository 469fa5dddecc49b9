// Package telemetry is commitlog's observability: OpenTelemetry traces and metrics, a
// Prometheus scrape endpoint, OTLP trace export, and the liveness and readiness endpoints.
//
// [New] builds a [Telemetry]: a MeterProvider read by the OTel Prometheus exporter into a
// registry of its own (never the global one), a TracerProvider that samples a ratio of new
// traces (parent-based: a sampled caller is always followed) and exports them over OTLP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and, unless the
// metrics address is "off", an HTTP server that answers
//
//	/metrics  the Prometheus exposition of every instrument
//	/healthz  200 while the process is alive and its state machine has not failed
//	/readyz   200 once the node knows a leader and has applied up to the commit index it
//	          knew when it learned of that leader (it has caught up); 503 before
//
// The transports take [Telemetry.Transport] to trace and measure every call; [InstrumentLog]
// wraps the API service with commitlog's own instruments (records and bytes, latency by RPC
// and code, batch sizes, open streams); [Telemetry.Observe] adds the node's state (Raft
// indices, follower lag, leader changes, segments on disk).
//
// The standard OTEL_* environment variables are honoured: OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES for the resource, OTEL_TRACES_SAMPLER(_ARG) over the configured
// ratio, and the OTEL_EXPORTER_OTLP_* family (endpoint, protocol grpc or http/protobuf,
// headers, timeout, TLS) for the exporter.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/commitlog-go/commitlog/transport"
)

// Defaults for the zero values of Config.
const (
	// DefaultServiceName is the service.name of the resource unless OTEL_SERVICE_NAME says
	// otherwise.
	DefaultServiceName = "commitlog"
	// DefaultSampleRatio is the fraction of new traces sampled.
	DefaultSampleRatio = 0.1
	// MetricsOff as the metrics address disables the HTTP endpoint.
	MetricsOff = "off"
)

// Errors returned by New.
var (
	// ErrInvalidConfig is wrapped when a Config value is out of range.
	ErrInvalidConfig = errors.New("telemetry: invalid config")
)

// Config configures New. Zero values take the documented defaults.
type Config struct {
	// ServiceName is the resource's service.name (OTEL_SERVICE_NAME overrides it). Default
	// DefaultServiceName.
	ServiceName string
	// NodeID is the resource's service.instance.id: the node's name in the cluster.
	NodeID string
	// MetricsAddr is the host:port of the HTTP endpoint (/metrics, /healthz, /readyz); port 0
	// picks a free one (see Telemetry.MetricsAddr). "" or MetricsOff: no endpoint.
	MetricsAddr string
	// SampleRatio is the fraction of new traces recorded and exported, in [0, 1]; calls that
	// arrive with a sampled trace context are always recorded (parent-based). Zero:
	// DefaultSampleRatio; negative: no new traces. OTEL_TRACES_SAMPLER, when set, wins.
	SampleRatio float64
	// SpanProcessors receive every sampled span besides the OTLP exporter (tests pass an
	// in-memory recorder). They are shut down by Close.
	SpanProcessors []sdktrace.SpanProcessor
	// RPCMetrics also records the transports' semantic-convention RPC metrics
	// (rpc.server.call.duration and the like, from otelgrpc and otelconnect) besides their
	// spans. They repeat what commitlog_request_duration_seconds says, and building their
	// attribute sets per call costs the most CPU of all the telemetry; off by default.
	RPCMetrics bool
	// MaxPartitionSeries bounds the partitions counted under their own topic and partition
	// labels (commitlog_partition_*): the first ones this node serves; every later one is
	// counted under topic="other", partition="other". Zero: DefaultMaxPartitionSeries;
	// negative: none of their own (every partition is "other"). It bounds the series of
	// commitlog_group_lag the same way (ObserveGroupLag).
	MaxPartitionSeries int
	// PartitionExists reports whether a topic's partition still exists. When set, the series
	// of deleted partitions are dropped once MaxPartitionSeries is reached (looked for at most
	// every 10 s), so that the cap counts live partitions. Nil: series are kept until Close.
	PartitionExists func(topic string, partition uint32) bool
	// Disabled turns tracing and metrics off: Transport and Metrics return nil (so nothing is
	// instrumented) and /metrics serves nothing, while /healthz, /readyz and the gRPC health
	// status work as usual. For measuring what telemetry costs.
	Disabled bool
	// Logger receives the telemetry's own events (exporter and HTTP errors). Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.MetricsAddr == MetricsOff {
		c.MetricsAddr = ""
	}
	if c.MaxPartitionSeries == 0 {
		c.MaxPartitionSeries = DefaultMaxPartitionSeries
	}
	switch {
	case c.SampleRatio == 0:
		c.SampleRatio = DefaultSampleRatio
	case c.SampleRatio < 0:
		c.SampleRatio = 0
	case c.SampleRatio > 1 || math.IsNaN(c.SampleRatio):
		return fmt.Errorf("%w: sample ratio %v, want 0 to 1", ErrInvalidConfig, c.SampleRatio)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("%w: metrics address %q: %w", ErrInvalidConfig, c.MetricsAddr, err)
		}
	}
	return nil
}

// Telemetry owns the node's OpenTelemetry providers and its HTTP endpoint. Create it with
// New; Close flushes and stops everything. Its methods are safe for concurrent use.
type Telemetry struct {
	cfg       Config
	tp        *sdktrace.TracerProvider
	mp        *sdkmetric.MeterProvider
	registry  *prometheus.Registry
	transport *transport.Telemetry
	metrics   *Metrics
	health    *health

	ln      net.Listener
	srv     *http.Server
	served  chan struct{} // closed when the HTTP server's goroutine has returned
	closeMu sync.Mutex
	closed  bool
}

// New builds the providers and instruments and, unless cfg.MetricsAddr is empty or "off",
// binds the HTTP endpoint and serves it until Close. It returns an error wrapping
// ErrInvalidConfig for a bad config, or the exporter's or listener's error.
func New(ctx context.Context, cfg Config) (t *Telemetry, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	t = &Telemetry{cfg: cfg, registry: prometheus.NewRegistry(), health: newHealth()}
	built := t
	defer func() {
		if err != nil {
			_ = built.Close(context.Background())
			t = nil
		}
	}()
	if cfg.Disabled {
		if t.metrics, err = newMetrics(nil, cfg.MaxPartitionSeries, cfg.PartitionExists); err != nil {
			return nil, err
		}
		if cfg.MetricsAddr != "" {
			if err := t.listen(); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	res, err := t.resource(ctx)
	if err != nil {
		return nil, err
	}

	promExp, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	// The Go runtime's and the process's own series (go_goroutines, go_memstats_*,
	// process_resident_memory_bytes, process_open_fds, …), as every Go exporter serves them:
	// without them a leak of goroutines, memory or descriptors under load showed nowhere.
	if err := t.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: Go collector: %w", err)
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: process collector: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExp), sdkmetric.WithResource(res))

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	}
	exp, err := t.otlpExporter(ctx)
	if err != nil {
		return nil, err
	}
	if exp != nil {
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	for _, p := range cfg.SpanProcessors {
		topts = append(topts, sdktrace.WithSpanProcessor(p))
	}
	t.tp = sdktrace.NewTracerProvider(topts...)
	// Spans that nothing exports are pure cost (they were most of telemetry's CPU): the
	// transports are instrumented for tracing only when an exporter or a span processor takes
	// the spans, and for metrics only with RPCMetrics. Configure OTLP on every node of a
	// cluster so that a trace crosses them all.
	tracing := exp != nil || len(cfg.SpanProcessors) > 0
	if tracing || cfg.RPCMetrics {
		var tp trace.TracerProvider = t.tp
		if !tracing {
			tp = tracenoop.NewTracerProvider()
		}
		t.transport = &transport.Telemetry{
			TracerProvider: tp,
			MeterProvider:  t.mp,
			WithoutMetrics: !cfg.RPCMetrics,
			Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		}
	}
	if t.metrics, err = newMetrics(t.mp, cfg.MaxPartitionSeries, cfg.PartitionExists); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if err := t.listen(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Telemetry) resource(ctx context.Context) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", t.cfg.ServiceName)}
	if t.cfg.NodeID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", t.cfg.NodeID))
	}
	// Later options win: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override ours.
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// otlpExporter returns the OTLP span exporter the environment asks for, or nil when no
// endpoint is set. The exporters read the rest of OTEL_EXPORTER_OTLP_* themselves.
func (t *Telemetry) otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	get := os.Getenv
	if get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && get("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return nil, nil
	}
	if strings.EqualFold(get("OTEL_TRACES_EXPORTER"), "none") {
		return nil, nil
	}
	protocol := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("%w: OTLP protocol %q: want grpc or http/protobuf", ErrInvalidConfig, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP %s exporter: %w", protocol, err)
	}
	return exp, nil
}

func (t *Telemetry) listen() error {
	ln, err := net.Listen("tcp", t.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("telemetry: metrics listener: %w", err)
	}
	t.ln = newOldestClosingListener(ln, HTTPMaxConns, t.cfg.Logger)
	t.srv = newHTTPServer(t.Handler(), t.cfg.Logger)
	// A scrape that takes longer than this is long abandoned by its scraper (Prometheus's
	// scrape_timeout is at most its interval); no endpoint here answers slowly on purpose.
	t.srv.WriteTimeout = metricsWriteTimeout
	t.served = make(chan struct{})
	go func() {
		defer close(t.served)
		if err := t.srv.Serve(t.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.cfg.Logger.Error("metrics endpoint stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// MetricsAddr returns the address the HTTP endpoint listens on, or "" when it is off.
func (t *Telemetry) MetricsAddr() string {
	if t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

// Transport returns the instrumentation for transport servers and clients: this
// Telemetry's providers and the W3C trace-context propagator; nil (no instrumentation) when no
// span exporter or processor is configured and RPC metrics are off. Callers must not modify it.
func (t *Telemetry) Transport() *transport.Telemetry { return t.transport }

// Tracer returns a tracer of this Telemetry's provider (a no-op one when disabled).
func (t *Telemetry) Tracer(name string) trace.Tracer {
	if t.tp == nil {
		return tracenoop.NewTracerProvider().Tracer(name)
	}
	return t.tp.Tracer(name)
}

// Metrics returns commitlog's own instruments, or nil when disabled.
func (t *Telemetry) Metrics() *Metrics {
	if t.cfg.Disabled {
		return nil
	}
	return t.metrics
}

// Registry returns the Prometheus registry /metrics serves (to add collectors of the process,
// for instance).
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Close stops the HTTP endpoint, stops observing the node, flushes pending spans to the
// exporter and shuts the providers down, within ctx. Idempotent; later calls return nil.
func (t *Telemetry) Close(ctx context.Context) error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	if t.srv != nil {
		if err := t.srv.Shutdown(ctx); err != nil {
			_ = t.srv.Close()
		}
		<-t.served
	}
	t.health.stop()
	if t.metrics != nil {
		t.metrics.stop()
	}
	if t.tp != nil {
		if err := t.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: trace provider: %w", err))
		}
	}
	if t.mp != nil {
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: meter provider: %w", err))
		}
	}
	return errors.Join(errs...)
}
