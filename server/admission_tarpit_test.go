package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
)

// TestAdmissionNotStarvedByTarpits: anyone with the gossip key can run gossip members whose
// advertised Raft address accepts connections and never answers the handshake (each admission
// check then lasts admitTimeout). A pass checked members one after the other, so a few of them
// used up its deadline: a real server behind them in the member list was never checked, was
// refused for the pass's deadline and put off longer each time. The checks now run side by
// side: the real server is added in the first pass, and the tarpits are refused.
func TestAdmissionNotStarvedByTarpits(t *testing.T) {
	leader := startNode(t, Config{NodeName: "node-0", GossipProfile: "test"}, true)
	const real, realAddr = "node-1", "127.0.0.1:1" // a non-voter: the quorum stays node-0
	const tarpits = 6
	const stall = 2 * time.Second // stands for admitTimeout; 6 of them outlast the pass
	var members []discovery.Member
	for i := range tarpits {
		addr := fmt.Sprintf("127.0.0.2:%d", 1000+i)
		members = append(members, discovery.Member{Name: fmt.Sprintf("tarpit-%d", i), Addr: addr, Status: discovery.StatusAlive,
			Tags: map[string]string{tagRaftAddr: addr, tagRPCAddr: addr}})
	}
	members = append(members, discovery.Member{Name: real, Addr: "127.0.0.1:2", Status: discovery.StatusAlive,
		Tags: map[string]string{tagRaftAddr: realAddr, tagRPCAddr: realAddr}})
	r := newReconciler(reconcilerConfig{self: "node-0", node: leader.node, cluster: leader.node.ClusterID,
		members: fakeMembers{members: members}, logger: slog.New(slog.DiscardHandler), proves: true,
		admit: func(ctx context.Context, id, _ string) error {
			if id == real {
				return nil
			}
			select { // a handshake that never completes
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(stall):
				return fmt.Errorf("%w: %s: handshake timed out", ErrNotAdmitted, id)
			}
		}})
	// The loop's pass deadline (reconciler.start).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.reconcile(ctx)
	servers, err := leader.node.Servers(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range servers {
		ids[s.ID] = true
	}
	if !ids[real] {
		t.Fatalf("after a pass, the real server %s is not in the Raft configuration %v: the tarpits used up the pass", real, ids)
	}
	for i := range tarpits {
		if id := fmt.Sprintf("tarpit-%d", i); ids[id] {
			t.Fatalf("%s, which never proved its name, is in the Raft configuration", id)
		}
	}
}

// TestAdmissionCutByThePassIsNoRefusal: a check that the pass's deadline cut short says nothing
// of the member: it is not recorded as a refusal (which would put its next check off, longer
// each time), and the next pass checks it again.
func TestAdmissionCutByThePassIsNoRefusal(t *testing.T) {
	const addr = "127.0.0.1:1"
	m := discovery.Member{Name: "node-1", Addr: addr, Status: discovery.StatusAlive, Tags: map[string]string{tagRaftAddr: addr, tagRPCAddr: addr}}
	checks := 0
	r := newReconciler(reconcilerConfig{self: "node-0", logger: slog.New(slog.DiscardHandler), proves: true,
		admit: func(ctx context.Context, id, _ string) error {
			checks++
			<-ctx.Done() // a handshake still running when the pass ends
			return ctx.Err()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.admitted(ctx, m) {
		t.Fatal("admitted by a check the pass cut short")
	}
	r.mu.Lock()
	_, refused := r.refused[refusal{m.Name, addr}]
	r.mu.Unlock()
	if refused {
		t.Fatal("a check cut short by the pass is recorded as a refusal: the member's next check is put off")
	}
	if r.admitted(ctx, m); checks != 2 {
		t.Fatalf("%d checks after two passes, want 2 (the second not put off)", checks)
	}
}
