package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestGetBoundsSizeOfTheTopicAsked: GetBounds' size_bytes is the size of the partition asked
// for, not the default topic's (which it was for every topic).
func TestGetBoundsSizeOfTheTopicAsked(t *testing.T) {
	srv := startServer(t, Config{DataDir: t.TempDir()})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "big", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const n, size = 64, 1024
	for range n {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "big", Partition: 1, Record: &logv1.Record{Value: bytes.Repeat([]byte("x"), size)}}); err != nil {
			t.Fatal(err)
		}
	}
	sizeOf := func(topic string, partition uint32) uint64 {
		t.Helper()
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Partition: partition})
		if err != nil {
			t.Fatalf("GetBounds %q/%d: %v", topic, partition, err)
		}
		return b.GetSizeBytes()
	}
	if got := sizeOf("big", 1); got < n*size {
		t.Errorf("size of big/1 holding %d records of %d bytes: %d bytes", n, size, got)
	}
	if got := sizeOf("big", 0); got >= n*size {
		t.Errorf("size of the empty big/0: %d bytes, as big as big/1", got)
	}
	if got := sizeOf("", 0); got >= n*size {
		t.Errorf("size of the default topic, which holds nothing: %d bytes, as big as big/1", got)
	}
}
