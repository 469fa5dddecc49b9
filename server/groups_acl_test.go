package server

import (
	"os"
	"path/filepath"
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
