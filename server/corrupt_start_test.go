package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestCorruptLogRefusedWithRepair: a commit log whose durable bytes were cut (its active
// segment truncated below its synced watermark while the node was stopped) refused the start
// naming the file but not what to do. The error now says how to rebuild the node from its
// peers.
func TestCorruptLogRefusedWithRepair(t *testing.T) {
	cfg := Config{NodeName: "node-0", GossipProfile: "test", DataDir: t.TempDir()}
	nd := startNode(t, cfg, true)
	ctx := ctxT(t, 30*time.Second)
	c := newClient(t, TransportConnect, nd.Addr())
	for i := range 20 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(strings.Repeat("v", 100+i))}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	nd.shutdown(t)
	segs, err := filepath.Glob(filepath.Join(cfg.DataDir, "log", "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment: %v", err)
	}
	seg := segs[len(segs)-1]
	if err := os.Truncate(seg, 200); err != nil {
		t.Fatal(err)
	}
	cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
	srv, err := New(cfg)
	if err == nil {
		_ = srv.Close()
		t.Fatal("the server started on a commit log missing durable bytes")
	}
	if !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), "wipe its data dir") {
		t.Fatalf("error %q does not name %s and the repair", err, seg)
	}
}

// TestLostRaftStateRefused: a node whose Raft files lost entries its partitions had applied
// (the raft directory deleted, or the WAL segment emptied or cut, while it was stopped)
// started: without Raft state it bootstrapped a new cluster over the old commit log, whose
// topics were gone and whose writes then failed "already applied"; with a cut WAL it started
// with no configuration and never elected a leader. It is now refused, naming the raft
// directory and the repair. "topics only": the check was given the applied index of the
// default topic's partition 0 only, since the other topics' partitions open later, from the
// snapshot Raft restores and the entries it replays, so a node whose records were all in other
// topics started; the highest index any partition on disk applied is now checked.
func TestLostRaftStateRefused(t *testing.T) {
	damages := map[string]func(t *testing.T, raftDir string){
		"raft dir deleted": func(t *testing.T, raftDir string) {
			if err := os.RemoveAll(raftDir); err != nil {
				t.Fatal(err)
			}
		},
		"wal segment emptied": func(t *testing.T, raftDir string) {
			wals, err := filepath.Glob(filepath.Join(raftDir, "wal", "*.wal"))
			if err != nil || len(wals) == 0 {
				t.Fatalf("no wal segment: %v", err)
			}
			if err := os.Truncate(wals[0], 0); err != nil {
				t.Fatal(err)
			}
		},
	}
	fills := map[string]func(t *testing.T, ctx context.Context, nd *testServer, c transport.Client){
		"default partition": func(t *testing.T, ctx context.Context, _ *testServer, c transport.Client) {
			for range 5 {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}}); err != nil {
					t.Fatalf("Produce: %v", err)
				}
			}
		},
		"topics only": func(t *testing.T, ctx context.Context, nd *testServer, c transport.Client) {
			if _, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 2}); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			for i := range 5 {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Partition: uint32(i % 2), Record: &logv1.Record{Value: []byte("v")}}); err != nil {
					t.Fatalf("Produce: %v", err)
				}
			}
			if lo, next := nd.fsm.Bounds(); lo != 0 || next != 0 {
				t.Fatalf("the default partition holds [%d, %d): want it empty", lo, next)
			}
		},
	}
	for fillName, fill := range fills {
		for damageName, damage := range damages {
			t.Run(fillName+"/"+damageName, func(t *testing.T) {
				cfg := Config{NodeName: "node-0", GossipProfile: "test", DataDir: t.TempDir()}
				nd := startNode(t, cfg, true)
				fill(t, ctxT(t, 30*time.Second), nd, newClient(t, TransportConnect, nd.Addr()))
				nd.shutdown(t)
				raftDir := filepath.Join(cfg.DataDir, "raft")
				damage(t, raftDir)
				cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
				srv, err := New(cfg)
				if err == nil {
					_ = srv.Close()
					t.Fatal("the server started with Raft files that lost the entries its partitions applied")
				}
				if !strings.Contains(err.Error(), raftDir) || !strings.Contains(err.Error(), "wipe its data dir") {
					t.Fatalf("error %q does not name %s and the repair", err, raftDir)
				}
			})
		}
	}
}

// TestMissingFirstSegmentRefused: the oldest segment files of the commit log deleted while
// the node was stopped. The node started, its log starting at the next segment as if
// retention had dropped the records below it: acknowledged records gone without an error
// (Consume answered "below the log start"). It is now refused, naming the files.
func TestMissingFirstSegmentRefused(t *testing.T) {
	cfg := Config{NodeName: "node-0", GossipProfile: "test", DataDir: t.TempDir(), SegmentBytes: 256}
	nd := startNode(t, cfg, true)
	ctx := ctxT(t, 30*time.Second)
	c := newClient(t, TransportConnect, nd.Addr())
	for range 20 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(strings.Repeat("v", 60))}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	nd.shutdown(t)
	first, err := filepath.Glob(filepath.Join(cfg.DataDir, "log", "0000000001-*"))
	if err != nil || len(first) == 0 {
		t.Fatalf("no first segment: %v", err)
	}
	if segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "log", "*.seg")); len(segs) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(segs))
	}
	for _, f := range first {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
	srv, err := New(cfg)
	if err == nil {
		_ = srv.Close()
		t.Fatal("the server started on a commit log missing its first segment")
	}
	if !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "wipe its data dir") {
		t.Fatalf("error %q does not say that segments are missing and the repair", err)
	}
}

// TestConsumeStreamSendsRecordsBeforeCorruptOne: a record corrupt at rest in a sealed
// segment ended a ConsumeStream from the log start with DATA_LOSS and none of the whole
// records before it, which the stream had read into its batch: a reader could not get them
// by streaming. They are now sent, then DATA_LOSS.
func TestConsumeStreamSendsRecordsBeforeCorruptOne(t *testing.T) {
	cfg := Config{NodeName: "node-0", GossipProfile: "test", DataDir: t.TempDir(), SegmentBytes: 1024, DivergenceCheckInterval: -1}
	nd := startNode(t, cfg, true)
	ctx := ctxT(t, 30*time.Second)
	c := newClient(t, TransportConnect, nd.Addr())
	for i := range 40 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(fmt.Sprintf("record-%d", i))}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	nd.shutdown(t)
	flipSealedRecord(t, cfg.DataDir, "record-5")
	nd = startNode(t, cfg, true)
	c = newClient(t, TransportConnect, nd.Addr())
	st, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{MaxBatch: 100}) // as the SDK asks
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []string
	for {
		res, err := st.Receive()
		if err != nil {
			if transport.CodeOf(err) != transport.DataLoss {
				t.Fatalf("stream ended with %v, want DATA_LOSS", err)
			}
			break
		}
		for _, r := range res.GetRecords() {
			got = append(got, string(r.GetValue()))
		}
		if r := res.GetRecord(); r != nil && len(res.GetRecords()) == 0 {
			got = append(got, string(r.GetValue()))
		}
	}
	want := []string{"record-0", "record-1", "record-2", "record-3", "record-4"}
	if !slices.Equal(got, want) {
		t.Fatalf("records before DATA_LOSS: %q, want %q", got, want)
	}
	// The only server raises no divergence alarm for it (it has no peer to be repaired from):
	// its other records are still served.
	if rec, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 6}); err != nil || string(rec.GetRecord().GetValue()) != "record-6" {
		t.Fatalf("Consume(6) on the only server after it read a corrupt record: %v, %v; want record-6", rec, err)
	}
}
