package server

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
)

// TestRemovedMarkDroppedForAWipedRestart: the leader skips a server an operator removed while
// Serf reports it alive. A removed server restarted on a wiped data dir before Serf declared
// it failed (it refutes the suspicion) was skipped as long as that leader led, and waited to
// be added (a fault schedule: "remove n1, wipe its data, add it back": 2 voters of 3 a minute
// later). Back without Raft state, it no longer advertises a cluster ID: its mark is dropped.
func TestRemovedMarkDroppedForAWipedRestart(t *testing.T) {
	var r removedServers
	member := func(clusterID string, status discovery.Status) discovery.Member {
		tags := map[string]string{tagRaftAddr: "10.0.0.1:8400", tagRPCAddr: "10.0.0.1:8400"}
		if clusterID != "" {
			tags[tagClusterID] = clusterID
		}
		return discovery.Member{Name: "n1", Addr: "10.0.0.1:8401", Tags: tags, Status: status}
	}
	r.mark("n1", true)
	if !r.skip(member("c1", discovery.StatusAlive)) {
		t.Fatal("a removed server still running, with its Raft state, is not skipped")
	}
	if !r.skip(member("c1", discovery.StatusAlive)) {
		t.Fatal("the mark of a removed server still running was dropped")
	}
	if r.skip(member("", discovery.StatusAlive)) {
		t.Fatal("a removed server back without Raft state (no cluster ID) is skipped, want it added")
	}
	if r.skip(member("c1", discovery.StatusAlive)) {
		t.Fatal("the mark outlived the server's wiped restart")
	}

	r.mark("n1", true)
	if r.skip(member("c1", discovery.StatusFailed)) || r.skip(member("c1", discovery.StatusAlive)) {
		t.Fatal("the mark of a removed server that failed was not dropped")
	}
	r.mark("n1", true)
	r.mark("n1", false) // the removal failed
	if r.skip(member("c1", discovery.StatusAlive)) {
		t.Fatal("a server whose removal failed is skipped")
	}
}

// startMember is n1 alive with Raft state (cluster ID c1), advertising start tag start ("":
// none, a server of an older version).
func startMember(start string) discovery.Member {
	tags := map[string]string{tagRaftAddr: "10.0.0.1:8400", tagRPCAddr: "10.0.0.1:8400", tagClusterID: "c1"}
	if start != "" {
		tags[tagStart] = start
	}
	return discovery.Member{Name: "n1", Addr: "10.0.0.1:8401", Tags: tags, Status: discovery.StatusAlive}
}

// TestRemovedMarkDroppedForARestartWithItsData: a removed server killed (kill -9, a crash, an
// OOM) and restarted with its data dir before Serf declared it failed refutes the suspicion:
// Serf never reports it gone, and it advertises its cluster ID as before. The leader that
// removed it skipped it for as long as it led, and it waited to be added. Each process
// advertises a start tag of its own: the mark records the one of the process removed, and is
// dropped when another process advertises a different one.
func TestRemovedMarkDroppedForARestartWithItsData(t *testing.T) {
	members := fakeMembers{members: []discovery.Member{startMember("a")}}
	var r removedServers
	r.use(members)
	r.mark("n1", true)
	for range 2 {
		if !r.skip(startMember("a")) {
			t.Fatal("a removed server still running (the same start tag) is not skipped")
		}
	}
	if r.skip(startMember("b")) {
		t.Fatal("a removed server restarted with its data (a new start tag, Serf never saw it fail) is skipped, want it added")
	}
	if r.skip(startMember("a")) {
		t.Fatal("the mark outlived the server's restart")
	}

	// A server of an older version advertises no start tag: skipped while it runs, as before.
	r.use(fakeMembers{members: []discovery.Member{startMember("")}})
	r.mark("n1", true)
	for range 2 {
		if !r.skip(startMember("")) {
			t.Fatal("a removed server without a start tag, still running, is not skipped")
		}
	}
	// Restarted as a version that advertises one: another process.
	if r.skip(startMember("c")) {
		t.Fatal("a removed server without a start tag, restarted with one, is skipped")
	}

	// Not in the membership when it was removed: the first sighting is the process removed.
	r.use(fakeMembers{})
	r.mark("n1", true)
	for range 2 {
		if !r.skip(startMember("d")) {
			t.Fatal("a removed server first seen after its removal, still running, is not skipped")
		}
	}
	if r.skip(startMember("e")) {
		t.Fatal("a removed server first seen after its removal, then restarted, is skipped")
	}
}

// reconcileNode is a consensus.Consensus led by n0, a voter, recording the non-voters added.
// Any other method panics (nil embedded interface).
type reconcileNode struct {
	consensus.Consensus
	added []string
}

func (n *reconcileNode) Servers(context.Context) ([]consensus.ServerStatus, error) {
	return []consensus.ServerStatus{{Server: consensus.Server{ID: "n0", Address: "10.0.0.0:8400", Suffrage: consensus.Voter}}}, nil
}

func (n *reconcileNode) AddNonvoter(_ context.Context, id, _ string) error {
	n.added = append(n.added, id)
	return nil
}

// TestReconcilerAddsARemovedServerRestartedWithItsData: through the reconciler, the service's
// mark (made while n1 runs as process "a") keeps n1 out while that process runs, and n1 back
// as process "b" (killed and restarted with its data, Serf never saw it fail) is added again.
func TestReconcilerAddsARemovedServerRestartedWithItsData(t *testing.T) {
	node := &reconcileNode{}
	members := &fakeMembers{members: []discovery.Member{startMember("a")}}
	removed := &removedServers{}
	r := newReconciler(reconcilerConfig{self: "n0", node: node, members: members, removed: removed})
	ctx := context.Background()
	removed.mark("n1", true) // as the service does, before the removal
	for range 2 {
		if err := r.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(node.added) != 0 {
		t.Fatalf("a removed server still running was added back: %q", node.added)
	}
	members.members = []discovery.Member{startMember("b")}
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(node.added) != 1 || node.added[0] != "n1" {
		t.Fatalf("added %q, want n1: a removed server restarted with its data, before Serf saw it fail, was not added back", node.added)
	}
}

// TestServerAdvertisesAStartTagOfItsOwn: each start advertises a start tag of its own, which is
// what tells a removed server restarted with its data from the process that was removed.
func TestServerAdvertisesAStartTagOfItsOwn(t *testing.T) {
	s := &Server{addr: "10.0.0.1:8400"}
	first, second := s.tags()[tagStart], s.tags()[tagStart]
	if first == "" || first == second {
		t.Fatalf("start tags of two starts: %q and %q, want two different ones", first, second)
	}
}
