package grpc

import (
	"context"
	"errors"
	"io"
	"strings"

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
	if s.Code() == codes.Unavailable {
		if why := connectionCause(s.Message()); why != nil {
			e = e.WithCause(why)
		}
	}
	for _, d := range s.Details() {
		if m, ok := d.(proto.Message); ok {
			e = e.WithDetail(m)
		}
	}
	return e
}

// streamErr is fromStatus for the errors of a server stream's Send and Recv: grpc-go fails the
// Send of a stream its client has just reset with a Canceled status, which a handler that does
// not know grpc-go's errors would answer as its own fault (Internal). io.EOF, and the
// *transport.Errors of the request checks (Server.decode), pass through.
func streamErr(err error) error {
	if _, ok := errors.AsType[*transport.Error](err); ok {
		return err
	}
	return fromStatus(err)
}

// connectionCause returns the transport error that says why a call's connection failed
// (ErrClosedInPreface, ErrNotTLS, ErrServerCertificate, ErrTLSRefused), or nil, from the message
// of the Unavailable status grpc-go gives the call. grpc-go (v1.85.0) keeps only the text of the
// connection's error in the status, not the error: this is the one place that reads it.
func connectionCause(msg string) error {
	switch {
	case strings.Contains(msg, "remote error: tls: "):
		// crypto/tls's text for an alert the server sent: in the handshake, or (TLS 1.3: a
		// client certificate refused) in place of the server's preface.
		return transport.ErrTLSRefused
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return transport.ErrNotTLS
	case strings.Contains(msg, "tls: failed to verify certificate"):
		return transport.ErrServerCertificate
	case strings.Contains(msg, "error reading server preface: EOF"),
		strings.Contains(msg, "error reading server preface: ") && strings.Contains(msg, "connection reset by peer"):
		return transport.ErrClosedInPreface
	}
	return nil
}
