package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// TestNewSaysServersAreInNoClusterYet: a new `commitlog serve` with no flags spends its first
// --bootstrap-wait (15 s) looking for an existing cluster and lists no server, not even itself.
// The SDK (and so every CLI command) said only "no leader known by any server", which reads as
// a failure of a cluster; it now says the servers are in no cluster yet and why.
func TestNewSaysServersAreInNoClusterYet(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := newFakeCluster(t, tr, 1)
			c.mu.Lock()
			c.leader = -1
			c.removed[c.nodes[0].id] = true // the configuration lists nobody
			c.mu.Unlock()
			c.nodes[0].clusterID.Store("") // no cluster ID before a bootstrap

			_, err := client.New(t.Context(), c.addrs(), client.WithTransport(tr), client.WithMaxRetries(1))
			if !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("New: %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "in no cluster yet") || !strings.Contains(err.Error(), "--bootstrap-wait") {
				t.Fatalf("New: %q does not say the servers are in no cluster yet", err)
			}
		})
	}
}
