package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestFollowerReadAfterCreateTopic: a topic, or a partition, whose creation the leader
// acknowledged is known to every follower's reads at once: a follower that has not applied it
// yet learns the leader's commit point (ReadIndex) and catches up, rather than answer NotFound
// because its own commit index lags. Consume and ListOffsets, on a new topic and on a partition
// just added.
func TestFollowerReadAfterCreateTopic(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 120*time.Second)
	leader := leaderOf(t, nodes)
	lt := newClient(t, TransportConnect, leader.Addr()).(transport.TopicsClient)
	var followers []transport.Client
	for _, nd := range nodes {
		if nd != leader {
			followers = append(followers, newClient(t, TransportConnect, nd.Addr()))
		}
	}
	check := func(what, topic string, partition uint32) {
		t.Helper()
		for j, fc := range followers {
			res, err := fc.(transport.GroupsClient).ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: topic, Partitions: []uint32{partition}})
			if err != nil || len(res.GetOffsets()) != 1 {
				t.Fatalf("%s: ListOffsets of %s/%d on follower %d: %v, %v", what, topic, partition, j, res, err)
			}
			_, err = fc.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: partition, Offset: 0})
			if transport.CodeOf(err) != transport.OutOfRange {
				t.Fatalf("%s: Consume of %s/%d offset 0 on follower %d: %v, want OutOfRange (empty)", what, topic, partition, j, err)
			}
		}
	}
	for i := range 20 {
		name := fmt.Sprintf("t%d", i)
		if _, err := lt.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		check("created", name, 0)
		// A new topic's partition 1 does not exist: NotFound, after catching up.
		if _, err := followers[0].Consume(ctx, &logv1.ConsumeRequest{Topic: name, Partition: 1}); transport.CodeOf(err) != transport.NotFound {
			t.Fatalf("Consume of %s/1 before it is added: %v, want NotFound", name, err)
		}
		two := uint32(2)
		if _, err := lt.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: name, Partitions: &two}); err != nil {
			t.Fatal(err)
		}
		check("partition added", name, 1)
	}
}
