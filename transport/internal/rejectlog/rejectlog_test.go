package rejectlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestReason: the errors of refused handshakes, as crypto/tls returns them and as net/http
// prints them, get their reason; a client that left and a connection this process closed are
// not warnings.
func TestReason(t *testing.T) {
	verify := func(err error) error {
		return fmt.Errorf("tls: failed to verify certificate: %w", &tls.CertificateVerificationError{Err: err})
	}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		err    error
		reason string
		warn   bool
	}{
		{errors.New("tls: client didn't provide a certificate"), ReasonNoCertificate, true},
		{verify(x509.UnknownAuthorityError{}), ReasonUnknownCA, true},
		{errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), ReasonUnknownCA, true},
		{verify(x509.CertificateInvalidError{Reason: x509.Expired}), ReasonExpired, true},
		{errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-12-06T21:00:00Z is after 2026-12-01T00:00:00Z"), ReasonExpired, true},
		{verify(x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}), ReasonBadCert, true},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ReasonNotTLS, true},
		{errors.New("client sent an HTTP request to an HTTPS server"), ReasonNotTLS, true},
		{errors.New("remote error: tls: unknown certificate authority"), ReasonClientRefused, true},
		{errors.New("tls: client offered only unsupported versions: [302 301]"), ReasonNoCommon, true},
		{errors.New("tls: no cipher suite supported by both client and server"), ReasonNoCommon, true},
		{timeout, ReasonTimeout, true},
		{context.DeadlineExceeded, ReasonTimeout, true},
		{errors.New("read tcp 127.0.0.1:8400->127.0.0.1:50000: i/o timeout"), ReasonTimeout, true},
		{errors.New("tlsutil: a peer must present a verified certificate"), ReasonOther, true},
		{io.EOF, ReasonClientLeft, false},
		{errors.New("EOF"), ReasonClientLeft, false},
		{io.ErrUnexpectedEOF, ReasonClientLeft, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, ReasonClientLeft, false},
		{errors.New("read tcp 127.0.0.1:8400->127.0.0.1:50000: read: connection reset by peer"), ReasonClientLeft, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, ReasonClosed, false},
		{errors.New("read tcp 127.0.0.1:8400->127.0.0.1:50000: use of closed network connection"), ReasonClosed, false},
		{context.Canceled, ReasonClosed, false},
	}
	for _, tt := range tests {
		reason, warn := Reason(tt.err)
		if reason != tt.reason || warn != tt.warn {
			t.Errorf("Reason(%q) = %q, %v; want %q, %v", tt.err, reason, warn, tt.reason, tt.warn)
		}
	}
}

// TestLimiter: per kind, a burst of Burst, then one every Every; the next one allowed counts
// those dropped; kinds are apart.
func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(func() time.Time { return now })
	for i := range Burst {
		if ok, n := l.Allow("a"); !ok || n != 0 {
			t.Fatalf("line %d of the burst: %v, %d", i+1, ok, n)
		}
	}
	for range 990 {
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("allowed beyond the burst")
		}
	}
	if ok, n := l.Allow("b"); !ok || n != 0 {
		t.Fatalf("another kind: %v, %d; want allowed", ok, n)
	}
	now = now.Add(Every / 2)
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("allowed half a period later")
	}
	now = now.Add(Every / 2)
	if ok, n := l.Allow("a"); !ok || n != 991 {
		t.Fatalf("a period later: %v, suppressed %d; want allowed, 991", ok, n)
	}
}

// countHandler counts records per level.
type countHandler struct{ n map[slog.Level]int }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n[r.Level]++
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestHandshakesClientLeftNotLimited: the debug lines (clients that left) are not warnings and
// take nothing from the warnings' allowance.
func TestHandshakesClientLeftNotLimited(t *testing.T) {
	h := &countHandler{n: map[slog.Level]int{}}
	hs := NewHandshakes(slog.New(h), "rejected")
	for range 100 {
		hs.Report("127.0.0.1:1", io.EOF)
	}
	for range 100 {
		hs.Report("127.0.0.1:1", errors.New("tls: client didn't provide a certificate"))
	}
	if h.n[slog.LevelDebug] != 100 || h.n[slog.LevelWarn] != Burst {
		t.Fatalf("debug %d, warn %d; want 100, %d", h.n[slog.LevelDebug], h.n[slog.LevelWarn], Burst)
	}
}
