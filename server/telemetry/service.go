package telemetry

import (
	"context"
	"sync"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Service is what InstrumentLog wraps: the API's Log and Cluster services in one value.
type Service interface {
	transport.LogService
	transport.ClusterService
}

// InstrumentLog returns svc measured by m: every call's duration by RPC and status code,
// records and bytes produced and consumed (by RPC, and by topic and partition up to
// Config.MaxPartitionSeries), produce batch sizes and open streams. The result
// has svc's calling contract (and calls it with the same arguments); a nil m returns svc.
func InstrumentLog(svc Service, m *Metrics) Service {
	if m == nil {
		return svc
	}
	return &instrumented{svc: svc, m: m}
}

type instrumented struct {
	svc Service
	m   *Metrics
}

func valueBytes(records []*logv1.Record) int {
	n := 0
	for _, r := range records {
		n += len(r.GetValue())
	}
	return n
}

func (s *instrumented) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	c := s.m.begin(ctx, rpcProduce)
	defer c.panicked()
	res, err := s.svc.Produce(ctx, req)
	if err == nil && !res.GetDuplicate() { // a recognised retry appended nothing
		s.m.produced(ctx, rpcProduce, s.m.partitions.get(req.GetTopic(), req.GetPartition()), 1, len(req.GetRecord().GetValue()))
	}
	c.end(err)
	return res, err
}

func (s *instrumented) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	c := s.m.begin(ctx, rpcProduceBatch)
	defer c.panicked()
	res, err := s.svc.ProduceBatch(ctx, req)
	if err == nil && !res.GetDuplicate() {
		s.m.produced(ctx, rpcProduceBatch, s.m.partitions.get(req.GetTopic(), req.GetPartition()), len(req.GetRecords()), valueBytes(req.GetRecords()))
	}
	c.end(err)
	return res, err
}

func (s *instrumented) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	c := s.m.begin(ctx, rpcConsume)
	defer c.panicked()
	res, err := s.svc.Consume(ctx, req)
	if err == nil {
		s.m.consumed(rpcConsume, s.m.partitions.get(req.GetTopic(), req.GetPartition()), 1, len(res.GetRecord().GetValue()))
	}
	c.end(err)
	return res, err
}

// consumeStream counts what the handler sends: one record, or a batch of them.
type consumeStream struct {
	transport.ServerStream[logv1.ConsumeResponse]
	ctx   context.Context
	m     *Metrics
	topic string
	pnum  uint32
	// part is the partition's series, taken at the first message sent: a stream the handler
	// refuses (an unknown topic: a name of the client's) takes none.
	part *partitionSeries
}

// SendHeader passes transport.SendHeader through: the embedded interface would hide it.
func (c *consumeStream) SendHeader() error { return transport.SendHeader(c.ServerStream) }

func (c *consumeStream) Send(res *logv1.ConsumeResponse) error {
	err := c.ServerStream.Send(res)
	if err == nil {
		if c.part == nil {
			c.part = c.m.partitions.get(c.topic, c.pnum)
		}
		if batch := res.GetRecords(); len(batch) > 0 {
			c.m.consumed(rpcConsumeStream, c.part, len(batch), valueBytes(batch))
		} else {
			c.m.consumed(rpcConsumeStream, c.part, 1, len(res.GetRecord().GetValue()))
		}
	}
	return err
}

func (s *instrumented) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	c := s.m.begin(ctx, rpcConsumeStream)
	defer c.panicked()
	s.m.streamOpened(rpcConsumeStream)
	defer s.m.streamClosed(rpcConsumeStream) // a handler's panic, which the transports recover, ends the stream too
	err := s.svc.ConsumeStream(ctx, req, &consumeStream{ServerStream: stream, ctx: ctx, m: s.m, topic: req.GetTopic(), pnum: req.GetPartition()})
	c.end(err)
	return err
}

// produceStream counts the records the handler acknowledges: one per response sent, whose
// size and partition are those of the request it answers (responses come in request order),
// except a duplicate (an idempotent producer's recognised retry: nothing was appended).
type produceStream struct {
	transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]
	ctx context.Context
	m   *Metrics
	// sizes of requests received and not yet answered, in order. Receive and Send may run
	// in two goroutines.
	sizes sizeQueue
	// the partition and series of the last request answered (Send's goroutine only): a
	// stream usually writes to one partition, so the series is looked up once. A series is
	// taken when a request is answered, not when it arrives: a request the handler refuses
	// (an unknown topic: a name of the client's) takes none.
	lastTopic string
	lastPart  uint32
	last      *partitionSeries
}

// streamed is a received request's size and partition.
type streamed struct {
	size      int
	topic     string
	partition uint32
}

// sizeQueue is the FIFO of a stream's requests received and not yet answered. It holds at
// most produceStreamWindow, and grows only as requests wait: a channel of that capacity cost
// every stream 128 KiB when it opened (a stream of one record, or an idle one, included).
type sizeQueue struct {
	mu   sync.Mutex
	q    []streamed
	head int // q[head:] waits
}

// push adds s, and reports false (s is not kept) when produceStreamWindow already wait.
func (z *sizeQueue) push(s streamed) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.q)-z.head >= produceStreamWindow {
		return false
	}
	if z.head > 0 && len(z.q) == cap(z.q) {
		// Full at the end: move what waits to the front rather than grow.
		n := copy(z.q, z.q[z.head:])
		clear(z.q[n:])
		z.q, z.head = z.q[:n], 0
	}
	z.q = append(z.q, s)
	return true
}

// pop removes and returns the oldest waiting entry; false when none waits.
func (z *sizeQueue) pop() (streamed, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.head == len(z.q) {
		return streamed{}, false
	}
	s := z.q[z.head]
	z.q[z.head] = streamed{}
	z.head++
	if z.head == len(z.q) {
		z.q, z.head = z.q[:0], 0
	}
	return s, true
}

// next returns the series and size of the next request answered, for Metrics.produced (nil
// and 0 when its size was not kept: it is counted by RPC only).
func (p *produceStream) next() (*partitionSeries, int) {
	s, ok := p.sizes.pop()
	if !ok {
		return nil, 0
	}
	if p.last == nil || s.topic != p.lastTopic || s.partition != p.lastPart {
		p.lastTopic, p.lastPart = s.topic, s.partition
		p.last = p.m.partitions.get(s.topic, s.partition)
	}
	return p.last, s.size
}

func (p *produceStream) Receive() (*logv1.ProduceRequest, error) {
	req, err := p.BidiStream.Receive()
	if err == nil {
		// Beyond produceStreamWindow in flight, the record is counted with size 0, by RPC only.
		p.sizes.push(streamed{len(req.GetRecord().GetValue()), req.GetTopic(), req.GetPartition()})
	}
	return req, err
}

func (p *produceStream) Send(res *logv1.ProduceResponse) error {
	err := p.BidiStream.Send(res)
	if err == nil {
		part, size := p.next()
		if !res.GetDuplicate() {
			p.m.produced(p.ctx, rpcProduceStream, part, 1, size)
		}
	}
	return err
}

// SendBatch sends msgs through the stream's batch send when it has one, and counts them at
// once (by partition, for each run of requests to one partition).
func (p *produceStream) SendBatch(msgs []*logv1.ProduceResponse) error {
	err := transport.SendBatch(p.BidiStream, msgs)
	if err == nil && len(msgs) > 0 {
		var (
			run   *partitionSeries
			n     int
			bytes int
		)
		flush := func() {
			if n > 0 {
				p.m.produced(p.ctx, rpcProduceStream, run, n, bytes)
			}
			n, bytes = 0, 0
		}
		for _, res := range msgs {
			part, size := p.next()
			if res.GetDuplicate() {
				continue
			}
			if part != run {
				flush()
				run = part
			}
			n++
			bytes += size
		}
		flush()
	}
	return err
}

// produceStreamWindow bounds the request sizes remembered per stream.
const produceStreamWindow = 4096

func (s *instrumented) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	c := s.m.begin(ctx, rpcProduceStream)
	defer c.panicked()
	s.m.streamOpened(rpcProduceStream)
	defer s.m.streamClosed(rpcProduceStream)
	err := s.svc.ProduceStream(ctx, &produceStream{BidiStream: stream, ctx: ctx, m: s.m})
	c.end(err)
	return err
}

func (s *instrumented) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	c := s.m.begin(ctx, rpcGetServers)
	defer c.panicked()
	res, err := s.svc.GetServers(ctx, req)
	c.end(err)
	return res, err
}

func (s *instrumented) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	c := s.m.begin(ctx, rpcGetBounds)
	defer c.panicked()
	res, err := s.svc.GetBounds(ctx, req)
	c.end(err)
	return res, err
}

func (s *instrumented) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	c := s.m.begin(ctx, rpcJoin)
	defer c.panicked()
	res, err := s.svc.Join(ctx, req)
	c.end(err)
	return res, err
}

func (s *instrumented) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	c := s.m.begin(ctx, rpcRemoveServer)
	defer c.panicked()
	res, err := s.svc.RemoveServer(ctx, req)
	c.end(err)
	return res, err
}

func (s *instrumented) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	c := s.m.begin(ctx, rpcTransferLeadership)
	defer c.panicked()
	res, err := s.svc.TransferLeadership(ctx, req)
	c.end(err)
	return res, err
}
