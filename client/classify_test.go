package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

func TestClassify(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		write   bool
		want    verdict
		wantErr error
	}{
		{"not leader names leader", live, transport.NotLeaderError(transport.NotLeader{LeaderID: "b", LeaderAddr: "127.0.0.1:2"}, "no"), true, redirect, ErrNotLeader},
		{"no leader, empty detail", live, transport.Errorf(transport.Unavailable, "election").WithNotLeader(transport.NotLeader{}), true, retry, ErrUnavailable},
		{"outcome unknown detail", live, transport.Errorf(transport.Unavailable, "anything").WithOutcomeUnknown("leadership lost"), true, unknown, ErrOutcomeUnknown},
		{"outcome unknown detail, read", live, transport.Errorf(transport.Unavailable, "anything").WithOutcomeUnknown("x"), false, retry, ErrUnavailable},
		{"not proposed detail", live, transport.Errorf(transport.Unavailable, "leadership transfer in progress").WithNotProposed("transfer"), true, retry, ErrUnavailable},
		{"not proposed detail, code aborted", live, transport.Errorf(transport.Aborted, "stopping").WithNotProposed("stopping"), true, retry, ErrUnavailable},
		{"not proposed detail wins over message text", live, transport.Errorf(transport.Unavailable, "outcome unknown? no").WithNotProposed("no leader"), true, retry, ErrUnavailable},
		{"no leader, empty detail and not proposed", live, transport.Errorf(transport.Unavailable, "election").WithNotLeader(transport.NotLeader{}).WithNotProposed("no leader"), true, retry, ErrUnavailable},
		{"may have happened", live, transport.Errorf(transport.Unavailable, "leadership lost: the write may have happened"), true, unknown, ErrOutcomeUnknown},
		{"may have happened, read", live, transport.Errorf(transport.Unavailable, "the write may have happened"), false, retry, ErrUnavailable},
		{"plain unavailable write", live, transport.Errorf(transport.Unavailable, "transport is closing"), true, unknown, ErrOutcomeUnknown},
		{"plain unavailable read", live, transport.Errorf(transport.Unavailable, "transport is closing"), false, retry, ErrUnavailable},
		// A follower that did not apply an acknowledged offset within --max-consume-wait (a node
		// replaying its log after a restart): the read is retried on the next server (README.md).
		{"lagging replica read", live, transport.Errorf(transport.Unavailable, "server: replica lagging behind the leader's commit point: offset 7 is committed (next offset 8 on the leader) but not applied here within 1s (storage: offset out of range)"), false, retry, ErrUnavailable},
		{"grpc dial failure write", live, transport.Errorf(transport.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true, retry, ErrUnavailable},
		{"connect dial failure write", live, transport.Errorf(transport.Unavailable, "dial tcp 127.0.0.1:1: connect: connection refused"), true, retry, ErrUnavailable},
		{"deadline write", live, transport.Errorf(transport.DeadlineExceeded, "deadline exceeded"), true, unknown, ErrOutcomeUnknown},
		{"deadline read", live, transport.Errorf(transport.DeadlineExceeded, "deadline exceeded"), false, retry, ErrUnavailable},
		{"out of range", live, transport.Errorf(transport.OutOfRange, "offset 9"), false, fatal, ErrOutOfRange},
		{"permission denied", live, transport.Errorf(transport.PermissionDenied, "nobody"), true, fatal, nil},
		{"failed precondition without detail", live, transport.Errorf(transport.FailedPrecondition, "x"), true, fatal, nil},
		{"caller canceled write", canceled, transport.Errorf(transport.Canceled, "context canceled"), true, unknown, ErrOutcomeUnknown},
		// The server answered that it did not propose the write (its combiner took it back as
		// the deadline neared), and the caller's deadline passed before the answer was
		// classified: nothing was appended, whatever the caller's context says now.
		{"caller's deadline passed after a NotProposed answer", expired, transport.Errorf(transport.Unavailable, "taken back").WithNotProposed("deadline near"), true, fatal, ErrUnavailable},
		{"caller canceled after a NotLeader answer", canceled, transport.NotLeaderError(transport.NotLeader{LeaderID: "b", LeaderAddr: "127.0.0.1:2"}, "no"), true, fatal, ErrUnavailable},
		// A connection that could not be made, and the caller's context ended meanwhile: the
		// request never left the client, nothing to doubt.
		{"caller canceled while dialing", canceled, fmt.Errorf("post: %w", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}), true, fatal, ErrUnavailable},
		{"caller canceled read", canceled, transport.Errorf(transport.Canceled, "context canceled"), false, fatal, context.Canceled},
		{"closed", live, ErrClosed, true, fatal, ErrClosed},
		{"no connection could be set up", live, &notSentError{errors.New("bad address")}, true, retry, nil},
		// neverSent's typed checks: errors (code Unknown) that prove no request left the client.
		{"dial error write", live, fmt.Errorf("post: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}), true, retry, ErrUnavailable},
		{"connection refused write", live, fmt.Errorf("post: %w", syscall.ECONNREFUSED), true, retry, ErrUnavailable},
		{"DNS failure write", live, fmt.Errorf("post: %w", &net.DNSError{Err: "no such host", Name: "nowhere.invalid"}), true, retry, ErrUnavailable},
		// …and the same kind of error after the connection was made is an unknown outcome.
		{"read error write", live, fmt.Errorf("post: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true, unknown, ErrOutcomeUnknown},
		{"reset write", live, fmt.Errorf("post: %w", syscall.ECONNRESET), true, unknown, ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := classify(tt.ctx, tt.err, tt.write)
			if v != tt.want {
				t.Errorf("verdict = %d, want %d", v, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantErr)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v lost the original %v", err, tt.err)
			}
			if transport.IsNotProposed(tt.err) && errors.Is(err, ErrOutcomeUnknown) {
				t.Errorf("err = %v: the server said it did not propose the write", err)
			}
			if tt.write && v == unknown && errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v: an unknown outcome must not look retryable", err)
			}
		})
	}
}

// TestNeverSentWhileConnecting: a gRPC call that ends while its connection is still being set
// up (the server's address takes the TCP connection and never answers: a leader partitioned
// away, a process paused) was never sent: a write that fails so, when the request timeout
// ends the attempt, is retried, not reported as an unknown outcome.
func TestNeverSentWhileConnecting(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // the attempt's
	defer cancel()
	err := produceUnanswered(t, ctx)
	// The attempt's timeout ended, the caller's context did not.
	if v, cerr := classify(context.Background(), err, true); v != retry || errors.Is(cerr, ErrOutcomeUnknown) {
		t.Errorf("write that never left the client (%v): verdict %d, err %v; want retry", err, v, cerr)
	}
}

// TestNeverSentWhileConnectingCallerDeadline: the same write that never left the client (its
// gRPC connection still being set up), ended this time by the caller's own deadline rather than
// the attempt's timeout, is not an unknown outcome either: nothing was sent, so the caller is
// told the cluster was unavailable (and that its context ended), never that the record may
// have been appended.
func TestNeverSentWhileConnectingCallerDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // the caller's
	defer cancel()
	err := produceUnanswered(t, ctx)
	v, cerr := classify(ctx, err, true)
	if v == unknown || errors.Is(cerr, ErrOutcomeUnknown) {
		t.Errorf("write that never left the client (%v), caller's deadline passed: verdict %d, err %v; want no unknown outcome", err, v, cerr)
	}
	if !errors.Is(cerr, ErrUnavailable) || !errors.Is(cerr, context.DeadlineExceeded) {
		t.Errorf("err %v: want it to wrap ErrUnavailable and the caller's context.DeadlineExceeded", cerr)
	}
}

// produceUnanswered returns the error of a gRPC Produce under ctx (which must have a deadline)
// to an address whose kernel completes the TCP handshake and that nobody answers: the gRPC
// connection is still being set up when the deadline passes, so nothing was sent.
func produceUnanswered(t *testing.T, ctx context.Context) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tc, err := tgrpc.NewClient(l.Addr().String(), transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, err = tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	if err == nil {
		t.Fatal("Produce to a server that never answers succeeded")
	}
	return err
}
