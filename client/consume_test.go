package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// produceN appends n records "v0", "v1", … through cl.
func produceN(t *testing.T, cl *client.Client, n int) {
	t.Helper()
	values := make([][]byte, n)
	for i := range values {
		values[i] = fmt.Appendf(nil, "v%d", i)
	}
	if _, err := cl.ProduceBatch(context.Background(), values...); err != nil {
		t.Fatalf("ProduceBatch: %v", err)
	}
}

func TestConsume(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 3)
		for i := range 3 {
			rec, err := cl.Consume(context.Background(), uint64(i))
			if err != nil {
				t.Fatalf("Consume(%d): %v", i, err)
			}
			if rec.Offset != uint64(i) || string(rec.Value) != fmt.Sprintf("v%d", i) {
				t.Errorf("Consume(%d) = %d %q", i, rec.Offset, rec.Value)
			}
		}
	})
}

func TestConsumeOutOfRange(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRequestTimeout(50*time.Millisecond))
		_, err := cl.Consume(context.Background(), 10)
		if !errors.Is(err, client.ErrOutOfRange) {
			t.Fatalf("err = %v, want ErrOutOfRange", err)
		}
		if got := c.nodes[0].called("Consume"); got != 1 {
			t.Errorf("leader saw %d consumes, want 1: out of range is an answer, not retried", got)
		}
	})
}

func TestConsumeWaitsForRecord(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		got := make(chan error, 1)
		go func() {
			rec, err := cl.Consume(context.Background(), 0)
			if err == nil && string(rec.Value) != "late" {
				err = fmt.Errorf("value %q", rec.Value)
			}
			got <- err
		}()
		eventually(t, "consume to reach the server", func() bool { return c.nodes[0].called("Consume") == 1 })
		if _, err := cl.Produce(context.Background(), []byte("late")); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("Consume: %v", err)
		}
	})
}

func TestReadPolicySpreadsReads(t *testing.T) {
	tests := []struct {
		policy        client.ReadPolicy
		leaderReads   func(n int64) bool
		followerReads func(n int64) bool
	}{
		{client.ReadLeader, func(n int64) bool { return n == 30 }, func(n int64) bool { return n == 0 }},
		{client.ReadFollowers, func(n int64) bool { return n == 0 }, func(n int64) bool { return n == 15 }},
		{client.ReadAny, func(n int64) bool { return n == 10 }, func(n int64) bool { return n == 10 }},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.policy.String(), func(t *testing.T) {
				c := newFakeCluster(t, tr, 3)
				cl := newClient(t, c, nil, client.WithReadPolicy(tt.policy))
				produceN(t, cl, 1)
				for range 30 {
					if _, err := cl.Consume(context.Background(), 0); err != nil {
						t.Fatal(err)
					}
				}
				if n := c.nodes[0].called("Consume"); !tt.leaderReads(n) {
					t.Errorf("leader served %d reads", n)
				}
				for _, nd := range c.nodes[1:] {
					if n := nd.called("Consume"); !tt.followerReads(n) {
						t.Errorf("%s served %d reads", nd.id, n)
					}
				}
			})
		}
	}
}

func TestReadsFailOverToLiveReplica(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithReadPolicy(client.ReadFollowers), client.WithRefreshInterval(0))
		produceN(t, cl, 1)
		c.nodes[1].stop()
		for i := range 10 {
			if _, err := cl.Consume(context.Background(), 0); err != nil {
				t.Fatalf("read %d with a follower down: %v", i, err)
			}
		}
		if n := c.nodes[2].called("Consume"); n < 5 {
			t.Errorf("live follower served %d reads, want ≥ 5", n)
		}
	})
}

// TestReadsSkipDivergedReplica: a replica whose divergence alarm is raised answers every read
// DataLoss, "read from another server"; reads and streams took it as final and failed though
// the other replicas serve the log. They now go on to another replica.
func TestReadsSkipDivergedReplica(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithReadPolicy(client.ReadFollowers), client.WithRefreshInterval(0))
		produceN(t, cl, 3)
		c.nodes[1].diverged.Store(true)
		for i := range 6 {
			if _, err := cl.Consume(context.Background(), 0); err != nil {
				t.Fatalf("read %d with a diverged follower: %v", i, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 3 { // a stream starting at each follower in turn
			n := 0
			for rec, err := range cl.Stream(ctx, 0) {
				if err != nil {
					t.Fatalf("stream %d with a diverged follower: %v", i, err)
				}
				if rec.Offset != uint64(n) {
					t.Fatalf("stream %d yielded offset %d, want %d", i, rec.Offset, n)
				}
				if n++; n == 3 {
					break
				}
			}
		}
		if c.nodes[1].called("Consume") == 0 && c.nodes[1].called("ConsumeStream") == 0 {
			t.Error("the diverged follower was never asked: the test proves nothing")
		}
		// Every replica diverged: the DataLoss is returned once each has refused.
		for _, nd := range c.nodes {
			nd.diverged.Store(true)
		}
		if _, err := cl.Consume(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "diverged") {
			t.Errorf("read with every replica diverged: %v, want the DataLoss", err)
		}
	})
}

// TestDataLossGoesToAnotherServerAtOnce: a server answering DataLoss ("read from another
// server") was retried as an unavailable one: a backoff after each refusal, and with every
// server refusing, the whole retry budget (9 attempts, 3 per server) spent before the
// DataLoss was returned. A read refused DataLoss now goes to another server at once, asks
// each server once, and fails with the DataLoss when every one refused it.
func TestDataLossGoesToAnotherServerAtOnce(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		// A backoff of 2 s: one round of it shows in the timings.
		cl := newClient(t, c, nil, client.WithReadPolicy(client.ReadFollowers), client.WithRefreshInterval(0),
			client.WithBackoff(2*time.Second, 2*time.Second))
		produceN(t, cl, 3)
		c.nodes[1].diverged.Store(true)
		c.nodes[2].diverged.Store(true)
		calls := func(method string) (n int64) {
			for _, nd := range c.nodes {
				n += nd.called(method)
			}
			return n
		}
		// Both followers refuse: the read ends on the leader, without a backoff.
		for i := range 2 {
			start := time.Now()
			if _, err := cl.Consume(context.Background(), 0); err != nil {
				t.Fatalf("read %d with two diverged followers: %v", i, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("read %d with two diverged followers took %v: backed off", i, d)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		for rec, err := range cl.Stream(ctx, 0) {
			if err != nil {
				t.Fatalf("stream with two diverged followers: %v", err)
			}
			if rec.Offset == 2 {
				break
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("stream with two diverged followers took %v to read 3 records: backed off", d)
		}

		// Every server refuses: each is asked once, and the DataLoss comes back at once.
		c.nodes[0].diverged.Store(true)
		checkRefusedAtOnce(t, "read", func() int64 { return calls("Consume") }, func() error {
			_, err := cl.Consume(context.Background(), 0)
			return err
		})
		checkRefusedAtOnce(t, "stream", func() int64 { return calls("ConsumeStream") }, func() error {
			var last error
			n := 0
			for _, err := range cl.Stream(ctx, 0) {
				if n++; n > 1 {
					t.Fatal("stream with every server diverged yielded more than its error")
				}
				last = err
			}
			return last
		})
	})
}

// checkRefusedAtOnce checks what run does (a read, named what) with every one of the three
// servers refusing it DataLoss: it fails with the DataLoss, having asked each server once
// (calls counts the requests so far, of every server), without a backoff (under 1 s).
func checkRefusedAtOnce(t *testing.T, what string, calls func() int64, run func() error) {
	t.Helper()
	before := calls()
	start := time.Now()
	err := run()
	d := time.Since(start)
	if transport.CodeOf(err) != transport.DataLoss {
		t.Errorf("%s with every server diverged: %v, want the DataLoss", what, err)
	}
	if n := calls() - before; n != 3 {
		t.Errorf("%s with every server diverged asked %d times, want 3 (each server once)", what, n)
	}
	if d > time.Second {
		t.Errorf("%s with every server diverged took %v: backed off", what, d)
	}
}

func TestLinearizableReadsGoToLeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithLinearizableReads(), client.WithReadPolicy(client.ReadFollowers), client.WithRefreshInterval(0))
		produceN(t, cl, 1)
		c.setLeader(1)
		// The client still believes node 0 leads: node 0 refuses with
		// NotLeader and the client follows to node 1.
		if _, err := cl.Consume(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		if got := c.nodes[1].called("Consume"); got != 1 {
			t.Errorf("new leader served %d reads, want 1", got)
		}
		if got := c.nodes[2].called("Consume"); got != 0 {
			t.Errorf("follower served %d linearizable reads, want 0", got)
		}
	})
}

func TestBoundsAndServers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		produceN(t, cl, 4)
		b, err := cl.Bounds(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b != (client.Bounds{Lowest: 0, Next: 4, Committed: 4}) {
			t.Errorf("Bounds = %+v", b)
		}
		servers, err := cl.Servers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 3 {
			t.Fatalf("Servers = %+v, want 3", servers)
		}
		for i, s := range servers {
			if s.ID != c.nodes[i].id || s.Addr != c.nodes[i].addr || s.IsLeader != (i == 0) || !s.Voter || !s.Healthy || s.Insecure != (i == 2) {
				t.Errorf("server %d = %+v", i, s)
			}
		}
	})
}

func TestAdmin(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		ctx := context.Background()
		leader, err := cl.TransferLeadership(ctx, "node-2")
		if err != nil {
			t.Fatal(err)
		}
		if leader != "node-2" {
			t.Errorf("new leader = %q, want node-2", leader)
		}
		if _, err := cl.Produce(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := c.nodes[2].called("Produce"); got != 1 {
			t.Errorf("new leader saw %d produces, want 1", got)
		}
		if err := cl.RemoveServer(ctx, "node-1"); err != nil {
			t.Fatal(err)
		}
		servers, err := cl.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 2 {
			t.Errorf("Servers after removal = %+v, want 2", servers)
		}
	})
}

// TestTransferLeadershipNamesNewLeader: the old leader answers a transfer once it has stepped
// down, often before it knows its successor (an empty leader_id); TransferLeadership returned
// that empty id, and callers (the CLI) had to ask the servers themselves. It now asks them, until
// one names a leader other than the old one, bounded by ctx.
func TestTransferLeadershipNamesNewLeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		c.blindTransfer.Store(int64(300 * time.Millisecond))
		leader, err := cl.TransferLeadership(context.Background(), "node-2")
		if err != nil {
			t.Fatal(err)
		}
		if leader != "node-2" {
			t.Errorf("new leader = %q, want node-2 (the old leader did not name it; the servers do once it leads)", leader)
		}

		// The caller's context bounds the wait: leadership did move, so no error, and no id.
		c.blindTransfer.Store(int64(3 * time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		leader, err = cl.TransferLeadership(ctx, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		if leader != "" {
			t.Errorf("new leader = %q before any was elected, want \"\"", leader)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("TransferLeadership took %v, past its context's 200ms", d)
		}
	})
}

// TestTransferLeadershipLeaderChangedMeanwhile: TransferLeadership took the old leader's address
// from the client's idea of the leader once the transfer was answered, but a refresh meanwhile
// (another call's, the background one) may have changed it. Had it learnt the new leader,
// TransferLeadership forgot that one and waited for a leader other than it: none came, and it
// answered "" when its context ended. Had it learnt that none leads yet (the old leader stepped
// down), the old leader's address was unknown, and it answered "" at once, without asking for the
// new one. The old leader is now the server that answered the transfer.
func TestTransferLeadershipLeaderChangedMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		blind time.Duration // until the new leader leads, when the refresh does not find it
		lead  func(c *fakeCluster, to int)
	}{
		{"refresh found the new leader", 3 * time.Second, func(c *fakeCluster, to int) { c.setLeader(to) }},
		{"refresh found no leader", 300 * time.Millisecond, func(c *fakeCluster, _ int) { c.setLeader(-1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, c *fakeCluster) {
				var cl *client.Client
				c.blindTransfer.Store(int64(tc.blind))
				c.transferHook = func(to int) {
					tc.lead(c, to)
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					_, _ = cl.Servers(ctx) // the refresh that changes the client's leader
				}
				cl = newClient(t, c, nil, client.WithRefreshInterval(0))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				leader, err := cl.TransferLeadership(ctx, "node-2")
				if err != nil {
					t.Fatal(err)
				}
				if leader != "node-2" {
					t.Fatalf("new leader = %q, want node-2", leader)
				}
				if _, err := cl.Produce(context.Background(), []byte("x")); err != nil {
					t.Fatal(err)
				}
				if got := c.nodes[2].called("Produce"); got != 1 {
					t.Errorf("new leader saw %d produces, want 1", got)
				}
			})
		})
	}
}

// TestServersAt: ServersAt asks the one server named, once (cluster remove asks the leader,
// the only one that knows which followers answer it); an address nobody serves is an error.
func TestServersAt(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		before := c.nodes[1].called("GetServers")
		servers, err := cl.ServersAt(context.Background(), c.nodes[1].addr)
		if err != nil || len(servers) != 3 || servers[0].ID != c.nodes[0].id || !servers[0].IsLeader {
			t.Fatalf("ServersAt(%s) = %+v, %v; want the 3 servers, node 0 leading", c.nodes[1].addr, servers, err)
		}
		if got := c.nodes[1].called("GetServers") - before; got != 1 {
			t.Errorf("the server asked answered %d GetServers, want 1", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cl.ServersAt(ctx, "127.0.0.1:1"); err == nil {
			t.Error("ServersAt of an address nobody serves: no error")
		}
	})
}

// TestLinearizableReadOnStoppedLeaderSaysWhy: a leader that refuses a linearizable read itself
// (its state machine stopped), while its followers redirect the read to it: the client reports
// the leader's own answer, whatever the retry budget, never the redirect (before, it bounced
// between the leader and its followers, the redirects without a backoff, and ended, for an
// even budget, on "not the leader, leader is node-0 at …", said of the leader itself).
func TestLinearizableReadOnStoppedLeaderSaysWhy(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		for _, retries := range []int{3, 4, 8} {
			cl := newClient(t, c, nil, client.WithLinearizableReads(), client.WithRefreshInterval(0), client.WithMaxRetries(retries))
			produceN(t, cl, 1)
			c.nodes[0].stopped.Store(true)
			_, err := cl.Consume(context.Background(), 0)
			c.nodes[0].stopped.Store(false)
			if errors.Is(err, client.ErrNotLeader) || !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "state machine stopped") {
				t.Fatalf("%d retries: linearizable Consume with a stopped leader: %v; want ErrUnavailable with the leader's own error", retries, err)
			}
		}
	})
}

// TestTransferLeadershipErrorNamesTarget: a failed transfer names the server asked for, and
// none when none was (it said `transfer leadership to ""`).
func TestTransferLeadershipErrorNamesTarget(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for id, want := range map[string]string{"": "transfer leadership: ", "node-2": `transfer leadership to "node-2": `} {
			_, err := cl.TransferLeadership(ctx, id)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("TransferLeadership(%q) with an ended context: %v, want it to begin %q", id, err, want)
			}
		}
	})
}

// TestReadRetriesEndOnAnAnswer: a quorum lost, one server up and knowing no leader, the others
// down. A linearizable read whose retries end on a server that is down reports what the server
// that is up answered (no leader), not the connection the last one refused.
func TestReadRetriesEndOnAnAnswer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithRefreshInterval(0), client.WithLinearizableReads(),
			client.WithMaxRetries(4), client.WithBackoff(time.Millisecond, time.Millisecond))
		c.setLeader(-1)
		c.nodes[1].stop()
		c.nodes[2].stop()
		_, err := cl.Consume(context.Background(), 0)
		if _, noLeader := errors.AsType[*client.NotLeaderError](err); !errors.Is(err, client.ErrUnavailable) || !noLeader {
			t.Fatalf("linearizable Consume, no leader, two servers down: %v; want the answer of the one up (no leader)", err)
		}
	})
}
