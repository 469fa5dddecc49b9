package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

func TestLeaderDiscoveryFromFollowerSeed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		// Seed with a follower only: the client must learn the leader.
		cl := newClient(t, c, []string{c.nodes[2].addr})
		if got, want := cl.Leader(), c.nodes[0].addr; got != want {
			t.Fatalf("Leader() = %q, want %q", got, want)
		}
		for i := range 3 {
			off, err := cl.Produce(context.Background(), []byte{byte(i)})
			if err != nil {
				t.Fatalf("Produce: %v", err)
			}
			if off != uint64(i) {
				t.Fatalf("offset = %d, want %d", off, i)
			}
		}
		if got := c.nodes[0].called("Produce"); got != 3 {
			t.Errorf("leader saw %d produces, want 3", got)
		}
		for _, nd := range c.nodes[1:] {
			if got := nd.called("Produce"); got != 0 {
				t.Errorf("%s saw %d produces, want 0 (writes go straight to the leader)", nd.id, got)
			}
		}
	})
}

func TestFollowsNotLeaderAtOnce(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		if _, err := cl.Produce(context.Background(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		c.setLeader(1)
		refreshes := c.nodes[0].called("GetServers") + c.nodes[2].called("GetServers")
		checks := c.nodes[1].called("GetServers")
		off, err := cl.Produce(context.Background(), []byte("b"))
		if err != nil {
			t.Fatalf("Produce after leader change: %v", err)
		}
		if off != 1 {
			t.Fatalf("offset = %d, want 1", off)
		}
		if got := c.nodes[0].called("Produce"); got != 2 {
			t.Errorf("old leader saw %d produces, want 2 (one accepted, one redirected)", got)
		}
		if got := c.nodes[1].called("Produce"); got != 1 {
			t.Errorf("new leader saw %d produces, want 1", got)
		}
		// No refresh round: only the new leader is asked, once, which cluster it
		// belongs to (the first request on a connection checks it).
		after := c.nodes[0].called("GetServers") + c.nodes[2].called("GetServers")
		if after != refreshes {
			t.Errorf("redirect cost %d GetServers calls on other servers, want 0: the detail names the leader", after-refreshes)
		}
		if got := c.nodes[1].called("GetServers") - checks; got > 1 {
			t.Errorf("redirect cost %d GetServers calls on the new leader, want at most its cluster check", got)
		}
		if got, want := cl.Leader(), c.nodes[1].addr; got != want {
			t.Errorf("Leader() = %q, want %q", got, want)
		}
		if got := c.values(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("log = %q, want [a b]", got)
		}
	})
}

func TestFailoverToNewLeaderAfterLeaderStops(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		if _, err := cl.Produce(context.Background(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		// The leader dies; node 2 wins the election.
		c.nodes[0].stop()
		c.setLeader(2)
		off, err := cl.Produce(context.Background(), []byte("b"))
		if err != nil {
			t.Fatalf("Produce after failover: %v", err)
		}
		if off != 1 {
			t.Errorf("offset = %d, want 1", off)
		}
		if got, want := cl.Leader(), c.nodes[2].addr; got != want {
			t.Errorf("Leader() = %q, want %q", got, want)
		}
		if got := c.values(); len(got) != 2 {
			t.Errorf("log = %q, want 2 records, no duplicate", got)
		}
	})
}

func TestRetriesWhileNoLeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithMaxRetries(1000))
		c.setLeader(-1) // election under way
		type result struct {
			off uint64
			err error
		}
		done := make(chan result, 1)
		go func() {
			off, err := cl.Produce(context.Background(), []byte("x"))
			done <- result{off, err}
		}()
		// Wait until the client was refused and has asked the cluster
		// for a leader again a few times, then end the election.
		asks := func() int64 {
			return c.nodes[0].called("GetServers") + c.nodes[1].called("GetServers") + c.nodes[2].called("GetServers")
		}
		before := asks()
		eventually(t, "refused produce and refreshes", func() bool {
			return c.nodes[0].called("Produce") >= 1 && asks() >= before+6
		})
		c.setLeader(1)
		r := <-done
		if r.err != nil {
			t.Fatalf("Produce: %v", r.err)
		}
		if got := c.values(); len(got) != 1 || got[0] != "x" {
			t.Errorf("log = %q, want [x] exactly once", got)
		}
	})
}

func TestRetryBudgetExhausted(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithMaxRetries(3))
		c.setLeader(-1)
		_, err := cl.Produce(context.Background(), []byte("x"))
		if !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("Produce with no leader: err = %v, want ErrUnavailable", err)
		}
		if errors.Is(err, client.ErrOutcomeUnknown) {
			t.Errorf("a refused write must not be reported as outcome unknown: %v", err)
		}
		if n := len(c.values()); n != 0 {
			t.Errorf("log has %d records, want 0", n)
		}
	})
}

func TestWriteOutcomeUnknownIsNotRetried(t *testing.T) {
	tests := []struct {
		name  string
		apply bool
		err   error
	}{
		{"leadership lost after proposing", true, transport.Errorf(transport.Unavailable, "leadership lost while committing: the write may have happened")},
		{"timeout after proposing", false, transport.Errorf(transport.DeadlineExceeded, "commit timed out")},
		{"unavailable without detail", true, transport.Errorf(transport.Unavailable, "shutting down")},
		{"internal error", true, transport.Errorf(transport.Internal, "apply failed")},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				c := newFakeCluster(t, tr, 3)
				cl := newClient(t, c, nil, client.WithRefreshInterval(0))
				c.setFault(func(string, [][]byte) (bool, error) { return tt.apply, tt.err })
				_, err := cl.Produce(context.Background(), []byte("x"))
				if !errors.Is(err, client.ErrOutcomeUnknown) {
					t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
				}
				if got := transport.CodeOf(err); got != transport.CodeOf(tt.err) {
					t.Errorf("CodeOf(err) = %v, want the server's %v", got, transport.CodeOf(tt.err))
				}
				if got := c.nodes[0].called("Produce"); got != 1 {
					t.Errorf("leader saw %d produces, want 1: an unknown outcome is never retried", got)
				}
				_, err = cl.ProduceBatch(context.Background(), []byte("y"), []byte("z"))
				if !errors.Is(err, client.ErrOutcomeUnknown) {
					t.Fatalf("ProduceBatch err = %v, want ErrOutcomeUnknown", err)
				}
				if got := c.nodes[0].called("ProduceBatch"); got != 1 {
					t.Errorf("leader saw %d batches, want 1", got)
				}
			})
		}
	}
}

func TestFatalErrorsAreReturnedAsIs(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		c.setFault(func(string, [][]byte) (bool, error) {
			return false, transport.Errorf(transport.PermissionDenied, "nobody may produce")
		})
		_, err := cl.Produce(context.Background(), []byte("x"))
		if got := transport.CodeOf(err); got != transport.PermissionDenied {
			t.Fatalf("CodeOf(err) = %v (%v), want permission_denied", got, err)
		}
		if errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrUnavailable) {
			t.Errorf("err = %v: a refusal by policy is neither unknown nor unavailable", err)
		}
		if got := c.nodes[0].called("Produce"); got != 1 {
			t.Errorf("leader saw %d produces, want 1", got)
		}
	})
}

func TestCanceledWriteIsOutcomeUnknown(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		entered := make(chan struct{})
		release := make(chan struct{})
		c.setFault(func(string, [][]byte) (bool, error) {
			close(entered)
			<-release
			return true, nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := cl.Produce(ctx, []byte("x"))
			errc <- err
		}()
		<-entered
		cancel()
		err := <-errc
		close(release)
		if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown and context.Canceled", err)
		}
	})
}

func TestPeriodicRefreshLearnsNewLeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(5*time.Millisecond))
		c.setLeader(2)
		eventually(t, "client to learn the new leader", func() bool { return cl.Leader() == c.nodes[2].addr })
	})
}

func TestClientsKeepTheirOwnLeader(t *testing.T) {
	// Two clusters, two clients: leader knowledge never leaks between them
	// (the seed's global resolver mixed clusters).
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newFakeCluster(t, tr, 3)
			b := newFakeCluster(t, tr, 3)
			b.setLeader(1)
			ca := newClient(t, a, nil, client.WithRefreshInterval(0))
			cb := newClient(t, b, nil, client.WithRefreshInterval(0))
			if _, err := ca.Produce(context.Background(), []byte("to a")); err != nil {
				t.Fatal(err)
			}
			if _, err := cb.Produce(context.Background(), []byte("to b")); err != nil {
				t.Fatal(err)
			}
			if got := a.values(); len(got) != 1 || got[0] != "to a" {
				t.Errorf("cluster a log = %q", got)
			}
			if got := b.values(); len(got) != 1 || got[0] != "to b" {
				t.Errorf("cluster b log = %q", got)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := client.New(ctx, nil); !errors.Is(err, client.ErrNoAddresses) {
		t.Errorf("New(nil) err = %v, want ErrNoAddresses", err)
	}
	for _, tr := range transports {
		// Refused before any attempt: a malformed address was retried for the whole budget.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := client.New(ctx, []string{"127.0.0.1:1", "nonsense"}, client.WithTransport(tr),
			client.WithBackoff(time.Hour, time.Hour))
		cancel()
		if !errors.Is(err, client.ErrInvalidAddress) || !strings.Contains(err.Error(), `"nonsense"`) {
			t.Errorf("%s: New with address nonsense: err = %v, want ErrInvalidAddress naming it", tr, err)
		}
		// A port out of range or not a number was retried too (9 s from the CLI), then called
		// the cluster unavailable.
		for _, addr := range []string{"127.0.0.1:99999", "127.0.0.1:abc", "127.0.0.1:0"} {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := client.New(ctx, []string{addr}, client.WithTransport(tr), client.WithBackoff(time.Hour, time.Hour))
			cancel()
			if !errors.Is(err, client.ErrInvalidAddress) || !strings.Contains(err.Error(), addr) {
				t.Errorf("%s: New with address %s: err = %v, want ErrInvalidAddress naming it", tr, addr, err)
			}
		}
	}
	if _, err := client.New(ctx, []string{"127.0.0.1:1"}, client.WithTransport("smoke-signals")); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("unknown transport: err = %v, want ErrInvalidOption", err)
	}
	if _, err := client.New(ctx, []string{"127.0.0.1:1"}, client.WithMaxRetries(-1)); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("negative retries: err = %v, want ErrInvalidOption", err)
	}
	for _, tr := range transports {
		// Nothing listens on a port we just closed.
		_, err := client.New(ctx, []string{closedAddr(t)}, client.WithTransport(tr), client.WithMaxRetries(1), client.WithBackoff(time.Millisecond, time.Millisecond))
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("%s: New against a dead address: err = %v, want ErrUnavailable", tr, err)
		}
		// Until the context ends: its error too, and "cluster unavailable" said once.
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err = client.New(ctx, []string{closedAddr(t)}, client.WithTransport(tr), client.WithMaxRetries(1000), client.WithBackoff(20*time.Millisecond, 20*time.Millisecond))
		cancel()
		if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || strings.Count(err.Error(), client.ErrUnavailable.Error()) != 1 {
			t.Errorf("%s: New against a dead address until the deadline: err = %v, want ErrUnavailable and DeadlineExceeded, said once", tr, err)
		}
	}
}

func TestCloseIsIdempotentAndFailsCalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl, err := client.New(context.Background(), c.addrs(), client.WithTransport(c.transport))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := cl.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := cl.Produce(context.Background(), []byte("x")); !errors.Is(err, client.ErrClosed) {
			t.Errorf("Produce after Close: err = %v, want ErrClosed", err)
		}
		if _, err := cl.Consume(context.Background(), 0); !errors.Is(err, client.ErrClosed) {
			t.Errorf("Consume after Close: err = %v, want ErrClosed", err)
		}
	})
}

func TestWriteWithEndedContextIsNotSent(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := cl.Produce(ctx, []byte("x"))
		if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want context.Canceled and not outcome unknown", err)
		}
		if got := c.nodes[0].called("Produce"); got != 0 {
			t.Errorf("leader saw %d produces, want 0", got)
		}
	})
}

// TestNewRefusedCallerIsReturned: a server that refuses the caller (PermissionDenied,
// Unauthenticated) answers every retry the same: New returns its refusal at once, not
// "cluster unavailable" after the whole retry budget, and Servers likewise.
func TestNewRefusedCallerIsReturned(t *testing.T) {
	for _, code := range []transport.Code{transport.PermissionDenied, transport.Unauthenticated} {
		forEachTransport(t, func(t *testing.T, c *fakeCluster) {
			var refusal error = transport.Errorf(code, "subject \"nobody\" may not list the servers")
			for _, nd := range c.nodes {
				nd.denied.Store(&refusal)
			}
			_, err := client.New(context.Background(), c.addrs(), client.WithTransport(c.transport), client.WithMaxRetries(5),
				client.WithBackoff(time.Millisecond, time.Millisecond))
			if transport.CodeOf(err) != code || errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("New refused by every server: %v, want %v, not ErrUnavailable", err, code)
			}
			for _, nd := range c.nodes {
				if n := nd.called("GetServers"); n != 1 {
					t.Fatalf("%s asked %d times, want once", nd.id, n)
				}
			}
			// Refused once the client runs: Servers returns the refusal.
			for _, nd := range c.nodes {
				nd.denied.Store(nil)
			}
			cl, err := client.New(context.Background(), c.addrs(), client.WithTransport(c.transport), client.WithMaxRetries(5),
				client.WithBackoff(time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for _, nd := range c.nodes {
				nd.denied.Store(&refusal)
			}
			if _, err := cl.Servers(context.Background()); transport.CodeOf(err) != code {
				t.Fatalf("Servers refused by every server: %v, want %v", err, code)
			}
		})
	}
}

// TestDefaultRetriesOutlastAnElection: with the default retry budget and backoff, a write rides
// out an election of 4 s (a leader killed: ~1 s until its followers give up on it, then the
// election, longer on a loaded machine; an audit measured 3.6 s from kill -9 to a new leader).
// The old budget, 8 retries, ran out after 1.8–3.6 s of backoff and answered ErrUnavailable
// ("no leader known") to writes whose caller would have waited.
func TestDefaultRetriesOutlastAnElection(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl, err := client.New(context.Background(), c.addrs(), client.WithTransport(c.transport), client.WithRefreshInterval(0))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer cl.Close()
		c.setLeader(-1)
		elected := time.AfterFunc(4*time.Second, func() { c.setLeader(2) })
		defer elected.Stop()
		if _, err := cl.Produce(context.Background(), []byte("x")); err != nil {
			t.Fatalf("Produce across a 4 s election with the default retries: %v", err)
		}
		if got := c.values(); len(got) != 1 || got[0] != "x" {
			t.Errorf("log = %q, want [x] exactly once", got)
		}
	})
}
