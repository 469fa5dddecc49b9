package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestJoinVoterPromotedOnceCaughtUp: Join of a voter adds the server as a non-voter and makes
// it a voter only once it answers that it has caught up, as servers found by gossip are added.
// Added as a voter at once, a new server with nothing applied joined the quorum of a one-voter
// cluster: a leader that lost contact with it while it copied the log stepped down and was
// never elected again (the new server refuses its vote until it has caught up), as
// TestReadyzWaitsForLeaderCommit did on a loaded host. A Join whose server cannot say how far
// it is (here its API address is dead) answers DeadlineExceeded before the caller's deadline,
// leaving it a non-voter; joining again promotes it.
func TestJoinVoterPromotedOnceCaughtUp(t *testing.T) {
	tr := TransportConnect
	leader := startServer(t, Config{NodeName: "leader", Transport: tr, GossipProfile: "test"})
	c := newClient(t, tr, leader.Addr())
	ctx := ctxT(t, 120*time.Second)
	for i := range 10 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	lone := startNode(t, Config{NodeName: "lone", Transport: tr, GossipProfile: "test", StartJoinAddrs: []string{deadGossipAddr(t)}}, false)
	suffrage := func() (consensus.Suffrage, bool) {
		t.Helper()
		servers, err := leader.node.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == "lone" })
		if i < 0 {
			return 0, false
		}
		return servers[i].Suffrage, true
	}

	short := ctxT(t, 2*time.Second)
	_, err := c.Join(short, &logv1.JoinRequest{Id: "lone", RaftAddr: lone.Addr(), RpcAddr: deadGossipAddr(t)})
	if transport.CodeOf(err) != transport.DeadlineExceeded || !strings.Contains(err.Error(), "non-voter") {
		t.Errorf("Join of a voter that cannot say how far it is: %v; want DeadlineExceeded saying it was added as a non-voter", err)
	}
	if s, ok := suffrage(); !ok || s != consensus.Nonvoter {
		t.Fatalf("after a Join that could not see it catch up, lone is in the configuration: %v, suffrage %v; want a non-voter", ok, s)
	}

	if _, err := c.Join(ctx, &logv1.JoinRequest{Id: "lone", RaftAddr: lone.Addr()}); err != nil {
		t.Fatalf("Join again: %v", err)
	}
	if s, ok := suffrage(); !ok || s != consensus.Voter {
		t.Fatalf("after Join, lone's suffrage is %v (in the configuration: %v); want a voter", s, ok)
	}
	if applied := lone.node.Status().AppliedIndex; applied == 0 {
		t.Error("lone was made a voter with nothing applied")
	}
}

// TestJoinRefusesBadAddresses: a Join whose raft or API address is not host:port is refused
// with InvalidArgument naming it, and the configuration is unchanged. It was added as a
// non-voter under that address, which nothing can dial, and the call waited for it to catch up
// until the caller's deadline.
func TestJoinRefusesBadAddresses(t *testing.T) {
	tr := TransportConnect
	leader := startServer(t, Config{NodeName: "leader", Transport: tr, GossipProfile: "test"})
	c := newClient(t, tr, leader.Addr())
	for _, req := range []*logv1.JoinRequest{
		{Id: "x", RaftAddr: "garbage"},
		{Id: "x", RaftAddr: "127.0.0.1:99999"},
		{Id: "x", RaftAddr: "127.0.0.1:1", RpcAddr: "nohost"},
	} {
		_, err := c.Join(ctxT(t, 5*time.Second), req)
		if transport.CodeOf(err) != transport.InvalidArgument || !strings.Contains(err.Error(), "host:port") {
			t.Errorf("Join %v: %v; want InvalidArgument saying the address is not host:port", req, err)
		}
	}
	servers, err := leader.node.Servers(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != "leader" {
		t.Errorf("configuration after the refused joins: %+v; want the leader alone", servers)
	}
}
