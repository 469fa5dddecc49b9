package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestCorruptRecordAtRestRaisesAlarm: a byte flipped at rest in a follower's sealed segment
// (its index intact, so the storage's cheap check at start reads nothing wrong) made the
// leader's divergence check only log "cannot compute the log checksum" on the follower, which
// went on voting, leading and serving every other offset while it had lost an acknowledged
// record for good. The check now raises the follower's alarm: it refuses reads (DATA_LOSS) and
// tells the operator to repair it from its peers; the other servers serve the record.
func TestCorruptRecordAtRestRaisesAlarm(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	nodes, cfgs := clusterOfRecords(t, ctx, func(int) time.Duration { return 100 * time.Millisecond })
	bounds := boundsOn(t, ctx)
	leader := leaderOf(t, nodes)
	victim := 0
	for i, nd := range nodes {
		if nd != leader {
			victim = i
			break
		}
	}
	nodes[victim].shutdown(t)
	flipSealedRecord(t, cfgs[victim].DataDir, "record-5")
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	nodes[victim] = startNode(t, cfg, false)
	v := nodes[victim]

	alarmOnlyOn(t, ctx, nodes, v, bounds, "the corrupt record", 5)
}

// corruptRecords is how many records clusterOfRecords writes: "record-0" and on.
const corruptRecords = 200

// clusterOfRecords starts three servers (node-0 bootstraps; node i runs the divergence check
// every check(i), -1: never) whose segments roll at 4 KiB, writes corruptRecords records and
// waits until each server applied them. It returns the servers and their configurations.
func clusterOfRecords(t *testing.T, ctx context.Context, check func(i int) time.Duration) ([]*testServer, []Config) {
	t.Helper()
	const n = 3
	cfgs := make([]Config, n)
	nodes := make([]*testServer, n)
	for i := range n {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: check(i), DataDir: t.TempDir(), SegmentBytes: 4096}
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	for i := 0; i < corruptRecords; i += 10 {
		var batch []*logv1.Record
		for j := i; j < i+10; j++ {
			batch = append(batch, &logv1.Record{Value: fmt.Appendf(nil, "record-%d", j)})
		}
		writeOnLeader(t, ctx, nodes, func(c transport.Client) error {
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch})
			return err
		})
	}
	bounds := boundsOn(t, ctx)
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, nd.ID()+" applied every record", func() bool { return bounds(nd).GetNextOffset() == corruptRecords })
	}
	return nodes, cfgs
}

// TestLeaderCorruptRecordAtRestRaisesAlarm: the leader's own divergence check finds a record
// of its own log corrupt at rest (compareChecksums cannot compute its own checksum): it raises
// its alarm (refusing reads with DATA_LOSS) and hands leadership over, since a leader that
// refuses reads fails every linearizable read. Only the corrupt server runs the check, so no
// other leader raises its alarm for it while it follows.
func TestLeaderCorruptRecordAtRestRaisesAlarm(t *testing.T) {
	const victim = 1
	ctx := ctxT(t, 120*time.Second)
	nodes, cfgs := clusterOfRecords(t, ctx, func(i int) time.Duration {
		if i == victim {
			return 100 * time.Millisecond
		}
		return -1
	})
	bounds := boundsOn(t, ctx)
	// It must follow when it restarts, so that it finds the corruption as leader.
	v := restartWithFlippedRecord(t, ctx, nodes, cfgs, victim)
	waitFor(t, 30*time.Second, v.ID()+" caught up", func() bool { return bounds(v).GetNextOffset() == corruptRecords })
	if d := bounds(v).GetDivergence(); d != "" {
		t.Fatalf("%s raised its alarm as a follower: %s", v.ID(), d)
	}

	// Lead with the corrupt record: its own check finds it. It checks every 100 ms and hands
	// leadership over once it finds it, which can both happen within one look (or within the
	// transfer call); its raised alarm then says that it led, since it checks only as leader.
	led := func() bool { return v.node.IsLeader() || bounds(v).GetDivergence() != "" }
	waitFor(t, 30*time.Second, v.ID()+" leads", func() bool {
		if led() {
			return true
		}
		if l := currentLeader(nodes); l != nil {
			_ = l.node.TransferLeadership(ctx, v.ID())
		}
		return led()
	})
	alarm := alarmOnlyOn(t, ctx, nodes, v, bounds, "the corrupt record (on the leader)", 5)
	if !strings.Contains(alarm, "corrupt on disk") {
		t.Errorf("alarm %q does not say the record is corrupt on disk", alarm)
	}
	waitFor(t, 10*time.Second, v.ID()+" hands leadership over", func() bool {
		if v.node.IsLeader() {
			return false
		}
		l := currentLeader(nodes)
		return l != nil && l != v
	})
	if _, err := newClient(t, TransportConnect, v.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); transport.CodeOf(err) != transport.DataLoss {
		t.Fatalf("Consume(0) on %s once it handed leadership over: %v, want DATA_LOSS", v.ID(), err)
	}
}

// currentLeader returns the server of nodes that believes it leads, nil if none does.
func currentLeader(nodes []*testServer) *testServer {
	for _, nd := range nodes {
		if nd.node.IsLeader() {
			return nd
		}
	}
	return nil
}

// flipSealedRecord flips, at rest, a byte of the stored record whose value is value in a
// sealed segment of the commit log of the (stopped) server whose data dir is dataDir,
// leaving its frame's checksum stale; the segment's index file stays, so the storage's cheap
// check at start reads nothing wrong (a flip in the active segment is refused at start,
// another case).
func flipSealedRecord(t *testing.T, dataDir, value string) {
	t.Helper()
	editStoredRecord(t, filepath.Join(dataDir, "log"), value, true, func(frame []byte) { frame[len(frame)-1] ^= 0x20 })
}

// TestCorruptRecordFoundByStreamFencesFollower: a follower whose sealed segment holds a byte
// flipped at rest answered a ConsumeStream reaching that record DATA_LOSS, and nothing else
// happened: with the divergence check off (or until a check covered the record) it went on
// voting and could be elected, though it had lost a committed record (RELIABILITY.md,
// invariant 8). The read now raises its alarm, which fences it.
func TestCorruptRecordFoundByStreamFencesFollower(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	nodes, v := restartWithCorruptRecord(t, ctx, false)
	st, err := newClient(t, TransportConnect, v.Addr()).ConsumeStream(ctx, &logv1.ConsumeRequest{MaxBatch: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		if _, err = st.Receive(); err != nil {
			break
		}
	}
	if transport.CodeOf(err) != transport.DataLoss {
		t.Fatalf("ConsumeStream on %s ended with %v, want DATA_LOSS", v.ID(), err)
	}
	corruptReadFenced(t, ctx, nodes, v)
}

// TestCorruptRecordFoundByConsumeFencesLeader: as TestCorruptRecordFoundByStreamFencesFollower,
// on the leader, found by a Consume: it raises its alarm, is fenced and hands leadership over.
func TestCorruptRecordFoundByConsumeFencesLeader(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	nodes, v := restartWithCorruptRecord(t, ctx, true)
	_, err := newClient(t, TransportConnect, v.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: 5})
	if transport.CodeOf(err) != transport.DataLoss {
		t.Fatalf("Consume(5) on %s = %v, want DATA_LOSS", v.ID(), err)
	}
	corruptReadFenced(t, ctx, nodes, v)
	waitFor(t, 30*time.Second, v.ID()+" hands leadership over", func() bool {
		l := currentLeader(nodes)
		return l != nil && l != v
	})
}

// restartWithCorruptRecord starts clusterOfRecords with the divergence check off, flips
// "record-5" at rest in a sealed segment of one server, restarts it, waits until it caught up
// and, when lead, makes it the leader. It returns the servers and that one.
func restartWithCorruptRecord(t *testing.T, ctx context.Context, lead bool) ([]*testServer, *testServer) {
	t.Helper()
	nodes, cfgs := clusterOfRecords(t, ctx, func(int) time.Duration { return -1 })
	bounds := boundsOn(t, ctx)
	v := restartWithFlippedRecord(t, ctx, nodes, cfgs, 1)
	waitVoters(t, nodes)
	waitFor(t, 30*time.Second, v.ID()+" caught up", func() bool { return bounds(v).GetNextOffset() == corruptRecords })
	if lead {
		waitFor(t, 30*time.Second, v.ID()+" leads", func() bool {
			if l := currentLeader(nodes); l != nil && l != v {
				_ = l.node.TransferLeadership(ctx, v.ID())
			}
			return v.node.IsLeader()
		})
	}
	return nodes, v
}

// restartWithFlippedRecord hands leadership away from nodes[victim] if it leads, stops it,
// flips "record-5" at rest in a sealed segment of its data dir, and starts it again, joining
// nodes[0]. It returns the restarted server (also in nodes[victim]).
func restartWithFlippedRecord(t *testing.T, ctx context.Context, nodes []*testServer, cfgs []Config, victim int) *testServer {
	t.Helper()
	if nodes[victim].node.IsLeader() {
		if err := nodes[victim].node.TransferLeadership(ctx, nodes[0].ID()); err != nil {
			t.Fatalf("transfer away from %s: %v", nodes[victim].ID(), err)
		}
	}
	nodes[victim].shutdown(t)
	flipSealedRecord(t, cfgs[victim].DataDir, "record-5")
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
	nodes[victim] = startNode(t, cfg, false)
	return nodes[victim]
}

// corruptReadFenced checks that v, whose read found a corrupt record, raised its alarm (only
// it: the others serve the record) and is fenced: a hand-over to it fails.
func corruptReadFenced(t *testing.T, ctx context.Context, nodes []*testServer, v *testServer) {
	t.Helper()
	alarm := alarmOnlyOn(t, ctx, nodes, v, boundsOn(t, ctx), "a read of the corrupt record", 5)
	if !strings.Contains(alarm, "corrupt on disk") {
		t.Errorf("alarm %q does not say the record is corrupt on disk", alarm)
	}
	if reason, ok := v.node.Fenced(); !ok {
		t.Fatalf("%s found a corrupt record of its own, and its Raft node is not fenced", v.ID())
	} else if !strings.Contains(reason, "corrupt on disk") {
		t.Errorf("%s is fenced for %q, want the corrupt record", v.ID(), reason)
	}
}
