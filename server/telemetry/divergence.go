package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Divergence detector metrics (see server's divergence check).
const (
	// MetricDivergenceAlarm is 1 while this node's divergence alarm is raised (its log differs
	// from the cluster's; it refuses reads), else 0.
	MetricDivergenceAlarm = "commitlog.divergence.alarm"
	// MetricDivergenceMismatches counts, on the leader, the servers its divergence checks
	// found holding a checksum other than the cluster majority's, by server.
	MetricDivergenceMismatches = "commitlog.divergence.mismatches"
)

// AttrServer is a server's id (a divergence mismatch may be the leader's own).
const AttrServer = attribute.Key("server")

// ObserveDivergence registers the divergence alarm gauge, read from raised at each collection,
// and the mismatch counter that DivergenceMismatch adds to. Call it once. A nil Metrics
// (telemetry disabled) does nothing.
func (m *Metrics) ObserveDivergence(raised func() bool) error {
	if m == nil {
		return nil
	}
	g, err := m.meter.Int64ObservableGauge(MetricDivergenceAlarm, metric.WithUnit(""),
		metric.WithDescription("1 while this node's divergence alarm is raised (its log differs from the cluster's; it refuses reads), else 0."))
	if err != nil {
		return fmt.Errorf("telemetry: divergence gauge: %w", err)
	}
	c, err := m.meter.Int64Counter(MetricDivergenceMismatches, metric.WithUnit("{mismatch}"),
		metric.WithDescription("On the leader: servers found by a divergence check with a checksum other than the cluster majority's."))
	if err != nil {
		return fmt.Errorf("telemetry: divergence counter: %w", err)
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if raised() {
			v = 1
		}
		o.ObserveInt64(g, v)
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("telemetry: register divergence callback: %w", err)
	}
	m.mu.Lock()
	m.mismatches = c
	m.stoppers = append(m.stoppers, reg.Unregister)
	m.mu.Unlock()
	return nil
}

// DivergenceMismatch counts one mismatch found on server by a divergence check.
func (m *Metrics) DivergenceMismatch(ctx context.Context, server string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	c := m.mismatches
	m.mu.Unlock()
	if c != nil {
		c.Add(ctx, 1, metric.WithAttributes(AttrServer.String(server)))
	}
}
