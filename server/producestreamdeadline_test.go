package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"google.golang.org/protobuf/proto"
)

// TestProduceStreamDeadlineIsNotOK: a ProduceStream whose deadline passes while the client
// still has its side open (it has sent one record and waits to send more) ends
// DEADLINE_EXCEEDED, never OK, over the Connect and the gRPC protocol. An
// OK end of a bidi stream tells a raw client (curl, another language's SDK) that the server
// answered everything it was sent and ended the call of its own accord. The deadline travels as
// Connect-Timeout-Ms or grpc-timeout while the HTTP client itself waits much longer, so what
// ends the stream is the server's answer, not the client's own timer.
func TestProduceStreamDeadlineIsNotOK(t *testing.T) {
	// The connect transport, which serves the gRPC protocol too. (grpc-go's server resets a
	// stream that its client has not half-closed after the status, which Go's HTTP/2 client
	// reports as an error before the trailers: the handler is the same.)
	for _, proto := range []string{"connect", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			srv := startServer(t, Config{Transport: TransportConnect})
			code, answers := rawProduceStreamUntilDeadline(t, srv.Addr(), proto)
			if answers != 1 {
				t.Errorf("%d answers, want 1 (the record sent)", answers)
			}
			if code != "deadline_exceeded" {
				t.Fatalf("ProduceStream past its deadline ended with %q, want deadline_exceeded (an OK end says the server ended the call of its own accord)", code)
			}
		})
	}
}

// rawProduceStreamUntilDeadline opens a ProduceStream over h2c with a 300 ms deadline in the
// protocol's header, sends one record, keeps its side open, and returns the stream's end code
// ("ok" for an OK end) and how many answers came.
func rawProduceStreamUntilDeadline(t *testing.T, addr, protocol string) (code string, answers int) {
	t.Helper()
	msg, err := proto.Marshal(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r0")}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write(envelope(msg)) }() // then the body stays open

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t, 20*time.Second), http.MethodPost, "http://"+addr+"/log.v1.Log/ProduceStream", pr)
	if err != nil {
		t.Fatal(err)
	}
	if protocol == "connect" {
		req.Header.Set("Content-Type", "application/connect+proto")
		req.Header.Set("Connect-Protocol-Version", "1")
		req.Header.Set("Connect-Timeout-Ms", "300")
	} else {
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", "300m")
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	msgs, endMsg := splitEnvelopes(t, out)
	answers = len(msgs)
	if protocol == "connect" {
		end := string(endMsg)
		if !strings.Contains(end, `"code"`) {
			return "ok", answers
		}
		i := strings.Index(end, `"code":"`) + len(`"code":"`)
		return end[i : i+strings.IndexByte(end[i:], '"')], answers
	}
	switch st := res.Trailer.Get("Grpc-Status"); st {
	case "0":
		return "ok", answers
	case "4":
		return "deadline_exceeded", answers
	default:
		return "grpc-status " + st + ": " + res.Trailer.Get("Grpc-Message"), answers
	}
}
