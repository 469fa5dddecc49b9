package fsm

import (
	"context"
	"testing"
)

// racingProposer proposes every command twice: a concurrent identical request that was
// committed just before this one.
type racingProposer struct{ *machineNode }

func (r racingProposer) Propose(ctx context.Context, cmd []byte) (any, error) {
	if _, err := r.machineNode.Propose(ctx, cmd); err != nil {
		return nil, err
	}
	return r.machineNode.Propose(ctx, cmd)
}

// TestCreatePartitionsRacingIdenticalRequest: two identical requests to raise a topic's
// partition count that race (both checked against the old count) both succeed, as a request for
// the count the topic already has does when it comes after the other: the second is not told
// InvalidArgument "partitions can only be added" for a count it asked for and got.
func TestCreatePartitionsRacingIdenticalRequest(t *testing.T) {
	ctx := context.Background()
	n := openMachineNode(t, t.TempDir())
	if _, err := n.m.CreateTopic(ctx, n, "orders", 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	got, err := n.m.CreatePartitions(ctx, racingProposer{n}, "orders", 4)
	if err != nil || got.Partitions != 4 {
		t.Fatalf("CreatePartitions racing an identical request = %+v, %v; want 4 partitions, no error", got, err)
	}
}
