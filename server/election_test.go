package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestProduceRightAfterElection: as soon as GetServers (asked of a survivor, as curl would)
// names a new leader, a Produce sent to that leader, and one sent to the other survivor, are
// appended, whether the old leader stopped gracefully (leadership transfer) or crashed.
func TestProduceRightAfterElection(t *testing.T) {
	for _, graceful := range []bool{true, false} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			nodes := startCluster(t, 3)
			ctx := ctxT(t, 90*time.Second)
			old := leaderOf(t, nodes)
			var rest []*testServer
			for _, nd := range nodes {
				if nd != old {
					rest = append(rest, nd)
				}
			}
			watcher := newClient(t, TransportConnect, rest[0].Addr())
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				if graceful {
					old.stopOnce.Do(func() { old.stop(); <-old.done })
				} else {
					old.stopOnce.Do(func() { _ = old.Close(); old.stop(); <-old.done })
				}
			}()
			t.Cleanup(func() { <-stopped })
			var leaderAddr string
			waitFor(t, 30*time.Second, "a survivor names a new leader", func() bool {
				actx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				res, err := watcher.GetServers(actx, &logv1.GetServersRequest{})
				if err != nil {
					return false
				}
				for _, s := range res.GetServers() {
					if s.GetIsLeader() && s.GetId() != old.ID() {
						leaderAddr = s.GetRpcAddr()
						return true
					}
				}
				return false
			})
			targets := []string{leaderAddr}
			for _, nd := range rest {
				if nd.Addr() != leaderAddr {
					targets = append(targets, nd.Addr())
				}
			}
			for i, addr := range targets {
				c := newClient(t, TransportConnect, addr)
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := c.Produce(pctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(fmt.Sprintf("after-%d", i))}})
				cancel()
				if err != nil {
					t.Fatalf("Produce to %s right after the election: %v", addr, err)
				}
			}
		})
	}
}

// TestProduceDuringLeadershipTransfer: while the leader hands leadership over (as a graceful
// stop does), GetServers on it still names it leader, and raft refuses new entries there
// ("leadership transfer in progress"). Produces sent to it during and right after the transfer
// must still be appended: the server waits for the new leader and forwards, instead of
// answering "no leader".
func TestProduceDuringLeadershipTransfer(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	old := leaderOf(t, nodes)
	stop := make(chan struct{})
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for w := range 4 {
		c := newClient(t, TransportConnect, old.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := c.Produce(pctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "w%d-%d", w, i)}})
				cancel()
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // writes in flight before the transfer starts
	if err := old.node.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // and right after it
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Produce to the old leader during a leadership transfer: %v", err)
	}
}

// TestTransferLeadershipRefusals: a transfer to an ID not in the configuration is the caller's
// mistake (InvalidArgument), and a transfer hashicorp/raft refuses or gives up on (one already
// in progress, a target not elected in time) is FailedPrecondition: neither is a server fault,
// which the SDK would report as an unknown outcome.
func TestTransferLeadershipRefusals(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 30*time.Second)
	leader := leaderOf(t, nodes)
	c := newClient(t, TransportConnect, leader.Addr())
	if _, err := c.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: "nobody"}); transport.CodeOf(err) != transport.InvalidArgument {
		t.Fatalf("transfer to an unknown ID: %v, want InvalidArgument", err)
	}
	sdk, err := client.New(ctx, []string{leader.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if _, err := sdk.TransferLeadership(ctx, "nobody"); err == nil || errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("SDK transfer to an unknown ID: %v, want the server's refusal", err)
	}
	for _, tc := range []struct {
		err  error
		want transport.Code
	}{
		{errors.New("consensus/raft: leadership transfer timeout"), transport.FailedPrecondition},
		{fmt.Errorf("consensus/raft: transfer leadership: %w", errors.New("leadership transfer in progress")), transport.FailedPrecondition},
		{fmt.Errorf("consensus/raft: transfer leadership: %w: %q", craft.ErrUnknownServer, "x"), transport.InvalidArgument},
		{consensus.ErrNoLeader, transport.Unavailable},
		{context.DeadlineExceeded, transport.DeadlineExceeded},
	} {
		if got := transport.CodeOf(transferError(tc.err)); got != tc.want {
			t.Errorf("transferError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestTransferLeadershipToNonvoter: leadership can go only to a voter. A transfer to a
// non-voter was sent on anyway: its vote requests, refused, still deposed the leader, another
// voter was elected, and the call answered success with no leader ("leader is now "). It is
// refused now, FailedPrecondition (a joining server is promoted once caught up), and the
// leader keeps leading in its term.
func TestTransferLeadershipToNonvoter(t *testing.T) {
	nodes := startCluster(t, 2)
	leader := leaderOf(t, nodes)
	ctx := ctxT(t, 60*time.Second)
	// Outside the others' gossip, so that no reconciler promotes it: it stays a non-voter.
	nv := startNode(t, Config{NodeName: "node-9", Membership: staticMembership(), StartJoinAddrs: []string{"unused"}}, false)
	if err := leader.node.AddNonvoter(ctx, nv.ID(), nv.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the non-voter has the leader's log", func() bool {
		return nv.node.ClusterID() == leader.node.ClusterID() && nv.node.Status().AppliedIndex >= leader.node.Status().CommitIndex
	})
	term := leader.node.Status().Term
	c := newClient(t, TransportConnect, leader.Addr())
	if res, err := c.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: nv.ID()}); transport.CodeOf(err) != transport.FailedPrecondition {
		t.Fatalf("transfer to a non-voter: %v, %v; want FailedPrecondition", res, err)
	}
	sdk, err := client.New(ctx, []string{leader.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if _, err := sdk.TransferLeadership(ctx, nv.ID()); err == nil || errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("SDK transfer to a non-voter: %v, want the server's refusal", err)
	}
	if st := leader.node.Status(); !leader.node.IsLeader() || st.Term != term {
		t.Fatalf("after the refused transfers %s is %s in term %d; it led in term %d", leader.ID(), st.State, st.Term, term)
	}
}
