package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestStreamPartitionEndsWhenTopicRecreatedWhileReconnecting: an SDK stream of a topic that
// is deleted and created again under its name while the stream reconnects (its server
// stopped) ends with ErrUnknownTopic. It used to resume in the new topic at the old topic's
// next offset: the reader got new-3, new-4 after old-0..old-2, as if one log, and never saw
// new-0..new-2. (An open stream already ended when its topic was deleted.)
func TestStreamPartitionEndsWhenTopicRecreatedWhileReconnecting(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	var addrs []string
	for _, nd := range nodes {
		addrs = append(addrs, nd.Addr())
	}
	cl, err := client.New(ctx, addrs) // reads go to the leader
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := cl.ProduceRecords(ctx, "t", 0, client.Record{Value: fmt.Appendf(nil, "old-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 16)
	gate := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for rec, err := range cl.StreamPartition(ctx, "t", 0, 0) {
			if err != nil {
				done <- err
				return
			}
			got <- fmt.Sprintf("%d:%s", rec.Offset, rec.Value)
			if rec.Offset == 2 {
				<-gate // the stream is not read while its server stops and the topic changes
			}
		}
		done <- nil
	}()
	for i := range 3 {
		if s := <-got; s != fmt.Sprintf("%d:old-%d", i, i) {
			t.Fatalf("record %d: %s", i, s)
		}
	}
	leader.shutdown(t)
	var rest []string
	for _, nd := range nodes {
		if nd != leader {
			rest = append(rest, nd.Addr())
		}
	}
	admin, err := client.New(ctx, rest)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := admin.ProduceRecords(ctx, "t", 0, client.Record{Value: fmt.Appendf(nil, "new-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	select {
	case s := <-got:
		t.Fatalf("the stream of the deleted topic went on in the new one: %s", s)
	case err := <-done:
		if !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("the stream ended with %v, want ErrUnknownTopic", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the stream neither ended nor yielded within 60 s")
	}
}

// TestReadNamingTopicIDUnconfirmedIsUnavailable: a read naming a topic ID that this node's topic
// of that name does not have, on a node that cannot catch up with the leader to tell (cut off
// from it), is Unavailable: the node may only lag the topic's creation, and a NotFound would
// end a reader's stream of a topic that exists. Another replica, or a later try, can tell.
func TestReadNamingTopicIDUnconfirmedIsUnavailable(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	svc := cutOffFollower(ctx, t, "t")
	other := fsm.TopicID{1}.String()
	_, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", TopicId: other})
	if transport.CodeOf(err) != transport.Unavailable {
		t.Fatalf("Consume naming another topic ID on a node cut off from its leader: %v (code %v), want Unavailable", err, transport.CodeOf(err))
	}
}
