package server

import (
	"net"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
)

// TestForwardErrClassifies: a forwarded write that never left this node (its connection to the
// leader could not be made, or was still being set up when the call's context ended: grpc-go's
// "while waiting for connections to become ready") is answered "not proposed", so that the
// client may send it again; any other failure after sending is an unknown outcome. The gRPC
// transport's wait for a connection was answered "outcome unknown", though nothing was sent.
func TestForwardErrClassifies(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		notProposed bool
	}{
		{"dial refused", transport.Errorf(transport.Unavailable, "post: %w", &net.OpError{Op: "dial", Err: errString("connection refused")}), true},
		{"grpc dialing", transport.Errorf(transport.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""), true},
		{"grpc waiting for a connection", transport.Errorf(transport.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready"), true},
		{"reset after sending", transport.Errorf(transport.Unavailable, "read tcp 127.0.0.1:2->127.0.0.1:1: connection reset by peer"), false},
		{"deadline after sending", transport.Errorf(transport.DeadlineExceeded, "context deadline exceeded"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := forwardErr("127.0.0.1:1", tc.err)
			if got := transport.IsNotProposed(err); got != tc.notProposed {
				t.Fatalf("forwardErr(%v) = %v: not proposed %v, want %v", tc.err, err, got, tc.notProposed)
			}
			if !tc.notProposed && !transport.IsOutcomeUnknown(err) {
				t.Fatalf("forwardErr(%v) = %v: want an unknown outcome", tc.err, err)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
