package server

import (
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"

	"github.com/commitlog-go/commitlog/transport"
)

// TestShutdownEndsConsumeStreamUnavailable: a graceful stop ends a tailing ConsumeStream with
// Unavailable, as it ends a ProduceStream (server/README.md, "Errors on the wire": stopping →
// Unavailable). A tailing stream has no end of its own, so a stream that ended OK told every
// client but the SDK (grpcurl, the seed's clients, other languages' stubs) that it was done:
// they stopped consuming at each rolling restart instead of resuming on another server.
func TestShutdownEndsConsumeStreamUnavailable(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
				t.Fatal(err)
			}
			cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if res, err := cs.Receive(); err != nil || res.GetRecord().GetOffset() != 0 {
				t.Fatalf("first record: %v, %v", res, err)
			}
			// The stream now tails; the server stops gracefully.
			srv.shutdown(t)
			_, err = cs.Receive()
			if code := transport.CodeOf(err); code != transport.Unavailable {
				t.Errorf("tailing ConsumeStream after a graceful stop ended with %v (code %v), want Unavailable: a client cannot tell it must resume elsewhere", err, code)
			}
		})
	}
}
