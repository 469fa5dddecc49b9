package server

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	dserf "github.com/commitlog-go/commitlog/discovery/serf"
)

const expectWarning = "a server expects a different number of servers"

// TestBootstrapExpectConflict: a node waiting to bootstrap warns, once, of a gossip member that
// advertises another --bootstrap-expect, naming it and both values (as Consul does: the two
// disagree on when the cluster may be founded); a member expecting the same number is no
// warning. The members gossip the tags Server.tags advertises.
func TestBootstrapExpectConflict(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ours, their int
		want        int // warnings
	}{
		{"different", 3, 2, 1},
		{"same", 3, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := expectMembership(t, "node-0", tc.ours, "")
			expectMembership(t, "node-1", tc.their, a.LocalMember().Addr)
			var members []discovery.Member
			waitFor(t, 10*time.Second, "node-0 sees node-1 in gossip", func() bool {
				members = a.Members()
				return slices.ContainsFunc(members, func(m discovery.Member) bool {
					return m.Name == "node-1" && m.Status == discovery.StatusAlive && m.Tags[tagStart] != ""
				})
			})
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			var c expectConflicts
			for range 3 { // three polls of the bootstrap loop
				c.check(log, members, "node-0", tc.ours)
			}
			out := logs.String()
			if got := strings.Count(out, expectWarning); got != tc.want {
				t.Fatalf("%d warnings, want %d; logs:\n%s", got, tc.want, out)
			}
			if tc.want > 0 {
				for _, want := range []string{"member=node-1", "member_bootstrap_expect=2", "bootstrap_expect=3"} {
					if !strings.Contains(out, want) {
						t.Errorf("the warning does not say %s:\n%s", want, out)
					}
				}
			}
		})
	}
}

// TestBootstrapExpectConflictLogged: two servers waiting to bootstrap with different
// --bootstrap-expect (3 and 4: neither founds a cluster with two) warn of each other.
func TestBootstrapExpectConflictLogged(t *testing.T) {
	var logs0, logs1 syncBuffer
	cfg := func(name string, expect int, logs *syncBuffer) Config {
		return Config{NodeName: name, GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			BootstrapExpect: expect, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	}
	n0 := startNode(t, cfg("node-0", 3, &logs0), false)
	c1 := cfg("node-1", 4, &logs1)
	c1.StartJoinAddrs = []string{n0.GossipAddr()}
	startNode(t, c1, false)
	for _, w := range []struct {
		logs *syncBuffer
		want string
	}{
		{&logs0, "member=node-1 member_bootstrap_expect=4 bootstrap_expect=3"},
		{&logs1, "member=node-0 member_bootstrap_expect=3 bootstrap_expect=4"},
	} {
		waitFor(t, 15*time.Second, "the warning "+w.want, func() bool {
			return strings.Contains(w.logs.String(), w.want)
		})
	}
}

// expectMembership starts a Serf membership named name that advertises the tags of a server
// with --bootstrap-expect expect, joining join (if set).
func expectMembership(t *testing.T, name string, expect int, join string) *dserf.Membership {
	t.Helper()
	s := &Server{cfg: Config{NodeName: name, BootstrapExpect: expect}, addr: "127.0.0.1:1"}
	c := dserf.Config{NodeName: name, BindAddr: "127.0.0.1:0", Tags: s.tags(), Timing: dserf.TimingTest}
	if join != "" {
		c.StartJoinAddrs = []string{join}
	}
	return startGossip(t, c)
}
