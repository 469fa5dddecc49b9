package connect

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// silentListener accepts connections and never writes to them, as a paused (SIGSTOPped)
// server does: the kernel completes the TCP handshake, nothing answers.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

// TestNotSentWithoutConnection: a call that ended before it had a connection (the dial, or the
// TLS handshake with a paused server, did not complete) was never sent: it carries the
// NotProposed detail, so that a write is retried, not reported outcome-unknown. One that had
// a connection (plaintext: the request is written at once, and a paused server's kernel holds
// it) may have reached the server: no such detail.
func TestNotSentWithoutConnection(t *testing.T) {
	produce := func(t *testing.T, c *Client) error {
		t.Helper()
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}})
		if err == nil {
			t.Fatal("Produce succeeded against a server that never answers")
		}
		return err
	}
	t.Run("tls handshake", func(t *testing.T) {
		c, err := NewClientProtocol(silentListener(t), ClientConfig{TLS: &tls.Config{ServerName: "x"}}, ProtocolConnect)
		if err != nil {
			t.Fatal(err)
		}
		if err := produce(t, c); !transport.IsNotProposed(err) {
			t.Errorf("TLS handshake never answered: %v; want the NotProposed detail", err)
		}
	})
	t.Run("dial", func(t *testing.T) {
		c, err := NewClientProtocol("127.0.0.1:1", ClientConfig{}, ProtocolConnect)
		if err != nil {
			t.Fatal(err)
		}
		c.http.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done() // SYNs dropped: the dial never completes
			return nil, ctx.Err()
		}
		if err := produce(t, c); !transport.IsNotProposed(err) {
			t.Errorf("dial never completed: %v; want the NotProposed detail", err)
		}
	})
	t.Run("sent", func(t *testing.T) {
		c, err := NewClientProtocol(silentListener(t), ClientConfig{}, ProtocolConnect)
		if err != nil {
			t.Fatal(err)
		}
		if err := produce(t, c); transport.IsNotProposed(err) || transport.CodeOf(err) != transport.DeadlineExceeded {
			t.Errorf("request written, never answered: %v (code %v); want DeadlineExceeded without NotProposed", err, transport.CodeOf(err))
		}
	})
}
