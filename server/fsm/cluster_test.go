package fsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// batchVals returns n values named prefix-i.
func batchVals(prefix string, n int) []string {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return vals
}

// proposeBatches proposes count batches of growing size through the leader (of the given
// nodes; default all running), checks that their
// offsets are dense and follow next, and records them in l. It returns the next offset.
func proposeBatches(t *testing.T, c *fsmCluster, l *ledger, prefix string, count int, next uint64, among ...int) uint64 {
	t.Helper()
	for b := range count {
		vals := batchVals(fmt.Sprintf("%s/%d", prefix, b), 1+b%4)
		res := c.proposeAmong(among, vals...)
		if res.First != next {
			t.Fatalf("batch %d got offsets from %d, want %d", b, res.First, next)
		}
		l.ack(t, res, vals...)
		next += res.Count
	}
	return next
}

func TestClusterReplicatesAtTheSameOffsets(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{})
	l := newLedger()
	c.WaitLeader()
	next := proposeBatches(t, c, l, "a", 20, 0)
	recs := c.checkInvariants(l)
	if uint64(len(recs)) != next {
		t.Fatalf("nodes hold %d records, %d acknowledged", len(recs), next)
	}

	// Reads on a follower: the record is there once applied (Read waits for it).
	leader := c.WaitLeader()
	follower := (leader + 1) % 3
	r, err := c.fsm(follower).Read(t.Context(), next-1)
	if err != nil || r.Offset != next-1 {
		t.Fatalf("follower Read(%d): %+v, %v", next-1, r, err)
	}

	// A proposal on a follower is refused, naming the leader; nothing is appended.
	_, err = proposeOn(t.Context(), t, c.Node(follower), "refused")
	var nle *consensus.NotLeaderError
	if !errors.Is(err, consensus.ErrNotLeader) || !errors.As(err, &nle) {
		t.Fatalf("proposal on a follower: %v, want a NotLeaderError", err)
	}
	if nle.Leader.ID != c.ID(leader) {
		t.Fatalf("NotLeaderError names %q, the leader is %q", nle.Leader.ID, c.ID(leader))
	}
	proposeBatches(t, c, l, "b", 3, next)
	c.checkInvariants(l)
}

func TestClusterLeaderFailover(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{})
	l := newLedger()
	old := c.WaitLeader()
	next := proposeBatches(t, c, l, "before", 10, 0)

	c.Stop(old)
	leader := c.WaitLeader()
	if leader == old {
		t.Fatalf("stopped node %d still leads", old)
	}
	c.checkInvariants(l) // every acknowledged record is on the survivors
	next = proposeBatches(t, c, l, "after", 10, next)

	c.Restart(old)
	c.checkInvariants(l)
	if _, n := c.fsm(old).Bounds(); n != next {
		t.Fatalf("restarted node reaches %d, want %d", n, next)
	}
}

func TestClusterDivergentOldLeaderRejoins(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{})
	l := newLedger()
	old := c.WaitLeader()
	next := proposeBatches(t, c, l, "committed", 5, 0)

	// Isolate the leader and propose on it at once: those entries reach its Raft log only
	// (an uncommitted tail); none can be acknowledged.
	c.Partition(old)
	var wg sync.WaitGroup
	outcomes := make([]error, 8)
	for k := range outcomes {
		vals := batchVals(fmt.Sprintf("isolated/%d", k), 2)
		l.maybe(vals...)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, outcomes[k] = proposeOn(ctx, t, c.Node(old), vals...)
		})
	}
	wg.Wait()
	enqueued := 0
	for k, err := range outcomes {
		switch {
		case err == nil:
			t.Fatalf("proposal %d on the isolated leader was acknowledged", k)
		case errors.Is(err, consensus.ErrOutcomeUnknown):
			enqueued++ // in the isolated leader's Raft log, never committed
		}
	}
	t.Logf("%d of %d proposals reached the isolated leader's log", enqueued, len(outcomes))
	if enqueued == 0 {
		t.Fatal("no proposal reached the isolated leader's log: the test did not create a divergent tail")
	}

	// The majority elects a new leader and goes on.
	others := []int{(old + 1) % 3, (old + 2) % 3}
	c.WaitLeader(others...)
	next = proposeBatches(t, c, l, "majority", 5, next, others...)

	c.Heal()
	c.WaitLeader()
	next = proposeBatches(t, c, l, "healed", 3, next)
	recs := c.checkInvariants(l)
	for _, r := range recs {
		if len(r.Value) >= 8 && string(r.Value[:8]) == "isolated" {
			t.Fatalf("uncommitted record %q of the isolated leader is in the log at %d", r.Value, r.Offset)
		}
	}
	if uint64(len(recs)) != next {
		t.Fatalf("log holds %d records, %d acknowledged", len(recs), next)
	}
}

// snapshotNode makes node i take a snapshot now (which compacts its Raft log to TrailingLogs).
func snapshotNode(t *testing.T, c *fsmCluster, i int) {
	t.Helper()
	if err := c.Node(i).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot node %d: %v", i, err)
	}
}

func TestClusterRestartEveryNode(t *testing.T) {
	tests := []struct {
		name  string
		crash bool
		mode  crashfs.CrashMode
	}{
		{name: "clean stop"},
		{name: "power failure drops unsynced writes", crash: true, mode: crashfs.DropUnsynced},
		{name: "power failure tears unsynced writes", crash: true, mode: crashfs.TearUnsynced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFSMCluster(t, 3, clusterOpts{crashFS: true, segmentBytes: 4 << 10})
			l := newLedger()
			c.WaitLeader()
			next := proposeBatches(t, c, l, "one", 30, 0)
			c.converge(next)
			// A snapshot syncs every node's log up to here; what follows is unsynced (the FSM's
			// log does not fsync on apply) except where segments rolled.
			for _, i := range c.Running() {
				snapshotNode(t, c, i)
			}
			next = proposeBatches(t, c, l, "two", 30, next)
			before := c.checkInvariants(l)

			for i := range c.N() {
				if tt.crash {
					c.crash(i, tt.mode, uint64(i+1))
				} else {
					c.Stop(i)
				}
			}
			lost := 0
			if tt.crash {
				// Measure what the power failure took, to be sure the test exercised replay.
				for i := range c.N() {
					c.Restart(i)
					_, n := c.fsm(i).Bounds()
					lost += int(next - min(n, next))
				}
			} else {
				for i := range c.N() {
					c.Restart(i)
				}
			}
			c.WaitLeader()
			after := c.checkInvariants(l)
			if len(after) != len(before) {
				t.Fatalf("%d records after the restart, %d before", len(after), len(before))
			}
			for k := range after {
				if string(after[k].Value) != string(before[k].Value) || after[k].Index != before[k].Index {
					t.Fatalf("offset %d changed across the restart: %+v, was %+v", k, after[k], before[k])
				}
			}
			if tt.crash {
				t.Logf("the power failure lost %d records over %d nodes; replay restored them", lost, c.N())
				if lost == 0 {
					t.Fatal("the simulated power failure lost nothing: the test does not exercise replay")
				}
			}
			proposeBatches(t, c, l, "three", 3, next)
			c.checkInvariants(l)
		})
	}
}

func TestClusterLeadershipTransferUnderLoad(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{})
	l := newLedger()
	c.WaitLeader()

	// Writers propose until the transfers are done (bounded), each following the leader. The
	// test goroutine alone touches t's Fatal helpers and the ledger.
	transfersDone := make(chan struct{})
	const writers, maxPerWriter = 4, 2000
	type outcome struct {
		vals []string
		res  AppendResult
		err  error
	}
	outcomes := make([][]outcome, writers)
	var retried [writers]int
	var progress atomic.Int64 // batches with an outcome
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := 0; k < maxPerWriter; k++ {
				select {
				case <-transfersDone:
					return
				default:
				}
				vals := batchVals(fmt.Sprintf("w%d/%d", w, k), 1+k%3)
				for attempt := 0; ; attempt++ {
					if attempt > 1000 {
						outcomes[w] = append(outcomes[w], outcome{vals: vals, err: errors.New("never proposed: no leader")})
						return
					}
					node := c.currentLeader()
					if node == nil {
						time.Sleep(2 * time.Millisecond) // an election is under way
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := proposeOn(ctx, t, node, vals...)
					cancel()
					if isRetryable(err) || errors.Is(err, consensus.ErrClosed) {
						retried[w]++ // nothing was proposed: safe to retry
						time.Sleep(time.Millisecond)
						continue
					}
					outcomes[w] = append(outcomes[w], outcome{vals: vals, res: res, err: err})
					progress.Add(1)
					break
				}
			}
		})
	}
	stop := sync.OnceFunc(func() { close(transfersDone); wg.Wait() })
	defer stop() // also when the test fails early: no writer outlives it
	for range 4 {
		// Let the writers work under this leader, then move leadership while they write.
		target := progress.Load() + 50
		c.WaitFor("writers to make progress", func() bool { return progress.Load() >= target })
		leader := c.WaitLeader()
		tctx, tcancel := context.WithTimeout(t.Context(), 10*time.Second)
		if err := c.Node(leader).TransferLeadership(tctx, ""); err != nil && !isRetryable(err) {
			t.Logf("transfer leadership from %d: %v", leader, err)
		}
		tcancel()
		c.WaitFor("a new leader", func() bool {
			n := c.Node(leader)
			return n != nil && !n.IsLeader()
		})
	}
	stop()
	acked, unknown, retries := 0, 0, 0
	for w := range writers {
		retries += retried[w]
		for _, o := range outcomes[w] {
			switch {
			case o.err == nil:
				l.ack(t, o.res, o.vals...)
				acked++
			case errors.Is(o.err, consensus.ErrOutcomeUnknown):
				// Not retried: it may have been committed. It must appear at most once.
				l.maybe(o.vals...)
				unknown++
			default:
				t.Fatalf("writer %d: %v", w, o.err)
			}
		}
	}
	t.Logf("%d batches acknowledged, %d with unknown outcome, %d retries after NotLeader/NoLeader", acked, unknown, retries)
	if acked == 0 {
		t.Fatal("nothing acknowledged")
	}
	c.checkInvariants(l)
}

// TestClusterSnapshotInstall joins a node to a cluster whose Raft log was compacted after a
// snapshot: it can only catch up by installing the snapshot, which streams the FSM's log. It
// runs the production log store (raft-wal, with segments small enough that compaction really
// drops the entries the joiner needs) and moves ~2 MB; TestClusterSnapshotInstallLarge (not
// under -race) moves ≥ 100 MB.
func TestClusterSnapshotInstall(t *testing.T) {
	testClusterSnapshotInstall(t, 20, 100, false)
}

// testClusterSnapshotInstall writes batches × perBatch records of 1 KiB, snapshots every node,
// and joins a new one. inmem runs Raft's log in memory instead of raft-wal.
func testClusterSnapshotInstall(t *testing.T, batches, perBatch int, inmem bool) {
	const size = 1024
	// Over TCP: the snapshot really crosses a connection. (Over the in-memory transport the
	// follower reads the leader's reader directly, and a transfer longer than the transport's
	// 1s timeout makes the leader close it while the follower still reads.)
	c := newFSMCluster(t, 3, clusterOpts{tcp: true, raft: func(rc *craft.Config) {
		rc.TrailingLogs = 4
		rc.SnapshotThreshold = 1 << 30 // snapshots only when the test asks
		if inmem {
			rc.UnsafeInmemLog = true
		} else {
			// raft-wal compacts whole segments only: small segments, so that the entries
			// the joiner needs are really gone and it must install the snapshot.
			rc.WALSegmentSize = 64 << 10
		}
		// 1 MiB entries on a shared machine under -race: leave room before elections.
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	}})
	l := newLedger()
	c.WaitLeader()
	// Four proposers keep Raft's pipeline full (entries are batched per fsync and per
	// AppendEntries); the test goroutine records the outcomes.
	type outcome struct {
		vals []string
		res  AppendResult
		ok   bool
		err  error
	}
	work := make(chan int)
	results := make(chan outcome)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			value := make([]byte, size)
			for b := range work {
				vals := make([]string, perBatch)
				for k := range vals {
					copy(value, fmt.Sprintf("b%d/r%d/", b, k))
					vals[k] = string(value)
				}
				res, ok, err := c.tryPropose(vals...)
				results <- outcome{vals: vals, res: res, ok: ok, err: err}
			}
		})
	}
	go func() {
		defer close(results)
		defer wg.Wait()
		defer close(work)
		for b := range batches {
			work <- b
		}
	}()
	unknown := 0
	for o := range results {
		switch {
		case o.err != nil:
			t.Errorf("propose: %v", o.err)
		case o.ok:
			l.ack(t, o.res, o.vals...)
		default:
			// The outcome is unknown: not retried (it may be in the log, at most once:
			// the invariants check that).
			l.maybe(o.vals...)
			unknown++
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	next := c.converge(uint64(batches-unknown) * uint64(perBatch))
	// Every node snapshots and compacts, so whichever leads must send the snapshot.
	for _, i := range c.Running() {
		snapshotNode(t, c, i)
	}

	start := time.Now()
	joinBySnapshot(t, c, next)
	t.Logf("node joined and installed a %d-record, %d MiB snapshot in %v", next, int(next)*size>>20, time.Since(start))
	recs := c.checkInvariants(l)
	if uint64(len(recs)) != next {
		t.Fatalf("log holds %d records, want %d", len(recs), next)
	}
	// The new node goes on with the others.
	proposeBatches(t, c, l, "after", 3, next)
	c.checkInvariants(l)
}

// joinBySnapshot adds a new node to c as a voter (through the leader among nodes 0, 1, 2),
// waits until every running node holds next records, and until the new node recorded the
// snapshot it installed (Raft records it just after the FSM's Restore returns). The caller
// has every node snapshot and compact first, so that whichever leads must send a snapshot.
func joinBySnapshot(t *testing.T, c *fsmCluster, next uint64) int {
	t.Helper()
	joiner := c.AddNode()
	c.WaitFor("the new node added as a voter", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err := c.Node(c.WaitLeader(0, 1, 2)).AddVoter(ctx, c.ID(joiner), c.Addr(joiner))
		if err != nil && !isRetryable(err) {
			t.Fatalf("AddVoter: %v", err)
		}
		return err == nil
	})
	c.converge(next)
	c.WaitFor("the new node to record an installed snapshot", func() bool {
		got := c.Node(joiner).Raft().Stats()["last_snapshot_index"]
		return got != "0" && got != ""
	})
	return joiner
}
