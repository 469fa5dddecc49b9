package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
)

// fakeMembers is a discovery.Membership whose member list a test sets; only Members is used by
// the reconciler's pass.
type fakeMembers struct {
	discovery.Membership
	members []discovery.Member
}

func (f fakeMembers) Members() []discovery.Member { return f.members }

// TestLeaveUnderAnotherNameDoesNotRemove: with peer TLS, a "left" in gossip (which anyone with
// the gossip key can announce under any name) removes a server from Raft only once that server
// no longer proves its name at its Raft address; without peer TLS the leave is taken as said.
func TestLeaveUnderAnotherNameDoesNotRemove(t *testing.T) {
	leader := startNode(t, Config{NodeName: "node-0", GossipProfile: "test"}, true)
	ctx := ctxT(t, 30*time.Second)
	const victim, victimAddr = "node-1", "127.0.0.1:1" // a non-voter: the quorum stays node-0
	if err := leader.node.AddNonvoter(ctx, victim, victimAddr); err != nil {
		t.Fatal(err)
	}
	inConfig := func() bool {
		servers, err := leader.node.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.ID == victim {
				return true
			}
		}
		return false
	}
	left := fakeMembers{members: []discovery.Member{{Name: victim, Addr: "127.0.0.1:2",
		Status: discovery.StatusLeft, Tags: map[string]string{tagRaftAddr: victimAddr, tagRPCAddr: victimAddr}}}}
	var asked []string
	stillProves := true
	r := newReconciler(reconcilerConfig{self: "node-0", node: leader.node, cluster: leader.node.ClusterID, members: left,
		logger: slog.New(slog.DiscardHandler), proves: true,
		admit: func(_ context.Context, id, raftAddr string) error {
			asked = append(asked, id+"@"+raftAddr)
			if stillProves {
				return nil
			}
			return ErrNotAdmitted
		}})

	// The real node-1 still answers at its Raft address with a certificate naming it.
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if !inConfig() {
		t.Fatal("a leave announced in gossip removed a server that still proves its name")
	}
	if len(asked) != 1 || asked[0] != victim+"@"+victimAddr {
		t.Fatalf("admission asked %q, want node-1 at its address in Raft's configuration", asked)
	}
	// Once it stopped answering, the leave removes it.
	stillProves = false
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if inConfig() {
		t.Fatal("a server that left and stopped answering was not removed")
	}

	// Without peer TLS nothing is proved: the leave removes at once, without asking.
	if err := leader.node.AddNonvoter(ctx, victim, victimAddr); err != nil {
		t.Fatal(err)
	}
	asked, stillProves, r.proves = nil, true, false
	if err := r.reconcile(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if inConfig() || len(asked) != 0 {
		t.Fatalf("without peer TLS: still in the configuration %v, admission asked %q; want removed, not asked", inConfig(), asked)
	}
}
