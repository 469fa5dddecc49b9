package raft_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
)

// transports runs a test over the in-memory transport and over TCP.
var transports = []struct {
	name string
	tcp  bool
}{{"inmem", false}, {"tcp", true}}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkSameRecords fails unless every listed node applied exactly want, in order, with
// increasing indexes.
func checkSameRecords(t *testing.T, c *consensustest.Cluster, want [][]byte, nodes ...int) {
	t.Helper()
	for _, i := range nodes {
		recs := c.List(i).Records()
		got := make([][]byte, len(recs))
		for k, r := range recs {
			got[k] = r.Data
			if k > 0 && r.Index <= recs[k-1].Index {
				t.Fatalf("node %d: record %d index %d not above %d", i, k, r.Index, recs[k-1].Index)
			}
		}
		if !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("node %d applied %q, want %q", i, got, want)
		}
	}
}

func TestProposeAppliedInOrderOnEveryNode(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: tr.tcp})
			var want [][]byte
			var last uint64
			for k := range 50 {
				cmd := fmt.Appendf(nil, "cmd-%d", k)
				// As a client would: follow a leader change, resolve an unknown outcome.
				res := c.Propose(cmd)
				if res != uint64(k) {
					t.Fatalf("propose %d: result %v, want position %d", k, res, k)
				}
				want = append(want, cmd)
			}
			last = c.List(c.WaitLeader()).Records()[49].Index
			c.WaitApplied(last)
			checkSameRecords(t, c, want, 0, 1, 2)
		})
	}
}

func TestProposeOnFollowerNamesLeader(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	l := c.WaitLeader()
	f := (l + 1) % 3
	_, err := c.Node(f).Propose(ctxT(t), []byte("x"))
	var nle *consensus.NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("propose on follower: %v, want *NotLeaderError", err)
	}
	if nle.Leader.ID != c.ID(l) || nle.Leader.Address != c.Addr(l) {
		t.Fatalf("NotLeaderError names %+v, want %s at %s", nle.Leader, c.ID(l), c.Addr(l))
	}
	if err := c.Node(f).LinearizableRead(ctxT(t)); !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("linearizable read on follower: %v, want ErrNotLeader", err)
	}
	if c.List(f).Len() != 0 {
		t.Fatalf("follower applied %d records after a refused proposal", c.List(f).Len())
	}
}
