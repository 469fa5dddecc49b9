package server

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestGroupsACL: group calls are authorized per topic, with the casbin object being the topic
// (topicACLPolicy: alice may work on orders only, root on every topic).
func TestGroupsACL(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte(topicACLPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, pki.secureConfig(TransportConnect, policy))
	ctx := ctxT(t, 60*time.Second)
	client := func(name string) transport.GroupsClient {
		return groupsClient(t, tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name}))))
	}
	rootC := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	for _, name := range []string{"orders", "payments"} {
		if _, err := rootC.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		fillTopicT(t, ctx, rootC, name, 1, 2)
	}
	root, alice, nobody := groupsClient(t, rootC), client("alice"), client("nobody")
	denied := func(what string, err error) {
		t.Helper()
		if transport.CodeOf(err) != transport.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", what, err)
		}
	}

	_, err := alice.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", Topics: []string{"orders", "payments"}})
	denied("alice subscribing to payments", err)
	m := &wireMember{group: "g", topics: []string{"orders"}}
	settleWire(t, ctx, alice, m)
	_, err = nobody.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", Topics: []string{"orders"}})
	denied("nobody joining", err)
	_, err = alice.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: m.epoch, Offsets: []*logv1.OffsetToCommit{{Topic: "payments", Offset: 1}}})
	denied("alice committing payments", err)
	if _, err := alice.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: m.epoch, Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 1}}}); err != nil {
		t.Fatalf("alice committing orders: %v", err)
	}
	if _, err := alice.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: m.id, MemberEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", Offsets: []*logv1.OffsetToCommit{{Topic: "payments", Offset: 2}}}); err != nil {
		t.Fatalf("root committing payments for the empty group: %v", err)
	}
	// Alice sees only her topic's offsets; root sees both.
	if f, err := alice.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"}); err != nil || len(f.GetOffsets()) != 1 || f.GetOffsets()[0].GetTopic() != "orders" {
		t.Fatalf("FetchOffsets as alice = %v, %v", f, err)
	}
	if f, err := root.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"}); err != nil || len(f.GetOffsets()) != 2 {
		t.Fatalf("FetchOffsets as root = %v, %v", f, err)
	}
	if d, err := alice.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"}); err != nil || len(d.GetPartitions()) != 1 {
		t.Fatalf("DescribeGroup as alice = %v, %v", d, err)
	}
	_, err = alice.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "payments", Verb: &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}})
	denied("alice resetting payments", err)
	if _, err := alice.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "orders", Verb: &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}, Execute: true}); err != nil {
		t.Fatalf("alice resetting orders: %v", err)
	}
	_, err = alice.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: "payments", Spec: &logv1.ListOffsetsRequest_Latest{Latest: true}})
	denied("alice listing payments' offsets", err)
	_, err = alice.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"})
	denied("alice deleting a group with offsets in payments", err)
	_, err = nobody.ListGroups(ctx, &logv1.ListGroupsRequest{})
	denied("nobody listing groups", err)
	if _, err := root.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"}); err != nil {
		t.Fatalf("root deleting the group: %v", err)
	}
}

// TestGroupsACLOtherMembers: a caller learns nothing, and changes nothing, of group members
// subscribed to topics it may not consume (topicACLPolicy: alice may consume orders only).
// DescribeGroup leaves out root's payments member and shows root's member of both topics with
// orders only; a heartbeat, a leave or a rejoin naming either member is PermissionDenied for
// alice, and both members are still in the group afterwards.
func TestGroupsACLOtherMembers(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte(topicACLPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, pki.secureConfig(TransportConnect, policy))
	ctx := ctxT(t, 60*time.Second)
	rootC := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	for _, name := range []string{"orders", "payments"} {
		if _, err := rootC.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 2}); err != nil {
			t.Fatal(err)
		}
	}
	root := groupsClient(t, rootC)
	alice := groupsClient(t, tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("alice", certgen.Client, certgen.Options{CommonName: "alice"}))))
	payments := &wireMember{group: "g", topics: []string{"payments"}}
	both := &wireMember{group: "g", topics: []string{"orders", "payments"}}
	settleWire(t, ctx, root, payments, both)

	d, err := alice.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
	if err != nil {
		t.Fatalf("DescribeGroup as alice: %v", err)
	}
	if len(d.GetMembers()) != 1 || d.GetMembers()[0].GetMemberId() != both.id {
		t.Fatalf("alice sees members %v, want only the one subscribed to orders too", d.GetMembers())
	}
	mb := d.GetMembers()[0]
	if !slices.Equal(mb.GetTopics(), []string{"orders"}) {
		t.Errorf("alice sees its topics as %v, want [orders]", mb.GetTopics())
	}
	for _, tp := range append(mb.GetAssignment(), mb.GetTarget()...) {
		if tp.GetTopic() != "orders" {
			t.Errorf("alice sees its partitions of %s", tp.GetTopic())
		}
	}
	for _, p := range d.GetPartitions() {
		if p.GetTopic() != "orders" {
			t.Errorf("alice sees partition %s/%d", p.GetTopic(), p.GetPartition())
		}
	}
	if d, err := root.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"}); err != nil || len(d.GetMembers()) != 2 || len(d.GetPartitions()) != 4 {
		t.Fatalf("DescribeGroup as root = %v, %v; want both members and four partitions", d, err)
	}

	for _, m := range []*wireMember{payments, both} {
		for _, req := range []*logv1.HeartbeatRequest{
			{Group: "g", MemberId: m.id, MemberEpoch: m.epoch},                       // keep it
			{Group: "g", MemberId: m.id, MemberEpoch: -1},                            // remove it
			{Group: "g", MemberId: m.id, MemberEpoch: 0, Topics: []string{"orders"}}, // replace it
		} {
			if _, err := alice.Heartbeat(ctx, req); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("alice's heartbeat for root's member of %v, epoch %d: %v, want PermissionDenied", m.topics, req.GetMemberEpoch(), err)
			}
		}
		if _, err := m.beat(ctx, root); err != nil {
			t.Errorf("root's member of %v after alice's heartbeats: %v", m.topics, err)
		}
	}
}
