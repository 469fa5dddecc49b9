package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestConsumeStreamAtEndAnswersAtOnce: a ConsumeStream opened at the log's end (the seed's
// one-record form and the batched form) starts its response at once, under both servers,
// rather than with the first record: before, a client (or a proxy timing the first byte)
// waited on an idle log for any answer. Its first record still comes as its first message.
func TestConsumeStreamAtEndAnswersAtOnce(t *testing.T) {
	for _, maxBatch := range []uint32{0, 64} {
		t.Run(fmt.Sprintf("Connect/maxBatch=%d", maxBatch), func(t *testing.T) {
			srv := startServer(t, Config{Transport: TransportConnect})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			body := envelope([]byte(`{"offset":"0","maxBatch":` + map[bool]string{true: "64", false: "0"}[maxBatch > 0] + `}`))
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.Addr()+"/log.v1.Log/ConsumeStream", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/connect+json")
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("no response on an idle log: %v", err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			produceValue(t, TransportConnect, srv.Addr(), "first")
			var env [5]byte
			if _, err := io.ReadFull(res.Body, env[:]); err != nil || env[0] != 0 {
				t.Fatalf("first message: %v (flags %#x)", err, env[0])
			}
			msg := make([]byte, int(env[1])<<24|int(env[2])<<16|int(env[3])<<8|int(env[4]))
			if _, err := io.ReadFull(res.Body, msg); err != nil || !bytes.Contains(msg, []byte(`"Zmlyc3Q="`)) { // "first"
				t.Fatalf("first message %s: %v", msg, err)
			}
		})
		t.Run(fmt.Sprintf("GRPC/maxBatch=%d", maxBatch), func(t *testing.T) {
			srv := startServer(t, Config{Transport: TransportGRPC})
			conn, err := ggrpc.NewClient(srv.Addr(), ggrpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			stream, err := logv1.NewLogClient(conn).ConsumeStream(ctx, &logv1.ConsumeRequest{MaxBatch: maxBatch})
			if err != nil {
				t.Fatal(err)
			}
			// Header blocks until the headers come or the stream ends (at the deadline, then).
			if md, err := stream.Header(); err != nil || md == nil || ctx.Err() != nil {
				t.Fatalf("no response headers on an idle log: %v, %v (context: %v)", md, err, ctx.Err())
			}
			produceValue(t, TransportGRPC, srv.Addr(), "first")
			res, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if got := append(res.GetRecords(), res.GetRecord()); string(got[0].GetValue()) != "first" {
				t.Fatalf("first message %v", res)
			}
		})
	}
}

// produceValue appends one record of value v through a transport client of tr.
func produceValue(t *testing.T, tr, addr, v string) {
	t.Helper()
	if _, err := newClient(t, tr, addr).Produce(ctxT(t, 10*time.Second), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
}
