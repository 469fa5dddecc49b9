package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// groupObjectsPolicy names a group object, so every group call also needs its group's
// permission: alice may consume orders and group team-a; bob may consume and administer
// orders but no group; ops may administer orders and group team-a; root may do everything
// ("*" stands for every group too).
const groupObjectsPolicy = `p, root, *, produce
p, root, *, consume
p, root, *, admin
p, alice, orders, consume
p, alice, group:team-a, consume
p, bob, orders, consume
p, bob, orders, admin
p, ops, orders, admin
p, ops, group:team-a, admin
`

// noGroupObjectsPolicy is groupObjectsPolicy without its group rules: group checks are off.
const noGroupObjectsPolicy = `p, root, *, produce
p, root, *, consume
p, root, *, admin
p, alice, orders, consume
p, bob, orders, consume
p, bob, orders, admin
p, ops, orders, admin
`

// TestGroupObjectsACL: with a policy naming group objects, a client allowed to consume a topic
// but not a group can neither join the group, nor keep or remove its members, nor commit or
// fetch its offsets (as a member, or with no member ID while it is empty), nor see it in
// ListGroups or DescribeGroup, nor reset its offsets or delete it with admin on the topic only;
// the denial names the group. A client with the group's permission can, and "*" allows every
// group. Reloading a policy without group rules turns the checks off again.
func TestGroupObjectsACL(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.csv")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(policy+".new", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(policy+".new", policy); err != nil {
			t.Fatal(err)
		}
	}
	write(groupObjectsPolicy)
	var logs syncBuffer
	cfg := pki.secureConfig(TransportConnect, policy)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv := startServer(t, cfg)
	if !strings.Contains(logs.String(), "group authorization on") {
		t.Errorf("the start did not log that group authorization is on; logs:\n%s", logs.String())
	}
	ctx := ctxT(t, 60*time.Second)
	client := func(name string) transport.GroupsClient {
		return groupsClient(t, tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name}))))
	}
	rootC := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := rootC.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	fillTopicT(t, ctx, rootC, "orders", 1, 3)
	root, alice, bob, ops := groupsClient(t, rootC), client("alice"), client("bob"), client("ops")
	deniedGroup := func(what string, err error) {
		t.Helper()
		if transport.CodeOf(err) != transport.PermissionDenied || !strings.Contains(err.Error(), `"group:team-a"`) {
			t.Errorf("%s: %v, want PermissionDenied naming group:team-a", what, err)
		}
	}
	listed := func(gc transport.GroupsClient) bool {
		t.Helper()
		res, err := gc.ListGroups(ctx, &logv1.ListGroupsRequest{})
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		return slices.ContainsFunc(res.GetGroups(), func(g *logv1.GroupSummary) bool { return g.GetName() == "team-a" })
	}

	// Alice, allowed the group, joins it and commits.
	m := &wireMember{group: "team-a", topics: []string{"orders"}}
	settleWire(t, ctx, alice, m)
	if _, err := alice.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "team-a", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 1}}}); err != nil {
		t.Fatalf("alice committing for team-a: %v", err)
	}

	// Bob may consume orders, but not group team-a.
	_, err := bob.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "team-a", Topics: []string{"orders"}})
	deniedGroup("bob joining team-a", err)
	_, err = bob.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "team-a", MemberId: m.id, MemberEpoch: -1})
	deniedGroup("bob removing alice's member", err)
	_, err = bob.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "team-a", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 3}}})
	deniedGroup("bob committing as alice's member", err)
	_, err = bob.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "team-a"})
	deniedGroup("bob fetching team-a's offsets", err)
	_, err = bob.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "team-a"})
	deniedGroup("bob describing team-a", err)
	if listed(bob) {
		t.Error("bob sees team-a in ListGroups")
	}
	if _, err := bob.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "bobs", Topics: []string{"orders"}}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("bob creating group bobs: %v, want PermissionDenied", err)
	}
	if _, err := m.beat(ctx, alice); err != nil {
		t.Fatalf("alice's member after bob's calls: %v", err)
	}

	// Alice sees her group.
	if f, err := alice.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "team-a"}); err != nil || len(f.GetOffsets()) != 1 || f.GetOffsets()[0].GetOffset() != 1 {
		t.Fatalf("FetchOffsets as alice = %v, %v", f, err)
	}
	if d, err := alice.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "team-a"}); err != nil || len(d.GetMembers()) != 1 {
		t.Fatalf("DescribeGroup as alice = %v, %v", d, err)
	}
	if !listed(alice) || !listed(root) {
		t.Error("alice or root does not see team-a in ListGroups")
	}
	if _, err := alice.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "team-a", MemberId: m.id, MemberEpoch: -1}); err != nil {
		t.Fatalf("alice leaving: %v", err)
	}

	// The group is empty: a commit with no member ID needs the group too.
	_, err = bob.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "team-a", Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 3}}})
	deniedGroup("bob committing for the empty team-a", err)
	if _, err := alice.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "team-a", Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 2}}}); err != nil {
		t.Fatalf("alice committing for the empty team-a: %v", err)
	}
	if f, err := root.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "team-a"}); err != nil || len(f.GetOffsets()) != 1 || f.GetOffsets()[0].GetOffset() != 2 {
		t.Fatalf("FetchOffsets as root = %v, %v; want offset 2 (bob's commits refused)", f, err)
	}

	// Admin on the topic is not enough to reset or delete: admin on the group is needed too.
	reset := &logv1.ResetOffsetsRequest{Group: "team-a", Topic: "orders", Verb: &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}, Execute: true}
	_, err = bob.ResetOffsets(ctx, reset)
	deniedGroup("bob resetting team-a", err)
	_, err = alice.ResetOffsets(ctx, reset)
	if transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("alice (consume only) resetting team-a: %v, want PermissionDenied", err)
	}
	_, err = bob.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "team-a"})
	deniedGroup("bob deleting team-a", err)
	if _, err := ops.ResetOffsets(ctx, reset); err != nil {
		t.Fatalf("ops resetting team-a: %v", err)
	}
	if _, err := ops.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "team-a"}); err != nil {
		t.Fatalf("ops deleting team-a: %v", err)
	}

	// A policy without group rules: the topics alone decide again, as before group objects.
	write(noGroupObjectsPolicy)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "group authorization off") {
		t.Errorf("the reload did not log that group authorization is off; logs:\n%s", logs.String())
	}
	bm := &wireMember{group: "team-a", topics: []string{"orders"}}
	settleWire(t, ctx, bob, bm)
	if !listed(bob) {
		t.Error("bob does not see team-a in ListGroups with group checks off")
	}
	if _, err := bob.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "team-a", MemberId: bm.id, MemberEpoch: -1}); err != nil {
		t.Fatal(err)
	}

	// And naming a group again turns them back on.
	write(groupObjectsPolicy)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = bob.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "team-a"})
	deniedGroup("bob describing team-a after the second reload", err)
}

// TestGroupObjectsACLStarCoversEveryGroupName: a group name may hold a character no policy line
// can (here a left-to-right mark, U+200E, as a copied name brings along): with group checks on,
// "*" must still stand for that group too. The group's object was refused before matching, so
// root (every action on "*") could neither join, see, reset nor delete such a group once the
// policy named any group.
func TestGroupObjectsACLStarCoversEveryGroupName(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte(groupObjectsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, pki.secureConfig(TransportConnect, policy))
	ctx := ctxT(t, 60*time.Second)
	rootC := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := rootC.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	fillTopicT(t, ctx, rootC, "orders", 1, 3)
	root := groupsClient(t, rootC)
	const group = "billing\u200e"
	m := &wireMember{group: group, topics: []string{"orders"}}
	settleWire(t, ctx, root, m)
	if _, err := root.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: group, MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 1}}}); err != nil {
		t.Fatalf("root committing for %q: %v", group, err)
	}
	res, err := root.ListGroups(ctx, &logv1.ListGroupsRequest{})
	if err != nil || !slices.ContainsFunc(res.GetGroups(), func(g *logv1.GroupSummary) bool { return g.GetName() == group }) {
		t.Errorf("root's ListGroups = %v, %v; want %q listed", res, err, group)
	}
	if _, err := root.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: group, MemberId: m.id, MemberEpoch: -1}); err != nil {
		t.Fatalf("root leaving %q: %v", group, err)
	}
	if _, err := root.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: group}); err != nil {
		t.Fatalf("root deleting %q: %v", group, err)
	}
}

// TestGroupObjectsACLForwarded: a group call made to a follower is decided for the client on
// the node it called and again, under the forwarded-for claim, on the leader: each node's own
// policy refuses it, and the leader filters ListGroups for the client, not for the follower
// whose certificate ("server", allowed everything here) forwards it.
func TestGroupObjectsACLForwarded(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	const peerRules = "p, server, *, consume\np, server, *, admin\n"
	allowing := groupObjectsPolicy + peerRules
	refusingAlice := strings.Replace(groupObjectsPolicy, "p, alice, group:team-a, consume\n", "", 1) + peerRules
	files := []string{filepath.Join(dir, "node-0.csv"), filepath.Join(dir, "node-1.csv")}
	write := func(file, text string) {
		t.Helper()
		if err := os.WriteFile(file+".new", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		write(f, allowing)
	}
	node := 0
	leader, follower := startSecurePair(t, pki, TransportConnect, files[0], func(cfg *Config) {
		cfg.ACLPolicyFile = files[node]
		node++
	})
	policyOf := func(s *testServer) string { return s.cfg.ACLPolicyFile }
	ctx := ctxT(t, 60*time.Second)
	client := func(name string) transport.GroupsClient {
		return groupsClient(t, tlsClient(t, TransportConnect, follower.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name}))))
	}
	rootC := tlsClient(t, TransportConnect, leader.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := rootC.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	fillTopicT(t, ctx, rootC, "orders", 1, 3)
	alice, bob := client("alice"), client("bob")

	m := &wireMember{group: "team-a", topics: []string{"orders"}}
	settleWire(t, ctx, alice, m)
	if _, err := alice.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "team-a", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "orders", Offset: 1}}}); err != nil {
		t.Fatalf("alice committing for team-a through the follower: %v", err)
	}
	if _, err := bob.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "team-a", MemberId: m.id, MemberEpoch: -1}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("bob removing alice's member through the follower: %v, want PermissionDenied", err)
	}
	listed := func(gc transport.GroupsClient) bool {
		t.Helper()
		res, err := gc.ListGroups(ctx, &logv1.ListGroupsRequest{})
		if err != nil {
			t.Fatalf("ListGroups through the follower: %v", err)
		}
		return slices.ContainsFunc(res.GetGroups(), func(g *logv1.GroupSummary) bool { return g.GetName() == "team-a" })
	}
	if listed(bob) || !listed(alice) {
		t.Errorf("ListGroups through the follower: bob sees team-a %v (want false), alice %v (want true)", listed(bob), listed(alice))
	}

	fetch := func() error {
		_, err := alice.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "team-a"})
		return err
	}
	reload := func(s *testServer, text string) {
		t.Helper()
		write(policyOf(s), text)
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	// The node called refuses by its own policy, whatever the leader's.
	reload(follower, refusingAlice)
	if err := fetch(); transport.CodeOf(err) != transport.PermissionDenied || !strings.Contains(err.Error(), `"group:team-a"`) {
		t.Errorf("alice fetching team-a's offsets from a follower whose policy refuses it: %v, want PermissionDenied naming group:team-a", err)
	}
	// And the leader decides for the client the follower forwards for.
	reload(follower, allowing)
	reload(leader, refusingAlice)
	if err := fetch(); transport.CodeOf(err) != transport.PermissionDenied || !strings.Contains(err.Error(), `"group:team-a"`) {
		t.Errorf("alice fetching team-a's offsets through the follower from a leader whose policy refuses it: %v, want PermissionDenied naming group:team-a", err)
	}
	reload(leader, allowing)
	if err := fetch(); err != nil {
		t.Errorf("alice fetching team-a's offsets through the follower, allowed again: %v", err)
	}
}
