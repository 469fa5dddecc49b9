package grpc

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// toStatus converts an error a handler (or the interceptor hook) returned
// into the gRPC status error sent to the client: the neutral code and
// message, and the NotLeader detail when present. Status errors produced by
// grpc-go itself pass through unchanged.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*transport.Error](err); !ok {
		if s, ok := status.FromError(err); ok {
			return s.Err()
		}
	}
	e := transport.AsError(err)
	s := status.New(codes.Code(e.Code()), e.Message())
	if nl, ok := e.NotLeader(); ok {
		if d, derr := s.WithDetails(nl.Proto()); derr == nil {
			s = d
		}
	}
	return s.Err()
}

// fromStatus converts an error returned by a grpc-go client call into a
// *transport.Error, keeping the NotLeader detail. io.EOF (end of stream)
// and nil pass through.
func fromStatus(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return transport.NewError(transport.CodeOf(err), err)
	}
	s := status.Convert(err)
	e := transport.NewError(transport.Code(s.Code()), errors.New(s.Message()))
	for _, d := range s.Details() {
		if nl, ok := d.(*logv1.NotLeader); ok {
			e = e.WithNotLeader(transport.NotLeaderFromProto(nl))
		}
	}
	return e
}
