package clienttest_test

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTopicAdminOfTheDefaultTopicAsTheServer: a topic request naming no topic means the
// default topic, as on the server: DeleteTopic refuses it (InvalidArgument) and the default
// log keeps its records (the fake deleted it, and every later request naming no topic
// failed NotFound), DescribeTopic describes it; a topic's max record bytes above the server's
// bound is refused as the server refuses it.
func TestTopicAdminOfTheDefaultTopicAsTheServer(t *testing.T) {
	_, addr := clienttest.Start(t, "connect")
	c, err := tconnect.NewClient(addr, transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(transport.TopicsClient)
	ctx := context.Background()
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	_, err = tc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: ""})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("DeleteTopic of no name: %v, want InvalidArgument (the default topic cannot be deleted)", err)
	}
	if res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil || string(res.GetRecord().GetValue()) != "a" {
		t.Errorf("consume offset 0 of the default topic after the refused delete: %v, %v; want \"a\"", res, err)
	}
	d, err := tc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: ""})
	if err != nil || d.GetTopic().GetName() != clienttest.DefaultTopic || len(d.GetPartitions()) != 1 || d.GetPartitions()[0].GetNextOffset() != 1 {
		t.Errorf("DescribeTopic of no name: %v, %v; want the default topic, next offset 1", d, err)
	}
	_, err = tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "big", Config: &logv1.TopicConfig{MaxRecordBytes: 4<<20 + 1}})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("CreateTopic with max record bytes 4 MiB + 1: %v, want InvalidArgument", err)
	}
	if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Config: &logv1.TopicConfig{MaxRecordBytes: 4 << 20}}); err != nil {
		t.Fatalf("CreateTopic with max record bytes 4 MiB: %v", err)
	}
	mrb := uint32(4<<20 + 1)
	_, err = tc.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: "t", MaxRecordBytes: &mrb})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("AlterTopicConfig to max record bytes 4 MiB + 1: %v, want InvalidArgument", err)
	}
}
