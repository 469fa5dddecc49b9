// Package fakelog is an in-memory, single-node implementation of the transport's
// transport.LogService, served over the real transport/connect or transport/grpc server on a
// loopback port, for the tools' tests: the load generator's loops run end to end against it,
// through the real SDK and wire, without a Raft cluster.
//
// It is a test double: one node that is always the leader, every record kept in memory.
package fakelog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// Log is the fake service. Its methods are safe for concurrent use.
type Log struct {
	mu      sync.Mutex
	values  [][]byte
	changed chan struct{} // closed and replaced on every append
	addr    string

	// Hooks, set before serving. Each may be nil.

	// RefuseProduce, when it returns an error for a produce request (unary, batch or stream),
	// refuses it with that error instead of appending.
	RefuseProduce func() error
	// CorruptRead, when it returns true for an offset, makes Consume and ConsumeStream serve
	// that record with one bit flipped, as a disk fault would.
	CorruptRead func(offset uint64) bool
	// OnAppend is called after records are appended, with the new number of records.
	OnAppend func(n int)
	// StallProduceStream, when it returns true for a new ProduceStream, makes that stream
	// receive its first record and then neither append nor answer until the client goes away,
	// as a hung server would.
	StallProduceStream func() bool
	// StallConsumeStream, when it returns true for a new ConsumeStream, makes that stream send
	// nothing until the client goes away.
	StallConsumeStream func() bool
	// OnConsume is called by Consume with the offset asked for, before it answers.
	OnConsume func(offset uint64)
}

var _ transport.LogService = (*Log)(nil)

// New returns an empty fake log.
func New() *Log {
	return &Log{changed: make(chan struct{})}
}

// Append appends values directly, as if they had been produced.
func (l *Log) Append(values ...[]byte) {
	l.append(values)
}

func (l *Log) append(values [][]byte) uint64 {
	l.mu.Lock()
	base := uint64(len(l.values))
	for _, v := range values {
		l.values = append(l.values, append([]byte(nil), v...))
	}
	n := len(l.values)
	close(l.changed)
	l.changed = make(chan struct{})
	hook := l.OnAppend
	l.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return base
}

// Values returns a copy of every record's value, in offset order.
func (l *Log) Values() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, len(l.values))
	for i, v := range l.values {
		out[i] = append([]byte(nil), v...)
	}
	return out
}

// Len returns the number of records.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.values)
}

// record returns the record at offset, a channel closed on the next append, and whether the
// offset exists.
func (l *Log) record(offset uint64) (*logv1.Record, <-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset >= uint64(len(l.values)) {
		return nil, l.changed, false
	}
	v := append([]byte(nil), l.values[offset]...)
	if l.CorruptRead != nil && l.CorruptRead(offset) && len(v) > 0 {
		v[len(v)/2] ^= 0x01
	}
	return &logv1.Record{Value: v, Offset: offset}, l.changed, true
}

func (l *Log) refuse() error {
	if l.RefuseProduce == nil {
		return nil
	}
	return l.RefuseProduce()
}

// Produce appends one record.
func (l *Log) Produce(_ context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	if err := l.refuse(); err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: l.append([][]byte{req.GetRecord().GetValue()})}, nil
}

// ProduceBatch appends the records of req atomically.
func (l *Log) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	if err := l.refuse(); err != nil {
		return nil, err
	}
	values := make([][]byte, len(req.GetRecords()))
	for i, r := range req.GetRecords() {
		values[i] = r.GetValue()
	}
	base := l.append(values)
	return &logv1.ProduceBatchResponse{BaseOffset: base, Count: uint64(len(values))}, nil
}

// Consume returns the record at req.Offset, or OutOfRange.
func (l *Log) Consume(_ context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	if l.OnConsume != nil {
		l.OnConsume(req.GetOffset())
	}
	rec, _, ok := l.record(req.GetOffset())
	if !ok {
		return nil, transport.Errorf(transport.OutOfRange, "offset %d not yet written", req.GetOffset())
	}
	return &logv1.ConsumeResponse{Record: rec}, nil
}

// ConsumeStream sends every record from req.Offset on, then tails the log until ctx ends.
func (l *Log) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	if l.StallConsumeStream != nil && l.StallConsumeStream() {
		<-ctx.Done()
		return nil
	}
	for off := req.GetOffset(); ; {
		rec, changed, ok := l.record(off)
		if !ok {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if err := stream.Send(&logv1.ConsumeResponse{Record: rec}); err != nil {
			return err
		}
		off++
	}
}

// ProduceStream appends every record received and answers each with its offset, in order.
func (l *Log) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	if l.StallProduceStream != nil && l.StallProduceStream() {
		if _, err := stream.Receive(); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := l.refuse(); err != nil {
			return err
		}
		off := l.append([][]byte{req.GetRecord().GetValue()})
		if err := stream.Send(&logv1.ProduceResponse{Offset: off}); err != nil {
			return err
		}
	}
}

// GetServers describes the single node, the leader.
func (l *Log) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	l.mu.Lock()
	addr := l.addr
	l.mu.Unlock()
	return &logv1.GetServersResponse{Servers: []*logv1.Server{{
		Id: "fake", RpcAddr: addr, RaftAddr: addr, IsLeader: true, Healthy: true,
		Suffrage: logv1.Suffrage_SUFFRAGE_VOTER,
	}}}, nil
}

// GetBounds reports [0, Len) as stored and committed.
func (l *Log) GetBounds(context.Context, *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	n := uint64(l.Len())
	return &logv1.GetBoundsResponse{LowestOffset: 0, NextOffset: n, CommittedOffset: n}, nil
}

// Serve serves l over the named transport ("connect" or "grpc") on a fresh 127.0.0.1 port and
// returns the address and a function that stops the server (idempotent, waits for Serve).
func (l *Log) Serve(transportName string) (addr string, stop func(), err error) {
	return l.ServeTLS(transportName, nil)
}

// ServeTLS is Serve with the server's TLS configuration (nil: plaintext).
func (l *Log) ServeTLS(transportName string, tlsCfg *tls.Config) (addr string, stop func(), err error) {
	cfg := transport.ServerConfig{Log: l, TLS: tlsCfg}
	var srv transport.Server
	switch transportName {
	case "connect":
		srv, err = tconnect.NewServer(cfg)
	case "grpc":
		srv, err = tgrpc.NewServer(cfg)
	default:
		err = fmt.Errorf("fakelog: unknown transport %q", transportName)
	}
	if err != nil {
		return "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("fakelog: listen: %w", err)
	}
	l.mu.Lock()
	l.addr = lis.Addr().String()
	l.mu.Unlock()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis) // returns nil after Stop; a listener error ends the test's calls anyway
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Stop(ctx) // forced close after the timeout is fine for a test server
			<-served
		})
	}
	return lis.Addr().String(), stop, nil
}
