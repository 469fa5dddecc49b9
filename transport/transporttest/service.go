// Package transporttest is the conformance suite every transport
// implementation passes ([Run]), with the in-memory [Service] it serves and
// test certificates ([NewPKI]). The client SDK may use Service and a real
// transport server to test itself without a cluster.
package transporttest

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Service is an in-memory implementation of transport.LogService and
// transport.ClusterService: a single-node log with dense offsets from 0, a
// settable "not the leader" mode, and a recorded membership. It is safe for
// concurrent use. Its zero value is not usable; use NewService.
type Service struct {
	mu        sync.Mutex
	records   []*logv1.Record
	appended  chan struct{} // closed and replaced on every append
	notLeader *transport.NotLeader
	writeErr  error
	servers   []*logv1.Server
	calls     int
}

var (
	_ transport.LogService     = (*Service)(nil)
	_ transport.ClusterService = (*Service)(nil)
)

// NewService returns an empty log whose GetServers lists itself as leader
// "self" at addr "self:0".
func NewService() *Service {
	return &Service{
		appended: make(chan struct{}),
		servers:  []*logv1.Server{{Id: "self", RpcAddr: "self:0", IsLeader: true, Suffrage: logv1.Suffrage_SUFFRAGE_VOTER, Healthy: true}},
	}
}

// SetNotLeader makes writes fail with transport.NotLeaderError naming
// leader, as a follower that does not forward would; nil makes it lead again.
func (s *Service) SetNotLeader(leader *transport.NotLeader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notLeader = leader
}

// SetWriteError makes writes fail with err (nil: succeed again), for tests of how errors
// and their details cross the wire.
func (s *Service) SetWriteError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = err
}

// Calls returns how many handler calls the service has received.
func (s *Service) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Records returns a copy of the log.
func (s *Service) Records() []*logv1.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// appendLocked appends values as one atomic batch. Lock should be held.
func (s *Service) appendLocked(recs []*logv1.Record) (uint64, error) {
	if s.notLeader != nil {
		return 0, transport.NotLeaderError(*s.notLeader, "not the leader")
	}
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	if len(recs) == 0 {
		return 0, transport.Errorf(transport.InvalidArgument, "no record")
	}
	base := uint64(len(s.records))
	for i, r := range recs {
		if r == nil {
			return 0, transport.Errorf(transport.InvalidArgument, "record %d is missing", i)
		}
	}
	for i, r := range recs {
		s.records = append(s.records, &logv1.Record{Value: slices.Clone(r.GetValue()), Offset: base + uint64(i), Term: 1})
	}
	close(s.appended)
	s.appended = make(chan struct{})
	return base, nil
}

// Produce appends req.Record; see transport.LogService.
func (s *Service) Produce(_ context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	off, err := s.appendLocked([]*logv1.Record{req.GetRecord()})
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: off}, nil
}

// ProduceBatch appends req.Records atomically.
func (s *Service) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	base, err := s.appendLocked(req.GetRecords())
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceBatchResponse{BaseOffset: base, Count: uint64(len(req.GetRecords()))}, nil
}

// Consume returns the record at req.Offset, or OutOfRange at once.
func (s *Service) Consume(_ context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if req.GetLinearizable() && s.notLeader != nil {
		return nil, transport.NotLeaderError(*s.notLeader, "linearizable reads need the leader")
	}
	if req.GetOffset() >= uint64(len(s.records)) {
		return nil, transport.Errorf(transport.OutOfRange, "offset %d is past the end %d", req.GetOffset(), len(s.records))
	}
	return &logv1.ConsumeResponse{Record: s.records[req.GetOffset()]}, nil
}

// ConsumeStream sends every record from req.Offset, then tails the log
// until ctx ends (then it returns ctx's error) or Send fails. A
// linearizable request fails like Consume's when not the leader.
func (s *Service) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	s.mu.Lock()
	s.calls++
	notLeader := s.notLeader
	s.mu.Unlock()
	if req.GetLinearizable() && notLeader != nil {
		return transport.NotLeaderError(*notLeader, "linearizable reads need the leader")
	}
	next := req.GetOffset()
	answered := false // the response headers went out (SendHeader, or with a message)
	for {
		s.mu.Lock()
		pending := []*logv1.Record{}
		if next < uint64(len(s.records)) {
			pending = slices.Clone(s.records[next:])
		}
		wait := s.appended
		s.mu.Unlock()
		for _, r := range pending {
			if err := stream.Send(&logv1.ConsumeResponse{Record: r}); err != nil {
				return err
			}
			next++
		}
		if !answered && next == req.GetOffset() {
			// Nothing sent yet, and the stream is to wait: answer now (once), as the server does.
			if err := transport.SendHeader(stream); err != nil {
				return err
			}
			answered = true
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return transport.NewError(transport.CodeOf(ctx.Err()), ctx.Err())
		}
	}
}

// ProduceStream appends each received record and answers its offset.
func (s *Service) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		off, err := s.appendLocked([]*logv1.Record{req.GetRecord()})
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := stream.Send(&logv1.ProduceResponse{Offset: off}); err != nil {
			return err
		}
	}
}

// GetServers lists the recorded membership.
func (s *Service) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	out := make([]*logv1.Server, 0, len(s.servers))
	for _, v := range s.servers {
		out = append(out, proto.Clone(v).(*logv1.Server))
	}
	return &logv1.GetServersResponse{Servers: out}, nil
}

// GetBounds reports [0, len) as lowest, next and committed offsets.
func (s *Service) GetBounds(context.Context, *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	n := uint64(len(s.records))
	return &logv1.GetBoundsResponse{LowestOffset: 0, NextOffset: n, CommittedOffset: n, AppliedIndex: n, CommitIndex: n}, nil
}

// Join adds a server to the membership; AlreadyExists if its id is taken.
func (s *Service) Join(_ context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if req.GetId() == "" {
		return nil, transport.Errorf(transport.InvalidArgument, "join: empty id")
	}
	if slices.ContainsFunc(s.servers, func(v *logv1.Server) bool { return v.GetId() == req.GetId() }) {
		return nil, transport.Errorf(transport.AlreadyExists, "join: server %q exists", req.GetId())
	}
	suffrage := logv1.Suffrage_SUFFRAGE_VOTER
	if req.GetNonvoter() {
		suffrage = logv1.Suffrage_SUFFRAGE_NONVOTER
	}
	s.servers = append(s.servers, &logv1.Server{Id: req.GetId(), RpcAddr: req.GetRpcAddr(), RaftAddr: req.GetRaftAddr(), Suffrage: suffrage,
		LastContact: durationpb.New(time.Second)}) // a fixed fake value: exercises the Duration field
	return &logv1.JoinResponse{}, nil
}

// RemoveServer removes a server from the membership; NotFound if absent.
func (s *Service) RemoveServer(_ context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	i := slices.IndexFunc(s.servers, func(v *logv1.Server) bool { return v.GetId() == req.GetId() })
	if i < 0 {
		return nil, transport.Errorf(transport.NotFound, "remove: no server %q", req.GetId())
	}
	s.servers = slices.Delete(s.servers, i, i+1)
	return &logv1.RemoveServerResponse{}, nil
}

// TransferLeadership makes req.Id (or the first other server) the leader.
func (s *Service) TransferLeadership(_ context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	i := slices.IndexFunc(s.servers, func(v *logv1.Server) bool {
		return (req.GetId() == "" && !v.GetIsLeader()) || (req.GetId() != "" && v.GetId() == req.GetId())
	})
	if i < 0 {
		return nil, transport.Errorf(transport.FailedPrecondition, "transfer: no target %q", req.GetId())
	}
	for _, v := range s.servers {
		v.IsLeader = false
	}
	s.servers[i].IsLeader = true
	return &logv1.TransferLeadershipResponse{LeaderId: s.servers[i].GetId()}, nil
}
