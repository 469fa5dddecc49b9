package telemetry

import (
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Per-partition metrics: records and bytes produced and consumed through this node's API, by
// topic and partition. Their label cardinality is bounded: the first MaxPartitionSeries
// partitions a node serves get series of their own; every later one is counted under
// topic="other", partition="other" (OtherSeries). The series of a deleted topic's partitions
// are dropped (when Config.PartitionExists is set) once the cap is reached.
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
	exists func(topic string, partition uint32) bool // nil: series are never dropped
	now    func() time.Time
	mu     sync.RWMutex
	series map[partitionKey]*partitionSeries
	order  []*partitionSeries // in the order they were created; replaced, never edited in place
	other  partitionSeries
	pruned time.Time // when the series of deleted partitions were last looked for (mu)
}

// partitionPruneInterval is how often, at most, a full partitionSet looks for series of
// partitions that no longer exist.
const partitionPruneInterval = 10 * time.Second

func newPartitionSet(maxSeries int, exists func(string, uint32) bool) *partitionSet {
	return &partitionSet{max: maxSeries, exists: exists, now: time.Now, series: map[partitionKey]*partitionSeries{}, other: partitionSeries{
		opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(AttrTopic.String(OtherSeries), AttrPartition.String(OtherSeries)))},
	}}
}

// get returns the series of topic ("" is the default topic) and partition: its own while
// fewer than max partitions have one, the "other" bucket afterwards. When the set is full it
// drops, at most every partitionPruneInterval, the series of partitions that no longer exist
// (deleted topics), so that the cap counts live partitions. Safe for concurrent use.
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
	if s = p.add(k); s != nil {
		return s
	}
	if p.prune() {
		if s = p.add(k); s != nil {
			return s
		}
	}
	return &p.other
}

// add returns k's series, creating it if there is room; nil when the set is full.
func (p *partitionSet) add(k partitionKey) *partitionSeries {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.series[k]; s != nil {
		return s
	}
	if len(p.series) >= p.max {
		return nil
	}
	s := &partitionSeries{opts: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
		AttrTopic.String(k.topic), AttrPartition.String(strconv.FormatUint(uint64(k.partition), 10))))}}
	p.series[k] = s
	p.order = append(p.order, s)
	return s
}

// prune drops the series of partitions that no longer exist, unless it looked less than
// partitionPruneInterval ago, and reports whether it dropped any. exists is called without the
// lock held.
func (p *partitionSet) prune() bool {
	p.mu.Lock()
	if p.exists == nil || p.now().Sub(p.pruned) < partitionPruneInterval {
		p.mu.Unlock()
		return false
	}
	p.pruned = p.now()
	keys := make([]partitionKey, 0, len(p.series))
	for k := range p.series {
		keys = append(keys, k)
	}
	p.mu.Unlock()
	var gone []partitionKey
	for _, k := range keys {
		if !p.exists(k.topic, k.partition) {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped := map[*partitionSeries]bool{}
	for _, k := range gone {
		if s := p.series[k]; s != nil {
			dropped[s] = true
			delete(p.series, k)
		}
	}
	order := make([]*partitionSeries, 0, len(p.series))
	for _, s := range p.order {
		if !dropped[s] {
			order = append(order, s)
		}
	}
	p.order = order
	return true
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
