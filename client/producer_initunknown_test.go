package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

// TestProducerRecordsNotSentAreNotInDoubt: while the producer cannot get its
// ID because every InitProducer's outcome is unknown (the ID may have been
// allocated), its records are never sent, so when their delivery timeout
// passes they must fail with ErrDeliveryTimeout alone, not ErrOutcomeUnknown:
// they are not stored. Before, the InitProducer's ErrOutcomeUnknown was
// passed on to every record waiting for it (on a real cluster paused for 7 s,
// about 51,000 records said "may have been appended", none was stored).
func TestProducerRecordsNotSentAreNotInDoubt(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			l := clienttest.New()
			l.RefuseInitProducer = func() error {
				return transport.Errorf(transport.Unavailable, "test: answer lost").WithOutcomeUnknown("test: answer lost")
			}
			srv, err := l.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cl, err := client.New(context.Background(), []string{srv.Addr()}, client.WithTransport(tr),
				client.WithBackoff(time.Millisecond, 20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			p, err := cl.NewProducer(client.ProducerDeliveryTimeout(300 * time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var fs []*client.Future
			for range 3 {
				f, err := p.Send(context.Background(), []byte("never sent"))
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, f := range fs {
				_, err := f.Wait(ctx)
				if !errors.Is(err, client.ErrDeliveryTimeout) {
					t.Fatalf("record: %v, want ErrDeliveryTimeout", err)
				}
				if errors.Is(err, client.ErrOutcomeUnknown) {
					t.Fatalf("a record never sent says its outcome is unknown: %v", err)
				}
			}
			if n := l.Calls("ProduceBatch"); n != 0 {
				t.Fatalf("%d ProduceBatch calls without a producer ID", n)
			}
		})
	}
}
