package server

import (
	"context"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// lagFixture fills topic "lag" (2 partitions: 10 records in 0, 4 in 1) and commits group a's
// offsets 3 in partition 0 (lag 7) and 1 in partition 1 (lag 3), group b's 9 in partition 0
// (lag 1).
func lagFixture(t *testing.T, ctx context.Context, c transport.Client) {
	t.Helper()
	createTopicT(t, ctx, c, "lag", 2)
	for p, n := range []int{10, 4} {
		var recs []*logv1.Record
		for range n {
			recs = append(recs, &logv1.Record{Value: []byte("x")})
		}
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "lag", Partition: uint32(p), Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	gc := groupsClient(t, c)
	for group, offs := range map[string][]*logv1.OffsetToCommit{
		"a": {{Topic: "lag", Partition: 0, Offset: 3}, {Topic: "lag", Partition: 1, Offset: 1}},
		"b": {{Topic: "lag", Partition: 0, Offset: 9}},
	} {
		if _, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: group, Offsets: offs}); err != nil {
			t.Fatal(err)
		}
	}
}

func wantGroupLag(t *testing.T, addr string, labels map[string]string, want float64) {
	t.Helper()
	m, err := telemetrytest.Find(telemetrytest.Scrape(t, addr), "commitlog_group_lag", labels)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetGauge().GetValue(); got != want {
		t.Errorf("commitlog_group_lag%v = %v, want %v", labels, got, want)
	}
}

func lagLabels(group, topic, partition string) map[string]string {
	return map[string]string{"group": group, "topic": topic, "partition": partition}
}

// TestGroupLagMetric: the leader reports each group's lag in each partition it committed an
// offset in (next offset − committed offset); a follower, whose state machine holds the same
// offsets, reports none.
func TestGroupLagMetric(t *testing.T) {
	nodes := startClusterWith(t, 2, func(_ int, cfg *Config) { cfg.MetricsAddr = "127.0.0.1:0" })
	ctx := ctxT(t, 60*time.Second)
	leader := leaderOf(t, nodes)
	lagFixture(t, ctx, newClient(t, TransportConnect, leader.Addr()))

	wantGroupLag(t, leader.MetricsAddr(), lagLabels("a", "lag", "0"), 7)
	wantGroupLag(t, leader.MetricsAddr(), lagLabels("a", "lag", "1"), 3)
	wantGroupLag(t, leader.MetricsAddr(), lagLabels("b", "lag", "0"), 1)
	if m, err := telemetrytest.Find(telemetrytest.Scrape(t, leader.MetricsAddr()), "commitlog_group_lag", lagLabels("other", "other", "other")); err == nil {
		t.Errorf("under the cap, an other series: %v", m)
	}

	for _, nd := range nodes {
		if nd == leader {
			continue
		}
		waitFor(t, 30*time.Second, "the follower applies the commits", func() bool {
			offs, _ := nd.sm.GroupOffsets("b")
			return len(offs) == 1
		})
		if m, err := telemetrytest.Find(telemetrytest.Scrape(t, nd.MetricsAddr()), "commitlog_group_lag", nil); err == nil {
			t.Errorf("a follower reports group lag: %v", m)
		}
	}
}

// TestGroupLagMetricCap: with --metrics-max-partition-series 1, the first (group, topic,
// partition) has a series of its own and the others' lags are summed under "other".
func TestGroupLagMetricCap(t *testing.T) {
	srv := startServer(t, Config{MetricsAddr: "127.0.0.1:0", MetricsMaxPartitionSeries: 1})
	ctx := ctxT(t, 60*time.Second)
	lagFixture(t, ctx, newClient(t, TransportConnect, srv.Addr()))

	wantGroupLag(t, srv.MetricsAddr(), lagLabels("a", "lag", "0"), 7)
	wantGroupLag(t, srv.MetricsAddr(), lagLabels("other", "other", "other"), 3+1)
	for _, l := range []map[string]string{lagLabels("a", "lag", "1"), lagLabels("b", "lag", "0")} {
		if m, err := telemetrytest.Find(telemetrytest.Scrape(t, srv.MetricsAddr()), "commitlog_group_lag", l); err == nil {
			t.Errorf("beyond the cap, a series of its own: %v", m)
		}
	}
}
