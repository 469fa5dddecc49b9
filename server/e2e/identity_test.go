package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestWipedNodeDoesNotFoundASecondCluster is issue 11's "two clusters from one" with real
// processes: n1 founds a cluster (with --bootstrap, or with no bootstrap flag at all), n2 and
// n3 join it, n1 is killed and its data dir deleted, and n1 is started again with the very
// same flags. It must not bootstrap a cluster of its own (which would acknowledge writes and
// later clash with the old one): it comes back into the old cluster, under the old cluster
// ID, and the writes it takes are the old cluster's.
func TestWipedNodeDoesNotFoundASecondCluster(t *testing.T) {
	for _, mode := range []struct {
		name      string
		bootstrap bool
	}{{"bootstrap flag", true}, {"no flags", false}} {
		t.Run(mode.name, func(t *testing.T) {
			// Long enough for the old leader's heartbeats (backed off while n1 was down) to reach it.
			args := append([]string{"--bootstrap-wait", "10s"}, clusterArgs...)
			n1 := StartNode(t, NodeConfig{Name: "n1", Bootstrap: mode.bootstrap, Args: args})
			waitLeader(t, n1)
			c := &cluster{t: t, nodes: []*Node{n1}}
			for _, name := range []string{"n2", "n3"} {
				n := NewNode(t, NodeConfig{Name: name, Join: []string{n1.BindAddr}, Args: clusterArgs})
				n.Start()
				c.nodes = append(c.nodes, n)
			}
			for _, n := range c.nodes[1:] {
				n.WaitReady()
			}
			c.waitVoters(3)
			res, err := getServers(c.nodes[1])
			if err != nil {
				t.Fatal(err)
			}
			oldID := res.GetClusterId()
			if oldID == "" {
				t.Fatal("the cluster has no id")
			}
			produce(t, c.nodes[1], "before the wipe")

			t.Log("n1 loses its data dir and restarts with the same flags")
			n1.Kill()
			if err := os.RemoveAll(n1.DataDir()); err != nil {
				t.Fatal(err)
			}
			n1.Start()
			n1.WaitReady()
			deadline := time.Now().Add(readyTimeout)
			for {
				res, err := getServers(n1)
				if err == nil {
					if id := res.GetClusterId(); id != "" && id != oldID {
						t.Fatalf("the wiped n1 is in cluster %s, not the old %s%s", id, oldID, n1.logTail())
					}
					if res.GetClusterId() == oldID && len(res.GetServers()) == 3 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("the wiped n1 did not rejoin cluster %s within %v (last %v, %v)%s", oldID, readyTimeout, res, err, n1.logTail())
				}
				time.Sleep(pollEvery)
			}
			if strings.Contains(n1.runLog(), "bootstrapped a new cluster") {
				t.Fatalf("the wiped n1 bootstrapped a new cluster%s", n1.logTail())
			}
			// What n1 acknowledges now is the old cluster's: n3 serves it at the same offset.
			off := produce(t, n1, "after the wipe")
			tc := c.nodes[2].TransportClient()
			defer tc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := tc.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
			if err != nil || string(got.GetRecord().GetValue()) != "after the wipe" {
				t.Fatalf("n3 at offset %d: %v, %v", off, got, err)
			}
		})
	}
}

// produce writes value through n (retrying while the cluster has no leader) and returns its
// offset.
func produce(t *testing.T, n *Node, value string) uint64 {
	t.Helper()
	tc := n.TransportClient()
	defer tc.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(value)}})
		cancel()
		if err == nil {
			return resp.GetOffset()
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce %q through %s: %v", value, n.Name(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
