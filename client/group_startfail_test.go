package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// startFailGroups is a coordinator that makes member "m1" of every join and assigns it
// default/0, but whose FetchOffsets fails (PermissionDenied: the member cannot start reading).
// It records the members that left, and refuses their leave with leaveErr if set.
type startFailGroups struct {
	transport.GroupsService
	leaveErr error

	mu   sync.Mutex
	left []string
}

func (g *startFailGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.GetMemberEpoch() == -1 {
		g.left = append(g.left, req.GetMemberId())
		if g.leaveErr != nil {
			return nil, g.leaveErr
		}
		return &logv1.HeartbeatResponse{MemberId: req.GetMemberId(), MemberEpoch: -1}, nil
	}
	return &logv1.HeartbeatResponse{MemberId: "m1", MemberEpoch: 1, HeartbeatIntervalMs: 20, SessionTimeoutMs: 45_000,
		Assignment: []*logv1.TopicPartitions{{Topic: "default", Partitions: []uint32{0}}}}, nil
}

func (g *startFailGroups) FetchOffsets(context.Context, *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return nil, transport.Errorf(transport.PermissionDenied, "no")
}

// TestGroupConsumerLeavesWhenStartFails: NewGroupConsumer's join made a member and was
// answered, but the member could not start (its partitions' committed offsets could not be
// read: here PermissionDenied, against a real cluster also the caller's deadline). The error
// is returned, and the member must leave: left in the group it held its partitions, read by
// nobody, until the session timeout (45 s by default) removed it, while the caller had no
// consumer to Close.
func TestGroupConsumerLeavesWhenStartFails(t *testing.T) {
	g := &startFailGroups{}
	cl := groupsTestClient(t, "connect", g)
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"})
	if err == nil {
		_ = gc.Close()
		t.Fatal("NewGroupConsumer succeeded though the member's committed offsets could not be read")
	}
	if transport.CodeOf(err) != transport.PermissionDenied || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Errorf("NewGroupConsumer: %v, want the FetchOffsets refusal", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		g.mu.Lock()
		left := slices.Clone(g.left)
		g.mu.Unlock()
		if slices.Equal(left, []string{"m1"}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members that left after NewGroupConsumer failed: %q, want [m1]: the member the join made holds its partitions until the session timeout", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupConsumerStartFailsAndLeaveFails: as TestGroupConsumerLeavesWhenStartFails, but
// the coordinator refuses the leave too. Leaving is best effort: NewGroupConsumer returns the
// start's error (not the leave's) at once, and logs that the member stays until the session
// timeout; nothing of the consumer is left running (TestMain checks for goroutines).
func TestGroupConsumerStartFailsAndLeaveFails(t *testing.T) {
	g := &startFailGroups{leaveErr: transport.Errorf(transport.FailedPrecondition, "leave refused")}
	var logs lockedBuffer
	cl := groupsTestClient(t, "connect", g, client.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	start := time.Now()
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"})
	if err == nil {
		_ = gc.Close()
		t.Fatal("NewGroupConsumer succeeded though the member's committed offsets could not be read")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("NewGroupConsumer returned after %v: the failed leave held it", took)
	}
	if transport.CodeOf(err) != transport.PermissionDenied || strings.Contains(err.Error(), "leave refused") {
		t.Errorf("NewGroupConsumer: %v, want the FetchOffsets refusal, not the leave's", err)
	}
	g.mu.Lock()
	left := slices.Clone(g.left)
	g.mu.Unlock()
	if len(left) == 0 || slices.ContainsFunc(left, func(m string) bool { return m != "m1" }) {
		t.Errorf("members that tried to leave: %q, want m1", left)
	}
	if out := logs.String(); !strings.Contains(out, "leaving after a failed start failed") ||
		!strings.Contains(out, "member=m1") || !strings.Contains(out, "leave refused") {
		t.Errorf("log %q: want the failed leave of m1 and why", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for a logger's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
