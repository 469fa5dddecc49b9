package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// proposeAt proposes batches of n records of size bytes each, named prefix-k, stamped ts,
// batch records per command, through the cluster's leader; it returns the offset after them.
func proposeAt(t *testing.T, c *fsmCluster, prefix string, n, batch, size int, ts time.Time) uint64 {
	t.Helper()
	var next uint64
	for k := 0; k < n; k += batch {
		var recs []AppendRecord
		for j := k; j < min(k+batch, n); j++ {
			v := []byte(fmt.Sprintf("%s-%d/", prefix, j))
			recs = append(recs, AppendRecord{Value: append(v, bytes.Repeat([]byte{'x'}, max(size-len(v), 0))...), Type: 1})
		}
		data, err := EncodeAppendAt(Limits{}, ts, recs...)
		if err != nil {
			t.Fatal(err)
		}
		res, ok := c.Propose(data).(AppendResult)
		if !ok {
			t.Fatalf("propose %s-%d: not appended", prefix, k)
		}
		next = res.First + res.Count
	}
	return next
}

// leaderFSM returns the index of the leader and its FSM.
func leaderFSM(c *fsmCluster) (int, *FSM) {
	i := c.WaitLeader()
	return i, c.fsm(i)
}

// retainOnLeader proposes a retain command for first through the leader and waits until
// every running node applied it; it returns the log's first offset after it.
func retainOnLeader(t *testing.T, c *fsmCluster, first uint64) uint64 {
	t.Helper()
	var got uint64
	c.WaitFor(fmt.Sprintf("retain %d proposed", first), func() bool {
		i, f := leaderFSM(c)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var err error
		got, err = f.ProposeRetention(ctx, c.Node(i), first)
		if err != nil && !isRetryable(err) {
			t.Fatalf("ProposeRetention(%d): %v", first, err)
		}
		return err == nil
	})
	c.WaitApplied(c.Node(c.WaitLeader()).Status().AppliedIndex)
	return got
}

// sameAnswers checks that every running node has the same bounds, [first, next), and gives
// the same answer for every offset below next+2: OutOfRange below first, the same record
// (value, term, index, type) inside.
func sameAnswers(t *testing.T, c *fsmCluster, first, next uint64) {
	t.Helper()
	for _, i := range c.Running() {
		f := c.fsm(i)
		if lo, hi := f.Bounds(); lo != first || hi != next {
			t.Fatalf("node %d: bounds [%d, %d), want [%d, %d)", i, lo, hi, first, next)
		}
	}
	ref := c.fsm(c.Running()[0])
	for off := range next + 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		want, werr := ref.Read(ctx, off)
		cancel()
		for _, i := range c.Running()[1:] {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
			got, gerr := c.fsm(i).Read(ctx, off)
			cancel()
			if (werr == nil) != (gerr == nil) || (werr != nil && errors.Is(werr, storage.ErrOutOfRange) != errors.Is(gerr, storage.ErrOutOfRange)) {
				t.Fatalf("offset %d: node %d answers %v, node %d %v", off, c.Running()[0], werr, i, gerr)
			}
			if werr == nil && (!bytes.Equal(want.Value, got.Value) || want.Term != got.Term || want.Index != got.Index || want.Type != got.Type) {
				t.Fatalf("offset %d differs: node %d %q, node %d %q", off, c.Running()[0], want.Value, i, got.Value)
			}
		}
		if (off < first || off >= next) != (werr != nil) || (werr != nil && !errors.Is(werr, storage.ErrOutOfRange)) {
			t.Fatalf("offset %d (log [%d, %d)): %v", off, first, next, werr)
		}
	}
}

// TestClusterRetentionSameEverywhere: nodes whose segments end at different offsets (different
// segment sizes and apply batching) and whose storage clocks disagree by days end with the
// same bounds and the same answer for every offset once the leader's retention decision —
// by age from the records' own timestamps, then by size — is applied.
func TestClusterRetentionSameEverywhere(t *testing.T) {
	t0 := time.Now()
	segBytes := []int64{2048, 3000, 5000}
	appendBytes := []int{256, 4096, 1 << 20}
	c := newFSMCluster(t, 3, clusterOpts{node: func(i int, sc *segment.Config, fc *Config) {
		sc.SegmentBytes = segBytes[i]
		fc.MaxAppendBytes = appendBytes[i]
		skew := time.Duration(i) * 72 * time.Hour // storage file times: never used for retention
		sc.Now = func() time.Time { return time.Now().Add(-skew) }
	}})
	c.WaitLeader()
	proposeAt(t, c, "old", 40, 4, 200, t0.Add(-3*time.Hour))
	proposeAt(t, c, "mid", 40, 3, 200, t0.Add(-2*time.Hour))
	next := proposeAt(t, c, "new", 40, 5, 200, t0)
	c.converge(next)
	sameAnswers(t, c, 0, next)

	// Age: the leader's decision, from the timestamps in the records.
	_, lf := leaderFSM(c)
	first, err := lf.RetentionPoint(RetentionPolicy{Age: 150 * time.Minute}, t0)
	if err != nil || first != 40 {
		t.Fatalf("RetentionPoint by age = %d, %v; want 40 (the first record younger than 150 min)", first, err)
	}
	if got := retainOnLeader(t, c, first); got != 40 {
		t.Fatalf("retain applied at %d, want 40", got)
	}
	sameAnswers(t, c, 40, next)

	// Size: keep the stored bytes of the last 28 records. The cut, 92, is inside a batch
	// (the "new" batches start at 80, 85, 90, 95): no segment starts there.
	_, lf = leaderFSM(c)
	at, end := storedPos(t, lf, 92), storedPos(t, lf, next)
	first, err = lf.RetentionPoint(RetentionPolicy{Bytes: int64(end - at)}, t0)
	if err != nil || first != 92 {
		t.Fatalf("RetentionPoint by size = %d, %v; want 92", first, err)
	}
	// One byte less and record 92 no longer fits.
	if f2, _ := lf.RetentionPoint(RetentionPolicy{Bytes: int64(end-at) - 1}, t0); f2 != 93 {
		t.Fatalf("RetentionPoint by size -1 = %d, want 93", f2)
	}
	retainOnLeader(t, c, first)
	sameAnswers(t, c, 92, next)

	// Every storage kept whole segments with records below the cut (a batch never spans
	// segments), and none of them is served.
	lowests := map[int]uint64{}
	for _, i := range c.Running() {
		lo, _ := c.SM(i).(*nodeSM).log.Bounds()
		if lo >= 92 {
			t.Fatalf("node %d: storage starts at %d: a segment cannot start inside a batch", i, lo)
		}
		lowests[i] = lo
	}
	t.Logf("storage starts per node: %v (the replicated start: 92)", lowests)

	// A retain below the current start changes nothing; one that would empty the log is
	// rejected on every node alike.
	if got := retainOnLeader(t, c, 10); got != 92 {
		t.Fatalf("retain below the start: first %d, want 92", got)
	}
	i, lf := leaderFSM(c)
	if _, err := lf.ProposeRetention(t.Context(), c.Node(i), next); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("retain that empties the log: %v, want ErrInvalidCommand", err)
	}
	// Appends go on at the same offsets everywhere, and survive a restart of every node
	// with the start intact (snapshot + replayed retain commands).
	next = proposeAt(t, c, "after", 10, 2, 200, time.Now())
	c.converge(next)
	sameAnswers(t, c, 92, next)
	for _, n := range c.Running() {
		c.Stop(n)
		c.Restart(n)
	}
	c.WaitLeader()
	c.converge(next)
	c.WaitApplied(c.Node(c.WaitLeader()).Status().AppliedIndex)
	c.WaitFor("every node's log start back at 92 after restarts", func() bool {
		for _, n := range c.Running() {
			if lo, _ := c.fsm(n).Bounds(); lo != 92 {
				return false
			}
		}
		return true
	})
	sameAnswers(t, c, 92, next)
}

// storedPos returns the byte position of the record at off (or the end of the log when off
// is its next offset).
func storedPos(t *testing.T, f *FSM, off uint64) uint64 {
	t.Helper()
	_, next := f.Bounds()
	at := off
	if off == next {
		at = off - 1
	}
	b, err := f.log.Read(at)
	if err != nil {
		t.Fatal(err)
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if off == next {
		return env.Pos + uint64(len(b))
	}
	return env.Pos
}

// TestClusterSnapshotAfterRetention: a follower that was down while the leader cut the log
// and compacted Raft's log catches up by installing a snapshot: it ends holding exactly
// [first, next) — none of its own history below first is served or kept, nothing above is
// lost — and so does a node that joins afterwards.
func TestClusterSnapshotAfterRetention(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{tcp: true, segmentBytes: 16 << 10, raft: func(rc *craft.Config) {
		rc.TrailingLogs = 4
		rc.SnapshotThreshold = 1 << 30 // snapshots only when the test asks
		rc.WALSegmentSize = 64 << 10   // small, so that compaction really drops entries
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	}})
	c.WaitLeader()
	early := proposeAt(t, c, "early", 40, 4, 300, time.Now())
	c.converge(early)
	leader := c.WaitLeader()
	down := (leader + 1) % 3
	c.Stop(down)

	next := proposeAt(t, c, "later", 600, 4, 300, time.Now())
	const first = 400
	retainOnLeader(t, c, first)
	for _, i := range c.Running() {
		snapshotNode(t, c, i)
	}

	c.Restart(down)
	c.WaitFor("the restarted follower to install a snapshot", func() bool {
		got := c.Node(down).Raft().Stats()["last_snapshot_index"]
		return got != "0" && got != ""
	})
	c.converge(next)
	c.WaitApplied(c.Node(c.WaitLeader()).Status().AppliedIndex)
	sameAnswers(t, c, first, next)
	if lo, _ := c.SM(down).(*nodeSM).log.Bounds(); lo != first {
		t.Fatalf("the follower's storage starts at %d: it kept history below the log start %d", lo, first)
	}

	// A node that joins now gets the same range, and everyone goes on at the same offsets.
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
	next = proposeAt(t, c, "end", 8, 2, 300, time.Now())
	c.converge(next)
	c.WaitApplied(c.Node(c.WaitLeader()).Status().AppliedIndex)
	sameAnswers(t, c, first, next)
}

// avoidLeader makes sure node i does not lead (it transfers leadership away if it does) and
// returns the leader.
func avoidLeader(t *testing.T, c *fsmCluster, i int) int {
	t.Helper()
	var lead int
	c.WaitFor(fmt.Sprintf("a leader other than node %d", i), func() bool {
		lead = c.WaitLeader()
		if lead != i {
			return true
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_ = c.Node(i).TransferLeadership(ctx, "")
		return false
	})
	return lead
}

// TestClusterFollowerCannotStoreCommittedEntry: a follower whose storage refuses a record the
// leader accepted (a lower record limit, as after a rolling configuration change) must not
// skip it — later records would land one offset lower there than everywhere else. It stops
// applying, stickily, serves nothing past the entry, and the others go on at the same offsets.
func TestClusterFollowerCannotStoreCommittedEntry(t *testing.T) {
	const weak = 2
	c := newFSMCluster(t, 3, clusterOpts{node: func(i int, sc *segment.Config, _ *Config) {
		if i == weak {
			sc.MaxRecordBytes = 1024
		}
	}})
	avoidLeader(t, c, weak)
	before := proposeAt(t, c, "small", 10, 2, 100, time.Now())
	c.converge(before)
	big := proposeAt(t, c, "big", 1, 1, 4096, time.Now())
	after := proposeAt(t, c, "after", 10, 2, 100, time.Now())
	if big != before+1 || after != big+10 {
		t.Fatalf("offsets: big ends at %d, after at %d (before %d)", big, after, before)
	}
	c.WaitFor("the weak follower to stop applying", func() bool { return c.fsm(weak).Err() != nil })
	f := c.fsm(weak)
	if err := f.Err(); !errors.Is(err, ErrFailed) || !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Err = %v, want ErrFailed wrapping storage.ErrTooLarge", err)
	}
	if lo, hi := f.Bounds(); lo != 0 || hi != before {
		t.Fatalf("weak follower's bounds [%d, %d), want [0, %d): nothing past the unstorable entry", lo, hi, before)
	}
	for off := before; off < after; off++ {
		if _, err := f.Read(t.Context(), off); !errors.Is(err, ErrFailed) {
			t.Fatalf("weak follower Read(%d) = %v, want ErrFailed", off, err)
		}
	}
	// The others hold every record at the leader's offsets.
	for _, i := range c.Running() {
		if i == weak {
			continue
		}
		for off := range after {
			r, err := c.fsm(i).Read(t.Context(), off)
			if err != nil {
				t.Fatalf("node %d Read(%d): %v", i, off, err)
			}
			want := "small-"
			switch {
			case off == before:
				want = "big-0/"
			case off > before:
				want = fmt.Sprintf("after-%d/", off-before-1)
			default:
				want = fmt.Sprintf("small-%d/", off)
			}
			if !strings.HasPrefix(string(r.Value), want) {
				t.Fatalf("node %d offset %d holds %.20q, want %q…", i, off, r.Value, want)
			}
		}
	}
	// Sticky: it stays stopped while the cluster goes on.
	next := proposeAt(t, c, "later", 4, 2, 100, time.Now())
	c.WaitApplied(c.Node(c.WaitLeader()).Status().AppliedIndex)
	if _, hi := f.Bounds(); hi != before || f.Err() == nil {
		t.Fatalf("weak follower moved on to %d (err %v); the others are at %d", hi, f.Err(), next)
	}
}

// TestClusterFollowerStorageFailureStopsApplying: a follower whose storage fails while it
// applies stops applying for good and serves nothing past what it stored; the others go on.
func TestClusterFollowerStorageFailureStopsApplying(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{crashFS: true})
	const bad = 1
	avoidLeader(t, c, bad)
	stored := proposeAt(t, c, "ok", 20, 4, 100, time.Now())
	c.converge(stored)
	if err := c.SM(bad).(*nodeSM).log.Sync(); err != nil { // nothing buffered: the next write is an append
		t.Fatal(err)
	}
	c.fs(bad).FailNext(crashfs.OpWrite, errDisk)
	next := proposeAt(t, c, "more", 20, 4, 100, time.Now())
	c.WaitFor("the follower to stop applying", func() bool { return c.fsm(bad).Err() != nil })
	f := c.fsm(bad)
	if !errors.Is(f.Err(), ErrFailed) {
		t.Fatalf("Err = %v", f.Err())
	}
	_, hi := f.Bounds()
	if hi < stored || hi >= next {
		t.Fatalf("failed follower's next %d, want in [%d, %d)", hi, stored, next)
	}
	// Past the failure point: refused at once (not after waiting out the deadline).
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := f.Read(ctx, hi); !errors.Is(err, ErrFailed) || ctx.Err() != nil {
		t.Fatalf("Read(%d) past the failure: %v", hi, err)
	}
	if _, err := f.Read(ctx, hi-1); err != nil {
		t.Fatalf("Read(%d) before the failure: %v", hi-1, err)
	}
	c.WaitFor("the healthy nodes to apply everything", func() bool {
		for _, i := range c.Running() {
			if _, n := c.fsm(i).Bounds(); i != bad && n != next {
				return false
			}
		}
		return true
	})
}
