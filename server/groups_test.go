package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// wireMember is a group member over the wire, as the SDK plays it: it heartbeats with what it
// holds and holds what it was assigned.
type wireMember struct {
	group, id string
	epoch     int32
	topics    []string
	held      partitionSet
	revoked   []topicPartition
}

func groupsClient(t testing.TB, c transport.Client) transport.GroupsClient {
	t.Helper()
	gc, ok := c.(transport.GroupsClient)
	if !ok {
		t.Fatal("the client has no Groups service")
	}
	return gc
}

// beat sends one heartbeat and applies its answer; it returns the response.
func (m *wireMember) beat(ctx context.Context, gc transport.GroupsClient) (*logv1.HeartbeatResponse, error) {
	req := &logv1.HeartbeatRequest{Group: m.group, MemberId: m.id, MemberEpoch: m.epoch, Owned: wirePartitions(m.held.sorted())}
	if m.epoch == 0 {
		req.Topics = m.topics
	}
	res, err := gc.Heartbeat(ctx, req)
	if err != nil {
		return nil, err
	}
	m.id, m.epoch = res.GetMemberId(), res.GetMemberEpoch()
	next := toPartitionSet(res.GetAssignment())
	for p := range m.held {
		if !next[p] {
			m.revoked = append(m.revoked, p)
		}
	}
	m.held = next
	return res, nil
}

// settleWire heartbeats every member until a whole round changes nothing and none is pending.
func settleWire(t testing.TB, ctx context.Context, gc transport.GroupsClient, ms ...*wireMember) {
	t.Helper()
	for range 50 {
		stable := true
		for _, m := range ms {
			before := m.held.sorted()
			res, err := m.beat(ctx, gc)
			if err != nil {
				t.Fatalf("heartbeat of %s: %v", m.id, err)
			}
			if res.GetPending() || !slices.Equal(before, m.held.sorted()) {
				stable = false
			}
		}
		if stable {
			return
		}
	}
	t.Fatal("the group did not settle in 50 rounds")
}

func wantOwners(t *testing.T, topic string, n uint32, ms ...*wireMember) {
	t.Helper()
	for p := range n {
		c := 0
		for _, m := range ms {
			if m.held[topicPartition{topic, p}] {
				c++
			}
		}
		if c != 1 {
			t.Fatalf("%s/%d held by %d members", topic, p, c)
		}
	}
}

func wantGroupError(t *testing.T, what string, err error, code transport.Code, reason logv1.GroupError_Reason) {
	t.Helper()
	if transport.CodeOf(err) != code || transport.GroupErrorReason(err) != reason {
		t.Fatalf("%s: %v (code %v, reason %v); want %v with %v", what, err, transport.CodeOf(err), transport.GroupErrorReason(err), code, reason)
	}
}

func createTopicT(t *testing.T, ctx context.Context, c transport.Client, name string, parts uint32) {
	t.Helper()
	tc, ok := c.(transport.TopicsClient)
	if !ok {
		t.Fatal("no Topics client")
	}
	if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
}

// fillTopicT writes n records to each of the parts partitions of topic name, so that offsets up
// to n may be committed in them.
func fillTopicT(t *testing.T, ctx context.Context, c transport.Client, name string, parts uint32, n int) {
	t.Helper()
	for p := range parts {
		recs := make([]*logv1.Record, n)
		for i := range recs {
			recs[i] = &logv1.Record{Value: fmt.Appendf(nil, "%d-%d", p, i)}
		}
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: name, Partition: p, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupsThreeMembersSixPartitions runs a group of 3 over 6 partitions through each
// transport: exactly one owner per partition, fencing, the admin refusals of an active group,
// a member killed (its partitions move within the session timeout, the others lose nothing),
// then describe, reset and delete once the group is empty.
func TestGroupsThreeMembersSixPartitions(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			const session = time.Second
			srv := startServer(t, Config{Transport: tr, GroupSessionTimeout: session})
			c := newClient(t, tr, srv.Addr())
			gc := groupsClient(t, c)
			ctx := ctxT(t, 60*time.Second)
			createTopicT(t, ctx, c, "t", 6)
			for p := range uint32(6) {
				recs := make([]*logv1.Record, 1+p)
				for i := range recs {
					recs[i] = &logv1.Record{Value: fmt.Appendf(nil, "%d-%d", p, i)}
				}
				if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Partition: p, Records: recs}); err != nil {
					t.Fatal(err)
				}
			}
			ms := []*wireMember{{group: "g", topics: []string{"t"}}, {group: "g", topics: []string{"t"}}, {group: "g", topics: []string{"t"}}}
			settleWire(t, ctx, gc, ms...)
			wantOwners(t, "t", 6, ms...)
			for _, m := range ms {
				if len(m.held) != 2 {
					t.Fatalf("%s holds %v", m.id, m.held.sorted())
				}
			}

			// Each member commits what it owns; a commit of another's partition is refused.
			for _, m := range ms {
				var offs []*logv1.OffsetToCommit
				for p := range m.held {
					offs = append(offs, &logv1.OffsetToCommit{Topic: "t", Partition: p.partition, Offset: 1, Metadata: m.id})
				}
				if _, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: m.epoch, Offsets: offs}); err != nil {
					t.Fatalf("commit of %s: %v", m.id, err)
				}
			}
			foreign := ms[1].held.sorted()[0]
			_, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: ms[0].id, MemberEpoch: ms[0].epoch,
				Offsets: []*logv1.OffsetToCommit{{Topic: "t", Partition: foreign.partition, Offset: 9}}})
			wantGroupError(t, "commit of a partition another member owns", err, transport.FailedPrecondition, logv1.GroupError_REASON_NOT_OWNER)
			_, err = gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: ms[0].id, MemberEpoch: ms[0].epoch + 5,
				Offsets: []*logv1.OffsetToCommit{{Topic: "t", Partition: ms[0].held.sorted()[0].partition, Offset: 9}}})
			wantGroupError(t, "commit with a wrong epoch", err, transport.FailedPrecondition, logv1.GroupError_REASON_STALE_MEMBER_EPOCH)
			_, err = gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", Offsets: []*logv1.OffsetToCommit{{Topic: "t", Offset: 9}}})
			wantGroupError(t, "commit without a member", err, transport.FailedPrecondition, logv1.GroupError_REASON_GROUP_NOT_EMPTY)
			_, err = gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "t", Verb: &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}, Execute: true})
			wantGroupError(t, "reset --execute of an active group", err, transport.FailedPrecondition, logv1.GroupError_REASON_GROUP_NOT_EMPTY)
			if dry, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "t", Verb: &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}}); err != nil || dry.GetExecuted() || len(dry.GetOffsets()) != 6 {
				t.Fatalf("dry-run reset of an active group = %v, %v", dry, err)
			}
			_, err = gc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"})
			wantGroupError(t, "delete of an active group", err, transport.FailedPrecondition, logv1.GroupError_REASON_GROUP_NOT_EMPTY)

			d, err := gc.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
			if err != nil || d.GetState() != "stable" || len(d.GetMembers()) != 3 || len(d.GetPartitions()) != 6 {
				t.Fatalf("DescribeGroup = %v, %v", d, err)
			}
			for _, p := range d.GetPartitions() {
				// Partition p holds p+1 records; everyone committed offset 1.
				if p.GetCommittedOffset() != 1 || p.GetLogEndOffset() != uint64(p.GetPartition())+1 || p.GetLag() != uint64(p.GetPartition()) || p.GetMemberId() == "" {
					t.Fatalf("partition %v", p)
				}
			}

			// ms[2] dies (no more heartbeats): within the session timeout the others hold
			// everything, and lose nothing on the way.
			dead := ms[2].held
			alive := ms[:2]
			before := []int{len(alive[0].revoked), len(alive[1].revoked)}
			start := time.Now()
			waitFor(t, 10*session, "the dead member's partitions move", func() bool {
				for _, m := range alive {
					if _, err := m.beat(ctx, gc); err != nil {
						t.Fatal(err)
					}
				}
				return len(alive[0].held)+len(alive[1].held) == 6
			})
			t.Logf("partitions of a killed member moved after %v (session timeout %v)", time.Since(start).Round(time.Millisecond), session)
			wantOwners(t, "t", 6, alive...)
			for i, m := range alive {
				if len(m.revoked) != before[i] {
					t.Fatalf("%s lost %v when another member died", m.id, m.revoked[before[i]:])
				}
			}
			for p := range dead {
				if !alive[0].held[p] && !alive[1].held[p] {
					t.Fatalf("%v of the dead member went nowhere", p)
				}
			}
			_, err = ms[2].beat(ctx, gc)
			wantGroupError(t, "heartbeat of the removed member", err, transport.FailedPrecondition, logv1.GroupError_REASON_UNKNOWN_MEMBER)

			// Everyone leaves: the offsets stay, the group is empty.
			for _, m := range alive {
				if _, err := gc.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: m.id, MemberEpoch: -1}); err != nil {
					t.Fatal(err)
				}
			}
			lg, err := gc.ListGroups(ctx, &logv1.ListGroupsRequest{})
			if err != nil || len(lg.GetGroups()) != 1 || lg.GetGroups()[0].GetState() != "empty" || lg.GetGroups()[0].GetOffsets() != 6 {
				t.Fatalf("ListGroups = %v, %v", lg, err)
			}
			if r, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "t", Verb: &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}, Execute: true}); err != nil || !r.GetExecuted() {
				t.Fatalf("reset of the empty group = %v, %v", r, err)
			}
			f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
			if err != nil || len(f.GetOffsets()) != 6 {
				t.Fatalf("FetchOffsets = %v, %v", f, err)
			}
			for _, o := range f.GetOffsets() {
				if o.GetOffset() != uint64(o.GetPartition())+1 {
					t.Fatalf("after reset to latest: %v", o)
				}
			}
			if _, err := gc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"}); err != nil {
				t.Fatal(err)
			}
			_, err = gc.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
			wantGroupError(t, "describe of a deleted group", err, transport.NotFound, logv1.GroupError_REASON_UNKNOWN_GROUP)
			_, err = gc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"})
			wantGroupError(t, "second delete", err, transport.NotFound, logv1.GroupError_REASON_UNKNOWN_GROUP)
		})
	}
}

// TestGroupsResetVerbs checks every reset verb against a partition whose records have known
// timestamps, the dry run, and ListOffsets by time.
func TestGroupsResetVerbs(t *testing.T) {
	srv := startServer(t, Config{})
	c := newClient(t, TransportConnect, srv.Addr())
	gc := groupsClient(t, c)
	ctx := ctxT(t, 60*time.Second)
	createTopicT(t, ctx, c, "v", 1)
	// Offsets 0-9 at 1000, 2000, ... 10000 ms (the producer's timestamps); offset 10 now.
	var recs []*logv1.Record
	for i := range 10 {
		recs = append(recs, &logv1.Record{Value: []byte("x"), TimestampMs: int64(1000 * (i + 1))})
	}
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "v", Records: recs}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "v", Record: &logv1.Record{Value: []byte("now")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "r", Offsets: []*logv1.OffsetToCommit{{Topic: "v", Offset: 5}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		verb any
		want uint64
	}{
		{"to-earliest", &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}, 0},
		{"to-latest", &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}, 11},
		{"to-offset", &logv1.ResetOffsetsRequest_ToOffset{ToOffset: 3}, 3},
		{"to-offset past the end (clamped)", &logv1.ResetOffsetsRequest_ToOffset{ToOffset: 1000}, 11},
		{"to-datetime between records", &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: 2500}, 2},
		{"to-datetime on a record", &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: 4000}, 3},
		{"to-datetime before everything", &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: 0}, 0},
		{"by-duration (the last hour: the record produced now)", &logv1.ResetOffsetsRequest_ByDuration{ByDuration: durationpb.New(time.Hour)}, 10},
		{"shift-by back", &logv1.ResetOffsetsRequest_ShiftBy{ShiftBy: -2}, 3},
		{"shift-by forward", &logv1.ResetOffsetsRequest_ShiftBy{ShiftBy: 4}, 9},
		{"shift-by past the start (clamped)", &logv1.ResetOffsetsRequest_ShiftBy{ShiftBy: -100}, 0},
		{"shift-by past the end (clamped)", &logv1.ResetOffsetsRequest_ShiftBy{ShiftBy: 100}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &logv1.ResetOffsetsRequest{Group: "r", Topic: "v"}
			switch v := tc.verb.(type) {
			case *logv1.ResetOffsetsRequest_ToEarliest:
				req.Verb = v
			case *logv1.ResetOffsetsRequest_ToLatest:
				req.Verb = v
			case *logv1.ResetOffsetsRequest_ToOffset:
				req.Verb = v
			case *logv1.ResetOffsetsRequest_ToDatetimeMs:
				req.Verb = v
			case *logv1.ResetOffsetsRequest_ByDuration:
				req.Verb = v
			case *logv1.ResetOffsetsRequest_ShiftBy:
				req.Verb = v
			}
			res, err := gc.ResetOffsets(ctx, req)
			if err != nil || res.GetExecuted() || len(res.GetOffsets()) != 1 {
				t.Fatalf("dry run = %v, %v", res, err)
			}
			o := res.GetOffsets()[0]
			if o.GetNewOffset() != tc.want || o.PreviousOffset == nil || o.GetPreviousOffset() != 5 {
				t.Fatalf("plan %v; want new offset %d from 5", o, tc.want)
			}
			// The dry run stored nothing.
			f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "r"})
			if err != nil || f.GetOffsets()[0].GetOffset() != 5 {
				t.Fatalf("after a dry run: %v, %v", f, err)
			}
		})
	}
	// --execute stores it.
	if _, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "r", Topic: "v", Verb: &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: 6500}, Execute: true}); err != nil {
		t.Fatal(err)
	}
	if f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "r", Topics: []string{"v"}}); err != nil || f.GetOffsets()[0].GetOffset() != 6 {
		t.Fatalf("after --execute: %v, %v", f, err)
	}
	_, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "r", Topic: "v"})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Fatalf("a reset without a verb: %v", err)
	}
	_, err = gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "r", Topic: "nope", Verb: &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}})
	if transport.CodeOf(err) != transport.NotFound {
		t.Fatalf("a reset of an unknown topic: %v", err)
	}

	for ts, want := range map[int64]uint64{0: 0, 1000: 0, 1001: 1, 10000: 9, 10001: 10, time.Now().Add(time.Hour).UnixMilli(): 11} {
		res, err := gc.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: "v", Spec: &logv1.ListOffsetsRequest_TimestampMs{TimestampMs: ts}})
		if err != nil || len(res.GetOffsets()) != 1 || res.GetOffsets()[0].GetOffset() != want {
			t.Fatalf("ListOffsets(%d) = %v, %v; want %d", ts, res, err, want)
		}
	}
	for spec, want := range map[string]uint64{"earliest": 0, "latest": 11} {
		req := &logv1.ListOffsetsRequest{Topic: "v", Spec: &logv1.ListOffsetsRequest_Latest{Latest: true}}
		if spec == "earliest" {
			req.Spec = &logv1.ListOffsetsRequest_Earliest{Earliest: true}
		}
		if res, err := gc.ListOffsets(ctx, req); err != nil || res.GetOffsets()[0].GetOffset() != want {
			t.Fatalf("ListOffsets %s = %v, %v", spec, res, err)
		}
	}
}

// TestGroupsLeaderFailover: committed offsets survive the leader; members of the old leader
// are unknown to the new one and rejoin; any node forwards group calls to the leader.
func TestGroupsLeaderFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	c := newClient(t, TransportConnect, leader.Addr())
	createTopicT(t, ctx, c, "f", 2)
	fillTopicT(t, ctx, c, "f", 2, 4)
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
		}
	}
	// Through a follower: forwarded to the leader.
	fc := groupsClient(t, newClient(t, TransportConnect, follower.Addr()))
	m := &wireMember{group: "g", topics: []string{"f"}}
	settleWire(t, ctx, fc, m)
	if len(m.held) != 2 {
		t.Fatalf("the only member holds %v", m.held.sorted())
	}
	if _, err := fc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "f", Partition: 0, Offset: 3}, {Topic: "f", Partition: 1, Offset: 4}}}); err != nil {
		t.Fatal(err)
	}
	leader.shutdown(t)
	var rest []*testServer
	for _, nd := range nodes {
		if nd != leader {
			rest = append(rest, nd)
		}
	}
	newLeader := leaderOf(t, rest)
	gc := groupsClient(t, newClient(t, TransportConnect, newLeader.Addr()))
	// The new coordinator does not know the member yet, but the member may rejoin: the group
	// is not empty for an administrator until a session timeout has passed.
	_, err := gc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"})
	wantGroupError(t, "delete right after the leader changed", err, transport.FailedPrecondition, logv1.GroupError_REASON_GROUP_NOT_EMPTY)
	_, err = m.beat(ctx, gc)
	wantGroupError(t, "heartbeat after the leader changed", err, transport.FailedPrecondition, logv1.GroupError_REASON_UNKNOWN_MEMBER)
	m.epoch, m.held = 0, nil
	settleWire(t, ctx, gc, m)
	if len(m.held) != 2 {
		t.Fatalf("after rejoining the member holds %v", m.held.sorted())
	}
	f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(f.GetOffsets()) != 2 || f.GetOffsets()[0].GetOffset() != 3 || f.GetOffsets()[1].GetOffset() != 4 {
		t.Fatalf("offsets after the failover: %v, %v", f, err)
	}
}

// TestGroupsRestartKeepsOffsets: committed offsets come back after a restart (snapshot and
// replay), and expire once the group has been empty past the retention.
func TestGroupsRestartKeepsOffsets(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{DataDir: dir})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	createTopicT(t, ctx, c, "k", 3)
	fillTopicT(t, ctx, c, "k", 3, 8)
	if _, err := groupsClient(t, c).CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", Offsets: []*logv1.OffsetToCommit{{Topic: "k", Partition: 2, Offset: 8, Metadata: "m"}}}); err != nil {
		t.Fatal(err)
	}
	srv.shutdown(t)

	// The default retention (7 days): the offsets are there after the restart. (With a short
	// retention, a loaded machine could expire them before the fetch.)
	srv = startServer(t, Config{DataDir: dir})
	gc := groupsClient(t, newClient(t, TransportConnect, srv.Addr()))
	f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(f.GetOffsets()) != 1 || f.GetOffsets()[0].GetOffset() != 8 || f.GetOffsets()[0].GetMetadata() != "m" {
		t.Fatalf("after a restart: %v, %v", f, err)
	}
	srv.shutdown(t)

	// Empty, and its last commit older than the retention: the leader expires it.
	srv = startServer(t, Config{DataDir: dir, GroupSessionTimeout: 100 * time.Millisecond, GroupOffsetsRetention: 300 * time.Millisecond})
	gc = groupsClient(t, newClient(t, TransportConnect, srv.Addr()))
	waitFor(t, 30*time.Second, "the empty group's offsets expire", func() bool {
		lg, err := gc.ListGroups(ctx, &logv1.ListGroupsRequest{})
		return err == nil && len(lg.GetGroups()) == 0
	})
}

// BenchmarkGroupRebalance measures, on one node over the Connect transport, the time from a
// fourth member's join (or a member's leave) to a settled group of 6 partitions, where every
// member heartbeats at once after each answer (no heartbeat interval). Reported: the median
// over b.N joins and leaves (run with -benchtime=20x for 20).
func BenchmarkGroupRebalance(b *testing.B) {
	srv := startBenchServer(b, Config{})
	c, err := tconnect.NewClient(srv.Addr(), transport.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "b", Partitions: 6}); err != nil {
		b.Fatal(err)
	}
	gc := c.(transport.GroupsClient)
	ms := []*wireMember{{group: "g", topics: []string{"b"}}, {group: "g", topics: []string{"b"}}, {group: "g", topics: []string{"b"}}}
	settleWire(b, ctx, gc, ms...)
	var joins, leaves []time.Duration
	b.ResetTimer()
	for range b.N {
		extra := &wireMember{group: "g", topics: []string{"b"}}
		start := time.Now()
		settleWire(b, ctx, gc, append(ms, extra)...)
		joins = append(joins, time.Since(start))
		start = time.Now()
		if _, err := gc.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: extra.id, MemberEpoch: -1}); err != nil {
			b.Fatal(err)
		}
		settleWire(b, ctx, gc, ms...)
		leaves = append(leaves, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(median(joins).Microseconds())/1000, "join-ms/median")
	b.ReportMetric(float64(median(leaves).Microseconds())/1000, "leave-ms/median")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestCommitBeyondPartitionEndRefused: a committed offset is the next record to read, so one
// beyond the partition's end is refused (InvalidArgument), by a member and by an administrator
// alike, and through a follower. It used to be stored: the group's consumers then waited at it
// and never delivered the records written below it.
func TestCommitBeyondPartitionEndRefused(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
		}
	}
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, follower.Addr())
	createTopicT(t, ctx, c, "e", 1)
	fillTopicT(t, ctx, c, "e", 1, 3)
	gc := groupsClient(t, c)
	commit := func(member *wireMember, off uint64) error {
		req := &logv1.CommitOffsetsRequest{Group: "g", Offsets: []*logv1.OffsetToCommit{{Topic: "e", Offset: off}}}
		if member != nil {
			req.MemberId, req.MemberEpoch = member.id, member.epoch
		}
		_, err := gc.CommitOffsets(ctx, req)
		return err
	}
	for _, off := range []uint64{4, 100, math.MaxUint64} {
		if err := commit(nil, off); transport.CodeOf(err) != transport.InvalidArgument {
			t.Errorf("commit of offset %d past a partition of 3 records: %v, want InvalidArgument", off, err)
		}
	}
	if err := commit(nil, 3); err != nil { // the end itself: everything was read
		t.Fatalf("commit of the partition's end: %v", err)
	}
	m := &wireMember{group: "g", topics: []string{"e"}}
	settleWire(t, ctx, gc, m)
	if err := commit(m, 100); transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("a member's commit past the end: %v, want InvalidArgument", err)
	}
	f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(f.GetOffsets()) != 1 || f.GetOffsets()[0].GetOffset() != 3 {
		t.Fatalf("offsets after the refusals: %v, %v; want offset 3 only", f, err)
	}
}
