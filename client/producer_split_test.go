package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// TestProducerSplitsBatchRefusedAsTooLarge: a batch the server refuses as too large
// (ResourceExhausted: more records than its --max-batch-records, more bytes than its request
// limit) failed every one of its records, so a Producer whose batch size was above the
// server's limit stored nothing. As Kafka's producer does, the batch is split in halves until
// they fit: every record is stored once, in Send order, each Future gets its own offset (and
// Flush returns once all are done), and a record too large alone fails alone.
func TestProducerSplitsBatchRefusedAsTooLarge(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		c.setFault(func(_ string, values [][]byte) (bool, error) {
			if len(values) > 3 {
				return false, transport.Errorf(transport.ResourceExhausted, "a ProduceBatch may carry at most 3 records")
			}
			if slices.ContainsFunc(values, func(v []byte) bool { return string(v) == "big" }) {
				return false, transport.Errorf(transport.ResourceExhausted, "record too large")
			}
			return true, nil
		})
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchRecords(11), client.ProducerLinger(time.Hour))
		ctx := context.Background()
		var values, want []string
		for i := range 11 {
			v := fmt.Sprintf("r%02d", i)
			if i == 7 {
				v = "big"
			} else {
				want = append(want, v)
			}
			values = append(values, v)
		}
		fs := sendAndFlush(t, p, values)
		stored := c.values()
		if !slices.Equal(stored, want) {
			t.Fatalf("stored %q, want %q (every record but the one too large alone, once, in order)", stored, want)
		}
		for i, f := range fs {
			select {
			case <-f.Done():
			default:
				t.Fatalf("record %d: Done not closed after Flush", i)
			}
			off, err := f.Wait(ctx)
			switch {
			case i == 7:
				if err == nil || transport.CodeOf(err) != transport.ResourceExhausted || errors.Is(err, client.ErrOutcomeUnknown) {
					t.Errorf("record too large: offset %d, error %v; want its ResourceExhausted", off, err)
				}
			case err != nil:
				t.Errorf("record %d: %v", i, err)
			case stored[off] != fmt.Sprintf("r%02d", i):
				t.Errorf("record %d got offset %d, which holds %q", i, off, stored[off])
			}
		}
		if s := p.Stats(); s.Splits == 0 {
			t.Errorf("Stats().Splits = 0 after splitting")
		}
	})
}

// TestProducerRefusesTimestampBefore1970: servers refuse a record whose timestamp_ms is
// negative (InvalidArgument), and a batch is atomic: sent in a batch, it failed every record
// of it. Send refuses it alone, with ErrInvalidRecord, as Kafka's ProducerRecord does; the
// records around it are stored.
func TestProducerRefusesTimestampBefore1970(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p := newProducer(t, cl, client.ProducerBatchRecords(10), client.ProducerLinger(time.Hour))
		ctx := context.Background()
		if _, err := p.SendRecord(ctx, client.Record{Value: []byte("before")}); err != nil {
			t.Fatal(err)
		}
		_, err := p.SendRecord(ctx, client.Record{Value: []byte("old"), Timestamp: time.UnixMilli(-5)})
		if err == nil || !strings.Contains(err.Error(), "before 1970") || !errors.Is(err, client.ErrInvalidRecord) {
			t.Errorf("SendRecord with a timestamp before 1970: %v; want ErrInvalidRecord", err)
		}
		if _, err := p.SendRecord(ctx, client.Record{Value: []byte("after"), Timestamp: time.UnixMilli(1)}); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.values(); !slices.Equal(got, []string{"before", "after"}) {
			t.Errorf("stored %q, want before and after", got)
		}
	})
}

// TestProducerNonSizeResourceExhaustedFailsAlone: the servers answer ResourceExhausted on the
// produce path only for a size limit (a record over --max-record-bytes, a batch over
// --max-batch-records, a request over the transport's bound), with no detail that says which
// limit; a refusal with that code for another reason (a proxy's rate limit, say) cannot be
// told apart, so the Producer splits it too. It must not loop: the halves are split down to
// single records, each refused once, failing with the server's error, and Flush returns.
func TestProducerNonSizeResourceExhaustedFailsAlone(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		var refusals atomic.Int32
		c.setFault(func(_ string, values [][]byte) (bool, error) {
			refusals.Add(1)
			return false, transport.Errorf(transport.ResourceExhausted, "rate limit: too many requests on this connection")
		})
		cl := newClient(t, c, nil)
		// A loop would end at the delivery timeout, failing the records with ErrDeliveryTimeout.
		p := newProducer(t, cl, client.ProducerBatchRecords(4), client.ProducerLinger(time.Hour), client.ProducerDeliveryTimeout(3*time.Second))
		ctx := context.Background()
		fs := sendAndFlush(t, p, []string{"r0", "r1", "r2", "r3"})
		for i, f := range fs {
			off, err := f.Wait(ctx)
			if transport.CodeOf(err) != transport.ResourceExhausted || !strings.Contains(err.Error(), "rate limit") || errors.Is(err, client.ErrOutcomeUnknown) {
				t.Errorf("record %d: offset %d, error %v; want the server's ResourceExhausted", i, off, err)
			}
		}
		// 4 records, then 2 halves of 2, then 4 single records: each sent once.
		if got := refusals.Load(); got != 7 {
			t.Errorf("the server refused %d requests, want 7", got)
		}
		if got := c.values(); len(got) != 0 {
			t.Errorf("stored %q, want nothing", got)
		}
	})
}

// sendAndFlush sends values with p and flushes it (within 10 s), and returns their futures.
func sendAndFlush(t *testing.T, p *client.Producer, values []string) []*client.Future {
	t.Helper()
	ctx := context.Background()
	var fs []*client.Future
	for _, v := range values {
		f, err := p.Send(ctx, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Flush(flushCtx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return fs
}
