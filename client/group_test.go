package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// TestGroupConsumerRefusals: a group consumer needs a group and topics, and a server without
// consumer groups (the fake log serves none) is reported as such. The group protocol itself is
// tested end to end against real servers in the server module (TestGroupsSDKConsumers).
func TestGroupConsumerRefusals(t *testing.T) {
	forEachFake(t, func(t *testing.T, _ *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.NewGroupConsumer(ctx, "", []string{"t"}); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("no group: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", nil); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("no topics: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", []string{"t"}, client.WithAutoCommit(-1)); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("negative auto-commit: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", []string{"t"}); !errors.Is(err, client.ErrGroupsUnsupported) {
			t.Errorf("a server without groups: %v, want ErrGroupsUnsupported", err)
		}
		if _, err := cl.ListGroups(ctx); !errors.Is(err, client.ErrGroupsUnsupported) {
			t.Errorf("ListGroups on a server without groups: %v", err)
		}
		if _, _, err := cl.ResetGroupOffsets(ctx, "g", client.ResetRequest{Topic: "t"}); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("a reset without a verb: %v", err)
		}
	})
}

// adminGroups is a minimal Groups service: one group's committed offset of
// topic t/0, moved by ResetOffsets as the real leader does (shift-by is
// relative to the committed offset), and whose answer is lost after the change
// was applied while loseNext is set (Unavailable + OutcomeUnknown, as a leader
// that lost leadership after committing answers).
type adminGroups struct {
	transport.GroupsService // unimplemented methods panic: not called

	mu        sync.Mutex
	committed int64
	resets    int
	loseNext  bool
}

func (g *adminGroups) ResetOffsets(_ context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.committed
	g.committed += req.GetShiftBy()
	g.resets++
	if g.loseNext {
		g.loseNext = false
		return nil, transport.Errorf(transport.Unavailable, "leadership lost after the commit was proposed").WithOutcomeUnknown("leadership lost")
	}
	p := uint64(prev)
	return &logv1.ResetOffsetsResponse{Executed: true, Offsets: []*logv1.OffsetReset{{Topic: "t", Partition: 0, PreviousOffset: &p, NewOffset: uint64(g.committed)}}}, nil
}

// groupsTestClient serves g over tr and returns a client of it (fast backoff, then opts),
// closed when the test ends.
func groupsTestClient(t *testing.T, tr string, g transport.GroupsService, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithTransport(tr), client.WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	cl, err := client.New(context.Background(), []string{serveWithGroups(t, tr, g)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func serveWithGroups(t *testing.T, tr string, g transport.GroupsService) string {
	t.Helper()
	l := clienttest.New()
	// GetServers names the address the Log was last served on: serve it once
	// to learn an address, then serve it with Groups on that address.
	first, err := l.Serve(clienttest.ServeOptions{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr()
	first.Close()
	cfg := transport.ServerConfig{Log: l, Cluster: l, Topics: l, Groups: g}
	var srv transport.Server
	if tr == "grpc" {
		srv, err = tgrpc.NewServer(cfg)
	} else {
		srv, err = tconnect.NewServer(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		<-done
	})
	return lis.Addr().String()
}

// TestResetGroupOffsetsShiftNotResentAfterUnknownOutcome: ResetGroupOffsets with
// ShiftBy and Execute is not idempotent (the leader adds the shift to the
// committed offset). When its answer says the outcome is unknown, the SDK
// must not resend it (and must report ErrOutcomeUnknown); a resend as a read
// would move the offsets twice.
func TestResetGroupOffsetsShiftNotResentAfterUnknownOutcome(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			g := &adminGroups{committed: 10, loseNext: true}
			cl := groupsTestClient(t, tr, g)
			_, _, err := cl.ResetGroupOffsets(context.Background(), "g", client.ResetRequest{Topic: "t", Verb: client.ResetShiftBy, Shift: 5, Execute: true})
			g.mu.Lock()
			committed, resets := g.committed, g.resets
			g.mu.Unlock()
			if resets != 1 || committed != 15 {
				t.Errorf("a shift by 5 from 10 whose answer was lost was sent %d times: committed offset %d, want 15", resets, committed)
			}
			if !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Errorf("ResetGroupOffsets after a lost answer: err %v, want ErrOutcomeUnknown", err)
			}
		})
	}
}

func (g *adminGroups) DeleteGroup(_ context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resets++
	if g.committed < 0 {
		return nil, transport.Errorf(transport.NotFound, "group %q unknown", req.GetGroup()).
			WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_UNKNOWN_GROUP, Group: req.GetGroup()})
	}
	g.committed = -1 // deleted
	if g.loseNext {
		g.loseNext = false
		return nil, transport.Errorf(transport.Unavailable, "leadership lost after the delete was proposed").WithOutcomeUnknown("leadership lost")
	}
	return &logv1.DeleteGroupResponse{}, nil
}

// TestDeleteGroupNotResentAfterUnknownOutcome: DeleteGroup whose answer is
// lost after it deleted the group must report ErrOutcomeUnknown; a resend
// would report its "unknown group" refusal, telling the caller the delete
// failed although it happened.
func TestDeleteGroupNotResentAfterUnknownOutcome(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			g := &adminGroups{committed: 10, loseNext: true}
			cl := groupsTestClient(t, tr, g)
			err := cl.DeleteGroup(context.Background(), "g")
			g.mu.Lock()
			calls := g.resets
			g.mu.Unlock()
			if calls != 1 || !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Errorf("DeleteGroup whose answer was lost: sent %d times, err %v; want once and ErrOutcomeUnknown", calls, err)
			}
		})
	}
}

// joinGroups is a Groups service whose coordinator makes a member of every join without a
// member ID ("m1", "m2", ...), loses the answers of the first lose joins after making their
// member (Unavailable + OutcomeUnknown), and answers unknownOnce heartbeats of a member with
// UNKNOWN_MEMBER (as a new leader does).
type joinGroups struct {
	transport.GroupsService

	mu          sync.Mutex
	joins       []string // the member ID each join named
	made        int      // members made
	lose        int
	unknownOnce int
	beats       int // heartbeats of a member (epoch > 0) answered
}

func (g *joinGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := req.GetMemberId()
	switch req.GetMemberEpoch() {
	case -1:
		return &logv1.HeartbeatResponse{MemberId: id, MemberEpoch: -1}, nil
	case 0:
		g.joins = append(g.joins, id)
		if id == "" {
			g.made++
			id = fmt.Sprintf("m%d", g.made)
		}
		if g.lose > 0 {
			g.lose--
			return nil, transport.Errorf(transport.Unavailable, "leadership lost after the join").WithOutcomeUnknown("leadership lost")
		}
	default:
		if g.unknownOnce > 0 {
			g.unknownOnce--
			return nil, transport.Errorf(transport.FailedPrecondition, "member %q is not in group %q: rejoin", id, req.GetGroup()).
				WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_UNKNOWN_MEMBER, Group: req.GetGroup(), MemberId: id})
		}
		g.beats++
	}
	return &logv1.HeartbeatResponse{MemberId: id, MemberEpoch: 1, HeartbeatIntervalMs: 20, SessionTimeoutMs: 1000}, nil
}

func (g *joinGroups) state() (joins []string, beats int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.joins), g.beats
}

// TestGroupConsumerJoinAfterUnknownOutcome: a first join (no member ID: the coordinator makes
// one) whose answer is lost is a write of unknown outcome. NewGroupConsumer joins again as a
// new member (the lost join's member expires after the session timeout); with no retry left,
// it fails with ErrOutcomeUnknown after the one join.
func TestGroupConsumerJoinAfterUnknownOutcome(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			g := &joinGroups{lose: 1}
			cl := groupsTestClient(t, tr, g)
			gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"t"})
			if err != nil {
				t.Fatalf("NewGroupConsumer after a join whose answer was lost: %v", err)
			}
			if err := gc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if joins, _ := g.state(); !slices.Equal(joins, []string{"", ""}) {
				t.Errorf("joins named %q, want two joins without a member ID", joins)
			}

			g = &joinGroups{lose: 1}
			cl2 := groupsTestClient(t, tr, g, client.WithMaxRetries(0))
			if _, err := cl2.NewGroupConsumer(context.Background(), "g", []string{"t"}); !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Errorf("NewGroupConsumer without retries after a lost join answer: %v, want ErrOutcomeUnknown", err)
			}
			if joins, _ := g.state(); len(joins) != 1 {
				t.Errorf("%d joins sent without retries, want 1", len(joins))
			}
		})
	}
}

// TestGroupConsumerRejoinAfterUnknownOutcome: a member told UNKNOWN_MEMBER rejoins under its
// own ID; a rejoin whose answer is lost is sent again (the coordinator replaces the member of
// that ID, so a resend makes no second member), and the consumer goes on heartbeating.
func TestGroupConsumerRejoinAfterUnknownOutcome(t *testing.T) {
	g := &joinGroups{}
	addr := serveWithGroups(t, "connect", g)
	cl, err := client.New(context.Background(), []string{addr}, client.WithTransport("connect"), client.WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	g.mu.Lock()
	g.unknownOnce, g.lose = 1, 1 // the next heartbeat is refused, the rejoin's answer lost
	g.mu.Unlock()
	eventually(t, "a rejoin, then heartbeats", func() bool {
		joins, beats := g.state()
		return len(joins) >= 3 && beats >= 3
	})
	if joins, _ := g.state(); !slices.Equal(joins[:3], []string{"", "m1", "m1"}) {
		t.Errorf("joins named %q, want a join, then the rejoin of m1 resent once", joins)
	}
}

// beatGroups is a Groups service with one member holding default/0, whose
// CommitOffsets hangs (as a leader whose Raft proposal is stuck would) while
// heartbeats, answered from the coordinator's memory, keep working.
type beatGroups struct {
	transport.GroupsService

	mu    sync.Mutex
	beats []time.Time
}

func (g *beatGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.GetMemberEpoch() == -1 {
		return &logv1.HeartbeatResponse{MemberId: req.GetMemberId(), MemberEpoch: -1}, nil
	}
	g.beats = append(g.beats, time.Now())
	return &logv1.HeartbeatResponse{MemberId: "m1", MemberEpoch: 1, HeartbeatIntervalMs: 50, SessionTimeoutMs: 1000,
		Assignment: []*logv1.TopicPartitions{{Topic: "default", Partitions: []uint32{0}}}}, nil
}

func (g *beatGroups) FetchOffsets(context.Context, *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return &logv1.FetchOffsetsResponse{Offsets: []*logv1.CommittedOffset{{Topic: "default", Partition: 0, Offset: 0}}}, nil
}

func (g *beatGroups) CommitOffsets(ctx context.Context, _ *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestGroupConsumerSlowAutoCommitKeepsHeartbeats: one slow auto-commit (each
// attempt bounded by the request timeout, then retried up to the retry
// budget) lasts (retries+1) x request timeout: with the defaults 9 x 10 s =
// 90 s, twice the 45 s session timeout. Run on the heartbeat goroutine, it
// stopped the heartbeats that long, so the member was expelled and its
// partitions re-read by others; it must not delay them. Scaled down here:
// session 1 s, heartbeat every 50 ms, request timeout 200 ms.
func TestGroupConsumerSlowAutoCommitKeepsHeartbeats(t *testing.T) {
	tr := "connect"
	g := &beatGroups{}
	addr := serveWithGroups(t, tr, g)
	cl, err := client.New(context.Background(), []string{addr}, client.WithTransport(tr),
		client.WithBackoff(time.Millisecond, 5*time.Millisecond), client.WithRequestTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"}, client.WithAutoCommit(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	g.mu.Lock()
	beats := append(append([]time.Time(nil), g.beats...), time.Now()) // the gap up to now counts too
	g.mu.Unlock()
	gc.Close()
	var maxGap time.Duration
	for i := 1; i < len(beats); i++ {
		maxGap = max(maxGap, beats[i].Sub(beats[i-1]))
	}
	t.Logf("%d beats, max gap %v", len(beats), maxGap)
	if maxGap > time.Second {
		t.Errorf("no heartbeat for %v (heartbeat interval 50 ms, session 1 s) while an auto-commit was retried", maxGap.Round(time.Millisecond))
	}
}

// closeGroups is beatGroups whose commits hang (until their request ends) while hang is set,
// and are stored otherwise.
type closeGroups struct {
	*beatGroups

	hang    atomic.Bool
	once    sync.Once
	hanging chan struct{} // closed when a commit first hangs
	stored  atomic.Int64
}

func (g *closeGroups) CommitOffsets(ctx context.Context, _ *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	if g.hang.Load() {
		g.once.Do(func() { close(g.hanging) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	g.stored.Add(1)
	return &logv1.CommitOffsetsResponse{}, nil
}

// TestGroupConsumerCloseCancelsAutoCommit: Close cancels an auto-commit in flight (its
// positions are older than the ones Close commits) instead of waiting for it, then commits
// and leaves as before.
func TestGroupConsumerCloseCancelsAutoCommit(t *testing.T) {
	tr := "connect"
	g := &closeGroups{beatGroups: &beatGroups{}, hanging: make(chan struct{})}
	g.hang.Store(true)
	addr := serveWithGroups(t, tr, g)
	cl, err := client.New(context.Background(), []string{addr}, client.WithTransport(tr),
		client.WithBackoff(time.Millisecond, 5*time.Millisecond), client.WithRequestTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"}, client.WithAutoCommit(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.hanging:
	case <-time.After(5 * time.Second):
		t.Fatal("no auto-commit")
	}
	g.hang.Store(false)
	start := time.Now()
	err = gc.Close()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v: it waited for the auto-commit in flight (request timeout 10 s)", took.Round(time.Millisecond))
	}
	if err != nil {
		t.Errorf("Close: %v", err)
	}
	if g.stored.Load() == 0 {
		t.Error("Close committed nothing")
	}
}

// rejoinGroups is a Groups service whose one member, m1, holds default/0. Its commits fail
// with Unavailable (a leader election) while failing is set; the first one makes the next
// heartbeat answer UNKNOWN_MEMBER (the new leader does not know the member), and the member's
// rejoin (under m1, epoch 1 again, as a new coordinator numbers it) ends the failures. The
// committed offset is 7 before the rejoin and 3 after it (another member committed meanwhile),
// so a commit of 7 after the rejoin carries a position of the member's previous incarnation.
type rejoinGroups struct {
	transport.GroupsService

	mu         sync.Mutex
	failing    bool
	refuseNext bool
	refused    bool
	rejoined   bool
	afterJoin  []uint64 // offsets stored after the rejoin
}

func (g *rejoinGroups) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.GetMemberEpoch() == -1 {
		return &logv1.HeartbeatResponse{MemberId: req.GetMemberId(), MemberEpoch: -1}, nil
	}
	if req.GetMemberEpoch() > 0 && g.refuseNext {
		g.refuseNext, g.refused = false, true
		return nil, transport.Errorf(transport.FailedPrecondition, "member %q is not in group %q: rejoin", req.GetMemberId(), req.GetGroup()).
			WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_UNKNOWN_MEMBER, Group: req.GetGroup(), MemberId: req.GetMemberId()})
	}
	if req.GetMemberEpoch() == 0 && req.GetMemberId() == "m1" {
		g.rejoined = true
	}
	return &logv1.HeartbeatResponse{MemberId: "m1", MemberEpoch: 1, HeartbeatIntervalMs: 20, SessionTimeoutMs: 1000,
		Assignment: []*logv1.TopicPartitions{{Topic: "default", Partitions: []uint32{0}}}}, nil
}

func (g *rejoinGroups) FetchOffsets(context.Context, *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	off := uint64(7)
	if g.rejoined {
		off, g.failing = 3, false // the election is over
	}
	return &logv1.FetchOffsetsResponse{Offsets: []*logv1.CommittedOffset{{Topic: "default", Partition: 0, Offset: off}}}, nil
}

func (g *rejoinGroups) CommitOffsets(_ context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failing {
		if !g.refused {
			g.refuseNext = true
		}
		return nil, transport.Errorf(transport.Unavailable, "no leader")
	}
	if g.rejoined {
		for _, o := range req.GetOffsets() {
			g.afterJoin = append(g.afterJoin, o.GetOffset())
		}
	}
	return &logv1.CommitOffsetsResponse{}, nil
}

// TestGroupConsumerRejoinDropsAutoCommit: a member told UNKNOWN_MEMBER gives up its partitions
// without committing, and so does the automatic commit in flight: its positions are the
// previous incarnation's. Left running, it was retried through the election and landed after
// the rejoin, accepted by a coordinator where the member, rejoined under its ID, had the same
// epoch again (epochs restart at 1), and moved the committed offset back to where the member
// had been before the partition was read (and committed further) by others.
func TestGroupConsumerRejoinDropsAutoCommit(t *testing.T) {
	g := &rejoinGroups{failing: true}
	cl := groupsTestClient(t, "connect", g, client.WithMaxRetries(1000), client.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"}, client.WithAutoCommit(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	eventually(t, "commits after the rejoin", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.afterJoin) >= 3
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.Contains(g.afterJoin, 7) {
		t.Errorf("offsets committed after the rejoin: %v; 7 is the position of the member's previous incarnation, from an automatic commit sent before it was told UNKNOWN_MEMBER", g.afterJoin)
	}
}

// TestGroupConsumerRejoinEndsCommit: the same for Commit: a commit retried through an
// election while the member is told UNKNOWN_MEMBER and rejoins ends with that refusal
// instead of landing, after the rejoin, with the previous incarnation's positions.
func TestGroupConsumerRejoinEndsCommit(t *testing.T) {
	g := &rejoinGroups{failing: true}
	cl := groupsTestClient(t, "connect", g, client.WithMaxRetries(1000), client.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	gc, err := cl.NewGroupConsumer(context.Background(), "g", []string{"default"}, client.WithAutoCommit(0))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	eventually(t, "the partition", func() bool { return len(gc.Assignment()) == 1 })
	errc := make(chan error, 1)
	go func() { errc <- gc.Commit(context.Background()) }()
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Commit still retrying 10 s after the member was told UNKNOWN_MEMBER")
	}
	if r := transport.GroupErrorReason(err); r != logv1.GroupError_REASON_UNKNOWN_MEMBER {
		t.Errorf("Commit: %v (reason %v), want the coordinator's UNKNOWN_MEMBER", err, r)
	}
	time.Sleep(100 * time.Millisecond) // a retry left running would land now
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.Contains(g.afterJoin, 7) {
		t.Errorf("offsets committed after the rejoin: %v; 7 is the position of the member's previous incarnation, from a Commit called before it was told UNKNOWN_MEMBER", g.afterJoin)
	}
}

// datetimeGroups records the to_datetime_ms of each reset.
type datetimeGroups struct {
	transport.GroupsService // unimplemented methods panic: not called

	mu  sync.Mutex
	got []int64
}

func (g *datetimeGroups) ResetOffsets(_ context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, req.GetToDatetimeMs())
	return &logv1.ResetOffsetsResponse{}, nil
}

// TestResetToDatetimeRoundsUp: the server's records carry millisecond timestamps, and a
// reset to a time asks for the first record at or after it. A time between two
// milliseconds must ask from the next one: a record at the millisecond below is before it.
func TestResetToDatetimeRoundsUp(t *testing.T) {
	g := &datetimeGroups{}
	cl := groupsTestClient(t, "connect", g)
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{time.UnixMilli(5000), 5000},
		{time.UnixMilli(5000).Add(500 * time.Microsecond), 5001},
		{time.UnixMilli(5000).Add(time.Nanosecond), 5001},
		{time.UnixMilli(-1000).Add(500 * time.Microsecond), -999},
		{time.UnixMilli(0).Add(-500 * time.Microsecond), 0},
	} {
		if _, _, err := cl.ResetGroupOffsets(context.Background(), "g", client.ResetRequest{Topic: "t", Verb: client.ResetToDatetime, Time: c.at}); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		got := g.got[len(g.got)-1]
		g.mu.Unlock()
		if got != c.want {
			t.Errorf("reset to %s: to_datetime_ms %d, want %d", c.at.UTC().Format(time.RFC3339Nano), got, c.want)
		}
	}
}
