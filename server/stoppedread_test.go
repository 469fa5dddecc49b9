package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// stopNode starts a 3-node cluster in which node stop's commit log fails its next write after
// one record (offset 0) is stored everywhere; then it produces a second record (offset 1),
// which is committed but which node stop cannot store: it stops applying. keep keeps node 0,
// the leader, leading when it is the one stopped (as when every other node stopped too, or its
// hand-overs fail). It returns the nodes, with every healthy node holding offset 1.
func stopNode(t *testing.T, ctx context.Context, stop int, keep bool) []*testServer {
	t.Helper()
	fs := crashfs.New()
	nodes := startClusterWith(t, 3, func(i int, cfg *Config) {
		if i == stop {
			cfg.logFS = fs
			cfg.keepStoppedLeadership = keep
		}
	})
	leader := nodes[0]
	if !leader.node.IsLeader() {
		t.Fatal("node-0 does not lead")
	}
	c := newClient(t, TransportConnect, leader.Addr())
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r0")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every node applies offset 0", func() bool {
		for _, nd := range nodes {
			if _, next := nd.fsm.Bounds(); next != 1 {
				return false
			}
		}
		return true
	})
	if err := nodes[stop].log.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.FailNext(crashfs.OpWrite, errors.New("disk on fire"))
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r1")}})
	if stop != 0 && err != nil {
		t.Fatalf("Produce of offset 1 on the healthy leader: %v", err)
	}
	waitFor(t, 20*time.Second, "the node stops applying", func() bool { return errors.Is(nodes[stop].fsm.Err(), fsm.ErrFailed) })
	waitFor(t, 20*time.Second, "the healthy nodes apply offset 1", func() bool {
		for i, nd := range nodes {
			if _, next := nd.fsm.Bounds(); i != stop && next != 2 {
				return false
			}
		}
		return true
	})
	return nodes
}

// TestStoppedLeaderReadSaysWhy: a leader whose state machine stopped cannot answer a
// linearizable read past what it stored (its next offset says nothing of what the cluster
// committed). It says so itself — Unavailable, naming itself, the cause, and when reads
// resume — and the SDK reports that, not the redirect its followers answer (before: the
// leader answered Internal, its followers "not the leader, leader is node-0", and the SDK,
// bouncing between them, reported "client: not the leader, leader is node-0 at …" about the
// leader itself, which told the user nothing of why).
func TestStoppedLeaderReadSaysWhy(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	nodes := stopNode(t, ctx, 0, true)
	leader := nodes[0]
	if !leader.node.IsLeader() {
		t.Fatal("node-0 no longer leads")
	}

	// The stopped leader itself, asked for the commit point.
	c := newClient(t, TransportConnect, leader.Addr())
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
	if code := transport.CodeOf(err); code != transport.Unavailable || !strings.Contains(err.Error(), "node-0 leads but its state machine stopped") ||
		!strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("linearizable GetBounds on the stopped leader: next %d, %v; want Unavailable saying node-0 leads but stopped, and why", b.GetNextOffset(), err)
	}

	// The SDK, as `commitlog consume` uses it (linearizable bounds), knowing every server.
	addrs := []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}
	sdk, err := client.New(ctx, addrs, client.WithLinearizableReads(), client.WithBackoff(5*time.Millisecond, 20*time.Millisecond),
		client.WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	_, err = sdk.PartitionBounds(ctx, "", 0)
	if err == nil {
		t.Fatal("linearizable bounds answered by a stopped leader")
	}
	if errors.Is(err, client.ErrNotLeader) || !errors.Is(err, client.ErrUnavailable) ||
		!strings.Contains(err.Error(), "node-0 leads but its state machine stopped") || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("SDK linearizable bounds with a stopped leader: %v; want ErrUnavailable saying node-0 stopped, and why", err)
	}
	// Plain reads of committed records are still served, by the replicas that hold them.
	rec, err := sdk.Consume(ctx, 1)
	if err == nil || errors.Is(err, client.ErrNotLeader) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("linearizable Consume of offset 1 (not stored on the stopped leader): %q, %v; want the leader's own error", rec.Value, err)
	}
	plain, err := client.New(ctx, addrs[1:], client.WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if rec, err := plain.Consume(ctx, 1); err != nil || string(rec.Value) != "r1" {
		t.Fatalf("plain Consume of offset 1: %q, %v", rec.Value, err)
	}
}

// TestStoppedNodeAppliedIndexIsItsStateMachines: GetBounds' applied_index, which `cluster
// status` shows as APPLIED (and LAG, from the leader's commit index), is documented as the
// last Raft index the server's state machine applied. For a node whose state machine stopped,
// Raft's applied index goes on (raft hands it every committed entry, refused one by one), so
// the status showed it applied everything with no lag, while its OFFSETS stood still. It must
// stay where the state machine stopped. A read past what it stored is Unavailable.
func TestStoppedNodeAppliedIndexIsItsStateMachines(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	nodes := stopNode(t, ctx, 2, false)
	stopped := nodes[2]
	smApplied := stopped.sm.AppliedIndex()
	c := newClient(t, TransportConnect, nodes[0].Addr())
	for range 3 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("later")}}); err != nil {
			t.Fatal(err)
		}
	}
	lb, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "Raft on the stopped node applies the later entries", func() bool {
		return stopped.node.Status().AppliedIndex >= lb.GetCommitIndex()
	})
	sc := newClient(t, TransportConnect, stopped.Addr())
	b, err := sc.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetApplyError() == "" || b.GetNextOffset() != 1 {
		t.Fatalf("GetBounds on the stopped node: next %d, apply_error %q", b.GetNextOffset(), b.GetApplyError())
	}
	// A read of offset 1, committed and held by the other replicas but not stored here:
	// Unavailable (read another replica), naming the cause; before, Internal, the answer of a
	// server fault, which an API user does not retry elsewhere.
	rec, err := sc.Consume(ctx, &logv1.ConsumeRequest{Offset: 1})
	if code := transport.CodeOf(err); code != transport.Unavailable || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Consume(1) on the stopped follower: %q, %v (code %v); want Unavailable naming the cause", rec.GetRecord().GetValue(), err, code)
	}
	if b.GetAppliedIndex() != smApplied || b.GetAppliedIndex() >= lb.GetCommitIndex() {
		t.Fatalf("GetBounds on the stopped node: applied_index %d; its state machine applied up to %d, Raft %d, the leader committed %d",
			b.GetAppliedIndex(), smApplied, stopped.node.Status().AppliedIndex, lb.GetCommitIndex())
	}
	// GetServers, which also says "exact for itself", agrees.
	srvs, err := sc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srvs.GetServers() {
		if s.GetId() == "node-2" && (s.GetAppliedIndex() != smApplied || s.GetHealthy()) {
			t.Fatalf("GetServers on the stopped node, of itself: applied_index %d (state machine %d), healthy %v", s.GetAppliedIndex(), smApplied, s.GetHealthy())
		}
	}
}

// TestStoppedLeaderReadsResumeAfterHandOver: what the stopped leader's refusal promises. A
// leader that stops hands leadership over; the SDK's linearizable read, refused by it, retries
// and is answered by the next leader, with the cluster's bounds (offset 1, which the stopped
// node never stored, included).
func TestStoppedLeaderReadsResumeAfterHandOver(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	nodes := stopNode(t, ctx, 0, false)
	addrs := []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}
	// A budget that outlasts a hand-over on a loaded machine.
	sdk, err := client.New(ctx, addrs, client.WithLinearizableReads(), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		client.WithMaxRetries(100), client.WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	b, err := sdk.PartitionBounds(ctx, "", 0)
	if err != nil || b.Next != 2 {
		t.Fatalf("SDK linearizable bounds after the stopped leader handed over: %+v, %v; want next offset 2", b, err)
	}
}
