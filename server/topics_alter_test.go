package server

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// TestAlterTopicRefusedChangesNothing: an AlterTopic that raises the partition count and
// sets an invalid setting is refused (InvalidArgument) and changes nothing: the partition
// count stays as it was, as Kafka's AlterConfigs/CreatePartitions validate before changing.
func TestAlterTopicRefusedChangesNothing(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 30*time.Second)
	cl := sdkWithTopic(t, ctx, srv, "t", 1)
	parts, bad := uint32(4), int64(-5)
	_, err := cl.AlterTopic(ctx, "t", client.TopicAlteration{Partitions: &parts, RetentionBytes: &bad})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Fatalf("AlterTopic with an invalid retention: %v, want InvalidArgument", err)
	}
	tp, err := cl.DescribeTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if tp.Partitions != 1 {
		t.Fatalf("a refused AlterTopic changed the partition count to %d, want 1", tp.Partitions)
	}
}
