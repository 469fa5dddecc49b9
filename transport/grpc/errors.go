package grpc

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/commitlog-go/commitlog/transport"
)

// toStatus converts an error a handler (or the interceptor hook) returned
// into the gRPC status error sent to the client: the neutral code and
// message, and its error details (NotLeader, OutcomeUnknown, NotProposed). Status errors produced by
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
	if ds := e.Details(); len(ds) > 0 {
		vs := make([]protoadapt.MessageV1, len(ds))
		for i, d := range ds {
			vs[i] = protoadapt.MessageV1Of(d)
		}
		if d, derr := s.WithDetails(vs...); derr == nil {
			s = d
		}
	}
	return s.Err()
}

// fromStatus converts an error returned by a grpc-go client call into a
// *transport.Error, keeping its error details. io.EOF (end of stream)
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
		if m, ok := d.(proto.Message); ok {
			e = e.WithDetail(m)
		}
	}
	return e
}
