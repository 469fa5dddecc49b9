package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// TestRefusesServerOfAnotherCluster: the client remembers the cluster it first reached and
// never sends a request to a server of another one (say, a node whose data dir was lost and
// that founded a cluster of its own at the old address): the call fails with a
// *ClusterMismatchError naming both clusters.
func TestRefusesServerOfAnotherCluster(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithMaxRetries(3))
		if got := cl.ClusterID(); got != "fake-cluster" {
			t.Fatalf("ClusterID() = %q, want fake-cluster", got)
		}
		if _, err := cl.Produce(context.Background(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		c.nodes[1].clusterID.Store("another-cluster")
		c.setLeader(1)
		_, err := cl.Produce(context.Background(), []byte("b"))
		if !errors.Is(err, client.ErrClusterMismatch) {
			t.Fatalf("Produce to a leader of another cluster: %v, want ErrClusterMismatch", err)
		}
		mm, ok := errors.AsType[*client.ClusterMismatchError](err)
		if !ok || mm.Want != "fake-cluster" || mm.Got != "another-cluster" || mm.Addr != c.nodes[1].addr {
			t.Fatalf("error %v (%+v), want a ClusterMismatchError for %s", err, mm, c.nodes[1].addr)
		}
		if got := c.nodes[1].called("Produce"); got != 0 {
			t.Errorf("the server of another cluster saw %d produces, want 0", got)
		}
		if got := c.values(); len(got) != 1 {
			t.Errorf("log = %q, want only the first record", got)
		}
	})
}

// TestWithClusterIDRefusesOtherClusters: a client told which cluster to serve refuses a
// cluster with another ID from the start.
func TestWithClusterIDRefusesOtherClusters(t *testing.T) {
	c := newFakeCluster(t, "connect", 3)
	_, err := client.New(context.Background(), c.addrs(), client.WithClusterID("some-other-cluster"),
		client.WithMaxRetries(1))
	if !errors.Is(err, client.ErrClusterMismatch) {
		t.Fatalf("New: %v, want ErrClusterMismatch", err)
	}
	cl := newClient(t, c, nil, client.WithClusterID("fake-cluster"))
	if _, err := cl.Produce(context.Background(), []byte("a")); err != nil {
		t.Fatalf("Produce with the right cluster id: %v", err)
	}
}
