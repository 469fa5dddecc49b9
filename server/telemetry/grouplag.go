package telemetry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MetricGroupLag is, on the leader, each consumer group's lag in each partition it committed
// an offset in: the partition's next offset minus the committed one (the records the group
// has yet to consume). Followers report none. Its cardinality is bounded like the
// per-partition metrics': the first MaxPartitionSeries (group, topic, partition) in
// lexicographic order get series of their own; the others' lags are summed under
// group="other", topic="other", partition="other".
const MetricGroupLag = "commitlog.group.lag"

// AttrGroup is a consumer group's name, or OtherSeries.
const AttrGroup = attribute.Key("group")

// GroupLag is one group's lag in one partition.
type GroupLag struct {
	Group, Topic string
	Partition    uint32
	Lag          uint64
}

// ObserveGroupLag registers the group lag gauge, read from lags at each collection; lags
// returns nothing on a node that does not lead. Call it once. A nil Metrics (telemetry
// disabled) does nothing.
func (m *Metrics) ObserveGroupLag(lags func() []GroupLag) error {
	if m == nil {
		return nil
	}
	g, err := m.meter.Int64ObservableGauge(MetricGroupLag, metric.WithUnit("{record}"),
		metric.WithDescription("On the leader: records each consumer group has yet to consume in each partition it committed an offset in, by group, topic and partition (beyond the cap: other, summed)."))
	if err != nil {
		return fmt.Errorf("telemetry: group lag gauge: %w", err)
	}
	maxSeries := m.partitions.max
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		observeGroupLags(lags(), maxSeries, func(v int64, set attribute.Set) {
			o.ObserveInt64(g, v, metric.WithAttributeSet(set))
		})
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("telemetry: register group lag callback: %w", err)
	}
	m.mu.Lock()
	m.stoppers = append(m.stoppers, reg.Unregister)
	m.mu.Unlock()
	return nil
}

// observeGroupLags calls observe with the first maxSeries lags (in group, topic, partition
// order) under their own labels and, if any are left, with their sum under "other".
func observeGroupLags(lags []GroupLag, maxSeries int, observe func(int64, attribute.Set)) {
	slices.SortFunc(lags, func(a, b GroupLag) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
	var other int64
	for i, l := range lags {
		if i >= maxSeries {
			other += int64(l.Lag)
			continue
		}
		topic := l.Topic
		if topic == "" {
			topic = defaultTopic
		}
		observe(int64(l.Lag), attribute.NewSet(AttrGroup.String(l.Group), AttrTopic.String(topic),
			AttrPartition.String(strconv.FormatUint(uint64(l.Partition), 10))))
	}
	if len(lags) > max(maxSeries, 0) {
		observe(other, attribute.NewSet(AttrGroup.String(OtherSeries), AttrTopic.String(OtherSeries), AttrPartition.String(OtherSeries)))
	}
}
