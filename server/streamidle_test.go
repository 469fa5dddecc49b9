package server

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"
)

// TestTailingStreamOutlivesServerTimeouts: a ConsumeStream tailing an empty log is neither
// idle (--idle-timeout) nor a unary body (--request-read-timeout): over HTTP/1.1 (curl's
// Connect streaming) and h2c it stays open past both, sending nothing and never ending, until
// the client goes.
func TestTailingStreamOutlivesServerTimeouts(t *testing.T) {
	srv := startServer(t, Config{Transport: TransportConnect, IdleTimeout: 200 * time.Millisecond, RequestReadTimeout: 200 * time.Millisecond})
	for _, h2 := range []bool{false, true} {
		body := envelope([]byte(`{"offset":"0"}`))
		tr := &http.Transport{Protocols: new(http.Protocols)}
		if h2 {
			tr.Protocols.SetUnencryptedHTTP2(true)
		} else {
			tr.Protocols.SetHTTP1(true)
		}
		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.Addr()+"/log.v1.Log/ConsumeStream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/connect+json")
		req.Header.Set("Connect-Protocol-Version", "1")
		got := make(chan error, 1)
		go func() {
			// The response starts at once (the stream is at the log's end); no message comes.
			res, err := tr.RoundTrip(req)
			if err != nil {
				got <- err
				return
			}
			defer res.Body.Close()
			var b [64]byte
			n, err := res.Body.Read(b[:])
			if err == nil {
				t.Errorf("h2 %v: the stream sent %q", h2, b[:n])
			}
			got <- err
		}()
		select {
		case err := <-got:
			t.Errorf("h2 %v: the tailing stream ended (%v) within 1.5 s, past idle and read timeouts of 200 ms", h2, err)
		case <-time.After(1500 * time.Millisecond):
		}
		cancel() // the client goes
		tr.CloseIdleConnections()
	}
}
