package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// startClusterWith starts n in-process servers that form a cluster through Serf (node 0
// bootstraps and leads), with node i's configuration adjusted by adjust.
func startClusterWith(t *testing.T, n int, adjust func(i int, cfg *Config)) []*testServer {
	t.Helper()
	nodes := make([]*testServer, 0, n)
	for i := range n {
		cfg := Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond}
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		adjust(i, &cfg)
		nodes = append(nodes, startNode(t, cfg, i == 0))
	}
	waitFor(t, 30*time.Second, "every node in one cluster", func() bool {
		for _, nd := range nodes {
			servers, err := nd.node.Servers(context.Background())
			if err != nil || len(servers) != n {
				return false
			}
		}
		return true
	})
	return nodes
}

// answers returns what a node answers to Consume for every offset below upTo (all written):
// the value, or "OutOfRange".
func answers(t *testing.T, ctx context.Context, c transport.Client, upTo uint64) []string {
	t.Helper()
	out := make([]string, upTo)
	for off := range upTo {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := c.Consume(cctx, &logv1.ConsumeRequest{Offset: off})
		cancel()
		switch {
		case err == nil:
			out[off] = string(res.GetRecord().GetValue())
		case transport.CodeOf(err) == transport.OutOfRange:
			out[off] = "OutOfRange"
		default:
			t.Fatalf("Consume(%d): %v", off, err)
		}
	}
	return out
}

// TestClusterRetentionAgreesOnEveryNode: retention by size with nodes whose segments roll at
// different sizes. The leader decides the new log start and replicates it, so every node
// reports the same bounds and gives the same answer for every offset (each node deleting its
// own oldest segments gave different starts).
func TestClusterRetentionAgreesOnEveryNode(t *testing.T) {
	segs := []int64{4 << 10, 7 << 10, 11 << 10}
	nodes := startClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.SegmentBytes = segs[i]
		cfg.RetentionBytes = 16 << 10
		cfg.RetentionInterval = 50 * time.Millisecond
	})
	ctx := ctxT(t, 90*time.Second)
	leader := newClient(t, TransportConnect, nodes[0].Addr())
	for i := range 100 {
		v := fmt.Appendf(nil, "r%03d/", i)
		v = append(v, bytes.Repeat([]byte{'x'}, 1000-len(v))...)
		if _, err := leader.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: v}}); err != nil {
			t.Fatal(err)
		}
	}
	clients := make([]transport.Client, len(nodes))
	for i, nd := range nodes {
		clients[i] = newClient(t, TransportConnect, nd.Addr())
	}
	var bounds []*logv1.GetBoundsResponse
	var stableSince time.Time
	prevFirst := uint64(0)
	waitFor(t, 30*time.Second, "retention applied alike on every node", func() bool {
		bounds = bounds[:0]
		for _, c := range clients {
			b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
			if err != nil {
				return false
			}
			bounds = append(bounds, b)
		}
		for _, b := range bounds {
			if b.GetLowestOffset() == 0 || b.GetNextOffset() != 100 || b.GetLowestOffset() != bounds[0].GetLowestOffset() {
				return false
			}
		}
		// Retention runs every 50ms and may have cut while the writes went on: wait for the
		// pass that sees all 100 records (the start stops moving there). A start that has not
		// moved for several retention intervals is that pass's.
		if first := bounds[0].GetLowestOffset(); first != prevFirst {
			prevFirst, stableSince = first, time.Now()
		}
		return bounds[0].GetLowestOffset() >= 80 && time.Since(stableSince) > 300*time.Millisecond
	})
	first := bounds[0].GetLowestOffset()
	// About 16 KiB of ~1 KiB records are kept, by record, whatever the segment sizes.
	if first < 80 || first > 90 {
		t.Fatalf("log start %d: RetentionBytes 16 KiB of 1 KiB records keeps about 15", first)
	}
	ref := answers(t, ctx, clients[0], 100)
	for i, c := range clients[1:] {
		got := answers(t, ctx, c, 100)
		for off := range got {
			if got[off] != ref[off] {
				t.Fatalf("offset %d: node 0 answers %.10q, node %d %.10q", off, ref[off], i+1, got[off])
			}
		}
	}
	if ref[first-1] != "OutOfRange" || !strings.HasPrefix(ref[first], fmt.Sprintf("r%03d/", first)) {
		t.Fatalf("around the start %d: %.10q, %.10q", first, ref[first-1], ref[first])
	}
}

// TestClusterFollowerWithLowerRecordLimit: a rolling configuration change leaves followers
// with a lower --max-record-bytes than the leader. The leader's limit decides what the log
// accepts: the followers store the large committed record too (they used to skip it, and
// every later record landed one offset lower there), and a large write sent to a follower is
// forwarded to the leader instead of being refused by the follower's own limit.
func TestClusterFollowerWithLowerRecordLimit(t *testing.T) {
	nodes := startClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.MaxRecordBytes = 1 << 10
		if i == 0 {
			cfg.MaxRecordBytes = 64 << 10
		}
	})
	ctx := ctxT(t, 90*time.Second)
	leader := newClient(t, TransportConnect, nodes[0].Addr())
	follower := newClient(t, TransportConnect, nodes[1].Addr())
	big := bytes.Repeat([]byte{'B'}, 10<<10)
	var want []string
	produce := func(c transport.Client, v []byte) {
		t.Helper()
		res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: v}})
		if err != nil {
			t.Fatalf("Produce %d bytes: %v", len(v), err)
		}
		if res.GetOffset() != uint64(len(want)) {
			t.Fatalf("produced at %d, want %d", res.GetOffset(), len(want))
		}
		want = append(want, string(v))
	}
	produce(leader, []byte("a"))
	produce(leader, big)
	produce(leader, []byte("b"))
	produce(follower, big) // forwarded: the leader's limit decides
	produce(follower, []byte("c"))
	// The same through a ProduceStream sent to the follower: the follower groups the stream's
	// records into commands by its own lower limit, the leader's limit decides.
	ps, err := follower.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	streamed := [][]byte{[]byte("d"), big, []byte("e"), big, []byte("f")}
	for _, v := range streamed {
		if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: v}}); err != nil {
			t.Fatalf("ProduceStream Send: %v", err)
		}
	}
	if err := ps.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for _, v := range streamed {
		res, err := ps.Receive()
		if err != nil {
			t.Fatalf("ProduceStream through the follower, %d bytes: %v", len(v), err)
		}
		if res.GetOffset() != uint64(len(want)) {
			t.Fatalf("ProduceStream stored %d bytes at %d, want %d", len(v), res.GetOffset(), len(want))
		}
		want = append(want, string(v))
	}
	for i, nd := range nodes {
		c := newClient(t, TransportConnect, nd.Addr())
		waitFor(t, 30*time.Second, fmt.Sprintf("node %d applies everything", i), func() bool {
			b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
			return err == nil && (b.GetNextOffset() >= uint64(len(want)) || b.GetApplyError() != "")
		})
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
		if err != nil || b.GetApplyError() != "" {
			t.Fatalf("node %d: %v, apply error %q", i, err, b.GetApplyError())
		}
		got := answers(t, ctx, c, uint64(len(want)))
		for off := range want {
			if got[off] != want[off] {
				t.Fatalf("node %d offset %d holds %.10q (%d bytes), want %.10q (%d bytes)", i, off, got[off], len(got[off]), want[off], len(want[off]))
			}
		}
	}
	// Above the leader's own limit: refused before anything is proposed, wherever it is sent.
	for _, c := range []transport.Client{leader, follower} {
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 65<<10)}})
		if code := transport.CodeOf(err); code != transport.ResourceExhausted && code != transport.InvalidArgument {
			t.Fatalf("Produce above the leader's limit: %v", err)
		}
	}
}

// TestApplyStopIsReported: a node whose storage fails while applying a committed entry stops
// applying, and says so — GetBounds' apply_error (which `cluster status` prints), the
// commitlog_apply_stopped metric, /healthz — keeps running, and serves nothing past the
// failure.
func TestApplyStopIsReported(t *testing.T) {
	fs := crashfs.New()
	srv := startServer(t, Config{MetricsAddr: "127.0.0.1:0", logFS: fs})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	for range 3 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("ok")}}); err != nil {
			t.Fatal(err)
		}
	}
	stopped := func() float64 {
		m, err := telemetrytest.Find(telemetrytest.Scrape(t, srv.MetricsAddr()), "commitlog_apply_stopped", nil)
		if err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	if v := stopped(); v != 0 {
		t.Fatalf("commitlog_apply_stopped = %v before any failure", v)
	}
	if err := srv.log.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.FailNext(crashfs.OpWrite, errors.New("disk on fire"))
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("lost")}})
	if err == nil {
		t.Fatal("Produce succeeded although the node could not store it")
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.GetApplyError(), "disk on fire") || b.GetNextOffset() != 3 {
		t.Fatalf("GetBounds: next %d, apply_error %q", b.GetNextOffset(), b.GetApplyError())
	}
	// Asked for the commit point (as a follower asks its leader before it answers "out of
	// range"), it must not answer its own next offset: offset 3 is committed. Unavailable: it
	// leads, and reads resume once another node does.
	if b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true}); transport.CodeOf(err) != transport.Unavailable {
		t.Fatalf("linearizable GetBounds after the failure: next %d, %v; want Unavailable", b.GetNextOffset(), err)
	}
	if v := stopped(); v != 1 {
		t.Fatalf("commitlog_apply_stopped = %v after the failure", v)
	}
	if code, body := telemetrytest.Get(t, srv.MetricsAddr(), "/healthz"); code == 200 {
		t.Fatalf("/healthz answers %d %q after the failure", code, body)
	}
	// Reads below the failure are served; at it, refused at once (well before the wait).
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 2}); err != nil {
		t.Fatalf("Consume below the failure: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Consume(cctx, &logv1.ConsumeRequest{Offset: 3}); err == nil || cctx.Err() != nil {
		t.Fatalf("Consume at the failure: %v (ctx %v)", err, cctx.Err())
	} else if code := transport.CodeOf(err); code != transport.Unavailable {
		// Offset 3 is committed (the failed produce's): never "beyond every committed
		// record", which this leader said from its own next offset; Unavailable (not
		// stored here: served once the node is repaired, or by another replica).
		t.Fatalf("Consume at the failure: %v, want Unavailable", err)
	}
	res, err := c.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil || len(res.GetServers()) != 1 || res.GetServers()[0].GetHealthy() {
		t.Fatalf("GetServers after the failure: %v, %v: want the node unhealthy", res, err)
	}
	// The node keeps running (so that status shows it).
	select {
	case err := <-srv.done:
		t.Fatalf("Run returned after the failure: %v", err)
	default:
	}
	if !errors.Is(srv.fsm.Err(), fsm.ErrFailed) {
		t.Fatalf("fsm.Err = %v", srv.fsm.Err())
	}
}

// TestApplyStopIsNoRefusal: once a node stops applying because its log refused a committed
// entry as too large (a log that does not accept fsm.MaxStoredRecordBytes), the produce of
// that entry was committed: it is not answered as a refusal (ResourceExhausted: "too large,
// nothing stored"), but as an outcome unknown (Unavailable, the OutcomeUnknown detail and the
// message saying the write may have happened; before, Internal, which only a client that
// treats every Internal so would not take for a failed write). Every
// later produce on it, still the leader (no other node to hand leadership to), is refused
// before it is proposed: Unavailable with the NotProposed detail, and Raft's log does not grow
// (before, each was committed and answered Internal, and a cluster whose disks were all full
// went on appending writes its callers were told might have failed). Its hand-over of
// leadership, with no other node to take it, fails, and says so in its log.
func TestApplyStopIsNoRefusal(t *testing.T) {
	var logs syncBuffer
	srv := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OpenLog: func(string) (storage.Log, error) {
		l, err := memory.New(memory.Config{MaxRecordBytes: 200})
		if err != nil {
			return nil, err
		}
		return l, nil
	}})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("ok")}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 1000)}})
	if code := transport.CodeOf(err); code != transport.Unavailable || !transport.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), ErrOutcomeUnknownMessage) {
		t.Fatalf("Produce of 1000 bytes the log refuses once committed: %v, want Unavailable, outcome unknown", err)
	}
	last := srv.node.Status().LastIndex
	for range 3 {
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 2)}})
		if code := transport.CodeOf(err); code != transport.Unavailable || !transport.IsNotProposed(err) {
			t.Fatalf("Produce of 2 bytes after the log refused a committed entry: %v, want Unavailable, not proposed", err)
		}
	}
	if got := srv.node.Status().LastIndex; got != last {
		t.Fatalf("Raft's last index went from %d to %d after the state machine stopped", last, got)
	}
	if !errors.Is(srv.fsm.Err(), fsm.ErrFailed) {
		t.Fatalf("fsm.Err = %v", srv.fsm.Err())
	}
	waitFor(t, 20*time.Second, "the failed hand-over is logged", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="leadership transfer after the state machine stopped failed" err=`)
	})
}
