package clienttest_test

import (
	"context"
	"fmt"
	"log"
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestIdempotentWindow checks the fake's producer rules on the wire, as the server's state
// machine applies them: a retry of one of the last 5 batches answers its offsets and stores
// nothing; a gap, an old epoch and an unknown ID are refused with the ProducerRejected detail.
func TestIdempotentWindow(t *testing.T) {
	l, addr := clienttest.Start(t, "connect")
	c, err := tconnect.NewClient(addr, transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(transport.TopicsClient)
	ctx := context.Background()
	p, err := tc.InitProducer(ctx, &logv1.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(seq int32, vals ...string) *logv1.ProduceBatchRequest {
		req := &logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: p.GetProducerId(), Epoch: p.GetEpoch(), BaseSequence: seq}}
		for _, v := range vals {
			req.Records = append(req.Records, &logv1.Record{Value: []byte(v)})
		}
		return req
	}
	seq := int32(0)
	for i := range 7 {
		res, err := c.ProduceBatch(ctx, batch(seq, fmt.Sprint(i), "x"))
		if err != nil || res.GetDuplicate() || res.GetBaseOffset() != uint64(2*i) {
			t.Fatalf("batch %d = %v, %v", i, res, err)
		}
		seq += 2
	}
	// The last 5 batches (sequences 4..13) are remembered, the first two no longer.
	if res, err := c.ProduceBatch(ctx, batch(4, "2", "x")); err != nil || !res.GetDuplicate() || res.GetBaseOffset() != 4 {
		t.Fatalf("retry of batch 2 = %v, %v; want a duplicate at offset 4", res, err)
	}
	for name, cs := range map[string]struct {
		req  *logv1.ProduceBatchRequest
		want transport.ProducerRejection
	}{
		"evicted from the window": {batch(0, "0", "x"), transport.ProducerOutOfOrder},
		"gap":                     {batch(seq+1, "y"), transport.ProducerOutOfOrder},
		"old epoch":               {&logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: p.GetProducerId(), Epoch: p.GetEpoch() + 9}, Records: []*logv1.Record{{Value: []byte("z")}}}, transport.ProducerFenced},
		"unknown ID":              {&logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: 999}, Records: []*logv1.Record{{Value: []byte("z")}}}, transport.ProducerUnknown},
	} {
		_, err := c.ProduceBatch(ctx, cs.req)
		if got, ok := transport.ProducerRejectedDetail(err); !ok || got != cs.want || transport.CodeOf(err) != transport.FailedPrecondition {
			t.Errorf("%s: %v (detail %v %v), want FailedPrecondition with %v", name, err, got, ok, cs.want)
		}
	}
	if l.Len() != 14 {
		t.Fatalf("log holds %d records, want 14", l.Len())
	}
	// A new epoch fences the old one and starts its sequences at 0.
	p2, err := tc.InitProducer(ctx, &logv1.InitProducerRequest{ProducerId: p.GetProducerId()})
	if err != nil || p2.GetEpoch() != p.GetEpoch()+1 {
		t.Fatalf("re-init = %v, %v", p2, err)
	}
	if _, err := c.ProduceBatch(ctx, batch(seq, "late")); transport.CodeOf(err) != transport.FailedPrecondition {
		t.Fatalf("old epoch after re-init: %v", err)
	}
}

// Example serves a fake log for a test of code that uses the SDK.
func Example() {
	l := clienttest.New()
	srv, err := l.Serve(clienttest.ServeOptions{Transport: "grpc"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	c, err := client.New(ctx, []string{srv.Addr()}, client.WithTransport(client.TransportGRPC))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "t", 2, client.TopicConfig{}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.ProduceRecord(ctx, client.Record{Topic: "t", Partition: 1, Key: []byte("k"), Value: []byte("v")}); err != nil {
		log.Fatal(err)
	}
	recs, _ := l.Records("t", 1)
	fmt.Printf("%s=%s\n", recs[0].GetKey(), recs[0].GetValue())
	// Output: k=v
}
