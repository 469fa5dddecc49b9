package transport_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
)

// TestNeverSent: the errors that prove a request never left the client, and some that do not.
func TestNeverSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"dial", &net.OpError{Op: "dial", Err: errors.New("i/o timeout")}, true},
		{"refused", transport.Errorf(transport.Unavailable, "post: %w", syscall.ECONNREFUSED), true},
		{"no such host", &net.DNSError{Err: "no such host", Name: "x"}, true},
		{"grpc dialing", transport.Errorf(transport.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp: i/o timeout\""), true},
		{"grpc waiting", transport.Errorf(transport.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready"), true},
		{"read", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false},
		{"reset", transport.Errorf(transport.Unavailable, "connection reset by peer"), false},
		{"deadline", context.DeadlineExceeded, false},
	} {
		if got := transport.NeverSent(tc.err); got != tc.want {
			t.Errorf("%s: NeverSent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
