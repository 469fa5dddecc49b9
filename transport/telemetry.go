package transport

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry instruments a server or client with OpenTelemetry: a span per
// call and the RPC metrics of the semantic conventions (call duration,
// message sizes), through otelgrpc's stats handlers for grpc-go and
// otelconnect's interceptor for connect-go. Trace context crosses the wire
// in the request headers, so a call made from inside a handler with the
// handler's ctx continues the caller's trace on the next server.
//
// A nil *Telemetry in ServerConfig or ClientConfig means no instrumentation
// at all (no cost). A Telemetry value is read when the server or client is
// built and not retained for later changes; the providers it names must be
// safe for concurrent use, as the OpenTelemetry SDK's are.
type Telemetry struct {
	// TracerProvider creates the spans. Nil: otel.GetTracerProvider() (a
	// no-op unless the program installed one).
	TracerProvider trace.TracerProvider
	// MeterProvider creates the RPC instruments. Nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator injects and extracts trace context in request headers.
	// Nil: W3C Trace Context and Baggage (not the global propagator, which
	// is a no-op unless set, so traces cross nodes without global state).
	Propagator propagation.TextMapPropagator
	// WithoutMetrics records spans only, no RPC metrics: building the metrics' attribute
	// sets on every call costs more CPU than the spans (use it when the service measures
	// its calls itself).
	WithoutMetrics bool
	// PublicEndpoint, for servers, makes every call start a new trace that
	// only links to the caller's span instead of continuing it: use it when
	// callers are not trusted to choose trace ids or sampling. Default
	// false: calls continue the caller's trace (what a cluster forwarding
	// writes between its own nodes wants).
	PublicEndpoint bool
}

// Providers returns t's tracer provider, meter provider and propagator
// with nil fields replaced by their documented defaults (and a no-op meter
// provider WithoutMetrics).
func (t *Telemetry) Providers() (trace.TracerProvider, metric.MeterProvider, propagation.TextMapPropagator) {
	tp, mp, prop := t.TracerProvider, t.MeterProvider, t.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	switch {
	case t.WithoutMetrics:
		mp = metricnoop.NewMeterProvider()
	case mp == nil:
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return tp, mp, prop
}
