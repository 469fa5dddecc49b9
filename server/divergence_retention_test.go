package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestDivergenceDetectorBlockCutByRetention: retention left a partition whose first offset is
// not a multiple of fsm.ChecksumBlock (here fewer records than a block, the newest block cut):
// a chain from the block's start cannot be computed there, so the check used to compare
// nothing at all in that block. A follower whose record there was changed at rest is found:
// the check compares the chain from the first offset every server holds.
func TestDivergenceDetectorBlockCutByRetention(t *testing.T) {
	const n, records = 3, 40
	cfgs := make([]Config, n)
	nodes := make([]*testServer, n)
	for i := range n {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: 100 * time.Millisecond, DataDir: t.TempDir(),
			SegmentBytes: 4 << 10, RetentionBytes: 16 << 10, RetentionInterval: 50 * time.Millisecond}
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	ctx := ctxT(t, 120*time.Second)
	value := func(i int) []byte {
		v := bytes.Repeat([]byte{'x'}, 1000)
		return fmt.Appendf(v, "/r%03d", i)
	}
	for i := range records {
		writeOnLeader(t, ctx, nodes, func(c transport.Client) error {
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value(i)}})
			return err
		})
	}
	bounds := boundsOn(t, ctx)
	// Retention keeps about 16 of the 40 records: the log starts inside block 0.
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, nd.ID()+" applied every record and retention", func() bool {
			b := bounds(nd)
			return b.GetNextOffset() == records && b.GetLowestOffset() >= 20
		})
	}
	if lo := bounds(nodes[0]).GetLowestOffset(); lo%fsm.ChecksumBlock == 0 || lo > 36 {
		t.Fatalf("log start %d: want one inside the block, below the planted record", lo)
	}
	// Agreeing servers raise nothing over several checks.
	time.Sleep(time.Second)
	for _, nd := range nodes {
		if d := bounds(nd).GetDivergence(); d != "" {
			t.Fatalf("%s raised the alarm while every log agrees: %s", nd.ID(), d)
		}
	}

	leader := leaderOf(t, nodes)
	var victim int
	for i, nd := range nodes {
		if nd != leader {
			victim = i
			break
		}
	}
	nodes[victim].shutdown(t)
	plantDivergence(t, cfgs[victim].DataDir, "r036")
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	nodes[victim] = startNode(t, cfg, false)
	v := nodes[victim]

	waitFor(t, 30*time.Second, "the planted divergence raises the alarm on "+v.ID(), func() bool { return bounds(v).GetDivergence() != "" })
	alarm := bounds(v).GetDivergence()
	t.Logf("alarm: %s", alarm)
	if !strings.Contains(alarm, "chain from offset") {
		t.Errorf("alarm %q does not say where the chain started", alarm)
	}
	for _, nd := range nodes {
		if nd == v {
			continue
		}
		if d := bounds(nd).GetDivergence(); d != "" {
			t.Fatalf("%s, whose log agrees with the majority, raised the alarm: %s", nd.ID(), d)
		}
	}
}
