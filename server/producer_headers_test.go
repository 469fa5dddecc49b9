package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestProducerBatchCountsHeaders: records whose headers are large but each far below the
// record limit are all stored through a Producer. Its batches counted only values and keys
// against ProducerBatchBytes, so 1,000 records of 8 KiB headers made one 8 MB ProduceBatch,
// over the 4 MiB message limit: every record failed with ResourceExhausted.
func TestProducerBatchCountsHeaders(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	cl := sdkWithTopic(t, ctx, srv, "t", 1)
	p, err := cl.NewProducer(client.ProducerLinger(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := []client.Header{{Key: "k", Value: bytes.Repeat([]byte("h"), 8<<10)}}
	var fs []*client.Future
	for range 1000 {
		f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte("v"), Headers: h})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		off, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if off != uint64(i) {
			t.Fatalf("record %d stored at offset %d", i, off)
		}
	}
}
