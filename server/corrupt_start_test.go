package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
