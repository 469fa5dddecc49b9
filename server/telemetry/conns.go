package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// Connection metrics of the shared port (see the server's --max-conns).
const (
	// MetricAPIConnections is the API connections open on the shared port.
	MetricAPIConnections = "commitlog.api.connections"
	// MetricAPIConnectionsRefused counts the API connections closed at once because
	// --max-conns were open.
	MetricAPIConnectionsRefused = "commitlog.api.connections.refused"
)

// ConnStats are the connection counts ObserveConnections reads.
type ConnStats struct {
	Open    int64  // API connections open
	Refused uint64 // API connections refused since start
}

// ObserveConnections registers the API connection gauge and the refused counter, read from
// stats at each collection.
func (m *Metrics) ObserveConnections(stats func() ConnStats) error {
	if m == nil {
		return nil
	}
	open, err := m.meter.Int64ObservableGauge(MetricAPIConnections, metric.WithUnit("{connection}"),
		metric.WithDescription("API connections open on the shared port (Raft's not counted)."))
	if err != nil {
		return fmt.Errorf("telemetry: connections gauge: %w", err)
	}
	refused, err := m.meter.Int64ObservableCounter(MetricAPIConnectionsRefused, metric.WithUnit("{connection}"),
		metric.WithDescription("API connections closed at once because --max-conns were open."))
	if err != nil {
		return fmt.Errorf("telemetry: refused connections counter: %w", err)
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := stats()
		o.ObserveInt64(open, st.Open)
		o.ObserveInt64(refused, int64(st.Refused))
		return nil
	}, open, refused)
	if err != nil {
		return fmt.Errorf("telemetry: register connections callback: %w", err)
	}
	m.mu.Lock()
	m.stoppers = append(m.stoppers, reg.Unregister)
	m.mu.Unlock()
	return nil
}
