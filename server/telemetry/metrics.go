package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
)

// Metric names, as OpenTelemetry instruments (Prometheus spells them with underscores and
// unit suffixes: commitlog_request_duration_seconds, commitlog_produce_records_total, ...).
const (
	MetricProduceRecords   = "commitlog.produce.records"
	MetricProduceBytes     = "commitlog.produce.bytes"
	MetricConsumeRecords   = "commitlog.consume.records"
	MetricConsumeBytes     = "commitlog.consume.bytes"
	MetricRequestDuration  = "commitlog.request.duration"
	MetricBatchSize        = "commitlog.produce.batch.size"
	MetricOpenStreams      = "commitlog.streams.open"
	MetricLeaderChanges    = "commitlog.raft.leader.changes"
	MetricCommitIndex      = "commitlog.raft.commit.index"
	MetricAppliedIndex     = "commitlog.raft.applied.index"
	MetricLastIndex        = "commitlog.raft.last.index"
	MetricTerm             = "commitlog.raft.term"
	MetricIsLeader         = "commitlog.raft.leader"
	MetricFenced           = "commitlog.raft.fenced"
	MetricLogWriteFailures = "commitlog.raft.log.write.failures"
	MetricLastContact      = "commitlog.raft.last.contact"
	MetricFollowerLag      = "commitlog.raft.follower.lag"
	MetricFollowerContact  = "commitlog.raft.follower.last.contact"
	MetricSnapshots        = "commitlog.raft.snapshots"
	MetricSnapshotDuration = "commitlog.raft.snapshot.duration"
	MetricSegments         = "commitlog.log.segments"
	MetricLogSize          = "commitlog.log.size"
	MetricCertExpiry       = "commitlog.tls.cert.expiry"
	MetricApplyStopped     = "commitlog.apply.stopped"
)

// Attribute keys of commitlog's own metrics.
const (
	// AttrRPC is the RPC's method name without its service ("Produce").
	AttrRPC = attribute.Key("rpc")
	// AttrCode is the status code the RPC ended with, snake_case ("ok", "out_of_range").
	AttrCode = attribute.Key("code")
	// AttrFollower is a follower's server id.
	AttrFollower = attribute.Key("follower")
	// AttrCertRole says which credentials a certificate belongs to ("server", "peer").
	AttrCertRole = attribute.Key("role")
	// AttrCertKind is "cert" for a node's own certificate, "ca" for one of its CA bundle.
	AttrCertKind = attribute.Key("kind")
	// AttrCertSubject is a certificate's subject common name.
	AttrCertSubject = attribute.Key("subject")
)

// CertExpiry names one certificate of the node and when it expires.
type CertExpiry struct {
	Role, Kind, Subject string
	NotAfter            time.Time
}

// recordCounters counts records and their bytes.
type recordCounters struct{ records, bytes atomic.Int64 }

// rpc numbers the API's methods, to index pre-built attribute sets.
type rpc int

const (
	rpcProduce rpc = iota
	rpcProduceBatch
	rpcConsume
	rpcConsumeStream
	rpcProduceStream
	rpcGetServers
	rpcGetBounds
	rpcJoin
	rpcRemoveServer
	rpcTransferLeadership
	// log.v1.Topics (admin.go)
	rpcCreateTopic
	rpcDeleteTopic
	rpcListTopics
	rpcDescribeTopic
	rpcAlterTopicConfig
	rpcInitProducer
	// log.v1.Groups (admin.go)
	rpcHeartbeat
	rpcCommitOffsets
	rpcFetchOffsets
	rpcListGroups
	rpcDescribeGroup
	rpcDeleteGroup
	rpcResetOffsets
	rpcListOffsets
	numRPC
)

var rpcNames = [numRPC]string{
	"Produce", "ProduceBatch", "Consume", "ConsumeStream", "ProduceStream",
	"GetServers", "GetBounds", "Join", "RemoveServer", "TransferLeadership",
	"CreateTopic", "DeleteTopic", "ListTopics", "DescribeTopic", "AlterTopicConfig", "InitProducer",
	"Heartbeat", "CommitOffsets", "FetchOffsets", "ListGroups", "DescribeGroup", "DeleteGroup", "ResetOffsets", "ListOffsets",
}

// numCodes is the number of transport codes with names; others count as unknown.
const numCodes = int(transport.Unauthenticated) + 1

var (
	latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	batchBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
)

// Metrics holds commitlog's own instruments. Its recording methods are safe for concurrent
// use and allocate nothing beyond what the OpenTelemetry SDK does: the attribute sets of the
// hot path are built once.
type Metrics struct {
	meter metric.Meter

	duration         metric.Float64Histogram
	batchSize        metric.Int64Histogram
	leaderChanges    metric.Int64Counter
	snapshots        metric.Int64Counter
	snapshotDuration metric.Float64Histogram

	// The counters of the hot path are plain atomics, reported by a callback at collection:
	// an atomic add costs a few ns where a synchronous OTel instrument costs hundreds.
	produce, consume [numRPC]recordCounters
	streams          [numRPC]atomic.Int64
	partitions       *partitionSet // the same, by topic and partition (partitions.go)

	// Pre-built options: byRPCRecord[m] carries rpc=m; byRPCCode[m][c] rpc=m, code=c.
	byRPCRecord [numRPC][]metric.RecordOption
	byRPCCode   [numRPC][numCodes][]metric.RecordOption

	mu         sync.Mutex
	stoppers   []func() error
	mismatches metric.Int64Counter // divergence.go (mu)
}

// newMetrics builds the instruments on mp (nil: no-op), with at most maxPartitionSeries
// partitions counted under their own topic and partition labels (see partitionSet for exists).
func newMetrics(mp metric.MeterProvider, maxPartitionSeries int, exists func(string, uint32) bool) (*Metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := &Metrics{meter: mp.Meter("github.com/commitlog-go/commitlog/server/telemetry"), partitions: newPartitionSet(maxPartitionSeries, exists)}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	observed := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	produceRecords := observed(MetricProduceRecords, "{record}", "Records appended through this node's API (forwarded ones included).")
	produceBytes := observed(MetricProduceBytes, "By", "Bytes of record values appended through this node's API.")
	consumeRecords := observed(MetricConsumeRecords, "{record}", "Records served by Consume and ConsumeStream.")
	consumeBytes := observed(MetricConsumeBytes, "By", "Bytes of record values served by Consume and ConsumeStream.")
	partProduceRecords := observed(MetricPartitionProduceRecords, "{record}", "Records appended through this node's API, by topic and partition (beyond the cap: other).")
	partProduceBytes := observed(MetricPartitionProduceBytes, "By", "Bytes of record values appended through this node's API, by topic and partition (beyond the cap: other).")
	partConsumeRecords := observed(MetricPartitionConsumeRecords, "{record}", "Records served by Consume and ConsumeStream, by topic and partition (beyond the cap: other).")
	partConsumeBytes := observed(MetricPartitionConsumeBytes, "By", "Bytes of record values served by Consume and ConsumeStream, by topic and partition (beyond the cap: other).")
	openStreams, err := m.meter.Int64ObservableUpDownCounter(MetricOpenStreams, metric.WithUnit("{stream}"),
		metric.WithDescription("Streams open on this node's API, by RPC."))
	errs = append(errs, err)
	m.leaderChanges = counter(MetricLeaderChanges, "{change}", "Changes of the leader this node has seen (losing one included).")
	m.snapshots = counter(MetricSnapshots, "{snapshot}", "Raft snapshots taken by this node.")
	m.duration, err = m.meter.Float64Histogram(MetricRequestDuration, metric.WithUnit("s"),
		metric.WithDescription("Time the API took to answer a call (a stream: its whole life), by RPC and status code."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	errs = append(errs, err)
	m.batchSize, err = m.meter.Int64Histogram(MetricBatchSize, metric.WithUnit("{record}"),
		metric.WithDescription("Records per ProduceBatch request."),
		metric.WithExplicitBucketBoundaries(batchBuckets...))
	errs = append(errs, err)
	m.snapshotDuration, err = m.meter.Float64Histogram(MetricSnapshotDuration, metric.WithUnit("s"),
		metric.WithDescription("Time taken to capture and persist a Raft snapshot."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: instruments: %w", err)
	}
	m.snapshots.Add(context.Background(), 0) // exported from the start, as leaderChanges (observe)
	for r := range numRPC {
		opt := metric.WithAttributeSet(attribute.NewSet(AttrRPC.String(rpcNames[r])))
		m.byRPCRecord[r] = []metric.RecordOption{opt}
		for c := range numCodes {
			set := attribute.NewSet(AttrRPC.String(rpcNames[r]), AttrCode.String(transport.Code(c).String()))
			m.byRPCCode[r][c] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
	}
	observeOpts := [numRPC][]metric.ObserveOption{}
	for r := range numRPC {
		observeOpts[r] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(AttrRPC.String(rpcNames[r])))}
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, r := range []rpc{rpcProduce, rpcProduceBatch, rpcProduceStream} {
			o.ObserveInt64(produceRecords, m.produce[r].records.Load(), observeOpts[r]...)
			o.ObserveInt64(produceBytes, m.produce[r].bytes.Load(), observeOpts[r]...)
		}
		for _, r := range []rpc{rpcConsume, rpcConsumeStream} {
			o.ObserveInt64(consumeRecords, m.consume[r].records.Load(), observeOpts[r]...)
			o.ObserveInt64(consumeBytes, m.consume[r].bytes.Load(), observeOpts[r]...)
		}
		for _, r := range []rpc{rpcConsumeStream, rpcProduceStream} {
			o.ObserveInt64(openStreams, m.streams[r].Load(), observeOpts[r]...)
		}
		m.partitions.each(func(s *partitionSeries) {
			o.ObserveInt64(partProduceRecords, s.produce.records.Load(), s.opts...)
			o.ObserveInt64(partProduceBytes, s.produce.bytes.Load(), s.opts...)
			o.ObserveInt64(partConsumeRecords, s.consume.records.Load(), s.opts...)
			o.ObserveInt64(partConsumeBytes, s.consume.bytes.Load(), s.opts...)
		})
		return nil
	}, produceRecords, produceBytes, consumeRecords, consumeBytes, openStreams,
		partProduceRecords, partProduceBytes, partConsumeRecords, partConsumeBytes)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register counters: %w", err)
	}
	m.stoppers = append(m.stoppers, reg.Unregister)
	return m, nil
}

// errPanicked is how a call whose handler panicked ended: the transports recover the panic and
// answer Internal (grpc-go through the transport's recovery interceptor, Connect through
// net/http, which resets the stream).
var errPanicked = transport.Errorf(transport.Internal, "handler panicked")

// call is one call being measured. end records it; panicked, deferred, records a call whose
// handler panicked (end never ran) as errPanicked, so that the latency histogram counts it
// with its code, and lets the panic go on to the transport's recovery.
type call struct {
	m     *Metrics
	ctx   context.Context
	rpc   rpc
	start time.Time
	ended bool
}

// begin starts measuring a call of r.
func (m *Metrics) begin(ctx context.Context, r rpc) call {
	return call{m: m, ctx: ctx, rpc: r, start: time.Now()}
}

// end records the call, ended with err.
func (c *call) end(err error) {
	c.ended = true
	c.m.done(c.ctx, c.rpc, c.start, err)
}

// panicked records the call as errPanicked unless end recorded it. Deferred.
func (c *call) panicked() {
	if !c.ended {
		c.m.done(c.ctx, c.rpc, c.start, errPanicked)
	}
}

// done records a call of r that started at start and ended with err.
func (m *Metrics) done(ctx context.Context, r rpc, start time.Time, err error) {
	c := int(transport.CodeOf(err))
	if c >= numCodes {
		c = int(transport.Unknown)
	}
	m.duration.Record(ctx, time.Since(start).Seconds(), m.byRPCCode[r][c]...)
}

// produced records n records of total size bytes appended by one request of r to partition
// p (nil: not counted by partition), and the batch size of a ProduceBatch (the other produce
// RPCs carry one record per message: their batch size would say nothing and cost a
// measurement per record).
func (m *Metrics) produced(ctx context.Context, r rpc, p *partitionSeries, n, bytes int) {
	m.produce[r].records.Add(int64(n))
	m.produce[r].bytes.Add(int64(bytes))
	if p != nil {
		p.produce.records.Add(int64(n))
		p.produce.bytes.Add(int64(bytes))
	}
	if r == rpcProduceBatch {
		m.batchSize.Record(ctx, int64(n), m.byRPCRecord[r]...)
	}
}

// consumed records n records of size bytes served by r from partition p.
func (m *Metrics) consumed(r rpc, p *partitionSeries, n, bytes int) {
	m.consume[r].records.Add(int64(n))
	m.consume[r].bytes.Add(int64(bytes))
	p.consume.records.Add(int64(n))
	p.consume.bytes.Add(int64(bytes))
}

func (m *Metrics) streamOpened(r rpc) { m.streams[r].Add(1) }
func (m *Metrics) streamClosed(r rpc) { m.streams[r].Add(-1) }

// SnapshotTaken records one Raft snapshot that took d. Safe for concurrent use.
func (m *Metrics) SnapshotTaken(ctx context.Context, d time.Duration) {
	m.snapshots.Add(ctx, 1)
	m.snapshotDuration.Record(ctx, d.Seconds())
}

// SegmentStats is what the node metrics need from the storage engine (storage/segment.Log
// has it). Both methods must be safe for concurrent use and cheap.
type SegmentStats interface {
	Segments() int
	Size() int64
}

// observe registers the observable gauges of node and segs (either may be nil) and counts
// leader changes.
func (m *Metrics) observe(node consensus.Consensus, segs SegmentStats, live func() error) error {
	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	fgauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	var (
		commit, applied, last, term, leader metric.Int64ObservableGauge
		fenced                              metric.Int64ObservableGauge
		logWriteFailures                    metric.Int64ObservableCounter
		lag                                 metric.Int64ObservableGauge
		contact, followerContact            metric.Float64ObservableGauge
		segments, size                      metric.Int64ObservableGauge
		stopped                             metric.Int64ObservableGauge
		instruments                         []metric.Observable
	)
	if live != nil {
		stopped = gauge(MetricApplyStopped, "", "1 once this node's state machine stopped applying (it could not store a committed entry), else 0.")
		instruments = append(instruments, stopped)
	}
	if node != nil {
		commit = gauge(MetricCommitIndex, "{entry}", "The highest Raft log index this node knows committed.")
		applied = gauge(MetricAppliedIndex, "{entry}", "The highest Raft log index applied to this node's state machine.")
		last = gauge(MetricLastIndex, "{entry}", "The last index in this node's Raft log.")
		term = gauge(MetricTerm, "{term}", "This node's current Raft term.")
		leader = gauge(MetricIsLeader, "", "1 when this node is the leader, else 0.")
		fenced = gauge(MetricFenced, "", "1 while this node is fenced (it lost committed data: it neither votes nor is elected until repaired), else 0.")
		var err error
		logWriteFailures, err = m.meter.Int64ObservableCounter(MetricLogWriteFailures, metric.WithUnit("{write}"),
			metric.WithDescription("Writes of this node's Raft log (appends, truncations) that failed since it started: a full or failing disk."))
		errs = append(errs, err)
		contact = fgauge(MetricLastContact, "s", "Time since this follower last heard from the leader, or since it started if it has not (0 on the leader).")
		lag = gauge(MetricFollowerLag, "{entry}", "On the leader: the leader's commit index minus each follower's match index.")
		followerContact = fgauge(MetricFollowerContact, "s", "On the leader: time since each follower last answered.")
		instruments = append(instruments, commit, applied, last, term, leader, fenced, logWriteFailures, contact, lag, followerContact)
	}
	if segs != nil {
		segments = gauge(MetricSegments, "{segment}", "Segment files of the commit log.")
		size = gauge(MetricLogSize, "By", "Bytes of the commit log's segment files on disk.")
		instruments = append(instruments, segments, size)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: node instruments: %w", err)
	}
	// A follower that has not heard from a leader since it started (a new node, one restarted
	// into a partition, one waiting for --bootstrap-expect) has gone that long without contact.
	started := time.Now()
	reg, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if segs != nil {
			o.ObserveInt64(segments, int64(segs.Segments()))
			o.ObserveInt64(size, segs.Size())
		}
		if live != nil {
			v := int64(0)
			if live() != nil {
				v = 1
			}
			o.ObserveInt64(stopped, v)
		}
		if node == nil {
			return nil
		}
		st := node.Status()
		o.ObserveInt64(commit, int64(st.CommitIndex))
		o.ObserveInt64(applied, int64(st.AppliedIndex))
		o.ObserveInt64(last, int64(st.LastIndex))
		o.ObserveInt64(term, int64(st.Term))
		isLeader := int64(0)
		if st.State == "leader" {
			isLeader = 1
		}
		o.ObserveInt64(leader, isLeader)
		isFenced := int64(0)
		if st.Fenced != "" {
			isFenced = 1
		}
		o.ObserveInt64(fenced, isFenced)
		o.ObserveInt64(logWriteFailures, int64(st.LogWriteFailures))
		since := 0.0
		switch {
		case !st.LastContact.IsZero():
			since = time.Since(st.LastContact).Seconds()
		case isLeader == 0:
			since = time.Since(started).Seconds()
		}
		o.ObserveFloat64(contact, since)
		if isLeader == 0 {
			return nil
		}
		servers, err := node.Servers(ctx)
		if err != nil {
			return nil // leadership just changed: the next collection will tell
		}
		for _, s := range servers {
			if s.ID == st.ID {
				continue
			}
			attrs := metric.WithAttributes(AttrFollower.String(s.ID))
			if st.CommitIndex > s.MatchIndex {
				o.ObserveInt64(lag, int64(st.CommitIndex-s.MatchIndex), attrs)
			} else {
				o.ObserveInt64(lag, 0, attrs)
			}
			if !s.LastContact.IsZero() {
				o.ObserveFloat64(followerContact, time.Since(s.LastContact).Seconds(), attrs)
			}
		}
		return nil
	}, instruments...)
	if err != nil {
		return fmt.Errorf("telemetry: register node callback: %w", err)
	}
	m.mu.Lock()
	m.stoppers = append(m.stoppers, reg.Unregister)
	m.mu.Unlock()
	if node != nil {
		// The counter is exported from the start, at 0: a series that first appears at 1
		// (Prometheus' increase() and rate() see no increase in it) hides the first change.
		m.leaderChanges.Add(context.Background(), 0)
		var (
			first   = true
			current string
		)
		cancel := node.SubscribeLeader(func(ev consensus.LeaderEvent) {
			// The first event is the leader known at subscription, not a change.
			if !first && ev.Leader.ID != current {
				m.leaderChanges.Add(context.Background(), 1)
			}
			first, current = false, ev.Leader.ID
		})
		m.mu.Lock()
		m.stoppers = append(m.stoppers, func() error { cancel(); return nil })
		m.mu.Unlock()
	}
	return nil
}

// observeCertificates registers the gauge of seconds until each certificate of certs expires
// (negative once expired). A nil m or certs registers nothing.
func (m *Metrics) observeCertificates(certs func() []CertExpiry) error {
	if m == nil || certs == nil {
		return nil
	}
	g, err := m.meter.Float64ObservableGauge(MetricCertExpiry, metric.WithUnit("s"),
		metric.WithDescription("Seconds until each TLS certificate of the node expires (negative: expired), by role, kind (cert or ca) and subject (certificates alike in all three: the first to expire); reloaded certificates replace the old ones."))
	if err != nil {
		return fmt.Errorf("telemetry: certificate instrument: %w", err)
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := time.Now()
		// Certificates that share role, kind and subject (a CA bundle holding the old and the
		// new CA of a rotation, both named alike) share a series: it says when the first of them
		// expires. Observed one by one, the last observation won and hid an earlier expiry.
		type series struct{ role, kind, subject string }
		var (
			order []series
			first = map[series]time.Time{}
		)
		for _, c := range certs() {
			k := series{c.Role, c.Kind, c.Subject}
			if at, ok := first[k]; !ok {
				order = append(order, k)
				first[k] = c.NotAfter
			} else if c.NotAfter.Before(at) {
				first[k] = c.NotAfter
			}
		}
		for _, k := range order {
			o.ObserveFloat64(g, first[k].Sub(now).Seconds(), metric.WithAttributes(
				AttrCertRole.String(k.role), AttrCertKind.String(k.kind), AttrCertSubject.String(k.subject)))
		}
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("telemetry: register certificate callback: %w", err)
	}
	m.mu.Lock()
	m.stoppers = append(m.stoppers, reg.Unregister)
	m.mu.Unlock()
	return nil
}

// stop unregisters callbacks and subscriptions. Idempotent.
func (m *Metrics) stop() {
	m.mu.Lock()
	stoppers := m.stoppers
	m.stoppers = nil
	m.mu.Unlock()
	for _, s := range stoppers {
		_ = s()
	}
}
