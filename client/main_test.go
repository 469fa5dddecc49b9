package client_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client of c over c's transport, closed by t.Cleanup.
func newClient(t *testing.T, c *fakeCluster, seeds []string, opts ...client.Option) *client.Client {
	t.Helper()
	if seeds == nil {
		seeds = c.addrs()
	}
	opts = append([]client.Option{client.WithTransport(c.transport), client.WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	cl, err := client.New(context.Background(), seeds, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return cl
}

// forEachTransport runs f as a subtest per transport, each with its own
// 3-node fake cluster.
func forEachTransport(t *testing.T, f func(t *testing.T, c *fakeCluster)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f(t, newFakeCluster(t, tr, 3))
		})
	}
}
