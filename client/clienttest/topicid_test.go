package clienttest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTopicIDCheckedAsTheServerChecksIt: the fake answers a read's topic_id as the server
// does, which parses it as a UUID (fsm.ParseTopicID) and compares the bytes: the topic's own
// ID in capitals is that topic (the fake answered NotFound, telling the reader its topic was
// deleted), and 36 characters of the UUID's shape that are not hex digits are no topic ID
// at all, InvalidArgument (the fake answered NotFound).
func TestTopicIDCheckedAsTheServerChecksIt(t *testing.T) {
	_, addr := clienttest.Start(t, "connect")
	c, err := tconnect.NewClient(addr, transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	tc := c.(transport.TopicsClient)
	// A topic whose ID has letters (hex digits a-f), which capitals change.
	topic, id := "", ""
	for i := 0; id == strings.ToUpper(id); i++ {
		if i == 64 {
			t.Fatalf("64 topics, and no ID with a letter: %s", id)
		}
		topic = fmt.Sprintf("t%d", i)
		res, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: topic, Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		id = res.GetTopic().GetId()
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, TopicId: strings.ToUpper(id)}); err != nil {
		t.Errorf("Consume naming the topic's ID %s in capitals: %v (code %v), want its record", strings.ToUpper(id), err, transport.CodeOf(err))
	}
	notHex := "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, TopicId: notHex}); transport.CodeOf(err) != transport.InvalidArgument {
		t.Errorf("Consume naming topic_id %q: %v (code %v), want InvalidArgument", notHex, err, transport.CodeOf(err))
	}
}
