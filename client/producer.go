package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Producer defaults, used when a ProducerOption is not given.
const (
	DefaultBatchRecords = 1024
	DefaultBatchBytes   = 1 << 20 // 1 MiB of values
	DefaultLinger       = 5 * time.Millisecond
	DefaultMaxInFlight  = 1
	DefaultMaxPending   = 64 * 1024
)

// ErrProducerClosed is returned by Send and Flush once Close has been called.
var ErrProducerClosed = errors.New("client: producer closed")

// A ProducerOption configures a Producer. Build them with the Producer*
// functions of this package.
type ProducerOption interface {
	applyProducer(*producerOptions)
}

type producerOptionFunc func(*producerOptions)

func (f producerOptionFunc) applyProducer(o *producerOptions) { f(o) }

type producerOptions struct {
	batchRecords int
	batchBytes   int
	linger       time.Duration
	maxInFlight  int
	maxPending   int
}

// ProducerBatchRecords caps the number of records of one batch (one
// ProduceBatch request). Default DefaultBatchRecords.
func ProducerBatchRecords(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.batchRecords = n })
}

// ProducerBatchBytes caps the summed value sizes of one batch. A single
// record larger than the cap travels alone. Default DefaultBatchBytes.
func ProducerBatchBytes(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.batchBytes = n })
}

// ProducerLinger is how long a batch that is not full waits for more records
// before it is sent. Zero sends a batch as soon as a sender is free: records
// accumulate only while every sender is busy. Default DefaultLinger.
func ProducerLinger(d time.Duration) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.linger = d })
}

// ProducerMaxInFlight bounds the batches being sent at once. With 1 (the
// default) records are appended in the order Send accepted them; with more,
// batches may be appended in any order (records within a batch stay in
// order), which raises throughput over a slow link.
func ProducerMaxInFlight(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.maxInFlight = n })
}

// ProducerMaxPending bounds the records accepted by Send and not yet
// acknowledged; Send blocks while the bound is reached. Default
// DefaultMaxPending.
func ProducerMaxPending(n int) ProducerOption {
	return producerOptionFunc(func(o *producerOptions) { o.maxPending = n })
}

// A Future is the result of one record given to Producer.Send. It is safe for
// concurrent use.
type Future struct {
	done   chan struct{}
	offset uint64
	err    error
	cb     func(offset uint64, err error)
}

// Done is closed once the record's result is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait blocks until the record's result is known or ctx is done, and returns
// the record's offset or the error that failed its batch: ErrOutcomeUnknown
// when the batch may have been appended, ErrProducerClosed never (Close
// delivers what it accepted), ctx's error when ctx ended first (the record is
// still being sent).
func (f *Future) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-f.done:
		return f.offset, f.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (f *Future) complete(offset uint64, err error) {
	f.offset, f.err = offset, err
	close(f.done)
	if f.cb != nil {
		f.cb(offset, err)
	}
}

type batch struct {
	values  [][]byte
	futures []*Future
	bytes   int
	done    chan struct{} // closed once every future completed
}

// A Producer appends records asynchronously in batches: records given to
// Send accumulate until a batch holds ProducerBatchRecords records or
// ProducerBatchBytes bytes, or its first record waited ProducerLinger; the
// batch then travels as one atomic ProduceBatch request, with the client's
// retries (a refused batch is retried, one whose outcome is unknown is not),
// and each record's offset is delivered to its Future and callback.
//
// A Producer is safe for concurrent use. It owns up to ProducerMaxInFlight
// sending goroutines, stopped by Close. Create one with Client.NewProducer.
type Producer struct {
	c    *Client
	opts producerOptions

	pending chan struct{} // semaphore: one token per record not yet completed

	mu       sync.Mutex
	cond     *sync.Cond // signals senders: ready grew or closed
	cur      *batch
	timer    *time.Timer
	ready    []*batch            // cut, waiting for a sender, in order
	inFlight map[*batch]struct{} // taken by a sender, not yet completed
	closed   bool
	wg       sync.WaitGroup
	once     sync.Once
}

// NewProducer starts a batching Producer that sends through c. Close it
// before closing c. It fails with ErrInvalidOption on a non-positive size or
// negative linger.
func (c *Client) NewProducer(opts ...ProducerOption) (*Producer, error) {
	o := producerOptions{
		batchRecords: DefaultBatchRecords,
		batchBytes:   DefaultBatchBytes,
		linger:       DefaultLinger,
		maxInFlight:  DefaultMaxInFlight,
		maxPending:   DefaultMaxPending,
	}
	for _, opt := range opts {
		opt.applyProducer(&o)
	}
	if o.batchRecords <= 0 || o.batchBytes <= 0 || o.maxInFlight <= 0 || o.maxPending <= 0 || o.linger < 0 {
		return nil, fmt.Errorf("%w: producer sizes must be positive and linger non-negative", ErrInvalidOption)
	}
	p := &Producer{
		c:        c,
		opts:     o,
		pending:  make(chan struct{}, o.maxPending),
		inFlight: make(map[*batch]struct{}),
	}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(o.maxInFlight)
	for range o.maxInFlight {
		go p.sender()
	}
	return p, nil
}

// Send hands value to the producer and returns its Future at once; the record
// is sent in a later batch. Send blocks only while ProducerMaxPending records
// are pending, until room frees up or ctx is done (then it returns ctx's
// error and the record is not sent). The producer keeps value until the
// record completes: do not modify it before. It returns ErrProducerClosed
// after Close.
func (p *Producer) Send(ctx context.Context, value []byte) (*Future, error) {
	return p.send(ctx, value, nil)
}

// SendFunc is Send with a callback run once with the record's offset or
// error. Callbacks run on the producer's sending goroutine, in record order
// within a batch: they must be quick and must not call Flush or Close.
func (p *Producer) SendFunc(ctx context.Context, value []byte, cb func(offset uint64, err error)) error {
	_, err := p.send(ctx, value, cb)
	return err
}

func (p *Producer) send(ctx context.Context, value []byte, cb func(uint64, error)) (*Future, error) {
	select {
	case p.pending <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f := &Future{done: make(chan struct{}), cb: cb}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		<-p.pending
		return nil, ErrProducerClosed
	}
	if p.cur != nil && (len(p.cur.values) >= p.opts.batchRecords || p.cur.bytes+len(value) > p.opts.batchBytes) {
		p.cutLocked()
	}
	if p.cur == nil {
		p.cur = &batch{done: make(chan struct{})}
		if p.opts.linger > 0 {
			b := p.cur
			p.timer = time.AfterFunc(p.opts.linger, func() { p.lingerExpired(b) })
		}
	}
	p.cur.values = append(p.cur.values, value)
	p.cur.futures = append(p.cur.futures, f)
	p.cur.bytes += len(value)
	switch {
	case len(p.cur.values) >= p.opts.batchRecords || p.cur.bytes >= p.opts.batchBytes:
		p.cutLocked()
	case p.opts.linger == 0:
		// No linger: a free sender takes the batch now; while all
		// are busy, records keep accumulating in it.
		p.cond.Signal()
	}
	return f, nil
}

// cutLocked moves the current batch to the ready queue. p.mu must be held.
func (p *Producer) cutLocked() {
	if p.cur == nil {
		return
	}
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.ready = append(p.ready, p.cur)
	p.cur = nil
	p.cond.Signal()
}

func (p *Producer) lingerExpired(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == b {
		p.cutLocked()
	}
}

// sender takes ready batches in order and sends them until the producer is
// closed and nothing is left.
func (p *Producer) sender() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.ready) == 0 && !p.closed && (p.opts.linger > 0 || p.cur == nil) {
			p.cond.Wait()
		}
		if len(p.ready) == 0 && p.cur != nil {
			p.cutLocked() // linger 0: take what accumulated
		}
		if len(p.ready) == 0 {
			p.mu.Unlock()
			return
		}
		b := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		p.inFlight[b] = struct{}{}
		p.mu.Unlock()

		p.sendBatch(b)

		p.mu.Lock()
		delete(p.inFlight, b)
		p.mu.Unlock()
		close(b.done)
	}
}

func (p *Producer) sendBatch(b *batch) {
	// The producer's requests are not tied to any caller's context: they
	// are bounded by the client's request timeout and retry budget, and
	// fail fast with ErrClosed once the client is closed.
	base, err := p.c.ProduceBatch(context.Background(), b.values...)
	for i, f := range b.futures {
		if err != nil {
			f.complete(0, err)
		} else {
			f.complete(base+uint64(i), nil)
		}
		<-p.pending
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
	p.cutLocked()
	waits := make([]chan struct{}, 0, len(p.ready)+len(p.inFlight))
	for _, b := range p.ready {
		waits = append(waits, b.done)
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
// until all have completed and stops the producer's goroutines. Sending is
// bounded by the client's timeouts and retries. Close is idempotent and
// always returns nil; records' errors are reported by their Futures.
func (p *Producer) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.cutLocked()
		p.closed = true
		p.cond.Broadcast()
		p.mu.Unlock()
		p.wg.Wait()
	})
	return nil
}
