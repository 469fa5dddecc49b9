package server

import (
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestMalformedTopicIDIsInvalidArgument: a topic_id that is not a topic ID as the server
// issues them (a UUID, Topic.id) is the caller's mistake: InvalidArgument, naming the field,
// on Consume and ConsumeStream, over both transports. It answered NotFound, as for a topic
// deleted since, so a typo looked like a deletion (and waited for a catch-up with the leader
// first). A well-formed ID of no topic is still NotFound.
func TestMalformedTopicIDIsInvalidArgument(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	for _, tr := range []string{TransportConnect, TransportGRPC} {
		srv := startServer(t, Config{Transport: tr})
		c := newClient(t, tr, srv.Addr())
		created, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "t", Record: &logv1.Record{Value: []byte("v")}}); err != nil {
			t.Fatal(err)
		}
		id := created.GetTopic().GetId()
		reads := map[string]func(id string) error{
			"Consume": func(id string) error {
				_, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", TopicId: id})
				return err
			},
			"ConsumeStream": func(id string) error {
				st, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: "t", TopicId: id})
				if err != nil {
					return err
				}
				defer st.Close()
				_, err = st.Receive()
				return err
			},
		}
		for name, read := range reads {
			for _, bad := range []string{"nope", id + "0", strings.ReplaceAll(id, "-", "_"), "zzzzzzzz" + id[8:]} {
				err := read(bad)
				if transport.CodeOf(err) != transport.InvalidArgument || !strings.Contains(err.Error(), "topic_id") {
					t.Errorf("%s: %s naming malformed topic ID %q: %v (code %v), want InvalidArgument naming topic_id",
						tr, name, bad, err, transport.CodeOf(err))
				}
			}
			other := "00000000-0000-4000-8000-000000000001"
			if err := read(other); transport.CodeOf(err) != transport.NotFound {
				t.Errorf("%s: %s naming another topic's ID: %v (code %v), want NotFound", tr, name, err, transport.CodeOf(err))
			}
			if err := read(id); err != nil {
				t.Errorf("%s: %s naming the topic's own ID: %v", tr, name, err)
			}
		}
	}
}
