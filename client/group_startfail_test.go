package client_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// startFailGroups is a coordinator that makes member "m1" of every join and assigns it
// default/0, but whose FetchOffsets fails (PermissionDenied: the member cannot start reading).
// It records the members that left.
type startFailGroups struct {
	transport.GroupsService

	mu   sync.Mutex
	left []string
}

func (g *startFailGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.GetMemberEpoch() == -1 {
		g.left = append(g.left, req.GetMemberId())
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
