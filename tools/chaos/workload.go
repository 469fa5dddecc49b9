package chaos

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// WorkloadConfig sizes the workload.
type WorkloadConfig struct {
	// Period is the pause of each worker between two ops (jittered); default 200ms. The
	// workers make 65-75 ops/s with 3 nodes (the per-node ones more with more nodes): a 60 s
	// schedule stays near porcupine's comfortable 5k ops.
	Period time.Duration
	// OpTimeout bounds one op; default 10s. RequestTimeout bounds one request; default 3s.
	OpTimeout      time.Duration
	RequestTimeout time.Duration
	// Seed makes the workload's choices (offsets read, batch sizes) reproducible.
	Seed uint64
}

func (c *WorkloadConfig) defaults() {
	if c.Period <= 0 {
		c.Period = 200 * time.Millisecond
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
}

// workload runs concurrent producers and consumers against a cluster, recording every op.
type workload struct {
	cfg     WorkloadConfig
	h       *History
	cluster *Cluster
	clients []*client.Client
	maxOK   atomic.Int64 // highest offset acknowledged so far, -1 when none
	seq     atomic.Int64
	tag     string
}

// writeStatus classifies a write's error with the SDK's error API: ErrOutcomeUnknown (and an
// op's own deadline) may have appended, everything else definitely did not.
func writeStatus(err error) string {
	switch {
	case err == nil:
		return StatusOK
	case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		return StatusUnknown
	default:
		return StatusFail
	}
}

func (w *workload) value(process int) string {
	return fmt.Sprintf("%s-%d-%d", w.tag, process, w.seq.Add(1))
}

func (w *workload) acked(off uint64, n int) {
	last := int64(off) + int64(n) - 1
	for {
		cur := w.maxOK.Load()
		if last <= cur || w.maxOK.CompareAndSwap(cur, last) {
			return
		}
	}
}

// readOffset picks an offset to read: mostly one already acknowledged, sometimes just past.
func (w *workload) readOffset(r *rand.Rand) uint64 {
	m := w.maxOK.Load()
	if m < 0 {
		return 0
	}
	if r.IntN(10) == 0 {
		return uint64(m + 1)
	}
	return uint64(r.Int64N(m + 1))
}

func (w *workload) newClient(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	opts = append([]client.Option{client.WithRequestTimeout(w.cfg.RequestTimeout), client.WithRefreshInterval(time.Second)}, opts...)
	c, err := client.New(ctx, w.cluster.Addrs(), opts...)
	if err != nil {
		return nil, err
	}
	w.clients = append(w.clients, c)
	return c, nil
}

// runWorkload runs the workers until ctx ends, then waits for them.
func runWorkload(ctx context.Context, cfg WorkloadConfig, h *History, c *Cluster, tag string) error {
	cfg.defaults()
	w := &workload{cfg: cfg, h: h, cluster: c, tag: tag}
	w.maxOK.Store(-1)
	setup, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	writer, err := w.newClient(setup)
	if err != nil {
		return fmt.Errorf("chaos: workload client: %w", err)
	}
	lin, err := w.newClient(setup, client.WithLinearizableReads())
	if err != nil {
		return fmt.Errorf("chaos: workload client: %w", err)
	}
	follower, err := w.newClient(setup, client.WithReadPolicy(client.ReadFollowers))
	if err != nil {
		return fmt.Errorf("chaos: workload client: %w", err)
	}
	anyc, err := w.newClient(setup, client.WithReadPolicy(client.ReadAny))
	if err != nil {
		return fmt.Errorf("chaos: workload client: %w", err)
	}
	defer func() {
		for _, c := range w.clients {
			_ = c.Close()
		}
	}()
	workers := []func(ctx context.Context, p int, r *rand.Rand){
		func(ctx context.Context, p int, r *rand.Rand) { w.produce(ctx, p, writer) },
		func(ctx context.Context, p int, r *rand.Rand) { w.produce(ctx, p, writer) },
		func(ctx context.Context, p int, r *rand.Rand) { w.produceBatch(ctx, p, r, writer) },
		nil, // the batching Producer: its own loop
		nil, // ProduceStream: its own loop
		func(ctx context.Context, p int, r *rand.Rand) { w.read(ctx, p, r, KindReadLin, lin) },
		nil, // per-node linearizable reads: their own loop
		func(ctx context.Context, p int, r *rand.Rand) { w.read(ctx, p, r, KindReadFollower, follower) },
		func(ctx context.Context, p int, r *rand.Rand) { w.readStream(ctx, p, r, anyc) },
		nil, // the idempotent Producer: its own loop
		nil, // Produce sent to each node directly: their own loop
	}
	var wg sync.WaitGroup
	for p, f := range workers {
		r := rand.New(rand.NewPCG(cfg.Seed, uint64(p)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch p {
			case 3:
				w.asyncLoop(ctx, p, writer, false)
			case 9:
				w.asyncLoop(ctx, p, writer, true)
			case 4:
				w.streamLoop(ctx, p, writer)
			case 6:
				w.nodeReadLoop(ctx, p, r)
			case 10:
				w.nodeProduceLoop(ctx, p)
			default:
				for w.pause(ctx, r) {
					f(ctx, p, r)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// pause waits a jittered period; false once ctx ended.
func (w *workload) pause(ctx context.Context, r *rand.Rand) bool {
	d := w.cfg.Period/2 + time.Duration(r.Int64N(int64(w.cfg.Period)))
	return sleepCtx(ctx, d) == nil
}

// opContext bounds one op. It is not derived from the run's context: an op in flight when the
// workload stops runs to its end, so that its outcome is known.
func (w *workload) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), w.cfg.OpTimeout)
}

func (w *workload) produce(_ context.Context, p int, c *client.Client) {
	v := w.value(p)
	op := w.h.Invoke(p, KindProduce, "", 0, []string{v})
	ctx, cancel := w.opContext()
	defer cancel()
	off, err := c.Produce(ctx, []byte(v))
	st := writeStatus(err)
	if st == StatusOK {
		w.acked(off, 1)
	}
	w.h.Complete(op, st, off, false, nil, err)
}

func (w *workload) produceBatch(_ context.Context, p int, r *rand.Rand, c *client.Client) {
	vals := make([]string, 1+r.IntN(4))
	bs := make([][]byte, len(vals))
	for i := range vals {
		vals[i] = w.value(p)
		bs[i] = []byte(vals[i])
	}
	op := w.h.Invoke(p, KindProduceBatch, "", 0, vals)
	ctx, cancel := w.opContext()
	defer cancel()
	off, err := c.ProduceBatch(ctx, bs...)
	st := writeStatus(err)
	if st == StatusOK {
		w.acked(off, len(vals))
	}
	w.h.Complete(op, st, off, false, nil, err)
}

// asyncLoop sends records through the SDK's batching Producer, a few at a time. Not
// idempotent, the checker judges each unknown outcome as such; idempotent, the Producer resends
// a write whose outcome is unknown (up to its delivery timeout, one op's time here), and the
// checker's no-duplicates verdict tells whether a resend was ever stored twice.
func (w *workload) asyncLoop(ctx context.Context, p int, c *client.Client, idempotent bool) {
	r := rand.New(rand.NewPCG(w.cfg.Seed, uint64(p)))
	kind := KindProduceAsync
	opts := []client.ProducerOption{client.ProducerLinger(2 * time.Millisecond), client.ProducerBatchRecords(4), client.ProducerIdempotence(idempotent)}
	if idempotent {
		kind = KindProduceIdem
		opts = append(opts, client.ProducerDeliveryTimeout(w.cfg.OpTimeout))
	}
	prod, err := c.NewProducer(opts...)
	if err != nil {
		return
	}
	defer func() { _ = prod.Close() }()
	for w.pause(ctx, r) {
		type sent struct {
			op *Op
			f  *client.Future
		}
		var batch []sent
		for range 1 + r.IntN(4) {
			v := w.value(p)
			op := w.h.Invoke(p, kind, "", 0, []string{v})
			sctx, cancel := w.opContext()
			f, err := prod.Send(sctx, []byte(v))
			cancel()
			if err != nil {
				w.h.Complete(op, StatusFail, 0, false, nil, err) // refused by Send: never queued
				continue
			}
			batch = append(batch, sent{op, f})
		}
		for _, s := range batch {
			wctx, cancel := w.opContext()
			off, err := s.f.Wait(wctx)
			cancel()
			st := writeStatus(err)
			if st == StatusOK {
				w.acked(off, 1)
			}
			w.h.Complete(s.op, st, off, false, nil, err)
		}
	}
}

// streamLoop writes records one at a time on a ProduceStream to the leader (the SDK has no
// streaming produce: this uses the transport at the leader the SDK found). A record left
// unanswered when the stream breaks has an unknown outcome.
func (w *workload) streamLoop(ctx context.Context, p int, c *client.Client) {
	r := rand.New(rand.NewPCG(w.cfg.Seed, uint64(p)))
	for w.pause(ctx, r) {
		leader := c.Leader()
		if leader == "" {
			sctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
			_, _ = c.Servers(sctx)
			cancel()
			leader = c.Leader()
		}
		if leader == "" {
			continue
		}
		w.streamOnce(ctx, p, r, leader)
	}
}

func (w *workload) streamOnce(ctx context.Context, p int, r *rand.Rand, leader string) {
	tc, err := w.cluster.dial(leader, transport.ClientConfig{})
	if err != nil {
		return
	}
	defer tc.Close()
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := tc.ProduceStream(sctx)
	if err != nil {
		return
	}
	defer stream.Close()
	type resp struct {
		off uint64
		err error
	}
	resps := make(chan resp, 1)
	go func() {
		for {
			m, err := stream.Receive()
			if err != nil {
				resps <- resp{err: err}
				return
			}
			resps <- resp{off: m.GetOffset()}
		}
	}()
	for n := 0; n < 50 && (n == 0 || w.pause(ctx, r)); n++ {
		v := w.value(p)
		op := w.h.Invoke(p, KindProduceStream, leader, 0, []string{v})
		if err := stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}}); err != nil {
			w.h.Complete(op, StatusUnknown, 0, false, nil, err)
			return
		}
		t := time.NewTimer(w.cfg.OpTimeout)
		select {
		case rr := <-resps:
			t.Stop()
			if rr.err != nil {
				w.h.Complete(op, StatusUnknown, 0, false, nil, rr.err)
				return
			}
			w.acked(rr.off, 1)
			w.h.Complete(op, StatusOK, rr.off, false, nil, nil)
		case <-t.C:
			w.h.Complete(op, StatusUnknown, 0, false, nil, errors.New("no answer on the stream within the op timeout"))
			return
		}
	}
	_ = stream.CloseSend()
}

// readStatus classifies a read: found, out of range (ok, not found), or failed (no information).
func readStatus(err error) (status string, found bool) {
	switch {
	case err == nil:
		return StatusOK, true
	case errors.Is(err, client.ErrOutOfRange):
		return StatusOK, false
	default:
		return StatusFail, false
	}
}

func (w *workload) read(_ context.Context, p int, r *rand.Rand, kind string, c *client.Client) {
	off := w.readOffset(r)
	op := w.h.Invoke(p, kind, "", off, nil)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.RequestTimeout)
	defer cancel()
	rec, err := c.Consume(ctx, off)
	st, found := readStatus(err)
	var vals []string
	if found {
		if rec.Offset != off {
			err = fmt.Errorf("asked offset %d, got offset %d", off, rec.Offset)
		}
		vals = []string{string(rec.Value)}
	}
	w.h.Complete(op, st, off, found, vals, err)
}

// nodeReadLoop sends linearizable reads (Consume, and GetBounds) to every node directly, one
// goroutine per node, each waiting up to the op timeout: a node that wrongly believes it leads
// (paused, then resumed) answers the reads queued meanwhile.
func (w *workload) nodeReadLoop(ctx context.Context, p int, _ *rand.Rand) {
	var wg sync.WaitGroup
	for i, n := range w.cluster.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.nodeReads(ctx, p+100*i, n)
		}()
	}
	wg.Wait()
}

// nodeReads issues reads to node n every period without waiting for the previous ones (up to
// maxNodeReadsInFlight at once): reads sent to a paused node queue up, each invoked at its own
// time, and are all answered when it resumes.
func (w *workload) nodeReads(ctx context.Context, p int, n *Node) {
	r := rand.New(rand.NewPCG(w.cfg.Seed, uint64(p)))
	tc, err := w.cluster.conn(n)
	if err != nil {
		return
	}
	defer tc.Close()
	sem := make(chan struct{}, maxNodeReadsInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; w.pause(ctx, r); i++ {
		select {
		case sem <- struct{}{}:
		default:
			continue // as many in flight as allowed: skip this turn
		}
		bounds, off := i%2 == 0, w.readOffset(r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.nodeRead(p, n, tc, bounds, off)
		}()
	}
}

// maxNodeReadsInFlight bounds the reads outstanding at one node.
const maxNodeReadsInFlight = 16

func (w *workload) nodeRead(p int, n *Node, tc transport.Client, bounds bool, off uint64) {
	rctx, cancel := context.WithTimeout(context.Background(), w.cfg.OpTimeout)
	defer cancel()
	if bounds {
		op := w.h.Invoke(p, KindBoundsNode, n.name, 0, nil)
		b, err := tc.GetBounds(rctx, &logv1.GetBoundsRequest{Linearizable: true})
		if err != nil {
			w.h.Complete(op, StatusFail, 0, false, nil, err)
		} else {
			w.h.Complete(op, StatusOK, b.GetNextOffset(), false, nil, nil)
		}
		return
	}
	op := w.h.Invoke(p, KindReadNode, n.name, off, nil)
	resp, err := tc.Consume(rctx, &logv1.ConsumeRequest{Offset: off, Linearizable: true})
	switch {
	case err == nil:
		w.h.Complete(op, StatusOK, off, true, []string{string(resp.GetRecord().GetValue())}, nil)
	case transport.CodeOf(err) == transport.OutOfRange:
		w.h.Complete(op, StatusOK, off, false, nil, err)
	default:
		w.h.Complete(op, StatusFail, off, false, nil, err)
	}
}

// readStream reads up to 20 records with the SDK's Stream from an acknowledged offset.
func (w *workload) readStream(_ context.Context, p int, r *rand.Rand, c *client.Client) {
	from := w.readOffset(r)
	op := w.h.Invoke(p, KindReadStream, "", from, nil)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.RequestTimeout)
	defer cancel()
	vals, serr := collectStream(ctx, from, 20, c.Stream(ctx, from))
	st := StatusOK
	if serr != nil && len(vals) == 0 {
		st = StatusFail
	}
	w.h.Complete(op, st, from, len(vals) > 0, vals, serr)
}

// collectStream takes up to n records of a stream from offset from: their values, in order,
// as the values at from, from+1, …, and the error that ended it early (none for ctx's end). A
// record yielded out of place (a gap, a repeat, a reordering) is kept as the value at the
// offset where it came, and ends the collection: reads-match-log then reports the stream,
// whose values no longer match the log there.
func collectStream(ctx context.Context, from uint64, n int, stream iter.Seq2[client.Record, error]) (vals []string, serr error) {
	next := from
	for rec, err := range stream {
		if err != nil {
			if ctx.Err() == nil {
				serr = err
			}
			break
		}
		vals = append(vals, string(rec.Value))
		if rec.Offset != next {
			serr = fmt.Errorf("stream yielded offset %d where %d was expected", rec.Offset, next)
			break
		}
		next++
		if len(vals) >= n {
			break
		}
	}
	return vals, serr
}

// nodeProduceLoop sends unary Produce requests to every node directly, as curl or grpcurl
// would (one goroutine per node, one request at a time): a follower forwards them to the
// leader, so its forwarding and the error it answers with are judged too.
func (w *workload) nodeProduceLoop(ctx context.Context, p int) {
	var wg sync.WaitGroup
	for i, n := range w.cluster.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pi := p + 100*i
			r := rand.New(rand.NewPCG(w.cfg.Seed, uint64(pi)))
			tc, err := w.cluster.conn(n)
			if err != nil {
				return
			}
			defer tc.Close()
			for w.pause(ctx, r) {
				w.nodeProduce(pi, n, tc)
			}
		}()
	}
	wg.Wait()
}

func (w *workload) nodeProduce(p int, n *Node, tc transport.Client) {
	v := w.value(p)
	op := w.h.Invoke(p, KindProduceNode, n.name, 0, []string{v})
	ctx, cancel := w.opContext()
	defer cancel()
	resp, err := tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
	st := nodeWriteStatus(err)
	if st == StatusOK {
		w.acked(resp.GetOffset(), 1)
	}
	w.h.Complete(op, st, resp.GetOffset(), false, nil, err)
}

// nodeWriteStatus classifies the error of a write sent with the transport alone (no SDK), by
// the server's error details and codes (DESIGN §2): refused (a NotLeader or NotProposed detail,
// or an answer a retry would not change) definitely did not append; anything else may have.
func nodeWriteStatus(err error) string {
	if err == nil {
		return StatusOK
	}
	if transport.IsOutcomeUnknown(err) {
		return StatusUnknown
	}
	if _, ok := transport.NotLeaderDetail(err); ok || transport.IsNotProposed(err) {
		return StatusFail
	}
	switch transport.CodeOf(err) {
	case transport.InvalidArgument, transport.ResourceExhausted, transport.PermissionDenied,
		transport.Unauthenticated, transport.FailedPrecondition, transport.OutOfRange:
		return StatusFail
	}
	return StatusUnknown
}
