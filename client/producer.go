package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Producer defaults, used when a ProducerOption is not given.
const (
	DefaultBatchRecords    = 1024
	DefaultBatchBytes      = 1 << 20 // 1 MiB of values
	DefaultLinger          = 5 * time.Millisecond
	DefaultMaxInFlight     = 1
	DefaultMaxPending      = 64 * 1024
	DefaultDeliveryTimeout = 2 * time.Minute
)

// The Producer's errors, besides the Client's (ErrOutcomeUnknown,
// ErrUnavailable, ErrUnknownTopic, ...), which a record's Future reports
// wrapped.
var (
	// ErrProducerClosed is returned by Send and Flush once Close has been
	// called.
	ErrProducerClosed = errors.New("client: producer closed")
	// ErrProducerFenced: another instance re-initialised this producer's ID
	// (InitProducer with its ID), which bumped the epoch; the server refuses
	// every later write of this one. Fatal: every record sent after it fails
	// with it too.
	ErrProducerFenced = errors.New("client: producer fenced by a newer instance of its ID")
	// ErrOutOfOrderSequence: the server refused a batch whose sequence number
	// did not follow the last one it stored for the producer and partition.
	// The refused attempt stored nothing (an earlier attempt whose outcome
	// was unknown may have: then the error wraps ErrOutcomeUnknown too); the
	// producer starts a new epoch for the batches after it.
	ErrOutOfOrderSequence = errors.New("client: out of order sequence number")
	// ErrDuplicateSequence: the server recognised the batch as one it stored
	// before but no longer knows its offsets (retention removed them). The
	// records are stored once; their offsets are unknown.
	ErrDuplicateSequence = errors.New("client: batch stored before, its offsets are unknown")
	// ErrDeliveryTimeout: a record could not be delivered within the
	// producer's delivery timeout. Wrapped with ErrOutcomeUnknown when an
	// attempt may have stored it.
	ErrDeliveryTimeout = errors.New("client: delivery timeout")
)

// A ProducerOption configures a Producer. Build them with the Producer*
// functions of this package.
type ProducerOption interface {
	applyProducer(*producerOptions)
}

type producerOptionFunc func(*producerOptions)

func (f producerOptionFunc) applyProducer(o *producerOptions) { f(o) }

type producerOptions struct {
	batchRecords    int
	batchBytes      int
	linger          time.Duration
	maxInFlight     int
	maxPending      int
	idempotent      bool
	deliveryTimeout time.Duration
	partitioner     Partitioner
	manual          bool
}

// ProducerBatchRecords caps the number of records of one batch (one
// ProduceBatch request). Default DefaultBatchRecords.
func ProducerBatchRecords(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.batchRecords = n })
}

// ProducerBatchBytes caps the summed sizes of the records of one batch (values,
// keys and headers). A single record larger than the cap travels alone.
// Default DefaultBatchBytes.
func ProducerBatchBytes(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.batchBytes = n })
}

// ProducerLinger is how long a batch that is not full waits for more records
// before it is sent. Zero sends a batch as soon as a sender is free. Either
// way, records keep joining a batch while every sender is busy, until a
// sender takes it or it is full. Default DefaultLinger.
func ProducerLinger(d time.Duration) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.linger = d })
}

// ProducerMaxInFlight bounds the batches being sent at once, over all
// partitions. An idempotent producer sends one batch per partition at a
// time, so records of a partition are appended in the order Send accepted
// them, and more in flight only helps with several partitions. Without
// idempotence, more than 1 lets batches of one partition be appended in any
// order (records within a batch stay in order). Default DefaultMaxInFlight.
func ProducerMaxInFlight(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.maxInFlight = n })
}

// ProducerMaxPending bounds the records accepted by Send and not yet
// acknowledged; Send blocks while the bound is reached. Default
// DefaultMaxPending.
func ProducerMaxPending(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.maxPending = n })
}

// ProducerIdempotence turns the idempotent producer on (the default) or off.
// Off, a batch whose outcome is unknown fails with ErrOutcomeUnknown and is
// never retried, since a retry could store it twice; on, it is retried until
// it is acknowledged or the delivery timeout passes, and stored once.
func ProducerIdempotence(on bool) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.idempotent = on })
}

// ProducerDeliveryTimeout bounds the time from Send to a record's outcome:
// queueing, batching, every retry. A record not acknowledged by then fails
// with ErrDeliveryTimeout (and ErrOutcomeUnknown if an attempt may have
// stored it). Default DefaultDeliveryTimeout.
func ProducerDeliveryTimeout(d time.Duration) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.deliveryTimeout = d })
}

// ProducerPartitioner sets the partitioner of records (DefaultPartitioner by
// default). It is not used with ProducerManualPartitioning.
func ProducerPartitioner(p Partitioner) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.partitioner = p })
}

// ProducerManualPartitioning makes the Producer send each record to the
// partition its Partition field names, without a partitioner and without
// asking for the topic's partition count in Send (the Producer
// still describes each topic once, before its first batch, to learn its ID:
// see Producer).
func ProducerManualPartitioning() ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.manual = true })
}

// A Future is the result of one record given to Producer.Send. It is safe for
// concurrent use.
type Future struct {
	res *outcome // its batch's, shared by the batch's futures
	idx uint32   // its record's index in the batch (a batch is one request: far fewer than 2³² records)
	cb  func(offset uint64, err error)
}

// outcome is the result of a batch, which its futures share: a Future is
// small, and finish sets one result, not one per record.
type outcome struct {
	done      chan struct{} // closed once base or err is set (or both halves of a split are done): each Future's Done
	partition uint32
	base      uint64 // the offset of the batch's first record, when err is nil
	err       error

	// split is set when the server refused the batch as too large
	// (ResourceExhausted: more records or bytes than its limits) and it was
	// sent again as two halves, each with its own outcome; done is closed
	// once both are. parent is the outcome of the batch a half was split from.
	split  atomic.Pointer[splitOutcome]
	parent *outcome
}

// splitOutcome is the two halves of a split batch: records [0, half) went
// with lo, the rest with hi.
type splitOutcome struct {
	half   uint32
	lo, hi *outcome
	left   atomic.Int32 // halves not done yet
}

// leaf returns the outcome that holds the result of the record at idx of
// o's batch, and the record's index in that outcome's batch.
func (o *outcome) leaf(idx uint32) (*outcome, uint32) {
	for s := o.split.Load(); s != nil; s = o.split.Load() {
		if idx < s.half {
			o = s.lo
		} else {
			o, idx = s.hi, idx-s.half
		}
	}
	return o, idx
}

// result returns the offset or error of f, once its Done is closed.
func (f *Future) result() (uint64, error) {
	o, idx := f.res.leaf(f.idx)
	if o.err != nil {
		return 0, o.err
	}
	return o.base + uint64(idx), nil
}

// Done is closed once the record's result is known.
func (f *Future) Done() <-chan struct{} {
	o, _ := f.res.leaf(f.idx)
	return o.done
}

// Partition returns the partition the Producer placed the record in. It is
// known as soon as Send returns.
func (f *Future) Partition() uint32 { return f.res.partition }

// Wait blocks until the record's result is known or ctx is done, and returns
// the record's offset in its partition or the error that failed it. The
// error wraps ErrOutcomeUnknown whenever the record may have been stored:
// without idempotence, after an attempt whose outcome is unknown; with it,
// when an attempt's outcome was unknown and the retries then ended without
// an answer for it (the delivery timeout passed, the client was closed, a
// retry was refused for good or the producer was fenced), together with the
// error that ended them. ErrProducerClosed never (Close delivers what it
// accepted); ctx's error when ctx ended first (the record is still being
// sent).
func (f *Future) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-f.Done():
		return f.result()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// batch is records of one partition sent in one ProduceBatch request.
type batch struct {
	part     *partState
	recs     []*logv1.Record
	futures  []*Future
	bytes    int
	deadline time.Time     // the delivery deadline of its first record
	res      *outcome      // its futures' result
	done     chan struct{} // closed once every future completed (its callback ran): by closeDone
	seq      int32         // base sequence number, once seqSet
	seqSet   bool
	// lingered: its linger passed. It may be sent from then on, and records
	// keep joining it until a sender takes it (or it fills up).
	lingered bool

	// parent is the batch a half was split from; halves counts, in a split
	// batch, the halves whose done is not closed yet.
	parent *batch
	halves atomic.Int32

	// The records and futures not used yet of the chunk last allocated
	// for recs and futures: a batch allocates them a chunk at a time, not
	// one by one. Futures have their own chunks so that a Future the
	// caller keeps does not keep the records' values.
	recSlab []logv1.Record
	futSlab []Future
}

// maxChunk caps the records and futures of one chunk: small chunks are
// allocated from the per-size caches, and a Future the caller keeps keeps at
// most maxChunk futures (1.5 KiB) alive.
const maxChunk = 64

// newBatchLocked starts a batch of ps. Its slices and first chunk hold as
// many records as ps's last batch did (up to maxChunk for the chunk): under a
// steady load they need not grow. p.mu must be held.
func (p *Producer) newBatchLocked(ps *partState) *batch {
	n := min(max(ps.lastRecs, 1), p.opts.batchRecords)
	return &batch{part: ps, done: make(chan struct{}),
		res:      &outcome{done: make(chan struct{}), partition: ps.loc.partition},
		deadline: time.Now().Add(p.opts.deliveryTimeout),
		recs:     make([]*logv1.Record, 0, n), futures: make([]*Future, 0, n),
		recSlab: make([]logv1.Record, min(n, maxChunk)), futSlab: make([]Future, min(n, maxChunk))}
}

// addLocked appends rec to b and returns its Future. When b's chunk is
// used up, the next one holds as many records as b already does (capped by
// maxChunk and the records b may still take). p.mu must be held.
func (p *Producer) addLocked(b *batch, rec *Record, cb func(uint64, error)) *Future {
	if len(b.recSlab) == 0 {
		n := max(min(len(b.recs), p.opts.batchRecords-len(b.recs), maxChunk), 1)
		b.recSlab, b.futSlab = make([]logv1.Record, n), make([]Future, n)
	}
	wire, f := &b.recSlab[0], &b.futSlab[0]
	b.recSlab, b.futSlab = b.recSlab[1:], b.futSlab[1:]
	fillProto(wire, rec)
	f.res, f.idx, f.cb = b.res, uint32(len(b.recs)), cb
	b.recs = append(b.recs, wire)
	b.futures = append(b.futures, f)
	return f
}

// partState is one partition's batching and sequence state.
type partState struct {
	loc      partitionRef
	name     string // topic name for errors
	cur      *batch
	timer    *time.Timer
	ready    []*batch // cut, waiting for a sender, in order
	inFlight int
	nextSeq  int32 // idempotence: sequence number of the next record
	lastRecs int   // records of the batch cut last, to size the next one
}

// topicCount is a topic's partition count as last learnt.
type topicCount struct {
	n          uint32
	learned    time.Time
	refreshing bool // a Send is describing the topic again; the others use n meanwhile
}

// topicCountTTL is how long a learnt partition count is used before the
// topic is described again (partitions may have been added).
var topicCountTTL = 30 * time.Second

// A Producer appends records asynchronously in batches, one batch per
// partition: records given to Send accumulate until a partition's batch holds
// ProducerBatchRecords records or ProducerBatchBytes bytes, or its first
// record waited ProducerLinger; the batch then travels as one atomic
// ProduceBatch request, and each record's offset is delivered to its Future
// and callback. Records without a partition go where the partitioner puts
// them (DefaultPartitioner: Kafka's murmur2 of the key, sticky placement
// without a key).
//
// # Idempotence
//
// A Producer is idempotent by default (Kafka's KIP-98): it asks the cluster
// for a producer ID and epoch (InitProducer), numbers the records of each
// partition, and sends each batch with its producer ID, epoch and base
// sequence number; every replica's state machine checks them. So a batch
// whose outcome is unknown (leader lost after proposing, a timeout, a broken
// connection) is retried automatically, again and again until it is
// acknowledged or the delivery timeout passes, and it is stored once: a
// retry of a batch already stored is answered with the original offsets and
// stores nothing. Each partition has one batch in flight at a time, so the
// records of a partition are stored in Send order without gaps. What is not
// covered: a record whose delivery timeout passes while its outcome is
// unknown fails with ErrDeliveryTimeout and ErrOutcomeUnknown (it may be
// stored, once), and so does a record whose retry after an unknown outcome
// fails for good (refused, the client closed, the producer fenced), with
// that retry's error; two Producers (or two processes) are two producers, so
// the same value sent by both is stored twice.
//
// A topic deleted and created again under its name is another topic: the
// Producer pins the ID each topic has when it first learns it (SendRecord's
// DescribeTopic; with ProducerManualPartitioning, before the topic's first
// batch), asked of the leader whatever the read policy (a lagging follower
// may still name a deleted topic), and every batch names it, so that once
// the name is another topic's every record sent to it (a retry, or one
// accepted before the re-creation) fails with ErrUnknownTopic, and none is
// stored in the new topic. Use a new Producer for the new topic.
//
// A Producer is safe for concurrent use. It owns up to ProducerMaxInFlight
// sending goroutines, stopped by Close (or by the Client's Close). Create one
// with Client.NewProducer.
type Producer struct {
	c    *Client
	opts producerOptions

	// closedFlag mirrors closed for Send's first check, which must not
	// take mu.
	closedFlag atomic.Bool
	// callbacks counts the callbacks running: a Client's Close made while one
	// runs does not wait for the sending goroutines (it may be made from
	// one of them).
	callbacks atomic.Int32

	// countMu guards counts and ids (never held while asking the cluster;
	// not under mu).
	countMu sync.Mutex
	counts  map[string]topicCount
	// ids are the topic IDs the producer pinned, by wire topic name: the ID
	// each topic had when the producer first learnt it. Every batch names it
	// (ProduceBatchRequest.topic_id), so that a batch, or its retry, never
	// lands in another topic created under the name since.
	ids map[string]string
	// unpinnable are the topics the producer may not describe (refused, or
	// a server without topic IDs): their batches go by name, and topicID
	// does not ask again for each.
	unpinnable map[string]bool

	mu       sync.Mutex
	cond     *sync.Cond // signals senders: ready grew, a batch completed, closed
	parts    map[partitionRef]*partState
	order    []*partState // every partition, for round-robin picks
	rr       int
	inFlight map[*batch]struct{}
	closed   bool
	// pending counts the records accepted by Send and not yet completed;
	// room, when not nil, is closed (and cleared) when some complete, to
	// wake the Sends waiting for pending to drop below maxPending.
	pending int
	room    chan struct{}

	// Idempotence state, under mu.
	pid       ProducerID
	needID    bool  // ask for a new producer ID before the next batch
	needEpoch bool  // bump the epoch (sequences restart at 0) before the next batch
	resetting bool  // a sender is calling InitProducer
	fatal     error // every later batch fails with it (fenced, unsupported)

	stats struct {
		batches, retries, duplicates, inits, splits atomic.Uint64
	}

	wg   sync.WaitGroup
	once sync.Once
}

// ProducerStats counts what a Producer did since it was created.
type ProducerStats struct {
	// Batches is the number of batches acknowledged.
	Batches uint64
	// Retries counts the attempts whose outcome was unknown, each followed
	// by a resend unless the delivery timeout passed first (idempotent
	// producers only).
	Retries uint64
	// Duplicates is the number of resends the server recognised as stored
	// before (it answered the original offsets and stored nothing).
	Duplicates uint64
	// Inits is the number of InitProducer calls that succeeded: the first,
	// then one per new producer ID or epoch.
	Inits uint64
	// Splits is the number of batches the server refused as too large
	// (ResourceExhausted) that were sent again as two halves.
	Splits uint64
}

// Stats returns the producer's counters. Safe for concurrent use.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{
		Batches:    p.stats.batches.Load(),
		Retries:    p.stats.retries.Load(),
		Duplicates: p.stats.duplicates.Load(),
		Splits:     p.stats.splits.Load(),
		Inits:      p.stats.inits.Load(),
	}
}

// NewProducer starts a batching Producer that sends through c; it is
// idempotent unless ProducerIdempotence(false) is given. Close it before
// closing c, so that its records are delivered: c's Close closes the
// Producers still open, failing their pending records and later Sends with
// ErrClosed. It fails with ErrInvalidOption on a non-positive size or
// timeout, or a negative linger, and with ErrClosed once c is closed.
func (c *Client) NewProducer(opts ...ProducerOption) (*Producer, error) {
	o := producerOptions{
		batchRecords:    DefaultBatchRecords,
		batchBytes:      DefaultBatchBytes,
		linger:          DefaultLinger,
		maxInFlight:     DefaultMaxInFlight,
		maxPending:      DefaultMaxPending,
		idempotent:      true,
		deliveryTimeout: DefaultDeliveryTimeout,
	}
	for _, opt := range opts {
		opt.applyProducer(&o)
	}
	if o.batchRecords <= 0 || o.batchBytes <= 0 || o.maxInFlight <= 0 || o.maxPending <= 0 || o.linger < 0 || o.deliveryTimeout <= 0 {
		return nil, fmt.Errorf("%w: producer sizes and delivery timeout must be positive and linger non-negative", ErrInvalidOption)
	}
	if o.partitioner == nil {
		o.partitioner = DefaultPartitioner()
	}
	p := &Producer{
		c:          c,
		opts:       o,
		counts:     make(map[string]topicCount),
		ids:        make(map[string]string),
		unpinnable: make(map[string]bool),
		parts:      make(map[partitionRef]*partState),
		inFlight:   make(map[*batch]struct{}),
		needID:     o.idempotent,
	}
	p.cond = sync.NewCond(&p.mu)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.producers[p] = struct{}{}
	c.mu.Unlock()
	p.wg.Add(o.maxInFlight)
	for range o.maxInFlight {
		go p.sender()
	}
	return p, nil
}

// Send hands value to the producer for partition 0 of DefaultTopic and
// returns its Future at once; the record is sent in a later batch. See
// SendRecord.
func (p *Producer) Send(ctx context.Context, value []byte) (*Future, error) {
	return p.send(ctx, Record{Value: value}, nil)
}

// SendFunc is Send with a callback run once with the record's offset or
// error. Callbacks run on the producer's sending goroutine, in record order
// within a batch: they must be quick and must not call Flush or Close (the
// Client's Close they may call). They may call Send: the slots of a batch's
// records are freed before its callbacks run. Should other goroutines fill ProducerMaxPending again
// first, that Send blocks the sending goroutine, which may be the one the
// room waits for: give it a context with a deadline.
func (p *Producer) SendFunc(ctx context.Context, value []byte, cb func(offset uint64, err error)) error {
	_, err := p.send(ctx, Record{Value: value}, cb)
	return err
}

// SendRecord hands rec (its Value, Key, Headers and Timestamp) to the
// producer for topic rec.Topic ("" means DefaultTopic) and returns its Future
// at once; the record is sent in a later batch. The partition is rec's with
// ProducerManualPartitioning, else the partitioner's: the first record of a
// topic (and one every 30 s) asks the leader for the topic's partition count
// (DescribeTopic) within ctx, which fails with an error wrapping
// ErrUnknownTopic for a missing topic, or for one deleted and created again
// since the producer learnt it (see Producer).
//
// Send blocks only while ProducerMaxPending records are pending, until room
// frees up or ctx is done (then it returns ctx's error and the record is not
// sent). The producer keeps the record's slices until it completes: do not
// modify them before. It returns ErrProducerClosed after Close.
func (p *Producer) SendRecord(ctx context.Context, rec Record) (*Future, error) {
	return p.send(ctx, rec, nil)
}

// SendRecordFunc is SendRecord with a callback, as SendFunc.
func (p *Producer) SendRecordFunc(ctx context.Context, rec Record, cb func(offset uint64, err error)) error {
	_, err := p.send(ctx, rec, cb)
	return err
}

// partitionCount returns topic's partition count, asking the cluster when
// it is not known or stale. The cluster is asked without holding the cache:
// while one Send describes a topic whose count went stale, the others use the
// stale count, and Sends to other topics never wait for it.
func (p *Producer) partitionCount(ctx context.Context, topic string) (uint32, error) {
	if topic == "" || topic == DefaultTopic {
		return 1, nil // the default topic always has exactly one partition
	}
	p.countMu.Lock()
	tc, known := p.counts[topic]
	if known && (tc.refreshing || time.Since(tc.learned) < topicCountTTL) {
		p.countMu.Unlock()
		return tc.n, nil
	}
	if known {
		tc.refreshing = true
		p.counts[topic] = tc
	}
	p.countMu.Unlock()

	d, err := p.c.describeTopicOnLeader(ctx, topic)
	p.countMu.Lock()
	defer p.countMu.Unlock()
	if err != nil {
		if known {
			tc.refreshing = false
			p.counts[topic] = tc
			if !errors.Is(err, ErrUnknownTopic) {
				return tc.n, nil // keep using the last count through a failure
			}
		}
		return 0, err
	}
	if err := p.pinLocked(topic, d.ID); err != nil {
		if known {
			tc.refreshing = false
			p.counts[topic] = tc
		}
		return 0, err
	}
	n := max(d.Partitions, 1)
	p.counts[topic] = topicCount{n: n, learned: time.Now()}
	return n, nil
}

// pinLocked pins id as topic's ID (wire name) unless one is pinned, and
// fails with an error wrapping ErrUnknownTopic when another one is: the
// topic was deleted and created again since the producer learnt it. An
// empty id (a server without topic IDs) pins nothing and, when nothing is
// pinned, marks the topic unpinnable, so that topicID does not ask again
// before every batch (a later description with an ID, the partition count's
// refresh, still pins it). p.countMu must be held.
func (p *Producer) pinLocked(topic, id string) error {
	pinned := p.ids[topic]
	switch {
	case id == "" && pinned == "":
		p.unpinnable[topic] = true
	case id == "":
	case pinned == "":
		p.ids[topic] = id
	case pinned != id:
		return fmt.Errorf("%w: topic %q has ID %s, this producer's has %s: deleted since, perhaps created again", ErrUnknownTopic, topic, id, pinned)
	}
	return nil
}

// topicID returns the ID batch b's topic is pinned to ("" for the default
// topic, which is never deleted). Unpinned (ProducerManualPartitioning: Send
// does not describe topics), it asks the cluster once, within b's delivery
// deadline: an unknown topic fails b (an error wrapping ErrUnknownTopic);
// any other failure leaves b unpinned, sent by name as before topic IDs: a
// server that cannot tell now is asked again for the next batch, one that
// refused (PermissionDenied, no topic IDs) is not asked again.
func (p *Producer) topicID(b *batch) (string, error) {
	topic := b.part.loc.topic
	if topic == "" || topic == DefaultTopic {
		return "", nil
	}
	p.countMu.Lock()
	id, unpinnable := p.ids[topic], p.unpinnable[topic]
	p.countMu.Unlock()
	if id != "" || unpinnable {
		return id, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.deadline)
	d, err := p.c.describeTopicOnLeader(ctx, topic)
	expired := ctx.Err() != nil
	cancel()
	if errors.Is(err, ErrUnknownTopic) {
		return "", err
	}
	p.countMu.Lock()
	defer p.countMu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) && !expired {
			p.unpinnable[topic] = true
		}
		return "", nil
	}
	if err := p.pinLocked(topic, d.ID); err != nil {
		return "", err
	}
	return p.ids[topic], nil
}

func (p *Producer) send(ctx context.Context, rec Record, cb func(uint64, error)) (*Future, error) {
	if p.c.isClosed() {
		// Nothing could be delivered: the client's Close closes the
		// producer too.
		return nil, ErrClosed
	}
	if p.closedFlag.Load() {
		return nil, ErrProducerClosed
	}
	if !rec.Timestamp.IsZero() && rec.Timestamp.UnixMilli() < 0 {
		// Servers refuse a negative timestamp_ms (InvalidArgument), and a batch is atomic:
		// refused here, as Kafka's ProducerRecord refuses it, it fails alone.
		return nil, fmt.Errorf("%w: timestamp %v is before 1970 (Unix milliseconds %d)", ErrInvalidRecord, rec.Timestamp, rec.Timestamp.UnixMilli())
	}
	var n uint32
	if !p.opts.manual {
		var err error
		if n, err = p.partitionCount(ctx, rec.Topic); err != nil {
			return nil, fmt.Errorf("send to topic %s: %w", topicName(rec.Topic), err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && p.pending >= p.opts.maxPending {
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		select {
		case <-room:
			p.mu.Lock()
		case <-ctx.Done():
			p.mu.Lock()
			return nil, ctx.Err()
		}
	}
	if p.closed {
		if p.c.isClosed() {
			return nil, ErrClosed
		}
		return nil, ErrProducerClosed
	}
	p.pending++
	switch {
	case p.opts.manual:
	case n == 1:
		rec.Partition = 0 // no question to ask
	default:
		rec.Partition = partitionOf(p.opts.partitioner, rec, n)
	}
	loc := partitionRef{topic: wireTopic(rec.Topic), partition: rec.Partition}
	ps := p.parts[loc]
	if ps == nil {
		ps = &partState{loc: loc, name: topicName(rec.Topic)}
		p.parts[loc] = ps
		p.order = append(p.order, ps)
	}
	size := batchSize(&rec)
	if ps.cur != nil && (len(ps.cur.recs) >= p.opts.batchRecords || ps.cur.bytes+size > p.opts.batchBytes) {
		p.cutLocked(ps)
	}
	if ps.cur == nil {
		ps.cur = p.newBatchLocked(ps)
		if p.opts.linger > 0 {
			b := ps.cur
			ps.timer = time.AfterFunc(p.opts.linger, func() { p.lingerExpired(b) })
		}
	}
	f := p.addLocked(ps.cur, &rec, cb)
	ps.cur.bytes += size
	switch {
	case len(ps.cur.recs) >= p.opts.batchRecords || ps.cur.bytes >= p.opts.batchBytes:
		p.cutLocked(ps)
	case p.opts.linger == 0:
		// No linger: a free sender takes the batch now; while all
		// are busy, records keep accumulating in it.
		p.cond.Signal()
	}
	return f, nil
}

// batchSize is what rec counts against ProducerBatchBytes: its value, key and headers, all of
// which travel in the batch's request (and count against the server's record limits).
func batchSize(rec *Record) int {
	n := len(rec.Value) + len(rec.Key)
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// partitionOf asks pt for rec's partition. rec is a copy: handing pt a pointer to send's own
// record would move that to the heap on every Send, even those to a topic of one partition,
// which need no question.
func partitionOf(pt Partitioner, rec Record, n uint32) uint32 {
	return pt.Partition(&rec, n)
}

// cutLocked moves ps's current batch to its ready queue. p.mu must be held.
func (p *Producer) cutLocked(ps *partState) {
	if ps.cur == nil {
		return
	}
	if ps.timer != nil {
		ps.timer.Stop()
		ps.timer = nil
	}
	ps.lastRecs = len(ps.cur.recs)
	ps.ready = append(ps.ready, ps.cur)
	ps.cur = nil
	p.opts.partitioner.BatchCut(ps.name, ps.loc.partition)
	p.cond.Signal()
}

// lingerExpired makes b sendable. It is not cut yet: while every sender is busy, records keep
// joining it (as Kafka's accumulator appends to a batch until it is drained), so that a slow
// round trip sends more records at once instead of one small batch per linger. A sender cuts
// it when it takes it (pickLocked).
func (p *Producer) lingerExpired(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.part.cur == b {
		b.lingered = true
		b.part.timer = nil
		p.cond.Signal()
	}
}

// sendableLocked reports whether a batch of ps may be sent now.
func (p *Producer) sendableLocked(ps *partState) bool {
	if p.opts.idempotent && ps.inFlight > 0 {
		return false
	}
	return len(ps.ready) > 0 || (ps.cur != nil && (p.opts.linger == 0 || ps.cur.lingered))
}

// pickLocked takes the next batch to send, round-robin over the partitions,
// or returns nil when none may be sent now.
func (p *Producer) pickLocked() *batch {
	if p.needID || p.needEpoch || p.resetting {
		return nil // batches wait for the new producer ID or epoch
	}
	for i := range p.order {
		ps := p.order[(p.rr+i)%len(p.order)]
		if !p.sendableLocked(ps) {
			continue
		}
		p.rr = (p.rr + i + 1) % len(p.order)
		if len(ps.ready) == 0 {
			p.cutLocked(ps) // linger 0, or passed: take what accumulated
		}
		b := ps.ready[0]
		ps.ready[0] = nil
		ps.ready = ps.ready[1:]
		ps.inFlight++
		p.inFlight[b] = struct{}{}
		return b
	}
	return nil
}

// idleLocked reports whether nothing is left to send or being sent.
func (p *Producer) idleLocked() bool {
	if len(p.inFlight) > 0 {
		return false
	}
	for _, ps := range p.order {
		if len(ps.ready) > 0 || ps.cur != nil {
			return false
		}
	}
	return true
}

// sender takes batches and sends them until the producer is closed and
// nothing is left.
func (p *Producer) sender() {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.fatal != nil {
			if bs := p.takeWaitingLocked(); len(bs) > 0 {
				p.mu.Unlock()
				p.fail(bs, p.fatal)
				p.mu.Lock()
				continue
			}
		}
		if (p.needID || p.needEpoch) && !p.resetting && len(p.inFlight) == 0 && !p.idleLocked() {
			p.resetLocked()
			continue
		}
		if b := p.pickLocked(); b != nil {
			p.mu.Unlock()
			completed := p.sendBatch(b)
			p.mu.Lock()
			b.part.inFlight--
			delete(p.inFlight, b)
			if completed {
				closeDone(b)
			}
			p.cond.Broadcast()
			continue
		}
		if p.closed && p.idleLocked() {
			p.cond.Broadcast()
			return
		}
		p.cond.Wait()
	}
}

// resetLocked asks the cluster for a new producer ID (needID) or epoch
// (needEpoch), with p.mu held on entry and exit (released during the call).
// Every partition's sequence restarts at 0. A fatal error (fenced, a server
// without idempotent producers, permission denied) fails every batch.
func (p *Producer) resetLocked() {
	p.resetting = true
	id := p.pid.ID
	if p.needID {
		id = 0
	}
	p.mu.Unlock()
	var pid ProducerID
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.deliveryTimeout)
		pid, err = p.c.InitProducer(ctx, id)
		cancel()
		if err == nil || errors.Is(err, ErrClosed) || !initTransient(err) {
			break
		}
		// A transient failure: try again, while a batch is still in
		// time (expired ones fail below).
		if p.expireWaiting(notSent(err)) {
			break
		}
		if p.c.backoff(context.Background(), min(attempt, 5)) != nil {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("idempotent producer: %w", err)
		p.mu.Lock()
		if !initTransient(err) {
			p.fatal = err
		}
		bs := p.takeWaitingLocked()
		p.mu.Unlock()
		p.fail(bs, notSent(err))
		p.mu.Lock()
		p.resetting = false
		p.cond.Broadcast()
		return
	}
	p.mu.Lock()
	p.resetting = false
	p.stats.inits.Add(1)
	p.pid, p.needID, p.needEpoch = pid, false, false
	for _, ps := range p.order {
		ps.nextSeq = 0
	}
	p.cond.Broadcast()
}

// notSent is the error of records that waited for an InitProducer that
// failed with err: they were never sent (a batch an attempt may have stored
// is never left waiting), so an unknown outcome of the InitProducer (a
// producer ID perhaps allocated) says nothing of them and must not read as
// ErrOutcomeUnknown: it is named in the message and the error wraps
// ErrUnavailable (ErrClosed once the client is closed) instead.
func notSent(err error) error {
	if !errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	sentinel := ErrUnavailable
	if errors.Is(err, ErrClosed) {
		sentinel = ErrClosed
	}
	return fmt.Errorf("%w: not sent: the producer ID could not be obtained (%v)", sentinel, err)
}

// initTransient reports whether an InitProducer error may pass: no server
// reachable, an unknown outcome, or redirects past the retry budget (a
// leadership change under way). Any other error is fatal to the producer.
func initTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotLeader)
}

// expireWaiting fails the waiting batches whose delivery deadline passed
// (nothing of them was stored) and reports whether none is left waiting.
func (p *Producer) expireWaiting(cause error) (noneLeft bool) {
	p.mu.Lock()
	now := time.Now()
	noneLeft = true
	var expired []*batch
	for _, ps := range p.order {
		if ps.cur != nil && !ps.cur.deadline.After(now) {
			// Without linger a batch waits uncut until a sender takes it: it
			// expires as well.
			p.cutLocked(ps)
		}
		for len(ps.ready) > 0 && !ps.ready[0].deadline.After(now) {
			expired = append(expired, ps.ready[0])
			ps.ready = ps.ready[1:]
		}
		if len(ps.ready) > 0 || ps.cur != nil {
			noneLeft = false
		}
	}
	p.mu.Unlock()
	p.fail(expired, fmt.Errorf("%w: %w", ErrDeliveryTimeout, cause))
	return noneLeft
}

// takeWaitingLocked detaches every batch waiting to be sent (the current
// ones cut) and returns them.
func (p *Producer) takeWaitingLocked() []*batch {
	var out []*batch
	for _, ps := range p.order {
		if ps.cur != nil {
			p.cutLocked(ps)
		}
		out = append(out, ps.ready...)
		ps.ready = nil
	}
	return out
}

// fail completes batches that no sender took with err, without p.mu held
// (callbacks run).
func (p *Producer) fail(bs []*batch, err error) {
	for _, b := range bs {
		p.finish(b, 0, err)
		closeDone(b)
	}
}

// closeDone closes b.done, once every future of b completed. A half of a
// split batch: the batch it was split from is done once both halves are, and
// so on up.
func closeDone(b *batch) {
	close(b.done)
	for ; b.parent != nil && b.parent.halves.Add(-1) == 0; b = b.parent {
		close(b.parent.done)
	}
}

// finish completes every future of b. The batch's pending slots are freed
// before any Future completes: a callback may call Send, which would wait
// forever for the slot of the record whose callback is running if
// ProducerMaxPending records were pending. Flush and Close do not count
// slots (they wait for b.done, closed after finish, and for the senders), so
// freeing them first does not let them return before the callbacks ran.
func (p *Producer) finish(b *batch, base uint64, err error) {
	p.mu.Lock()
	p.pending -= len(b.futures)
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
	b.res.base, b.res.err = base, err
	// Every result is set before any callback runs, so a callback may Wait for any record of
	// its own batch.
	close(b.res.done)
	// A half of a split batch: the batch it came from is done once both halves are.
	for o := b.res; o.parent != nil && o.parent.split.Load().left.Add(-1) == 0; o = o.parent {
		close(o.parent.done)
	}
	for _, f := range b.futures {
		if f.cb != nil {
			p.callbacks.Add(1)
			f.cb(f.result())
			p.callbacks.Add(-1)
			// The futures of a chunk live as long as any of them is kept:
			// a kept one does not keep the others' callbacks.
			f.cb = nil
		}
	}
}

// ref returns the ProducerRef of b, numbering it on its first attempt, or
// the fatal error. Nil without idempotence.
func (p *Producer) ref(b *batch) (*logv1.ProducerRef, error) {
	if !p.opts.idempotent {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fatal != nil {
		return nil, p.fatal
	}
	if !b.seqSet {
		b.seq, b.seqSet = b.part.nextSeq, true
		b.part.nextSeq = int32((int64(b.part.nextSeq) + int64(len(b.recs))) % (1 << 31))
	}
	return &logv1.ProducerRef{Id: p.pid.ID, Epoch: p.pid.Epoch, BaseSequence: b.seq}, nil
}

// requeue puts b back at the head of its partition's queue, unnumbered,
// after the server forgot the producer (nothing of b was stored).
func (p *Producer) requeue(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.seqSet = false
	b.part.ready = append([]*batch{b}, b.part.ready...)
	p.needID = true
}

// splitBatch puts the two halves of b, which was refused as too large and
// holds more than one record, at the head of its partition's queue, in its
// place: its futures take their results from the halves, and b.done is
// closed once both halves are done.
func (p *Producer) splitBatch(b *batch) {
	h := len(b.recs) / 2
	half := func(recs []*logv1.Record, futures []*Future) *batch {
		bytes := 0
		for _, r := range recs {
			bytes += len(r.GetValue()) + len(r.GetKey())
			for _, hd := range r.GetHeaders() {
				bytes += len(hd.GetKey()) + len(hd.GetValue())
			}
		}
		return &batch{part: b.part, recs: recs, futures: futures, bytes: bytes, deadline: b.deadline, done: make(chan struct{}),
			res: &outcome{done: make(chan struct{}), partition: b.res.partition, parent: b.res}, parent: b}
	}
	lo, hi := half(b.recs[:h], b.futures[:h]), half(b.recs[h:], b.futures[h:])
	s := &splitOutcome{half: uint32(h), lo: lo.res, hi: hi.res}
	s.left.Store(2)
	b.res.split.Store(s)
	b.halves.Store(2) // before either half is queued: closeDone counts it down
	p.mu.Lock()
	defer p.mu.Unlock()
	b.part.ready = append([]*batch{lo, hi}, b.part.ready...)
	p.stats.splits.Add(1)
}

// sendBatch sends b until it is acknowledged or fails for good, and
// completes its futures; it reports false when it requeued b instead.
func (p *Producer) sendBatch(b *batch) bool {
	var last error
	unknown := false // an attempt may have stored b
	topicID, err := p.topicID(b)
	if err != nil {
		p.finish(b, 0, fmt.Errorf("produce batch of %d to %s/%d: %w", len(b.recs), b.part.name, b.part.loc.partition, err))
		return true
	}
	for attempt := 0; ; attempt++ {
		ref, err := p.ref(b)
		if err != nil {
			p.finish(b, 0, keepUnknown(err, unknown))
			return true
		}
		if !time.Now().Before(b.deadline) {
			p.finish(b, 0, p.expired(b, last, unknown))
			return true
		}
		// The producer's requests are not tied to any caller's
		// context: the delivery deadline bounds them, and the client's
		// ErrClosed ends them.
		ctx, cancel := context.WithDeadline(context.Background(), b.deadline)
		base, dup, err := p.c.produceBatch(ctx, b.part.loc, topicID, b.recs, ref)
		cancel()
		if err == nil {
			p.stats.batches.Add(1)
			if dup {
				p.stats.duplicates.Add(1) // the answer carries the original offsets
			}
			p.finish(b, base, nil)
			return true
		}
		last = err
		err = fmt.Errorf("produce batch of %d to %s/%d: %w", len(b.recs), b.part.name, b.part.loc.partition, err)
		if ref != nil {
			if reason, ok := transport.ProducerRejectedDetail(err); ok {
				switch reason {
				case transport.ProducerUnknown:
					if unknown {
						// An earlier attempt may have stored b under the
						// forgotten ID: it cannot be resent safely.
						p.finish(b, 0, keepUnknown(err, unknown))
						p.markEpoch()
						return true
					}
					p.requeue(b)
					return false
				case transport.ProducerFenced:
					p.setFatal(fmt.Errorf("%w: %w", ErrProducerFenced, err))
					p.finish(b, 0, keepUnknown(fmt.Errorf("%w: %w", ErrProducerFenced, err), unknown))
					return true
				case transport.ProducerDuplicate:
					// Stored (once) by an earlier attempt: known, not in
					// doubt, so not wrapped with ErrOutcomeUnknown.
					p.finish(b, 0, fmt.Errorf("%w: %w", ErrDuplicateSequence, err))
					return true
				default: // out of order
					p.finish(b, 0, keepUnknown(fmt.Errorf("%w: %w", ErrOutOfOrderSequence, err), unknown))
					p.markEpoch()
					return true
				}
			}
		}
		switch {
		case errors.Is(err, ErrClosed):
			p.finish(b, 0, keepUnknown(err, unknown))
			if ref != nil && unknown {
				p.markEpoch()
			}
			return true
		case errors.Is(err, ErrOutcomeUnknown):
			if ref == nil {
				p.finish(b, 0, err) // never retried without idempotence
				return true
			}
			unknown = true // retried with the same sequence: stored once
			p.stats.retries.Add(1)
		case errors.Is(err, ErrUnavailable):
			// Refused before proposal, or no server reachable: nothing
			// of this attempt was stored. Retried until the deadline.
		case !time.Now().Before(b.deadline):
			// The delivery deadline ended the attempt before it was
			// sent: reported as expired at the top of the loop.
			continue
		case !unknown && len(b.recs) > 1 && transport.CodeOf(err) == transport.ResourceExhausted:
			// Refused as too large (more records or bytes than the
			// server's limits), before anything was stored: as Kafka's
			// producer does, the batch is split in two and the halves
			// are sent in its place, in order, until they fit (a single
			// record too large fails alone). The servers answer
			// ResourceExhausted on this path only for a size limit, with
			// no detail naming it: one for another reason (a proxy's rate
			// limit) is split too, down to single records that each fail.
			if ref != nil {
				p.unnumber(b)
			}
			p.splitBatch(b)
			return false
		default:
			// An answer a retry would not change (InvalidArgument,
			// PermissionDenied, an unknown topic, ...): nothing was
			// stored, so the sequence numbers are handed back.
			if ref != nil && !unknown {
				p.unnumber(b)
			} else if ref != nil {
				p.markEpoch()
			}
			p.finish(b, 0, keepUnknown(err, unknown))
			return true
		}
		bctx, cancel := context.WithDeadline(context.Background(), b.deadline)
		berr := p.c.backoff(bctx, min(attempt, 5))
		cancel()
		if errors.Is(berr, ErrClosed) {
			p.finish(b, 0, keepUnknown(fmt.Errorf("%w (last error: %w)", ErrClosed, err), unknown))
			if ref != nil && unknown {
				p.markEpoch()
			}
			return true
		}
	}
}

// keepUnknown is the error that ends a batch for good: err, wrapped with
// ErrOutcomeUnknown when an earlier attempt may have stored the batch
// (unknown). The attempt that failed last may have been refused outright,
// but that says nothing of the earlier one: without the wrap the caller
// would take the records as not stored and could send them again.
func keepUnknown(err error, unknown bool) error {
	if !unknown || errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
}

// expired is the error of a batch whose delivery deadline passed.
func (p *Producer) expired(b *batch, last error, unknown bool) error {
	err := fmt.Errorf("%w: batch of %d to %s/%d after %v", ErrDeliveryTimeout, len(b.recs), b.part.name, b.part.loc.partition, p.opts.deliveryTimeout)
	if last != nil {
		err = fmt.Errorf("%w (last error: %w)", err, last)
	}
	if unknown {
		// It may be stored, and the sequence numbers after it are in doubt:
		// the next batches start a new epoch.
		p.markEpoch()
		return keepUnknown(err, unknown)
	}
	if b.seqSet {
		p.unnumber(b)
	}
	return err
}

// unnumber hands b's sequence numbers back: it was not stored, and it is
// its partition's only batch in flight, so the next batch takes them.
func (p *Producer) unnumber(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.seqSet {
		b.part.nextSeq = b.seq
		b.seqSet = false
	}
}

// markEpoch makes the next batch wait for a new epoch.
func (p *Producer) markEpoch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.needEpoch = true
}

func (p *Producer) setFatal(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fatal == nil {
		p.fatal = err
	}
}

// Flush sends the records accepted so far without waiting for the linger
// time, and waits until every record Send accepted before Flush was called
// has completed, or ctx is done. It does not report records' errors (their
// Futures do); it returns ctx's error or ErrProducerClosed.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrProducerClosed
	}
	var waits []chan struct{}
	for _, ps := range p.order {
		p.cutLocked(ps)
		for _, b := range ps.ready {
			waits = append(waits, b.done)
		}
	}
	for b := range p.inFlight {
		waits = append(waits, b.done)
	}
	p.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops accepting records, sends every record already accepted, waits
// until all have completed (within the delivery timeout) and stops the
// producer's goroutines. Close is idempotent and always returns nil;
// records' errors are reported by their Futures.
func (p *Producer) Close() error {
	p.once.Do(func() {
		p.stop()
		p.wg.Wait()
		p.c.mu.Lock()
		delete(p.c.producers, p) // nil map once the client is closed: a no-op
		p.c.mu.Unlock()
	})
	return nil
}

// stop is Close without the wait for the sending goroutines: the batches
// being filled are cut, and Send is refused from now on.
func (p *Producer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.order {
		p.cutLocked(ps)
	}
	p.closed = true
	p.closedFlag.Store(true)
	p.cond.Broadcast()
}
