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
// records and bytes produced and consumed, produce batch sizes and open streams. The result
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
		s.m.produced(ctx, rpcProduce, 1, len(req.GetRecord().GetValue()))
	}
	s.m.done(ctx, rpcProduce, start, err)
	return res, err
}

func (s *instrumented) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	start := time.Now()
	res, err := s.svc.ProduceBatch(ctx, req)
	if err == nil {
		s.m.produced(ctx, rpcProduceBatch, len(req.GetRecords()), valueBytes(req.GetRecords()))
	}
	s.m.done(ctx, rpcProduceBatch, start, err)
	return res, err
}

func (s *instrumented) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	start := time.Now()
	res, err := s.svc.Consume(ctx, req)
	if err == nil {
		s.m.consumed(rpcConsume, len(res.GetRecord().GetValue()))
	}
	s.m.done(ctx, rpcConsume, start, err)
	return res, err
}

// consumeStream counts what the handler sends.
type consumeStream struct {
	transport.ServerStream[logv1.ConsumeResponse]
	ctx context.Context
	m   *Metrics
}

func (c *consumeStream) Send(res *logv1.ConsumeResponse) error {
	err := c.ServerStream.Send(res)
	if err == nil {
		c.m.consumed(rpcConsumeStream, len(res.GetRecord().GetValue()))
	}
	return err
}

func (s *instrumented) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	start := time.Now()
	s.m.streamOpened(rpcConsumeStream)
	err := s.svc.ConsumeStream(ctx, req, &consumeStream{ServerStream: stream, ctx: ctx, m: s.m})
	s.m.streamClosed(rpcConsumeStream)
	s.m.done(ctx, rpcConsumeStream, start, err)
	return err
}

// produceStream counts the records the handler acknowledges: one per response sent, whose
// size is that of the request it answers (responses come in request order).
type produceStream struct {
	transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]
	ctx context.Context
	m   *Metrics
	// sizes of requests received and not yet answered, in order. Receive and Send may run
	// in two goroutines.
	sizes chan int
}

func (p *produceStream) Receive() (*logv1.ProduceRequest, error) {
	req, err := p.BidiStream.Receive()
	if err == nil {
		select {
		case p.sizes <- len(req.GetRecord().GetValue()):
		default: // more than the buffer in flight: count the record with size 0
		}
	}
	return req, err
}

func (p *produceStream) Send(res *logv1.ProduceResponse) error {
	err := p.BidiStream.Send(res)
	if err == nil {
		size := 0
		select {
		case size = <-p.sizes:
		default:
		}
		p.m.produced(p.ctx, rpcProduceStream, 1, size)
	}
	return err
}

// SendBatch sends msgs through the stream's batch send when it has one, and counts them at
// once.
func (p *produceStream) SendBatch(msgs []*logv1.ProduceResponse) error {
	err := transport.SendBatch(p.BidiStream, msgs)
	if err == nil && len(msgs) > 0 {
		bytes := 0
		for range msgs {
			select {
			case size := <-p.sizes:
				bytes += size
			default:
			}
		}
		p.m.produced(p.ctx, rpcProduceStream, len(msgs), bytes)
	}
	return err
}

// produceStreamWindow bounds the request sizes remembered per stream.
const produceStreamWindow = 4096

func (s *instrumented) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	start := time.Now()
	s.m.streamOpened(rpcProduceStream)
	err := s.svc.ProduceStream(ctx, &produceStream{BidiStream: stream, ctx: ctx, m: s.m, sizes: make(chan int, produceStreamWindow)})
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
