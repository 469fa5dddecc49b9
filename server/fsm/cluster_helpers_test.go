package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/server/internal/walvfs"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// nodeSM is what a test cluster node runs: the FSM over a storage/segment log that it owns
// (the harness closes it on Stop).
type nodeSM struct {
	*FSM
	log *segment.Log
}

func (n *nodeSM) Close() error { return n.log.Close() }

// clusterOpts configure newFSMCluster.
type clusterOpts struct {
	// crashFS keeps each node's FSM log and Raft's log segments on crashfs (in memory, see
	// power), so a test can simulate a power failure; otherwise both are on disk in the
	// node's directory.
	crashFS bool
	// segmentBytes is the FSM log's segment size (default: segment's).
	segmentBytes int64
	// raft adjusts every node's consensus/raft Config.
	raft func(c *craft.Config)
	// logger receives every node's logs (default: discarded).
	logger *slog.Logger
	// tcp runs Raft over TCP on loopback instead of the in-memory transport.
	tcp bool
	// node adjusts node i's storage and FSM configuration (after the options above).
	node func(i int, sc *segment.Config, fc *Config)
}

// fsmCluster is a consensustest.Cluster of nodes running the FSM over storage/segment.
type fsmCluster struct {
	*consensustest.Cluster
	t *testing.T

	mu     sync.Mutex
	powers map[int]*power
}

func newFSMCluster(t *testing.T, n int, o clusterOpts) *fsmCluster {
	t.Helper()
	c := &fsmCluster{t: t, powers: map[int]*power{}}
	c.Cluster = consensustest.NewCluster(t, n, consensustest.Options{
		Factory: func(i int, dir string) (consensus.StateMachine, error) {
			cfg := segment.Config{Sync: segment.SyncNever, SegmentBytes: o.segmentBytes}
			if o.crashFS {
				p := c.power(i)
				p.restore() // the node that lost power was stopped
				cfg.FS = p.fs(p.fsm)
			} else {
				cfg.FS = vfs.OS{}
			}
			fc := Config{}
			if o.node != nil {
				o.node(i, &cfg, &fc)
			}
			log, err := segment.Open(dir, cfg)
			if err != nil {
				return nil, err
			}
			fc.Log = log
			f, err := New(fc)
			if err != nil {
				_ = log.Close()
				return nil, err
			}
			return &nodeSM{FSM: f, log: log}, nil
		},
		Config: func(i int, rc *craft.Config) {
			if o.crashFS {
				p := c.power(i)
				rc.WALFS = walvfs.New(p.fs(p.wal))
				rc.WALMeta = p.meta
			}
			if o.raft != nil {
				o.raft(rc)
			}
		},
		WaitTimeout: 30 * time.Second,
		Logger:      o.logger,
		TCP:         o.tcp,
	})
	return c
}

// power returns node i's power supply, creating it on first use.
func (c *fsmCluster) power(i int) *power {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.powers[i] == nil {
		c.powers[i] = newPower()
	}
	return c.powers[i]
}

// Stop stops node i. If its power failed, the goroutines its power failure halted exit first, so
// that Raft's shutdown does not wait for them.
func (c *fsmCluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	p := c.powers[i]
	c.mu.Unlock()
	if p != nil {
		p.stopping()
	}
	c.Cluster.Stop(i)
}

// fs returns the crash file system of node i's FSM log.
func (c *fsmCluster) fs(i int) *crashfs.FS { return c.power(i).fsm }

// fsm returns node i's current FSM.
func (c *fsmCluster) fsm(i int) *FSM {
	c.t.Helper()
	sm, ok := c.SM(i).(*nodeSM)
	if !ok {
		c.t.Fatalf("node %d runs %T", i, c.SM(i))
	}
	return sm.FSM
}

// crash simulates a power failure of node i (clusterOpts.crashFS): its FSM log and Raft's log
// segments lose their unsynced writes (or keep them torn, by mode) and every later write
// fails, then the node stops. Restart turns the power on again.
func (c *fsmCluster) crash(i int, mode crashfs.CrashMode, seed uint64) {
	c.t.Helper()
	c.power(i).cut(mode, newRand(seed))
	c.Stop(i)
}

// proposeAmong proposes one batch through the leader of the given nodes (for use during a
// partition, when the cluster-wide helpers wait for every node to agree on a leader),
// retrying while nothing was proposed. It fails the test unless the batch was applied.
func (c *fsmCluster) proposeAmong(among []int, vals ...string) AppendResult {
	c.t.Helper()
	var (
		res AppendResult
		err error
	)
	c.WaitFor("a successful proposal", func() bool {
		n := c.Node(c.WaitLeader(among...))
		if n == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err = proposeOn(ctx, c.t, n, vals...)
		if err != nil && !isRetryable(err) {
			c.t.Fatalf("propose: %v", err)
		}
		return err == nil
	})
	return res
}

// tryPropose proposes one batch through the current leader, retrying (within the cluster's
// wait timeout) while nothing was proposed. ok is false and err nil when the outcome is
// unknown (consensus.ErrOutcomeUnknown). It never fails the test, so any goroutine may call it.
func (c *fsmCluster) tryPropose(vals ...string) (res AppendResult, ok bool, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n := c.currentLeader()
		if n == nil {
			time.Sleep(5 * time.Millisecond) // an election is under way
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err = proposeOn(ctx, c.t, n, vals...)
		cancel()
		switch {
		case err == nil:
			return res, true, nil
		case errors.Is(err, consensus.ErrOutcomeUnknown):
			return AppendResult{}, false, nil
		case isRetryable(err):
			time.Sleep(time.Millisecond)
			continue
		}
		return AppendResult{}, false, err
	}
	return AppendResult{}, false, errors.New("no leader accepted the proposal in 30s")
}

// currentLeader returns a running node that believes it leads, or nil. Safe to call from any
// goroutine (it never fails the test).
func (c *fsmCluster) currentLeader() *craft.Node {
	for _, i := range c.Running() {
		if n := c.Node(i); n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

// proposeOn proposes a batch of values on node n.
func proposeOn(ctx context.Context, t testing.TB, n consensus.Consensus, vals ...string) (AppendResult, error) {
	res, err := n.Propose(ctx, cmd(t, vals...))
	if err != nil {
		return AppendResult{}, err
	}
	switch r := res.(type) {
	case AppendResult:
		return r, nil
	case error:
		return AppendResult{}, r
	}
	return AppendResult{}, fmt.Errorf("unexpected result %T %v", res, res)
}

// ledger records what clients were told: acknowledged records with their offsets, and
// records whose outcome is unknown (they may be in the log, at most once).
type ledger struct {
	mu      sync.Mutex
	acked   map[string]uint64 // value → offset
	unknown map[string]bool
}

func newLedger() *ledger {
	return &ledger{acked: map[string]uint64{}, unknown: map[string]bool{}}
}

// ack records that the batch vals was acknowledged at res.
func (l *ledger) ack(t testing.TB, res AppendResult, vals ...string) {
	t.Helper()
	if res.Count != uint64(len(vals)) {
		t.Fatalf("batch of %d acknowledged with count %d", len(vals), res.Count)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, v := range vals {
		if _, dup := l.acked[v]; dup {
			t.Fatalf("value %q acknowledged twice", v)
		}
		l.acked[v] = res.First + uint64(i)
	}
}

func (l *ledger) maybe(vals ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range vals {
		l.unknown[v] = true
	}
}

// snapshotLog returns every record of f's log, checking that offsets are dense.
func snapshotLog(t testing.TB, f *FSM) []Record {
	t.Helper()
	var out []Record
	lowest, next := f.Bounds()
	if lowest == next {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := lowest
	for r, err := range f.Records(ctx, lowest) {
		if err != nil {
			t.Fatalf("read log at %d: %v", want, err)
		}
		if r.Offset != want {
			t.Fatalf("offsets not dense: %d after %d", r.Offset, want-1)
		}
		r.Value = bytes.Clone(r.Value)
		out = append(out, r)
		if want++; want == next {
			break
		}
	}
	return out
}

// converge waits until every running node's log reaches the same next offset, and at least
// min.
func (c *fsmCluster) converge(min uint64) uint64 {
	c.t.Helper()
	var next uint64
	c.WaitFor(fmt.Sprintf("every node's log to reach the same end (at least %d)", min), func() bool {
		next = 0
		for k, i := range c.Running() {
			_, n := c.fsm(i).Bounds()
			if k > 0 && n != next {
				return false
			}
			next = n
		}
		return next >= min
	})
	return next
}

// checkInvariants checks, on every running node, after they converged: offsets are dense from
// 0; every node holds the same record (value, term, index, type) at every offset; every
// acknowledged record is at its acknowledged offset and appears once; a record whose outcome
// was unknown appears at most once; nothing else appears (no phantom). It returns the
// common log.
func (c *fsmCluster) checkInvariants(l *ledger) []Record {
	c.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var min uint64
	for _, off := range l.acked {
		min = max(min, off+1)
	}
	c.converge(min)
	var ref []Record
	for k, i := range c.Running() {
		recs := snapshotLog(c.t, c.fsm(i))
		if len(recs) > 0 && recs[0].Offset != 0 {
			c.t.Fatalf("node %d: log starts at %d, not 0", i, recs[0].Offset)
		}
		seen := map[string]uint64{}
		for _, r := range recs {
			v := string(r.Value)
			if prev, dup := seen[v]; dup {
				c.t.Fatalf("node %d: %q at offsets %d and %d (duplicate)", i, v, prev, r.Offset)
			}
			seen[v] = r.Offset
			if _, ok := l.acked[v]; !ok && !l.unknown[v] {
				c.t.Fatalf("node %d: phantom record %q at offset %d", i, v, r.Offset)
			}
		}
		for v, off := range l.acked {
			if got, ok := seen[v]; !ok || got != off {
				c.t.Fatalf("node %d: acknowledged %q at offset %d: found at %d (present: %v)", i, v, off, got, ok)
			}
		}
		if k == 0 {
			ref = recs
			continue
		}
		if len(recs) != len(ref) {
			c.t.Fatalf("node %d holds %d records, node %d %d", i, len(recs), c.Running()[0], len(ref))
		}
		for j := range recs {
			a, b := recs[j], ref[j]
			if !bytes.Equal(a.Value, b.Value) || a.Term != b.Term || a.Index != b.Index || a.Type != b.Type {
				c.t.Fatalf("offset %d differs: node %d %+v, node %d %+v", a.Offset, i, a, c.Running()[0], b)
			}
		}
	}
	return ref
}

// isRetryable reports whether a proposal error means nothing was proposed.
func isRetryable(err error) bool {
	return errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrNoLeader)
}
