package e2e

import (
	"fmt"
	"net"
	"testing"
)

// TestHarnessPortCollision: a port handed to a node can be taken by another process before the
// node binds it; the harness then starts the node again on fresh ports (and the binary says
// clearly why it could not start).
func TestHarnessPortCollision(t *testing.T) {
	n := NewNode(t, NodeConfig{Name: "collide"})
	taken := n.Addr
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		skipOrFail(t, fmt.Sprintf("could not occupy %s first: %v", taken, err))
	}
	defer ln.Close()
	n.Start()
	n.WaitReady()
	if n.Addr == taken {
		t.Fatalf("node serves on %s, which this test holds", taken)
	}
	if n.starts < 2 {
		t.Fatalf("node started %d times, want a retry on fresh ports", n.starts)
	}
	if code := n.Stop(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}
}
