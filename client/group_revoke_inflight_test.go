package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// revokeGroups is a coordinator that assigns default/0 to member "m1" until revoke is set,
// then assigns nothing; it records when the member first reported owning nothing after the
// revocation (the release: the partition's next owner may have it from then on) and the
// offsets committed.
type revokeGroups struct {
	transport.GroupsService

	mu        sync.Mutex
	revoke    bool
	released  time.Time
	committed []uint64
}

func (g *revokeGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.GetMemberEpoch() == -1 {
		return &logv1.HeartbeatResponse{MemberId: req.GetMemberId(), MemberEpoch: -1}, nil
	}
	res := &logv1.HeartbeatResponse{MemberId: "m1", MemberEpoch: 1, HeartbeatIntervalMs: 20, SessionTimeoutMs: 2000,
		Assignment: []*logv1.TopicPartitions{{Topic: "default", Partitions: []uint32{0}}}}
	if g.revoke {
		res.MemberEpoch, res.Assignment = 2, nil
		if req.GetMemberEpoch() == 2 && len(req.GetOwned()) == 0 && g.released.IsZero() {
			g.released = time.Now()
		}
	}
	return res, nil
}

func (g *revokeGroups) FetchOffsets(context.Context, *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return &logv1.FetchOffsetsResponse{Offsets: []*logv1.CommittedOffset{{Topic: "default", Partition: 0, Offset: 0}}}, nil
}

func (g *revokeGroups) CommitOffsets(_ context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, o := range req.GetOffsets() {
		g.committed = append(g.committed, o.GetOffset())
	}
	return &logv1.CommitOffsetsResponse{}, nil
}

// TestGroupConsumerRevocationWaitsForRecordInFlight: a partition revoked while the loop body
// is processing one of its records is released (reported no longer owned, so that its next
// owner gets it) only once the body returned for that record, whose position is then
// committed. It was released at once: the next owner read the record again and went on with
// the partition while this member was still processing it, two members consuming one
// partition for as long as the body took.
func TestGroupConsumerRevocationWaitsForRecordInFlight(t *testing.T) {
	g := &revokeGroups{}
	cl := groupsTestClient(t, "connect", g)
	ctx := context.Background()
	if _, err := cl.ProduceBatch(ctx, []byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	gc, err := cl.NewGroupConsumer(ctx, "g", []string{"default"}, client.WithAutoCommit(0))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	started := make(chan struct{})
	var mu sync.Mutex
	var finished time.Time
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for rec, err := range gc.Records(rctx) {
			if err != nil {
				return
			}
			if rec.Offset == 0 {
				close(started)
				time.Sleep(400 * time.Millisecond)
				mu.Lock()
				finished = time.Now()
				mu.Unlock()
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no record")
	}
	g.mu.Lock()
	g.revoke = true
	g.mu.Unlock()
	eventually(t, "the release", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return !g.released.IsZero()
	})
	cancel()
	<-loopDone
	g.mu.Lock()
	defer g.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if finished.IsZero() || g.released.Before(finished) {
		t.Errorf("partition released %v before the loop body returned for its record in flight (finished %v): its next owner consumes it meanwhile",
			finished.Sub(g.released), finished)
	}
	if n := len(g.committed); n == 0 || g.committed[n-1] != 1 {
		t.Errorf("offsets committed %v, want the revoked partition's last commit to be 1 (the record in flight processed)", g.committed)
	}
}
