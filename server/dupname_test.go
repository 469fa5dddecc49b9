package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
)

// TestDuplicateNameIsNeitherReadyNorBootstraps: a second server started under the name of a
// live member (its own data dir, --bootstrap with --start-join-addrs, as a replacement started
// while the old process still runs) is refused by gossip and retries its join. It used to look
// for a cluster for --bootstrap-wait, find none (it sees no member), bootstrap a second cluster
// under the member's name and answer /readyz 200. It must neither bootstrap nor be ready, and
// /readyz must say why.
func TestDuplicateNameIsNeitherReadyNorBootstraps(t *testing.T) {
	holder := startServer(t, Config{NodeName: "n1", GossipProfile: "test"})
	const wait = time.Second
	start := time.Now()
	dup := startNode(t, Config{NodeName: "n1", GossipProfile: "test", MetricsAddr: "127.0.0.1:0",
		StartJoinAddrs: []string{holder.GossipAddr()}, Bootstrap: true, BootstrapWait: wait}, false)

	// Past its bootstrap wait, and a few bootstrap polls after it, it has founded nothing.
	for time.Since(start) < wait+3*time.Second {
		if id := dup.node.ClusterID(); id != "" || dup.node.IsLeader() {
			ready, reason := dup.tel.Ready()
			t.Fatalf("a server whose name a live member holds bootstrapped cluster %q (leads: %v; ready: %v, %q); the member's cluster is %q",
				id, dup.node.IsLeader(), ready, reason, holder.node.ClusterID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, body := telemetrytest.Get(t, dup.MetricsAddr(), "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "another live member holds this node's name") ||
		!strings.Contains(body, holder.GossipAddr()) {
		t.Fatalf("/readyz of the duplicate: %d %q; want 503 naming the name's holder at %s", code, body, holder.GossipAddr())
	}
	if ready, reason := holder.tel.Ready(); !ready {
		t.Fatalf("the name's holder is not ready: %s", reason)
	}
}
