package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTailingStreamDeadlineIsNotOK: a ConsumeStream tailing the end of the log (from the
// next offset: nothing to send yet) whose deadline passes ends DEADLINE_EXCEEDED, never OK. A
// tailing stream has no end of its own, so an OK end tells a raw client (curl, grpcurl, an
// SDK of another language) that the log ended. The deadline travels as Connect-Timeout-Ms
// while the HTTP client itself waits much longer, so what ends the stream is the server's
// answer, not the client's own timer (with which it races in a real client).
func TestTailingStreamDeadlineIsNotOK(t *testing.T) {
	srv := startServer(t, Config{Transport: TransportConnect})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r0")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}

	body := envelope([]byte(`{"offset":"1"}`)) // the next offset: the stream tails
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.Addr()+"/log.v1.Log/ConsumeStream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Connect-Timeout-Ms", "300")
	hc := &http.Client{Timeout: 20 * time.Second}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	took := time.Since(start)
	msgs, end := splitEnvelopes(t, out)
	for _, m := range msgs {
		t.Errorf("a record was sent past the end: %s", m)
	}
	if !strings.Contains(string(end), `"deadline_exceeded"`) {
		t.Fatalf("tailing stream past its deadline ended with %q after %v, want a deadline_exceeded error (an OK end says the log ended)", end, took)
	}
}

// envelope frames msg as one message of a Connect or gRPC stream: flags (0), its length
// (4 bytes, big-endian), the message.
func envelope(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
}

// splitEnvelopes splits a stream's body into its messages and the end-of-stream message (the
// envelope flagged 0x02: Connect's {} for an OK end, {"error":{"code":...}} otherwise; nil
// when there is none, as over gRPC, whose status is in the trailers).
func splitEnvelopes(t *testing.T, out []byte) (msgs [][]byte, end []byte) {
	t.Helper()
	for len(out) >= 5 {
		flags, n := out[0], binary.BigEndian.Uint32(out[1:5])
		if int(n) > len(out)-5 {
			t.Fatalf("truncated envelope: %q", out)
		}
		if flags&0x02 != 0 {
			end = out[5 : 5+n]
		} else {
			msgs = append(msgs, out[5:5+n])
		}
		out = out[5+n:]
	}
	return msgs, end
}
