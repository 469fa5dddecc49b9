package server

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestStoppedNodeElectedLaterHandsLeadershipOver: a follower whose state machine stopped (its
// disk full) keeps a whole Raft log, so it can still be elected. Elected, it must hand
// leadership over as a leader that stops does, rather than lead on refusing every write
// (before, it handed leadership over only if it led when it stopped: on real processes with
// every disk full, a node that stopped as a follower was elected and led for good).
func TestStoppedNodeElectedLaterHandsLeadershipOver(t *testing.T) {
	nodes, stopped := stopFollowerOn(t, errNoSpace)
	waitFor(t, 20*time.Second, "node-2 stops applying", func() bool { return errors.Is(stopped.fsm.Err(), fsm.ErrFailed) })
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	if stopped.node.IsLeader() {
		t.Fatal("node-2 leads already")
	}
	if err := leader.node.TransferLeadership(ctx, "node-2"); err != nil {
		t.Fatalf("TransferLeadership to node-2: %v", err)
	}
	waitFor(t, 10*time.Second, "node-2 leads", stopped.node.IsLeader)
	waitFor(t, 20*time.Second, "node-2 hands leadership over", func() bool { return !stopped.node.IsLeader() })
	// A healthy node leads and takes writes.
	next := leaderOf(t, nodes)
	if next == stopped {
		t.Fatal("node-2 leads again")
	}
	c2 := newClient(t, TransportConnect, next.Addr())
	if _, err := c2.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
		t.Fatalf("Produce on the new leader: %v", err)
	}
}

// TestHandOverDue: a stopped node that leads hands leadership over at once the first time, and
// again at once when it is elected much later; leadership coming back sooner (stopped nodes
// passing it back and forth) is handed over only once the backoff has passed, the backoff
// doubling up to stoppedLeaderMaxWait. (Before, the wait doubled after every hand-over and
// never came back down: a node elected hours later refused writes for up to a minute.)
func TestHandOverDue(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		name        string
		last        time.Time
		now         time.Time
		backoff     time.Duration
		wantDue     bool
		wantBackoff time.Duration
	}{
		{"first", time.Time{}, t0, stoppedLeaderCheck, true, stoppedLeaderCheck},
		{"back within the backoff", t0, t0.Add(500 * time.Millisecond), stoppedLeaderCheck, false, stoppedLeaderCheck},
		{"back after the backoff, within twice it", t0, t0.Add(1500 * time.Millisecond), stoppedLeaderCheck, true, 2 * stoppedLeaderCheck},
		{"ping-pong at the cap", t0, t0.Add(90 * time.Second), stoppedLeaderMaxWait, true, stoppedLeaderMaxWait},
		{"at the cap, back within it", t0, t0.Add(30 * time.Second), stoppedLeaderMaxWait, false, stoppedLeaderMaxWait},
		{"elected again much later", t0, t0.Add(3 * time.Hour), stoppedLeaderMaxWait, true, stoppedLeaderCheck},
	} {
		due, backoff := handOverDue(c.now, c.last, c.backoff)
		if due != c.wantDue || backoff != c.wantBackoff {
			t.Errorf("%s: handOverDue = %v, %v; want %v, %v", c.name, due, backoff, c.wantDue, c.wantBackoff)
		}
	}
}

// TestStoppedLeaderFailedTransferIsRetried: a stopped leader whose leadership transfer fails
// (no other voter, or none reachable) logs the failure and tries again, as often as
// handOverDue lets it: not at every check (a warning a second, for good, on a single node), and
// never giving up. The clock is the test's.
func TestStoppedLeaderFailedTransferIsRetried(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	now := t0
	var logs syncBuffer
	transfers := 0
	h := stoppedLeader{
		transfer: func() error { transfers++; return errors.New("no voter to transfer to") },
		now:      func() time.Time { return now },
		logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	}
	const warning = `level=WARN msg="leadership transfer after the state machine stopped failed" err="no voter to transfer to"`
	for _, c := range []struct {
		at            time.Duration // since t0
		wantTransfers int
	}{
		{0, 1},                       // at once
		{500 * time.Millisecond, 1},  // within the backoff (1 s)
		{1500 * time.Millisecond, 2}, // after it: again, the backoff now 2 s
		{3 * time.Second, 2},         // within it
		{3600 * time.Millisecond, 3}, // after it: again, the backoff now 4 s
		{7 * time.Second, 3},         // within it
		{8 * time.Second, 4},         // after it
	} {
		now = t0.Add(c.at)
		h.leads()
		if transfers != c.wantTransfers {
			t.Fatalf("at %v: %d transfers, want %d", c.at, transfers, c.wantTransfers)
		}
		if got := strings.Count(logs.String(), warning); got != transfers {
			t.Fatalf("at %v: %d failed transfers, %d warnings; want one each:\n%s", c.at, transfers, got, logs.String())
		}
	}
}

// stopFollowerOn starts three servers, node-2's commit log on a crashfs, and has node-2's
// state machine stop: the write that stores the second record fails with err. It returns the
// servers and node-2 (which may not have stopped yet when it returns).
func stopFollowerOn(t *testing.T, err error) (nodes []*testServer, stopped *testServer) {
	t.Helper()
	fs := crashfs.New()
	nodes = startClusterWith(t, 3, func(i int, cfg *Config) {
		if i == 2 {
			cfg.logFS = fs
		}
	})
	ctx := ctxT(t, 90*time.Second)
	c := newClient(t, TransportConnect, leaderOf(t, nodes).Addr())
	produce := func() {
		t.Helper()
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r")}}); err != nil {
			t.Fatal(err)
		}
	}
	produce()
	stopped = nodes[2]
	waitFor(t, 20*time.Second, "node-2 applies the first record", func() bool {
		_, next := stopped.fsm.Bounds()
		return next == 1
	})
	if err := stopped.log.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.FailNext(crashfs.OpWrite, err)
	produce()
	return nodes, stopped
}
