package server

import (
	"testing"

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
