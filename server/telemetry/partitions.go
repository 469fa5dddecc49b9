package telemetry

import (
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Per-partition metrics: records and bytes produced and consumed through this node's API, by
// topic and partition. Their label cardinality is bounded: the first MaxPartitionSeries
// partitions a node serves get series of their own; every later one is counted under
// topic="other", partition="other" (OtherSeries).
const (
	MetricPartitionProduceRecords = "commitlog.partition.produce.records"
	MetricPartitionProduceBytes   = "commitlog.partition.produce.bytes"
	MetricPartitionConsumeRecords = "commitlog.partition.consume.records"
	MetricPartitionConsumeBytes   = "commitlog.partition.consume.bytes"

	// AttrTopic is a topic's name ("default" for requests that name none), or OtherSeries.
	AttrTopic = attribute.Key("topic")
	// AttrPartition is a partition's number, or OtherSeries.
	AttrPartition = attribute.Key("partition")

	// OtherSeries is the topic and partition label of the partitions beyond the cap.
	OtherSeries = "other"
	// DefaultMaxPartitionSeries is Config.MaxPartitionSeries' default.
	DefaultMaxPartitionSeries = 100
	// defaultTopic is what requests without a topic are for.
	defaultTopic = "default"
)

type partitionKey struct {
	topic     string
	partition uint32
}

// partitionSeries are one partition's counters (or the "other" bucket's) and its attributes.
type partitionSeries struct {
	produce, consume recordCounters
	opts             []metric.ObserveOption
}

// partitionSet hands out the series of partitions, at most max of their own.
type partitionSet struct {
	max    int
	mu     sync.RWMutex
	series map[partitionKey]*partitionSeries
	order  []*partitionSeries // in the order they were created
	other  partitionSeries
}

func newPartitionSet(maxSeries int) *partitionSet {
	return &partitionSet{max: maxSeries, series: map[partitionKey]*partitionSeries{}, other: partitionSeries{
		opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(AttrTopic.String(OtherSeries), AttrPartition.String(OtherSeries)))},
	}}
}

// get returns the series of topic ("" is the default topic) and partition: its own while
// fewer than max partitions have one, the "other" bucket afterwards. Safe for concurrent use.
func (p *partitionSet) get(topic string, partition uint32) *partitionSeries {
	if topic == "" {
		topic = defaultTopic
	}
	k := partitionKey{topic, partition}
	p.mu.RLock()
	s := p.series[k]
	p.mu.RUnlock()
	if s != nil {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s = p.series[k]; s != nil {
		return s
	}
	if len(p.series) >= p.max {
		return &p.other
	}
	s = &partitionSeries{opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
		AttrTopic.String(topic), AttrPartition.String(strconv.FormatUint(uint64(partition), 10))))}}
	p.series[k] = s
	p.order = append(p.order, s)
	return s
}

// each calls fn with every series that has one of its own, then with the "other" bucket if
// anything was counted in it.
func (p *partitionSet) each(fn func(*partitionSeries)) {
	p.mu.RLock()
	series := p.order
	p.mu.RUnlock()
	for _, s := range series {
		fn(s)
	}
	if p.other.produce.records.Load() != 0 || p.other.consume.records.Load() != 0 {
		fn(&p.other)
	}
}
