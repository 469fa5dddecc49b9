package client_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

// newFake serves a clienttest log over tr for the test and returns it with a
// client of it.
func newFake(t *testing.T, tr string, opts ...client.Option) (*clienttest.Log, *client.Client) {
	t.Helper()
	l, addr := clienttest.Start(t, tr)
	opts = append([]client.Option{client.WithTransport(tr), client.WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	cl, err := client.New(context.Background(), []string{addr}, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, cl
}

func forEachFake(t *testing.T, f func(t *testing.T, l *clienttest.Log, cl *client.Client)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			l, cl := newFake(t, tr)
			f(t, l, cl)
		})
	}
}

func TestTopicAdmin(t *testing.T) {
	forEachFake(t, func(t *testing.T, _ *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		created, err := cl.CreateTopic(ctx, "orders", 3, client.TopicConfig{RetentionBytes: 1 << 20, TimestampType: "append"})
		if err != nil {
			t.Fatal(err)
		}
		if created.Name != "orders" || created.Partitions != 3 || created.ID == "" ||
			created.Config.RetentionBytes != 1<<20 || created.Config.TimestampType != "append" {
			t.Fatalf("created %+v", created)
		}
		if _, err := cl.CreateTopic(ctx, "orders", 1, client.TopicConfig{}); !errors.Is(err, client.ErrTopicExists) {
			t.Fatalf("second create: %v, want ErrTopicExists", err)
		}
		if _, err := cl.CreateTopic(ctx, "bad/name", 1, client.TopicConfig{}); transport.CodeOf(err) != transport.InvalidArgument {
			t.Fatalf("bad name: %v, want InvalidArgument", err)
		}

		topics, err := cl.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tp := range topics {
			names = append(names, tp.Name)
		}
		if !slices.Equal(names, []string{"default", "orders"}) {
			t.Fatalf("topics %v", names)
		}

		if _, err := cl.ProduceRecord(ctx, client.Record{Topic: "orders", Partition: 2, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		d, err := cl.DescribeTopic(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != created.ID || len(d.PartitionInfo) != 3 || d.PartitionInfo[2].Next != 1 || d.PartitionInfo[0].Next != 0 {
			t.Fatalf("described %+v", d)
		}

		five, retMs := uint32(5), int64(60_000)
		altered, err := cl.AlterTopic(ctx, "orders", client.TopicAlteration{Partitions: &five, RetentionMs: &retMs})
		if err != nil {
			t.Fatal(err)
		}
		if altered.Partitions != 5 || altered.Config.RetentionMs != 60_000 || altered.Config.RetentionBytes != 1<<20 {
			t.Fatalf("altered %+v: partitions 5, retention 60 s, the rest unchanged", altered)
		}
		two := uint32(2)
		if _, err := cl.AlterTopic(ctx, "orders", client.TopicAlteration{Partitions: &two}); transport.CodeOf(err) != transport.InvalidArgument {
			t.Fatalf("lowering the partition count: %v, want InvalidArgument", err)
		}

		if err := cl.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.DescribeTopic(ctx, "orders"); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("describe after delete: %v, want ErrUnknownTopic", err)
		}
		if err := cl.DeleteTopic(ctx, "orders"); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("delete twice: %v, want ErrUnknownTopic", err)
		}
		if _, err := cl.ConsumePartition(ctx, "orders", 2, 0); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("consume a deleted topic: %v, want ErrUnknownTopic", err)
		}
		again, err := cl.CreateTopic(ctx, "orders", 1, client.TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID == created.ID {
			t.Fatalf("re-created topic kept ID %s", again.ID)
		}
		if b, err := cl.PartitionBounds(ctx, "orders", 0); err != nil || b.Next != 0 {
			t.Fatalf("re-created topic bounds %+v, %v: want empty", b, err)
		}
	})
}

func TestProduceRecordRoundTrip(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.CreateTopic(ctx, "events", 2, client.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		ts := time.UnixMilli(1_700_000_000_123)
		in := client.Record{
			Topic: "events", Partition: 1, Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts,
			Headers: []client.Header{{Key: "trace", Value: []byte("abc")}, {Key: "trace", Value: []byte("def")}, {Key: "empty"}},
		}
		off, err := cl.ProduceRecord(ctx, in)
		if err != nil || off != 0 {
			t.Fatalf("ProduceRecord = %d, %v", off, err)
		}
		base, err := cl.ProduceRecords(ctx, "events", 1,
			client.Record{Key: []byte{}, Value: []byte("v2")}, // empty key: not the null key
			client.Record{Value: []byte("v3")},
		)
		if err != nil || base != 1 {
			t.Fatalf("ProduceRecords = %d, %v", base, err)
		}

		got, err := cl.ConsumePartition(ctx, "events", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != "events" || got.Partition != 1 || got.Offset != 0 || string(got.Key) != "k1" || string(got.Value) != "v1" ||
			!got.Timestamp.Equal(ts) || len(got.Headers) != 3 || got.Headers[1].Key != "trace" || string(got.Headers[1].Value) != "def" {
			t.Fatalf("read back %+v", got)
		}
		r1, err := cl.ConsumePartition(ctx, "events", 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r1.Key == nil || len(r1.Key) != 0 {
			t.Fatalf("empty key read back as %#v, want a non-nil empty key", r1.Key)
		}
		if r1.Timestamp.IsZero() {
			t.Fatal("record without a timestamp: want the append time")
		}
		r2, err := cl.ConsumePartition(ctx, "events", 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if r2.Key != nil {
			t.Fatalf("null key read back as %#v", r2.Key)
		}

		b, err := cl.PartitionBounds(ctx, "events", 1)
		if err != nil || b.Lowest != 0 || b.Next != 3 || b.Committed != 3 {
			t.Fatalf("bounds %+v, %v", b, err)
		}
		if b, err := cl.PartitionBounds(ctx, "events", 0); err != nil || b.Next != 0 {
			t.Fatalf("partition 0 bounds %+v, %v: want empty", b, err)
		}
		if _, err := cl.PartitionBounds(ctx, "events", 7); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("bounds of a missing partition: %v, want ErrUnknownTopic", err)
		}

		// The seed-compatible calls keep using the default topic's partition 0.
		if off, err := cl.Produce(ctx, []byte("seed")); err != nil || off != 0 {
			t.Fatalf("Produce = %d, %v", off, err)
		}
		if v := l.Values(); len(v) != 1 || string(v[0]) != "seed" {
			t.Fatalf("default partition holds %q", v)
		}
		if r, err := cl.Consume(ctx, 0); err != nil || string(r.Value) != "seed" || r.Topic != client.DefaultTopic {
			t.Fatalf("Consume = %+v, %v", r, err)
		}
		if r, err := cl.ConsumePartition(ctx, client.DefaultTopic, 0, 0); err != nil || string(r.Value) != "seed" {
			t.Fatalf("ConsumePartition(default) = %+v, %v", r, err)
		}

		// A stream of the partition yields its records in order, then tails.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var vals []string
		for rec, err := range cl.StreamPartition(sctx, "events", 1, 1) {
			if err != nil {
				if errors.Is(err, context.Canceled) {
					break
				}
				t.Fatal(err)
			}
			if rec.Topic != "events" || rec.Partition != 1 {
				t.Fatalf("streamed %+v", rec)
			}
			vals = append(vals, string(rec.Value))
			if len(vals) == 2 {
				if _, err := cl.ProduceRecord(ctx, client.Record{Topic: "events", Partition: 1, Value: []byte("v4")}); err != nil {
					t.Fatal(err)
				}
			}
			if len(vals) == 3 {
				cancel()
			}
		}
		if !slices.Equal(vals, []string{"v2", "v3", "v4"}) {
			t.Fatalf("streamed %q", vals)
		}
		for _, err := range cl.StreamPartition(ctx, "nope", 0, 0) {
			if !errors.Is(err, client.ErrUnknownTopic) {
				t.Fatalf("stream of an unknown topic: %v, want ErrUnknownTopic", err)
			}
		}
	})
}

func TestInitProducerBumpsTheEpoch(t *testing.T) {
	forEachFake(t, func(t *testing.T, _ *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		a, err := cl.InitProducer(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cl.InitProducer(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == 0 || a.ID == b.ID {
			t.Fatalf("producer IDs %d and %d: want two distinct non-zero IDs", a.ID, b.ID)
		}
		a2, err := cl.InitProducer(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a2.ID != a.ID || a2.Epoch != a.Epoch+1 {
			t.Fatalf("re-initialised %+v from %+v: want the same ID, next epoch", a2, a)
		}
	})
}

// TestTopicsUnsupported: a server without the Topics service (older than
// topics) makes the topic calls fail with ErrTopicsUnsupported, while the
// single-log calls keep working.
func TestTopicsUnsupported(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		ctx := context.Background()
		if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); !errors.Is(err, client.ErrTopicsUnsupported) {
			t.Errorf("CreateTopic: %v, want ErrTopicsUnsupported", err)
		}
		if _, err := cl.ListTopics(ctx); !errors.Is(err, client.ErrTopicsUnsupported) {
			t.Errorf("ListTopics: %v, want ErrTopicsUnsupported", err)
		}
		if _, err := cl.InitProducer(ctx, 0); !errors.Is(err, client.ErrTopicsUnsupported) {
			t.Errorf("InitProducer: %v, want ErrTopicsUnsupported", err)
		}
		if _, err := cl.Produce(ctx, []byte("still works")); err != nil {
			t.Errorf("Produce: %v", err)
		}
		if !bytes.Equal([]byte(c.values()[0]), []byte("still works")) {
			t.Errorf("log holds %q", c.values())
		}
	})
}
