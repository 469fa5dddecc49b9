package server

import (
	"bytes"
	"fmt"
	"os"
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
	const n, records = 3, 200
	cfgs := make([]Config, n)
	nodes := make([]*testServer, n)
	for i := range n {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: 100 * time.Millisecond, DataDir: t.TempDir(), SegmentBytes: 4096}
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	ctx := ctxT(t, 120*time.Second)
	for i := 0; i < records; i += 10 {
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
		waitFor(t, 30*time.Second, nd.ID()+" applied every record", func() bool { return bounds(nd).GetNextOffset() == records })
	}
	leader := leaderOf(t, nodes)
	victim := 0
	for i, nd := range nodes {
		if nd != leader {
			victim = i
			break
		}
	}
	nodes[victim].shutdown(t)
	// Flip a byte of "record-5" in its sealed segment, leaving its frame's checksum stale; the
	// segment's index file stays.
	segs, err := filepath.Glob(filepath.Join(cfgs[victim].DataDir, "log", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := false
	for _, seg := range segs {
		if _, err := os.Stat(strings.TrimSuffix(seg, ".seg") + ".idx"); err != nil {
			continue // the active segment: a flip there is refused at start, another case
		}
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; !flipped; {
			j := bytes.Index(b[i:], []byte("record-5"))
			if j < 0 {
				break
			}
			if e := i + j + len("record-5"); e == len(b) || b[e] < '0' || b[e] > '9' {
				b[i+j] ^= 0x20
				if err := os.WriteFile(seg, b, 0o600); err != nil {
					t.Fatal(err)
				}
				flipped = true
			}
			i += j + 1
		}
	}
	if !flipped {
		t.Fatalf("no record-5 in a sealed segment of %s", cfgs[victim].DataDir)
	}
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	nodes[victim] = startNode(t, cfg, false)
	v := nodes[victim]

	waitFor(t, 60*time.Second, "the corrupt record raises the alarm on "+v.ID(), func() bool { return bounds(v).GetDivergence() != "" })
	t.Logf("alarm: %s", bounds(v).GetDivergence())
	if _, err := newClient(t, TransportConnect, v.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); transport.CodeOf(err) != transport.DataLoss {
		t.Fatalf("Consume(0) on the corrupt server: %v, want DATA_LOSS", err)
	}
	for _, nd := range nodes {
		if nd == v {
			continue
		}
		if d := bounds(nd).GetDivergence(); d != "" {
			t.Fatalf("%s, whose log is whole, raised the alarm: %s", nd.ID(), d)
		}
		rec, err := newClient(t, TransportConnect, nd.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: 5})
		if err != nil || string(rec.GetRecord().GetValue()) != "record-5" {
			t.Fatalf("Consume(5) on %s = %v, %v", nd.ID(), rec, err)
		}
	}
}
