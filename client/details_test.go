package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// TestNotProposedWriteIsRetried: a write the leader refused before proposing it (the
// NotProposed detail: leadership transfer, stopping) is retried after a backoff and appended
// once, although its code alone (Unavailable) would mean "outcome unknown".
func TestNotProposedWriteIsRetried(t *testing.T) {
	refusals := []struct {
		name string
		err  error
	}{
		{"not proposed", transport.Errorf(transport.Unavailable, "consensus: no leader: leadership transfer in progress").WithNotProposed("leadership transfer in progress")},
		{"no leader known", transport.Errorf(transport.Unavailable, "consensus: no leader").WithNotLeader(transport.NotLeader{}).WithNotProposed("no leader")},
	}
	for _, tr := range transports {
		for _, rf := range refusals {
			t.Run(tr+"/"+rf.name, func(t *testing.T) {
				c := newFakeCluster(t, tr, 3)
				cl := newClient(t, c, nil, client.WithRefreshInterval(0))
				var n atomic.Int32
				c.setFault(func(string, [][]byte) (bool, error) {
					if n.Add(1) <= 2 {
						return false, rf.err
					}
					return true, nil
				})
				off, err := cl.Produce(context.Background(), []byte("x"))
				if err != nil || off != 0 {
					t.Fatalf("Produce = %d, %v; want offset 0 after retries", off, err)
				}
				if got := n.Load(); got != 3 {
					t.Errorf("leader saw %d attempts, want 3 (two refusals, then the write)", got)
				}
				if got := c.values(); len(got) != 1 || got[0] != "x" {
					t.Errorf("log = %q, want [x]: appended exactly once", got)
				}
			})
		}
	}
}

// TestOutcomeUnknownDetailIsNotRetried: the OutcomeUnknown detail alone decides, whatever the
// message says (here text that, without the detail, would mean "never sent").
func TestOutcomeUnknownDetailIsNotRetried(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		c.setFault(func(string, [][]byte) (bool, error) {
			// The message of a forwarded write quotes the transport's own error; only the
			// detail decides, not text that looks like a refused connection.
			return true, transport.Errorf(transport.Unavailable, "forwarded to the leader: dial tcp 127.0.0.1:1: connect: connection refused").
				WithOutcomeUnknown("forwarded to the leader, answer lost")
		})
		_, err := cl.Produce(context.Background(), []byte("x"))
		if !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
		if got := c.nodes[0].called("Produce"); got != 1 {
			t.Errorf("leader saw %d produces, want 1: an unknown outcome is never retried", got)
		}
	})
}
