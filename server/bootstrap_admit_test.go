package server

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	dserf "github.com/commitlog-go/commitlog/discovery/serf"
)

// TestBootstrapExpectAdmitsOnlyProvenServers: with --bootstrap-expect, the founding voters are the
// gossip members that prove their identity (a peer certificate naming them at their raft_addr),
// as every server added later must. A process that only knows the gossip key — here one named to
// sort first, so that it would have been the bootstrapper — is not counted: the two real servers
// form the cluster without it.
func TestBootstrapExpectAdmitsOnlyProvenServers(t *testing.T) {
	pki := newTestPKI(t)
	cfg := func(name string) Config {
		c := pki.readmeConfig(name)
		c.BootstrapExpect = 2
		return c
	}
	n0 := startNode(t, cfg("node-0"), false)

	// An address nobody listens at: the intruder runs no Raft and holds no certificate.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	startGossip(t, dserf.Config{NodeName: "aa-intruder", BindAddr: "127.0.0.1:0", EncryptKey: pki.gossipKey(),
		Tags:           map[string]string{tagRaftAddr: dead, tagRPCAddr: dead},
		StartJoinAddrs: []string{n0.GossipAddr()}, Timing: dserf.TimingTest})
	waitFor(t, 10*time.Second, "node-0 sees the intruder in gossip", func() bool {
		return slices.ContainsFunc(n0.serf.Members(), func(mb discovery.Member) bool { return mb.Name == "aa-intruder" })
	})

	c1 := cfg("node-1")
	c1.StartJoinAddrs = []string{n0.GossipAddr()}
	n1 := startNode(t, c1, false)
	nodes := []*testServer{n0, n1}
	waitVoters(t, nodes) // exactly two voters on each: the intruder is not one
	for _, nd := range nodes {
		servers, err := nd.node.Servers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.ID != "node-0" && s.ID != "node-1" {
				t.Fatalf("%s's configuration holds %+v", nd.cfg.NodeName, s)
			}
		}
	}
}

// startGossip starts a Serf membership of cfg (a gossip member that is no server, or plays
// one), which leaves and closes when the test ends.
func startGossip(t *testing.T, cfg dserf.Config) *dserf.Membership {
	t.Helper()
	m, err := dserf.New(cfg)
	if err != nil {
		t.Fatalf("serf %s: %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = m.Leave(ctx)
		cancel()
		_ = m.Close()
	})
	return m
}
