package server

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestReadyzWaitsForLeaderCommit: a server added to a cluster whose leader holds thousands
// of committed entries must not answer /readyz 200 ("a leader is known and this server has
// caught up", chart README; "caught up" is what the StatefulSet's rolling update waits for)
// while it has applied only a fraction of them.
func TestReadyzWaitsForLeaderCommit(t *testing.T) {
	tr := TransportConnect
	leader := startServer(t, Config{NodeName: "leader", Transport: tr, GossipProfile: "test"})
	ctx := ctxT(t, 180*time.Second)
	c := newClient(t, tr, leader.Addr())
	val := bytes.Repeat([]byte("x"), 2048)
	recs := make([]*logv1.Record, 8)
	for i := range recs {
		recs[i] = &logv1.Record{Value: val}
	}
	for i := 0; i < 3000; i++ {
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs}); err != nil {
			t.Fatalf("ProduceBatch %d: %v", i, err)
		}
	}
	want := leader.node.Status().CommitIndex
	t.Logf("leader commit index %d", want)

	lone := startNode(t, Config{
		NodeName: "lone", Transport: tr, GossipProfile: "test", MetricsAddr: "127.0.0.1:0",
		StartJoinAddrs: []string{deadGossipAddr(t)},
	}, false)
	if code, _ := telemetrytest.Get(t, lone.MetricsAddr(), "/readyz"); code == http.StatusOK {
		t.Fatal("ready before joining")
	}
	// Join adds lone as a non-voter and returns once it has caught up and been made a voter:
	// readiness is watched meanwhile.
	joined := make(chan error, 1)
	go func() {
		_, err := c.Join(ctx, &logv1.JoinRequest{Id: lone.ID(), RaftAddr: lone.Addr()})
		joined <- err
	}()
	defer func() {
		if err := <-joined; err != nil {
			t.Errorf("Join: %v", err)
		}
	}()
	// Catching up copies ~50 MB; under the race detector with other packages' tests running it
	// once took more than a minute. A failure says how far it got and why it was not ready.
	deadline := time.Now().Add(120 * time.Second)
	var (
		reason  string
		applied uint64
	)
	for time.Now().Before(deadline) {
		var ready bool
		ready, reason = lone.tel.Ready()
		applied = lone.node.Status().AppliedIndex // read after: only grows
		if ready {
			code, body := telemetrytest.Get(t, lone.MetricsAddr(), "/readyz")
			if applied < want {
				t.Fatalf("lone reported ready (%q; /readyz now %d %q) with applied index %d of the leader's commit index %d",
					reason, code, body, applied, want)
			}
			t.Logf("ready at applied %d of %d", applied, want)
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("never ready: %q, applied index %d of the leader's commit index %d; lone's view: %+v", reason, applied, want, lone.node.Status())
}
