package grpc

import (
	"errors"
	"io"
	"testing"

	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestConnectionCause pins the texts of grpc-go (v1.85.0) that connectionCause reads: a
// grpc-go upgrade that rewords them fails here, not silently in the SDK's hints.
func TestConnectionCause(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{`connection error: desc = "error reading server preface: EOF"`, transport.ErrClosedInPreface},
		{`connection error: desc = "error reading server preface: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"`, transport.ErrClosedInPreface},
		{`connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`, transport.ErrNotTLS},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`, transport.ErrServerCertificate},
		{`connection error: desc = "error reading server preface: remote error: tls: certificate required"`, transport.ErrTLSRefused},
		{`connection error: desc = "transport: authentication handshake failed: remote error: tls: bad certificate"`, transport.ErrTLSRefused},
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, nil},
		{"no leader", nil},
	} {
		if got := connectionCause(tc.msg); got != tc.want {
			t.Errorf("connectionCause(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// resetStream is a grpc-go server stream whose client has just reset it: Send and Recv fail
// with the Canceled status grpc-go gives then (before it cancels the stream's context).
type resetStream struct {
	ggrpc.BidiStreamingServer[logv1.ProduceRequest, logv1.ProduceResponse]
	recvErr error
}

func (resetStream) Send(*logv1.ProduceResponse) error {
	return status.Error(codes.Canceled, "context canceled")
}
func (s resetStream) Recv() (*logv1.ProduceRequest, error) { return nil, s.recvErr }

// TestServerStreamErrorsAreTransportErrors: the server streams' Send and Receive answer
// *transport.Errors, so that a handler keeps their code: grpc-go's Canceled status for a stream
// its client reset was passed to the handler as is, which answered it as its own fault
// (Internal: seen as TestCancelledBusyStreamsEndCanceled/grpc failing under load, the
// ProduceStream "calls by code: map[internal:1]"). io.EOF and the request checks' own
// *transport.Errors pass through.
func TestServerStreamErrorsAreTransportErrors(t *testing.T) {
	canceled := func(what string, err error) {
		t.Helper()
		if e, ok := errors.AsType[*transport.Error](err); !ok || e.Code() != transport.Canceled {
			t.Errorf("%s = %#v, want a *transport.Error of code Canceled", what, err)
		}
	}
	b := bidiServer{resetStream{recvErr: status.Error(codes.Canceled, "context canceled")}}
	canceled("bidiServer.Send", b.Send(&logv1.ProduceResponse{}))
	_, err := b.Receive()
	canceled("bidiServer.Receive", err)
	h := headerStream[logv1.ProduceResponse]{resetStream{}}
	canceled("headerStream.Send", h.Send(&logv1.ProduceResponse{}))

	if _, err := (bidiServer{resetStream{recvErr: io.EOF}}).Receive(); err != io.EOF {
		t.Errorf("Receive at the end = %v, want io.EOF", err)
	}
	own := transport.NewError(transport.ResourceExhausted, errors.New("too large"))
	if _, err := (bidiServer{resetStream{recvErr: own}}).Receive(); err != own {
		t.Errorf("Receive of a request check's error = %v, want it unchanged", err)
	}
}
