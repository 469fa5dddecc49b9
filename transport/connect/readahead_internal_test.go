package connect

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// readCounter counts the reads that reach a request body as net/http hands it to the server.
type readCounter struct {
	io.ReadCloser
	reads *atomic.Int64
}

func (r readCounter) Read(p []byte) (int, error) {
	r.reads.Add(1)
	return r.ReadCloser.Read(p)
}

// TestProduceStreamReadsAhead: a ProduceStream's messages that arrive together are taken from
// the HTTP/2 body in a few reads, not two or more per message (each read of an HTTP/2 body is
// a hop to the connection's serving goroutine), and every message is stored.
func TestProduceStreamReadsAhead(t *testing.T) {
	svc := transporttest.NewService()
	srv, err := NewServer(transport.ServerConfig{Log: svc})
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	h := srv.Handler()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log.v1.Log/ProduceStream" {
			r.Body = readCounter{ReadCloser: r.Body, reads: &reads}
		}
		h.ServeHTTP(w, r)
	})}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetUnencryptedHTTP2(true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	defer func() {
		_ = hs.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	}()

	c, err := NewClient(l.Addr().String(), transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.ProduceStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	const n = 400
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 100)}}); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Errorf("CloseSend: %v", err)
		}
	})
	for i := range n {
		if _, err := stream.Receive(); err != nil {
			t.Fatalf("Receive %d: %v", i, err)
		}
	}
	if _, err := stream.Receive(); err != io.EOF {
		t.Fatalf("Receive after CloseSend = %v, want io.EOF", err)
	}
	wg.Wait()
	if got := len(svc.Records()); got != n {
		t.Fatalf("service holds %d records, want %d", got, n)
	}
	t.Logf("%d reads of the request body for %d messages", reads.Load(), n)
	// 400 messages of ~110 bytes are ~44 KiB: a few 16 KiB reads, more when the client's
	// writes arrive apart; never one or more per message.
	if got := reads.Load(); got >= n/4 {
		t.Errorf("%d reads of the request body for %d messages, want fewer than %d", got, n, n/4)
	}
}
