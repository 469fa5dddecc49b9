package server

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestIdempotentRetryNamingTopicIDNeverLandsInRecreatedTopic: an idempotent producer's retry of
// its first batch (sequence 0) to a topic deleted and created again under its name since the
// first attempt, naming the first topic's ID (ProduceBatchRequest.topic_id), is NotFound on the
// leader and on a follower (which forwards it), and nothing is appended to the new topic. The
// retry used to be stored in the new topic and acknowledged as a new batch: the record of a
// deleted topic reappeared in another. Without topic_id the request goes to the topic of that
// name as before, and the producer's first batch there is stored, not taken for a retry of the
// old topic's (its windows are per topic ID).
func TestIdempotentRetryNamingTopicIDNeverLandsInRecreatedTopic(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	lc := newClient(t, TransportConnect, leader.Addr())
	var fc transport.Client
	for _, nd := range nodes {
		if nd != leader {
			fc = newClient(t, TransportGRPC, nd.Addr())
			break
		}
	}
	topics := lc.(transport.TopicsClient)
	created, err := topics.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	oldID := created.GetTopic().GetId()
	pid, err := topics.InitProducer(ctx, &logv1.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ref := &logv1.ProducerRef{Id: pid.GetProducerId(), Epoch: pid.GetEpoch()}
	first := &logv1.ProduceBatchRequest{Topic: "t", Producer: ref, TopicId: oldID, Records: []*logv1.Record{{Value: []byte("old")}}}
	if _, err := lc.ProduceBatch(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := topics.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	recreated, err := topics.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The retry (the answer to the first attempt was lost), on a follower and on the leader.
	for _, c := range []struct {
		name string
		c    transport.Client
	}{{"follower", fc}, {"leader", lc}} {
		resp, err := c.c.ProduceBatch(ctx, first)
		if transport.CodeOf(err) != transport.NotFound {
			t.Errorf("retry naming the deleted topic's ID, on the %s: %+v, %v (code %v); want NotFound", c.name, resp, err, transport.CodeOf(err))
		}
		single := &logv1.ProduceRequest{Topic: "t", TopicId: oldID, Record: &logv1.Record{Value: []byte("old-single")}}
		if resp, err := c.c.Produce(ctx, single); transport.CodeOf(err) != transport.NotFound {
			t.Errorf("Produce naming the deleted topic's ID, on the %s: %+v, %v; want NotFound", c.name, resp, err)
		}
	}
	if _, err := lc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", Offset: 0, Linearizable: true}); transport.CodeOf(err) != transport.OutOfRange {
		t.Errorf("the new topic holds a record after the refused retries: Consume at 0: %v", err)
	}
	// Not a topic ID at all: InvalidArgument (NotFound would say the topic was deleted).
	bad := &logv1.ProduceBatchRequest{Topic: "t", TopicId: "t", Records: []*logv1.Record{{Value: []byte("x")}}}
	if _, err := lc.ProduceBatch(ctx, bad); transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("topic_id not a UUID: %v, want InvalidArgument", err)
	}
	// Naming the new topic's ID, or none, the producer's first batch there is stored.
	next := &logv1.ProduceBatchRequest{Topic: "t", Producer: ref, TopicId: recreated.GetTopic().GetId(), Records: []*logv1.Record{{Value: []byte("new")}}}
	resp, err := fc.ProduceBatch(ctx, next)
	if err != nil || resp.GetDuplicate() || resp.GetBaseOffset() != 0 {
		t.Fatalf("first batch to the new topic naming its ID: %+v, %v; want stored at 0", resp, err)
	}
	plain := &logv1.ProduceBatchRequest{Topic: "t", Producer: &logv1.ProducerRef{Id: ref.GetId(), Epoch: ref.GetEpoch(), BaseSequence: 1}, Records: []*logv1.Record{{Value: []byte("new-1")}}}
	if resp, err := lc.ProduceBatch(ctx, plain); err != nil || resp.GetDuplicate() || resp.GetBaseOffset() != 1 {
		t.Fatalf("next batch without topic_id: %+v, %v; want stored at 1", resp, err)
	}
	for i, want := range []string{"new", "new-1"} {
		r, err := lc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", Offset: uint64(i), Linearizable: true})
		if err != nil || string(r.GetRecord().GetValue()) != want {
			t.Errorf("t/0 offset %d: %q, %v; want %q", i, r.GetRecord().GetValue(), err, want)
		}
	}
}
