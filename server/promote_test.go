package server

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
)

// promoteNode is a consensus.Consensus leading a cluster at commit index commit; it records
// the voters added. Any other method panics (nil embedded interface).
type promoteNode struct {
	consensus.Consensus
	commit uint64
	voters []string
}

func (n *promoteNode) Status() consensus.Status { return consensus.Status{CommitIndex: n.commit} }

func (n *promoteNode) AddVoter(_ context.Context, id, _ string) error {
	n.voters = append(n.voters, id)
	return nil
}

// TestPromoteWaitsForAnAppliedEntry: a non-voter that has applied nothing is not promoted,
// even where the log is shorter than promoteLag (a cluster forming). It was: the leader's
// quorum then waited on a server with no log and no configuration, and under load the cluster
// lost its leader and never formed (TestClusterRemove*'s "never showed 3 voters").
func TestPromoteWaitsForAnAppliedEntry(t *testing.T) {
	for _, tc := range []struct {
		applied, commit uint64
		promoted        bool
	}{
		{applied: 0, commit: 4, promoted: false},
		{applied: 3, commit: 4, promoted: true},
		{applied: 10, commit: 10 + promoteLag + 1, promoted: false},
		{applied: 10, commit: 10 + promoteLag, promoted: true},
	} {
		node := &promoteNode{commit: tc.commit}
		r := newReconciler(reconcilerConfig{node: node, bounds: func(context.Context, string) (uint64, error) { return tc.applied, nil }})
		m := discovery.Member{Name: "n1", Status: discovery.StatusAlive, Tags: map[string]string{tagRaftAddr: "127.0.0.1:1", tagRPCAddr: "127.0.0.1:1"}}
		if err := r.promote(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if got := len(node.voters) == 1; got != tc.promoted {
			t.Errorf("applied %d, commit %d: promoted %v, want %v", tc.applied, tc.commit, got, tc.promoted)
		}
	}
}
