package server

import (
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestListOffsetsNegativeTimestampRefused: Kafka's ListOffsets takes timestamp -1 for the
// latest offset and -2 for the earliest. Ours has earliest and latest of their own, and
// timestamp_ms is a time: -1 answered the earliest offset (every record is stamped after it),
// so a caller used to Kafka's "latest" read the whole log again. A negative timestamp_ms is
// refused with InvalidArgument, naming the fields to use.
func TestListOffsetsNegativeTimestampRefused(t *testing.T) {
	srv := startServer(t, Config{})
	c := newClient(t, TransportConnect, srv.Addr())
	gc := groupsClient(t, c)
	ctx := ctxT(t, 60*time.Second)
	createTopicT(t, ctx, c, "v", 1)
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "v", Records: []*logv1.Record{
		{Value: []byte("a"), TimestampMs: 1000}, {Value: []byte("b"), TimestampMs: 2000}}}); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []int64{-1, -2, -1000} {
		res, err := gc.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: "v", Spec: &logv1.ListOffsetsRequest_TimestampMs{TimestampMs: ts}})
		if transport.CodeOf(err) != transport.InvalidArgument || !strings.Contains(err.Error(), "latest or earliest") {
			t.Fatalf("ListOffsets(timestamp_ms %d) = %v, %v; want InvalidArgument naming latest and earliest", ts, res, err)
		}
	}
	// Zero is a time (1970): the first record at or after it.
	res, err := gc.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: "v", Spec: &logv1.ListOffsetsRequest_TimestampMs{TimestampMs: 0}})
	if err != nil || res.GetOffsets()[0].GetOffset() != 0 {
		t.Fatalf("ListOffsets(timestamp_ms 0) = %v, %v; want offset 0", res, err)
	}
}
