package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTopicsAPI: topics over both transports — create, produce with keys, headers and
// timestamps to a partition, consume them back, NotFound for unknown topics and partitions,
// an idempotent producer's retry stored once, requests without a topic on the default
// partition, and the topics surviving a restart.
func TestTopicsAPI(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			dir := t.TempDir()
			srv := startServer(t, Config{Transport: tr, DataDir: dir})
			c := newClient(t, tr, srv.Addr())
			tc := c.(transport.TopicsClient)
			ctx := ctxT(t, 30*time.Second)

			created, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 3})
			if err != nil || created.GetTopic().GetPartitions() != 3 || created.GetTopic().GetId() == "" {
				t.Fatalf("CreateTopic = %v, %v", created, err)
			}
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders"}); transport.CodeOf(err) != transport.AlreadyExists {
				t.Errorf("second CreateTopic: %v", err)
			}
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "bad name"}); transport.CodeOf(err) != transport.InvalidArgument {
				t.Errorf("bad name: %v", err)
			}
			rec := &logv1.Record{Value: []byte("v"), Key: []byte("k"), Headers: []*logv1.Header{{Key: "h", Value: []byte("x")}}, TimestampMs: 1234}
			res, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Partition: 2, Record: rec})
			if err != nil || res.GetOffset() != 0 {
				t.Fatalf("Produce to orders/2 = %v, %v", res, err)
			}
			got, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Partition: 2, Offset: 0})
			if err != nil {
				t.Fatal(err)
			}
			r := got.GetRecord()
			if string(r.GetValue()) != "v" || string(r.GetKey()) != "k" || len(r.GetHeaders()) != 1 || r.GetHeaders()[0].GetKey() != "h" || r.GetTimestampMs() != 1234 {
				t.Errorf("consumed %v", r)
			}
			if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Partition: 1, Offset: 0}); transport.CodeOf(err) != transport.OutOfRange {
				t.Errorf("empty partition: %v", err)
			}
			for _, req := range []*logv1.ConsumeRequest{{Topic: "nope"}, {Topic: "orders", Partition: 3}} {
				if _, err := c.Consume(ctx, req); transport.CodeOf(err) != transport.NotFound {
					t.Errorf("Consume %v: %v, want NotFound", req, err)
				}
			}
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "nope", Record: &logv1.Record{Value: []byte("x")}}); transport.CodeOf(err) != transport.NotFound {
				t.Errorf("Produce to an unknown topic: %v", err)
			}
			// Requests without a topic: the default partition, as before.
			if res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("d")}}); err != nil || res.GetOffset() != 0 {
				t.Fatalf("Produce without a topic = %v, %v", res, err)
			}
			// Idempotent: a retry answers the original offset and stores nothing.
			p, err := tc.InitProducer(ctx, &logv1.InitProducerRequest{})
			if err != nil || p.GetProducerId() == 0 {
				t.Fatalf("InitProducer = %v, %v", p, err)
			}
			ref := &logv1.ProducerRef{Id: p.GetProducerId(), Epoch: p.GetEpoch()}
			batch := &logv1.ProduceBatchRequest{Topic: "orders", Partition: 0, Producer: ref, Records: []*logv1.Record{{Value: []byte("a")}, {Value: []byte("b")}}}
			first, err := c.ProduceBatch(ctx, batch)
			if err != nil || first.GetDuplicate() {
				t.Fatalf("ProduceBatch = %v, %v", first, err)
			}
			again, err := c.ProduceBatch(ctx, batch)
			if err != nil || !again.GetDuplicate() || again.GetBaseOffset() != first.GetBaseOffset() {
				t.Fatalf("retry = %v, %v", again, err)
			}
			gap := &logv1.ProduceBatchRequest{Topic: "orders", Producer: &logv1.ProducerRef{Id: ref.Id, Epoch: ref.Epoch, BaseSequence: 7}, Records: []*logv1.Record{{Value: []byte("c")}}}
			if _, err := c.ProduceBatch(ctx, gap); transport.CodeOf(err) != transport.FailedPrecondition {
				t.Errorf("sequence gap: %v", err)
			}
			// Epochs are 16-bit: one above was never handed out, and does not pass for epoch 0
			// (65536 truncated) nor store anything.
			wrapped := &logv1.ProduceBatchRequest{Topic: "orders", Producer: &logv1.ProducerRef{Id: ref.Id, Epoch: ref.Epoch + 1<<16, BaseSequence: 2}, Records: []*logv1.Record{{Value: []byte("c")}}}
			if _, err := c.ProduceBatch(ctx, wrapped); transport.CodeOf(err) != transport.InvalidArgument {
				t.Errorf("producer epoch %d: %v, want InvalidArgument", wrapped.GetProducer().GetEpoch(), err)
			}
			desc, err := tc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "orders"})
			if err != nil || len(desc.GetPartitions()) != 3 || desc.GetPartitions()[0].GetNextOffset() != 2 {
				t.Fatalf("DescribeTopic = %v, %v", desc, err)
			}
			four := uint32(4)
			alt, err := tc.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: "orders", Partitions: &four})
			if err != nil || alt.GetTopic().GetPartitions() != 4 {
				t.Fatalf("AlterTopicConfig = %v, %v", alt, err)
			}
			b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "orders", Partition: 0})
			if err != nil || b.GetNextOffset() != 2 {
				t.Fatalf("GetBounds(orders/0) = %v, %v", b, err)
			}

			// A restart keeps topics and records.
			srv.shutdown(t)
			srv = startServer(t, Config{Transport: tr, DataDir: dir})
			c = newClient(t, tr, srv.Addr())
			ctx = ctxT(t, 30*time.Second)
			got, err = c.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Partition: 2, Offset: 0})
			if err != nil || string(got.GetRecord().GetKey()) != "k" {
				t.Fatalf("after restart: %v, %v", got, err)
			}
			list, err := c.(transport.TopicsClient).ListTopics(ctx, &logv1.ListTopicsRequest{})
			if err != nil || len(list.GetTopics()) != 2 {
				t.Fatalf("ListTopics = %v, %v", list, err)
			}
			if _, err := c.(transport.TopicsClient).DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders"}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders"}); transport.CodeOf(err) != transport.NotFound {
				t.Errorf("after delete: %v", err)
			}
			_ = fmt.Sprint()
		})
	}
}

// TestConsumeStreamOfDeletedTopic: a stream reading a topic that is deleted (here at once
// re-created under the same name) ends with NotFound: its records are gone, and resuming by
// name would read the new topic at an offset that means nothing there.
func TestConsumeStreamOfDeletedTopic(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			tc := c.(transport.TopicsClient)
			ctx := ctxT(t, 30*time.Second)
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{"a", "b", "c"} {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "t", Record: &logv1.Record{Value: []byte(v)}}); err != nil {
					t.Fatal(err)
				}
			}
			st, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: "t", MaxBatch: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for i := range 3 {
				if _, err := st.Receive(); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			if _, err := tc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
				t.Fatal(err)
			}
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Receive(); transport.CodeOf(err) != transport.NotFound {
				t.Fatalf("the stream after its topic was deleted and re-created: %v, want NotFound", err)
			}
		})
	}
}
