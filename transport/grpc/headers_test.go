package grpc_test

import (
	"context"
	"testing"
	"time"

	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// TestConsumeStreamHeadersBeforeFirstRecord: a handler that calls transport.SendHeader (the
// server's ConsumeStream does, at the log's end) gets its response headers to a grpc-go client
// before any message. Before, they went with the first message, and Header() waited for it.
func TestConsumeStreamHeadersBeforeFirstRecord(t *testing.T) {
	s := transporttest.Start(t, harness(), transport.ServerConfig{})
	conn, err := ggrpc.NewClient(s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := logv1.NewLogClient(conn).ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0}) // the empty log's end
	if err != nil {
		t.Fatal(err)
	}
	// Header blocks until the headers come or the stream ends (at the deadline, then).
	if md, err := stream.Header(); err != nil || md == nil || ctx.Err() != nil {
		t.Fatalf("no response headers while the log is idle: %v, %v (context: %v)", md, err, ctx.Err())
	}
	if _, err := s.Service.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if res, err := stream.Recv(); err != nil || string(res.GetRecord().GetValue()) != "x" {
		t.Fatalf("first message = %v, %v", res, err)
	}
}
