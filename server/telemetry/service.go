package telemetry

import (
	"context"
	"time"

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
	start := time.Now()
	res, err := s.svc.Produce(ctx, req)
	if err == nil {
		s.m.produced(ctx, rpcProduce, s.m.partitions.get(req.GetTopic(), req.GetPartition()), 1, len(req.GetRecord().GetValue()))
	}
	s.m.done(ctx, rpcProduce, start, err)
	return res, err
}

func (s *instrumented) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	start := time.Now()
	res, err := s.svc.ProduceBatch(ctx, req)
	if err == nil {
		s.m.produced(ctx, rpcProduceBatch, s.m.partitions.get(req.GetTopic(), req.GetPartition()), len(req.GetRecords()), valueBytes(req.GetRecords()))
	}
	s.m.done(ctx, rpcProduceBatch, start, err)
	return res, err
}

func (s *instrumented) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	start := time.Now()
	res, err := s.svc.Consume(ctx, req)
	if err == nil {
		s.m.consumed(rpcConsume, s.m.partitions.get(req.GetTopic(), req.GetPartition()), 1, len(res.GetRecord().GetValue()))
	}
	s.m.done(ctx, rpcConsume, start, err)
	return res, err
}

// consumeStream counts what the handler sends: one record, or a batch of them.
type consumeStream struct {
	transport.ServerStream[logv1.ConsumeResponse]
	ctx  context.Context
	m    *Metrics
	part *partitionSeries
}

func (c *consumeStream) Send(res *logv1.ConsumeResponse) error {
	err := c.ServerStream.Send(res)
	if err == nil {
		if batch := res.GetRecords(); len(batch) > 0 {
			c.m.consumed(rpcConsumeStream, c.part, len(batch), valueBytes(batch))
		} else {
			c.m.consumed(rpcConsumeStream, c.part, 1, len(res.GetRecord().GetValue()))
		}
	}
	return err
}

func (s *instrumented) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	start := time.Now()
	s.m.streamOpened(rpcConsumeStream)
	err := s.svc.ConsumeStream(ctx, req, &consumeStream{ServerStream: stream, ctx: ctx, m: s.m, part: s.m.partitions.get(req.GetTopic(), req.GetPartition())})
	s.m.streamClosed(rpcConsumeStream)
	s.m.done(ctx, rpcConsumeStream, start, err)
	return err
}

// produceStream counts the records the handler acknowledges: one per response sent, whose
// size and partition are those of the request it answers (responses come in request order).
type produceStream struct {
	transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]
	ctx context.Context
	m   *Metrics
	// sizes of requests received and not yet answered, in order. Receive and Send may run
	// in two goroutines.
	sizes chan streamed
	// the last request's partition and its series (Receive's goroutine only): a stream
	// usually writes to one partition, so the series is looked up once.
	lastTopic string
	lastPart  uint32
	last      *partitionSeries
}

// streamed is a received request's size and partition.
type streamed struct {
	size int
	part *partitionSeries
}

func (p *produceStream) Receive() (*logv1.ProduceRequest, error) {
	req, err := p.BidiStream.Receive()
	if err == nil {
		if p.last == nil || req.GetTopic() != p.lastTopic || req.GetPartition() != p.lastPart {
			p.lastTopic, p.lastPart = req.GetTopic(), req.GetPartition()
			p.last = p.m.partitions.get(p.lastTopic, p.lastPart)
		}
		select {
		case p.sizes <- streamed{len(req.GetRecord().GetValue()), p.last}:
		default: // more than the buffer in flight: count the record with size 0, by RPC only
		}
	}
	return req, err
}

func (p *produceStream) Send(res *logv1.ProduceResponse) error {
	err := p.BidiStream.Send(res)
	if err == nil {
		var s streamed
		select {
		case s = <-p.sizes:
		default:
		}
		p.m.produced(p.ctx, rpcProduceStream, s.part, 1, s.size)
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
		for range msgs {
			var s streamed
			select {
			case s = <-p.sizes:
			default:
			}
			if s.part != run {
				flush()
				run = s.part
			}
			n++
			bytes += s.size
		}
		flush()
	}
	return err
}

// produceStreamWindow bounds the request sizes remembered per stream.
const produceStreamWindow = 4096

func (s *instrumented) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	start := time.Now()
	s.m.streamOpened(rpcProduceStream)
	err := s.svc.ProduceStream(ctx, &produceStream{BidiStream: stream, ctx: ctx, m: s.m, sizes: make(chan streamed, produceStreamWindow)})
	s.m.streamClosed(rpcProduceStream)
	s.m.done(ctx, rpcProduceStream, start, err)
	return err
}

func (s *instrumented) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	start := time.Now()
	res, err := s.svc.GetServers(ctx, req)
	s.m.done(ctx, rpcGetServers, start, err)
	return res, err
}

func (s *instrumented) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	start := time.Now()
	res, err := s.svc.GetBounds(ctx, req)
	s.m.done(ctx, rpcGetBounds, start, err)
	return res, err
}

func (s *instrumented) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	start := time.Now()
	res, err := s.svc.Join(ctx, req)
	s.m.done(ctx, rpcJoin, start, err)
	return res, err
}

func (s *instrumented) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	start := time.Now()
	res, err := s.svc.RemoveServer(ctx, req)
	s.m.done(ctx, rpcRemoveServer, start, err)
	return res, err
}

func (s *instrumented) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	start := time.Now()
	res, err := s.svc.TransferLeadership(ctx, req)
	s.m.done(ctx, rpcTransferLeadership, start, err)
	return res, err
}
