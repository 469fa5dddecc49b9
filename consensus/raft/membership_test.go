package raft_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

func serverByID(t *testing.T, n *craft.Node, id string) (consensus.ServerStatus, bool) {
	t.Helper()
	servers, err := n.Servers(ctxT(t))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	for _, s := range servers {
		if s.ID == id {
			return s, true
		}
	}
	return consensus.ServerStatus{}, false
}

func TestMembershipChanges(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	for k := range 10 {
		c.Propose(fmt.Appendf(nil, "cmd-%d", k))
	}
	l := c.WaitLeader()
	leader := c.Node(l)

	servers, err := leader.Servers(ctxT(t))
	if err != nil || len(servers) != 3 {
		t.Fatalf("servers = %+v, %v; want 3", servers, err)
	}
	for _, s := range servers {
		if s.Leader != (s.ID == c.ID(l)) || s.Suffrage != consensus.Voter {
			t.Fatalf("server %+v: leader flag or suffrage wrong (leader is %s)", s, c.ID(l))
		}
	}

	// A follower refuses membership changes, naming the leader.
	f := (l + 1) % 3
	if err := c.Node(f).AddVoter(ctxT(t), "x", "x"); !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("AddVoter on a follower: %v, want ErrNotLeader", err)
	}

	n := c.AddNode()
	if err := leader.AddNonvoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	if s, ok := serverByID(t, leader, c.ID(n)); !ok || s.Suffrage != consensus.Nonvoter {
		t.Fatalf("after AddNonvoter: %+v (found %v), want a nonvoter", s, ok)
	}
	c.WaitFor("the nonvoter caught up", func() bool { return c.List(n).Len() == 10 })

	if err := leader.AddVoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
		t.Fatalf("AddVoter (promote): %v", err)
	}
	if s, ok := serverByID(t, leader, c.ID(n)); !ok || s.Suffrage != consensus.Voter {
		t.Fatalf("after AddVoter: %+v (found %v), want a voter", s, ok)
	}
	c.Propose([]byte("with-four"))
	c.WaitFor("the new voter applied", func() bool { return c.List(n).Len() == 11 })

	if err := leader.RemoveServer(ctxT(t), c.ID(n)); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	if _, ok := serverByID(t, leader, c.ID(n)); ok {
		t.Fatalf("removed server still in the configuration")
	}
	// hashicorp/raft stops replicating to a removed server once the removal is appended, but the
	// replication goroutine may still answer one trigger that arrived before its stop, sending
	// what the leader's log holds at that moment: the first entry proposed after the removal can
	// reach the removed server (and be applied, with the commit index sent alongside), nothing
	// proposed once that entry is applied everywhere else can.
	remaining := func(want int) func() bool {
		return func() bool {
			for i := range 3 {
				if c.List(i).Len() != want {
					return false
				}
			}
			return true
		}
	}
	c.Propose([]byte("after-remove"))
	c.WaitFor("the remaining voters applied", remaining(12))
	for k := range 5 {
		c.Propose(fmt.Appendf(nil, "after-remove-%d", k))
	}
	c.WaitFor("the remaining voters applied the later entries", remaining(17))
	if got := c.List(n).Len(); got != 11 && got != 12 {
		t.Fatalf("removed server applied %d entries, want 11 (or 12: the entry racing its removal)", got)
	}
}

func TestTransferLeadershipToNamedServer(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	to := (l + 2) % 3
	if err := c.Node(l).TransferLeadership(ctxT(t), c.ID(to)); err != nil {
		t.Fatalf("transfer to %s: %v", c.ID(to), err)
	}
	if got := c.WaitLeader(); got != to {
		t.Fatalf("leader is node %d, want %d", got, to)
	}
	if err := c.Node(to).TransferLeadership(ctxT(t), "nope"); !errors.Is(err, craft.ErrUnknownServer) {
		t.Fatalf("transfer to an unknown server: %v, want ErrUnknownServer", err)
	}
}

// TestSnapshotStreamsToJoiningNode: the leader snapshots and compacts its log, so a node that
// joins later can only catch up from the snapshot; with a SnapshotSource the snapshot on disk
// holds just the manifest, and its data is streamed from the leader's state machine.
func TestSnapshotStreamsToJoiningNode(t *testing.T) {
	tests := []struct {
		name         string
		tcp          bool
		manifestOnly bool
	}{
		{"inmem/source", false, false},
		{"tcp/source", true, false},
		{"tcp/manifest-only", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := consensustest.Options{
				TCP: tt.tcp,
				Config: func(_ int, cfg *craft.Config) {
					cfg.TrailingLogs = 4
					cfg.WALSegmentSize = 2048       // so that compaction deletes segments
					cfg.SnapshotThreshold = 1 << 20 // snapshots only when asked
				},
			}
			if tt.manifestOnly {
				opts.Factory = func(_ int, dir string) (consensus.StateMachine, error) {
					l, err := consensustest.NewListSM(dir)
					if err != nil {
						return nil, err
					}
					return consensustest.ManifestOnly(l), nil
				}
			}
			c := consensustest.NewCluster(t, 3, opts)
			var want [][]byte
			for k := range 40 {
				cmd := fmt.Appendf(nil, "cmd-%d-%s", k, make([]byte, 100))
				c.Propose(cmd)
				want = append(want, cmd)
			}
			l := c.WaitLeader()
			leader := c.Node(l)
			if err := leader.Raft().Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			// Only the manifest is on disk for a local snapshot with a SnapshotSource.
			states, _ := filepath.Glob(filepath.Join(c.Dir(l), "raft", "snapshots", "*", "state.bin"))
			if len(states) != 1 {
				t.Fatalf("snapshot files: %v", states)
			}
			st, err := os.Stat(states[0])
			if err != nil {
				t.Fatal(err)
			}
			if !tt.manifestOnly && st.Size() > 200 {
				t.Fatalf("local snapshot is %d bytes: it should hold only the manifest", st.Size())
			}
			if tt.manifestOnly && st.Size() < 40*100 {
				t.Fatalf("manifest-only snapshot is %d bytes: it should hold every record", st.Size())
			}
			c.WaitFor("log compacted", func() bool {
				first, err := leaderFirstIndex(leader)
				return err == nil && first > 10
			})

			n := c.AddNode()
			if err := leader.AddVoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
				t.Fatalf("AddVoter: %v", err)
			}
			c.WaitFor("the new node caught up", func() bool { return c.List(n).Len() == len(want) })
			checkSameRecords(t, c, want, n)
			if c.List(n).Restores() == 0 {
				t.Fatalf("the new node caught up without a snapshot restore (first index %d, skipped %d)", must(c.Node(n).FirstIndex()), c.List(n).Skipped())
			}
			if !tt.manifestOnly && c.List(l).DataOpens() == 0 {
				t.Fatalf("the leader never streamed SnapshotData")
			}

			// The leader restarts on its own snapshot: it restores without reading data.
			c.Stop(l)
			c.Restart(l)
			c.WaitFor("restarted node restored", func() bool { return c.List(l).Len() == len(want) })
			if got := c.List(l).DataOpens(); got != 0 {
				t.Fatalf("restoring its own snapshot opened SnapshotData %d times", got)
			}
			if got := c.List(l).Restores(); got != 1 {
				t.Fatalf("restarted node restored %d times, want 1", got)
			}
			c.Propose([]byte("after"))
			want = append(want, []byte("after"))
			c.WaitFor("everyone applied", func() bool {
				for i := range 4 {
					if c.List(i).Len() != len(want) {
						return false
					}
				}
				return true
			})
			checkSameRecords(t, c, want, 0, 1, 2, 3)
		})
	}
}

func leaderFirstIndex(n *craft.Node) (uint64, error) {
	return n.FirstIndex()
}

func TestSubscribeLeader(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	var (
		mu     sync.Mutex
		events []consensus.LeaderEvent
	)
	f := (l + 1) % 3
	cancel := c.Node(f).SubscribeLeader(func(ev consensus.LeaderEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	last := func() (consensus.LeaderEvent, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(events) == 0 {
			return consensus.LeaderEvent{}, 0
		}
		return events[len(events)-1], len(events)
	}
	c.WaitFor("initial event", func() bool { ev, n := last(); return n > 0 && ev.Leader.ID == c.ID(l) })
	if ev, _ := last(); ev.IsSelf {
		t.Fatalf("follower got IsSelf")
	}
	if err := c.Node(l).TransferLeadership(ctxT(t), c.ID(f)); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	c.WaitFor("self event", func() bool { ev, _ := last(); return ev.IsSelf && ev.Leader.ID == c.ID(f) })
	cancel()
	cancel() // idempotent
	_, n := last()
	if err := c.Node(f).TransferLeadership(ctxT(t), ""); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	c.WaitFor("leadership moved", func() bool { return c.WaitLeader() != f })
	if _, got := last(); got != n {
		t.Fatalf("%d events after cancel", got-n)
	}
}

// TestSubscribeLeaderWithoutObservations: raft drops observations when its observer's buffer
// is full; a leader change whose every observation was dropped is still reported.
func TestSubscribeLeaderWithoutObservations(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	f, g := (l+1)%3, (l+2)%3
	var (
		mu     sync.Mutex
		leader string
	)
	cancel := c.Node(f).SubscribeLeader(func(ev consensus.LeaderEvent) {
		mu.Lock()
		leader = ev.Leader.ID
		mu.Unlock()
	})
	defer cancel()
	reported := func(id string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return leader == id }
	}
	c.WaitFor("initial event", reported(c.ID(l)))
	c.Node(f).DropObservations()
	if err := c.Node(l).TransferLeadership(ctxT(t), c.ID(g)); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	c.WaitFor("the new leader reported without observations", reported(c.ID(g)))
}

func TestLinearizableRead(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	leader := c.Node(l)
	for k := range 5 {
		if _, err := leader.Propose(ctxT(t), fmt.Appendf(nil, "cmd-%d", k)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := leader.LinearizableRead(ctxT(t)); err != nil {
				t.Fatalf("read: %v", err)
			}
			if got := c.List(l).Len(); got != k+1 {
				t.Fatalf("after a linearizable read the leader has applied %d, want %d", got, k+1)
			}
		}
	}
	// Concurrent reads share barriers and all see what was applied before they began.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := leader.LinearizableRead(ctxT(t)); err != nil {
				t.Errorf("concurrent read: %v", err)
			}
		})
	}
	wg.Wait()

	// Once the majority has elected a new leader and committed a write, the old leader must
	// not serve a linearizable read.
	c.Partition(l)
	var majority []int
	for i := range 3 {
		if i != l {
			majority = append(majority, i)
		}
	}
	nl := c.WaitLeader(majority...)
	if _, err := c.Node(nl).Propose(ctxT(t), []byte("on the new leader")); err != nil {
		t.Fatalf("propose on the new leader: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := leader.LinearizableRead(ctx); err == nil {
		t.Fatalf("the partitioned old leader served a linearizable read")
	}
	c.Heal()
}

func TestClosedNode(t *testing.T) {
	c := consensustest.NewCluster(t, 1, consensustest.Options{})
	n := c.Node(c.WaitLeader())
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := n.Propose(ctxT(t), []byte("x")); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("propose after close: %v", err)
	}
	if err := n.LinearizableRead(ctxT(t)); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := n.Servers(ctxT(t)); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("servers after close: %v", err)
	}
	if st := n.Status(); st.State != "shutdown" {
		t.Fatalf("state after close: %q", st.State)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCloseWithProposalsInFlight: Close releases every blocked Propose, even those without a
// deadline, with a result or an error that says whether the outcome is known.
func TestCloseWithProposalsInFlight(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	n := c.Node(l)
	var wg sync.WaitGroup
	started := make(chan struct{}, 16)
	errs := make(chan error, 16*1000)
	for w := range 16 {
		wg.Go(func() {
			started <- struct{}{}
			for k := range 1000 {
				_, err := n.Propose(context.Background(), fmt.Appendf(nil, "w%d-%d", w, k))
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 16 {
		<-started
	}
	c.WaitFor("some proposals applied", func() bool { return c.List(l).Len() > 50 })
	c.Stop(l)
	wg.Wait() // must return: Close releases every waiter
	close(errs)
	for err := range errs {
		if !errors.Is(err, consensus.ErrClosed) && !errors.Is(err, consensus.ErrOutcomeUnknown) &&
			!errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrNoLeader) {
			t.Fatalf("propose during close: %v", err)
		}
	}
}

// TestServersReportUnreachableFollower: on the leader, a follower whose heartbeats fail
// carries the last time it was heard from; once it answers again, that clears.
func TestServersReportUnreachableFollower(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	f := (l + 1) % 3
	leader := c.Node(l)
	if s, _ := serverByID(t, leader, c.ID(f)); !s.LastContact.IsZero() {
		t.Fatalf("healthy follower has LastContact %v", s.LastContact)
	}
	before := time.Now()
	c.Partition(f)
	c.WaitFor("the leader reports the follower's last contact", func() bool {
		s, _ := serverByID(t, leader, c.ID(f))
		return !s.LastContact.IsZero()
	})
	if s, _ := serverByID(t, leader, c.ID(f)); s.LastContact.After(time.Now()) || s.LastContact.Before(before.Add(-time.Minute)) {
		t.Fatalf("LastContact %v not plausible", s.LastContact)
	}
	if st := c.Node(f).Status(); st.State == "leader" {
		t.Fatalf("isolated follower became leader")
	}
	c.Heal()
	c.WaitFor("the follower is reachable again", func() bool {
		s, _ := serverByID(t, leader, c.ID(f))
		return s.LastContact.IsZero() || !leader.IsLeader()
	})
}

// TestTransferLeadershipWithoutAnotherVoter: a leader that is the only voter cannot hand
// leadership over, and says so: hashicorp/raft's answer, "cannot find peer", reached
// `commitlog cluster transfer-leadership` on a single node as it was.
func TestTransferLeadershipWithoutAnotherVoter(t *testing.T) {
	c := consensustest.NewCluster(t, 1, consensustest.Options{})
	l := c.WaitLeader()
	err := c.Node(l).TransferLeadership(ctxT(t), "")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no voter other than %q", c.ID(l))) {
		t.Fatalf("transfer leadership of a single voter: %v, want it to say there is no other voter", err)
	}
	if got := c.WaitLeader(); got != l {
		t.Fatalf("leader is node %d, want %d", got, l)
	}
}

// TestTransferLeadershipSkipsADeadVoter: with a voter down (the first in the configuration, no
// entry appended since it went), TransferLeadership(ctx, "") hands leadership to the live one.
// Before, hashicorp/raft's pick (the highest next index, ties to the first in the
// configuration) chose the dead voter every time: on real processes a leader whose state
// machine stopped (a damaged Raft log) kept failing to hand over to a stopped peer, and the
// cluster took no writes with only a minority down.
func TestTransferLeadershipSkipsADeadVoter(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: true})
	l := c.WaitLeader()
	c.Propose([]byte("x"))
	servers, err := c.Node(l).Servers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	dead, live := -1, -1
	for _, s := range servers {
		if i := c.Index(s.ID); i != l {
			if dead < 0 {
				dead = i
			} else {
				live = i
			}
		}
	}
	c.WaitApplied(c.Node(l).Status().LastIndex, dead, live)
	c.Stop(dead)
	c.WaitFor("the leader sees the dead voter's heartbeats fail", func() bool {
		ss, err := c.Node(l).Servers(ctxT(t))
		if err != nil {
			return false
		}
		for _, s := range ss {
			if s.ID == c.ID(dead) {
				return !s.LastContact.IsZero()
			}
		}
		return false
	})
	if err := c.Node(l).TransferLeadership(ctxT(t), ""); err != nil {
		t.Fatalf("transfer leadership with %s down: %v", c.ID(dead), err)
	}
	if got := c.WaitLeader(l, live); got != live {
		t.Fatalf("leader is node %d, want %d", got, live)
	}
}
