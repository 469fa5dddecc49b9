package server

import (
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestNegativeTimestampRefused: a record with a negative timestamp_ms was stored as sent (a
// time before 1970, which retention by age and lookups by time then used). It is refused with
// InvalidArgument, as other invalid records are (Kafka refuses timestamps below -1, and its -1,
// "none", is 0 here), by Produce, ProduceBatch (the batch is atomic: refused whole) and
// ProduceStream, where it is refused alone: the valid requests before it are stored and
// answered.
func TestNegativeTimestampRefused(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x"), TimestampMs: -5}})
	if transport.CodeOf(err) != transport.InvalidArgument || !strings.Contains(err.Error(), "timestamp_ms -5 is negative") {
		t.Errorf("Produce with timestamp_ms -5: %v; want InvalidArgument naming the timestamp", err)
	}
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{
		{Value: []byte("ok")}, {Value: []byte("bad"), TimestampMs: -1}}})
	if transport.CodeOf(err) != transport.InvalidArgument || !strings.Contains(err.Error(), "record 1: timestamp_ms -1 is negative") {
		t.Errorf("ProduceBatch with timestamp_ms -1 in record 1: %v; want InvalidArgument naming record 1", err)
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetNextOffset() != 0 {
		t.Fatalf("the log holds %d records after refusals, want none", b.GetNextOffset())
	}
	const total, big = 20, 12
	st := &limitStream{total: total, big: big, negativeTS: true, open: make(chan struct{})}
	offsets, err := st.run(t, ctx, srv)
	if transport.CodeOf(toWire(err)) != transport.InvalidArgument || !strings.Contains(err.Error(), "timestamp_ms -5 is negative") {
		t.Errorf("ProduceStream: %v, want InvalidArgument naming the negative timestamp", err)
	}
	if len(offsets) != big {
		t.Errorf("%d requests answered before the refusal, want the %d valid ones sent before the negative timestamp", len(offsets), big)
	}
	if b, err = c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
		t.Fatal(err)
	}
	if b.GetNextOffset() != uint64(len(offsets)) {
		t.Errorf("the log holds %d records, %d were answered", b.GetNextOffset(), len(offsets))
	}
}
