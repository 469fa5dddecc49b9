// Package clienttest is an in-memory, single-node commitlog service for tests
// of code that uses the client SDK (or the wire API): topics and partitions,
// keyed records with headers and timestamps, per-partition bounds, unary,
// batched and streamed produce, consume with long polls, tailing streams, and
// the idempotent producer (InitProducer, epochs, the last five batches per
// partition), served over the real transport/connect or transport/grpc server
// on a loopback port.
//
// It is a test double, not a server: one node that is always the leader,
// every record kept in memory, no retention, no authorization. It answers
// with the codes and error details of the real server (DESIGN.md §2), and its
// hooks inject the faults a test needs: refused writes, answers lost after the
// records were appended (the outcome-unknown case idempotence exists for),
// corrupted reads and stalled streams.
//
//	l := clienttest.New()
//	srv, err := l.Serve(clienttest.ServeOptions{Transport: "connect"})
//	...
//	defer srv.Close()
//	c, err := client.New(ctx, []string{srv.Addr()})
package clienttest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// DefaultTopic is the topic of requests that name none; its partition 0 is
// the single log seed clients see. It exists from New on and cannot be
// deleted.
const DefaultTopic = "default"

// ProducerWindow is how many of a producer's last batches per partition are
// remembered, as the real server (and Kafka) remember them.
const ProducerWindow = 5

// Log is the fake service: it implements transport.LogService,
// transport.ClusterService (every call answers Unimplemented but
// GetServers-like reads) and transport.TopicsService. Its methods are safe
// for concurrent use. Set the hooks before serving.
type Log struct {
	// RefuseProduce, when it returns an error for a write (unary, batch or
	// stream, any partition), refuses it with that error instead of
	// appending.
	RefuseProduce func() error
	// LoseAnswer, when it returns true for a write to topic/partition,
	// appends the records and then answers Unavailable with the
	// OutcomeUnknown detail, as a leader that lost its leadership after
	// committing would: the client cannot tell whether the write happened.
	LoseAnswer func(topic string, partition uint32) bool
	// CorruptRead, when it returns true for an offset of the default
	// partition, serves that record with one bit flipped, as a disk fault
	// would.
	CorruptRead func(offset uint64) bool
	// OnAppend is called after records are appended to the default
	// partition, with its new number of records.
	OnAppend func(n int)
	// StallProduceStream, when it returns true for a new ProduceStream,
	// makes that stream receive its first record and then neither append
	// nor answer until the client goes away, as a hung server would.
	StallProduceStream func() bool
	// StallConsumeStream, when it returns true for a new ConsumeStream,
	// makes that stream send nothing until the client goes away.
	StallConsumeStream func() bool
	// OnConsume is called by Consume with the offset asked for, before it
	// answers.
	OnConsume func(offset uint64)
	// OnDescribeTopic is called by DescribeTopic with the topic's name
	// before it answers (a test may block in it, as a slow server would).
	OnDescribeTopic func(name string)
	// RefuseDescribeTopic, when it returns an error for a DescribeTopic of
	// the topic named, refuses the call with that error (a transient
	// failure, e.g. Unavailable) instead of answering.
	RefuseDescribeTopic func(name string) error
	// RefuseInitProducer, when it returns an error, makes InitProducer
	// answer that error instead of handing out a producer ID (e.g.
	// Unavailable with the OutcomeUnknown detail: the ID may have been
	// allocated).
	RefuseInitProducer func() error
	// NoTopicIDs, when set, makes the log answer as a server that predates
	// topic IDs: topics are described without an ID and a produce's
	// topic_id is ignored.
	NoTopicIDs bool

	mu        sync.Mutex
	topics    map[string]*topic
	producers map[uint64]*producer
	nextPID   uint64
	addr      string
	clusterID string
	calls     map[string]int
	now       func() time.Time
}

type topic struct {
	name  string
	id    string
	cfg   *logv1.TopicConfig
	parts []*partition
}

type partition struct {
	recs    []*logv1.Record
	changed chan struct{} // closed and replaced on every append
}

type producer struct {
	epoch uint32
	parts map[partKey][]batchMeta // oldest first, at most ProducerWindow
}

type partKey struct {
	topic     string
	partition uint32
}

type batchMeta struct {
	first, last int32
	offset      uint64
}

var (
	_ transport.LogService     = (*Log)(nil)
	_ transport.ClusterService = (*Log)(nil)
	_ transport.TopicsService  = (*Log)(nil)
)

// New returns a fake log holding the default topic, with one empty
// partition.
func New() *Log {
	l := &Log{
		topics:    make(map[string]*topic),
		producers: make(map[uint64]*producer),
		calls:     make(map[string]int),
		clusterID: "clienttest",
		now:       time.Now,
	}
	l.topics[DefaultTopic] = &topic{name: DefaultTopic, id: newID(), cfg: &logv1.TopicConfig{}, parts: []*partition{newPartition()}}
	return l
}

func newPartition() *partition { return &partition{changed: make(chan struct{})} }

var idSeq struct {
	sync.Mutex
	n uint64
}

// newID returns a UUID-shaped topic ID, unique within the process.
func newID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", idSeq.n)
}

// Append appends values to the default partition directly, as if they had
// been produced.
func (l *Log) Append(values ...[]byte) {
	recs := make([]*logv1.Record, len(values))
	for i, v := range values {
		recs[i] = &logv1.Record{Value: v}
	}
	l.mu.Lock()
	p := l.topics[DefaultTopic].parts[0]
	l.appendLocked(l.topics[DefaultTopic], p, recs)
	n := len(p.recs)
	hook := l.OnAppend
	l.mu.Unlock()
	if hook != nil {
		hook(n)
	}
}

// Values returns a copy of the value of every record of the default
// partition, in offset order.
func (l *Log) Values() [][]byte {
	recs, _ := l.Records(DefaultTopic, 0)
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.GetValue()
	}
	return out
}

// Len returns the number of records of the default partition.
func (l *Log) Len() int {
	return len(l.Values())
}

// Records returns copies of the records of topic/partition, in offset
// order, and whether the partition exists.
func (l *Log) Records(topicName string, partition uint32) ([]*logv1.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partitionLocked(topicName, partition)
	if err != nil {
		return nil, false
	}
	out := make([]*logv1.Record, len(p.recs))
	for i, r := range p.recs {
		out[i] = cloneRecord(r)
	}
	return out, true
}

// Calls returns how many times the method named (e.g. "ProduceBatch",
// "InitProducer") was called.
func (l *Log) Calls(method string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[method]
}

func (l *Log) count(method string) {
	l.mu.Lock()
	l.calls[method]++
	l.mu.Unlock()
}

// Addr returns the address the log was last served on ("" before Serve).
func (l *Log) Addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

func cloneRecord(r *logv1.Record) *logv1.Record {
	c := &logv1.Record{
		Value:       append([]byte(nil), r.GetValue()...),
		Offset:      r.GetOffset(),
		Term:        r.GetTerm(),
		TimestampMs: r.GetTimestampMs(),
	}
	if r.Key != nil {
		c.Key = append([]byte{}, r.Key...)
	}
	for _, h := range r.GetHeaders() {
		c.Headers = append(c.Headers, &logv1.Header{Key: h.GetKey(), Value: append([]byte(nil), h.GetValue()...)})
	}
	return c
}

// partitionLocked returns topic/partition ("" topic: the default one).
func (l *Log) partitionLocked(topicName string, partition uint32) (*partition, error) {
	t, err := l.topicLocked(topicName)
	if err != nil {
		return nil, err
	}
	if partition >= uint32(len(t.parts)) {
		return nil, transport.Errorf(transport.NotFound, "clienttest: topic %q has no partition %d (%d partitions)", t.name, partition, len(t.parts))
	}
	return t.parts[partition], nil
}

func (l *Log) topicLocked(name string) (*topic, error) {
	if name == "" {
		name = DefaultTopic
	}
	t := l.topics[name]
	if t == nil {
		return nil, transport.Errorf(transport.NotFound, "clienttest: unknown topic %q", name)
	}
	return t, nil
}

// appendLocked stores recs (copies, stamped) at the end of p and returns the
// first one's offset.
func (l *Log) appendLocked(t *topic, p *partition, recs []*logv1.Record) uint64 {
	base := uint64(len(p.recs))
	now := l.now().UnixMilli()
	for i, r := range recs {
		c := cloneRecord(r)
		c.Offset = base + uint64(i)
		c.Term = 1
		if c.TimestampMs == 0 || t.cfg.GetTimestampType() == "append" {
			c.TimestampMs = now
		}
		p.recs = append(p.recs, c)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return base
}

// Serve options.
type ServeOptions struct {
	// Transport is "connect" (the default when empty) or "grpc".
	Transport string
	// TLS, when set, makes the server accept TLS only (see
	// transport.ServerConfig.TLS).
	TLS *tls.Config
	// Addr is the address to listen on; default 127.0.0.1:0.
	Addr string
}

// Server is a Log served on a port. Close stops it.
type Server struct {
	addr   string
	srv    transport.Server
	served chan struct{}
	once   sync.Once
}

// Addr returns the API address clients dial.
func (s *Server) Addr() string { return s.addr }

// Close stops the server, waiting up to 5 s for calls in flight, and then
// forcibly. It is idempotent and returns nil.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Stop(ctx) // a forced close after the timeout is fine for a test server
		<-s.served
	})
	return nil
}

// Serve serves l with the options' transport on a fresh loopback port (or
// opts.Addr). Several servers may serve one Log; GetServers names the last.
func (l *Log) Serve(opts ServeOptions) (*Server, error) {
	cfg := transport.ServerConfig{Log: l, Cluster: l, Topics: l, TLS: opts.TLS}
	var srv transport.Server
	var err error
	switch opts.Transport {
	case "", "connect":
		srv, err = tconnect.NewServer(cfg)
	case "grpc":
		srv, err = tgrpc.NewServer(cfg)
	default:
		err = fmt.Errorf("clienttest: unknown transport %q", opts.Transport)
	}
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("clienttest: listen: %w", err)
	}
	s := &Server{addr: lis.Addr().String(), srv: srv, served: make(chan struct{})}
	l.mu.Lock()
	l.addr = s.addr
	l.mu.Unlock()
	go func() {
		defer close(s.served)
		_ = srv.Serve(lis) // returns nil after Stop
	}()
	return s, nil
}

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Start serves a new Log over transportName ("connect" or "grpc") on a
// loopback port for the duration of the test, and returns it and its address.
func Start(tb TB, transportName string) (*Log, string) {
	tb.Helper()
	l := New()
	srv, err := l.Serve(ServeOptions{Transport: transportName})
	if err != nil {
		tb.Fatalf("clienttest: %v", err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return l, srv.Addr()
}

// FenceProducers bumps the epoch of every idempotent producer, as an
// InitProducer of another instance of each would: their next writes are
// refused as fenced.
func (l *Log) FenceProducers() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.producers {
		p.epoch++
		p.parts = make(map[partKey][]batchMeta)
	}
}

// ForgetProducers drops every idempotent producer, as the server does when a
// producer expires: their next writes are refused as from an unknown
// producer.
func (l *Log) ForgetProducers() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.producers)
}
