package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestDivergenceAlarmFencesNode: a server whose divergence alarm is raised lost committed data
// (RELIABILITY.md invariant 8): it must neither vote nor lead until it is repaired. Before, it
// stayed a voter like any other (server/README.md: "it votes … and can be elected, and then
// hands leadership over at once"): a hand-over to it made it the leader, and with the leader
// gone its vote elected the third server. Now its Raft node is fenced as the alarm is raised
// and again from the start after a restart (the alarm is kept in DIVERGED): a hand-over to it
// fails, and with the leader gone the third server is not elected (its pre-votes are refused).
func TestDivergenceAlarmFencesNode(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	nodes := make([]*testServer, 3)
	cfgs := make([]Config, 3)
	for i := range nodes {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: -1, DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0"} // no check: the test raises the alarm
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	leader := leaderOf(t, nodes)
	d := 0
	for nodes[d] == leader {
		d++
	}
	const planted = "planted by the test"
	nodes[d].svc.div.raise(planted)
	if reason, ok := nodes[d].node.Fenced(); !ok || !strings.Contains(reason, planted) {
		t.Fatalf("%s's divergence alarm is raised, and its Raft node is fenced: %v (%q)", nodes[d].ID(), ok, reason)
	}
	if err := leader.node.TransferLeadership(ctx, nodes[d].ID()); err == nil || nodes[d].node.IsLeader() {
		t.Fatalf("leadership handed over to %s, whose divergence alarm is raised (err %v)", nodes[d].ID(), err)
	}
	_, err := newClient(t, TransportConnect, leader.Addr()).TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: nodes[d].ID()})
	if transport.CodeOf(err) != transport.FailedPrecondition || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("cluster transfer-leadership to %s, whose divergence alarm is raised: %v, want FailedPrecondition saying it is fenced", nodes[d].ID(), err)
	}

	// After a restart (on a new port: the leader re-adds it there and promotes it again).
	nodes[d].shutdown(t)
	cfg := cfgs[d]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	nodes[d] = startNode(t, cfg, false)
	if reason, ok := nodes[d].node.Fenced(); !ok || !strings.Contains(reason, planted) {
		t.Fatalf("%s restarted with its divergence alarm kept, and its Raft node is fenced: %v (%q)", nodes[d].ID(), ok, reason)
	}
	if m, err := telemetrytest.Find(telemetrytest.Scrape(t, nodes[d].MetricsAddr()), "commitlog_raft_fenced", nil); err != nil || m.GetGauge().GetValue() != 1 {
		t.Fatalf("commitlog_raft_fenced on %s = %v, %v; want 1", nodes[d].ID(), m, err)
	}
	waitFor(t, 60*time.Second, "the leader holds "+nodes[d].ID()+" as a voter at its new address", func() bool {
		servers, err := leader.node.Servers(ctx)
		if err != nil {
			return false
		}
		for _, s := range servers {
			if s.ID == nodes[d].ID() && s.Address == nodes[d].Addr() && s.Suffrage == consensus.Voter {
				return true
			}
		}
		return false
	})
	waitVoters(t, nodes)
	if err := leader.node.TransferLeadership(ctx, nodes[d].ID()); err == nil || nodes[d].node.IsLeader() {
		t.Fatalf("leadership handed over to %s, restarted with its divergence alarm (err %v)", nodes[d].ID(), err)
	}

	// The leader fails (closed at once: a graceful stop would hand leadership to the third
	// server first). The third server needs the fenced server's vote to be elected.
	var third *testServer
	for _, nd := range nodes {
		if nd != leader && nd != nodes[d] {
			third = nd
		}
	}
	if err := leader.Close(); err != nil {
		t.Fatalf("close the leader: %v", err)
	}
	refused0, _ := nodes[d].node.FenceCounts()
	waitFor(t, 60*time.Second, nodes[d].ID()+" refuses "+third.ID()+"'s pre-votes three times", func() bool {
		if third.node.IsLeader() || nodes[d].node.IsLeader() {
			t.Fatalf("a leader was elected with the vote of %s, whose divergence alarm is raised (%s leads: %v)",
				nodes[d].ID(), third.ID(), third.node.IsLeader())
		}
		refused, _ := nodes[d].node.FenceCounts()
		return refused >= refused0+3
	})
}

// TestCorruptStopFences: a state machine that stopped on damaged data (an error wrapping
// storage.ErrCorrupt, as a Raft entry failing its command checksum) fences the node, and the
// reason is kept in FENCED so that the next start is fenced from the first RPC; a stop for
// another cause (a full disk: the Raft log is whole) does not fence.
func TestCorruptStopFences(t *testing.T) {
	cfg := Config{NodeName: "node-0", GossipProfile: "test", DataDir: t.TempDir()}
	nd := startNode(t, cfg, true)
	if nd.fenceIfCorrupt(fmt.Errorf("fsm: write: %w", errNoSpace)) {
		t.Fatal("a stop on a full disk fenced the node")
	}
	if _, ok := nd.node.Fenced(); ok {
		t.Fatal("fenced after a stop on a full disk")
	}
	if !nd.fenceIfCorrupt(fmt.Errorf("entry 7: %w: fails its checksum", storage.ErrCorrupt)) {
		t.Fatal("a stop on damaged data did not fence the node")
	}
	if reason, ok := nd.node.Fenced(); !ok || !strings.Contains(reason, "entry 7") {
		t.Fatalf("after a stop on damaged data: Fenced() = %q, %v", reason, ok)
	}
	nd.shutdown(t)
	cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer func() { _ = srv.Close() }()
	if reason, ok := srv.node.Fenced(); !ok || !strings.Contains(reason, "entry 7") {
		t.Fatalf("restarted after a stop on damaged data: Fenced() = %q, %v", reason, ok)
	}
	// Before its replay reaches the damaged entry, nothing else tells that it is fenced:
	// GetBounds (cluster status) says so. It showed neither an alarm nor a stop: with no leader
	// (the fenced node's vote needed), an operator saw no reason for it.
	b, err := srv.svc.GetBounds(t.Context(), &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatalf("GetBounds: %v", err)
	}
	if !strings.Contains(b.GetFenced(), "entry 7") || b.GetApplyError() != "" || b.GetDivergence() != "" {
		t.Fatalf("GetBounds of a server restarted fenced: fenced %q, apply_error %q, divergence %q; want the fence's reason only",
			b.GetFenced(), b.GetApplyError(), b.GetDivergence())
	}
}

// errNoSpace stands for a full disk's error.
var errNoSpace = errors.New("no space left on device")

// TestStateMachineStoppedOnDamagedDataFencesNode: a follower whose state machine stops on an
// error wrapping storage.ErrCorrupt (its file system answers one: the damage a Raft entry
// failing its command checksum is reported with) is fenced as it stops (watchApply), and the
// reason is kept in FENCED: a hand-over to it fails. (A stop on a full disk does not fence:
// TestStoppedNodeElectedLaterHandsLeadershipOver hands leadership to such a node.)
func TestStateMachineStoppedOnDamagedDataFencesNode(t *testing.T) {
	nodes, damaged := stopFollowerOn(t, fmt.Errorf("injected by the test: %w", storage.ErrCorrupt))
	ctx := ctxT(t, 90*time.Second)
	waitFor(t, 20*time.Second, "node-2 stops applying on damaged data", func() bool { return errors.Is(damaged.sm.Err(), storage.ErrCorrupt) })
	waitFor(t, 20*time.Second, "node-2 is fenced", func() bool { _, ok := damaged.node.Fenced(); return ok })
	if b, err := os.ReadFile(filepath.Join(damaged.cfg.DataDir, fencedFile)); err != nil || !strings.Contains(string(b), "injected by the test") {
		t.Fatalf("%s holds %q, %v; want the reason", fencedFile, b, err)
	}
	if l := leaderOf(t, nodes); l == damaged {
		t.Fatal("node-2 leads")
	} else if err := l.node.TransferLeadership(ctx, damaged.ID()); err == nil || damaged.node.IsLeader() {
		t.Fatalf("leadership handed over to node-2, stopped on damaged data (err %v)", err)
	}
}
