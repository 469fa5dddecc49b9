// Package rejectlog logs the TLS handshakes a server refuses (the API's and the Raft peers'),
// at warn level with the remote address and the reason, limited per reason so that a flood of
// connections cannot flood the log.
//
// The limiter is the idea of discovery/serf's remoteLines (a token bucket per kind of line, the
// next line logged saying how many were dropped); it is written again here because leaf
// modules do not import each other.
package rejectlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Allowance of the lines of one kind: a burst of Burst, then one every Every.
const (
	Burst = 10
	Every = time.Second
)

// Limiter is a token bucket per kind of line: Burst at once, then one every Every. Kinds
// must come from a bounded set (the callers' constants, Reason's reasons). Safe for
// concurrent use.
type Limiter struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*kindState
}

type kindState struct {
	tokens     float64
	last       time.Time
	suppressed int // lines dropped since the last one allowed
}

// NewLimiter returns a Limiter reading the time from now (time.Now when nil).
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, kinds: make(map[string]*kindState)}
}

// Allow reports whether a line of kind may be logged now and, when it may, how many lines of
// its kind were dropped since the last one allowed.
func (l *Limiter) Allow(kind string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.kinds[kind]
	if st == nil {
		st = &kindState{tokens: Burst, last: now}
		l.kinds[kind] = st
	}
	if d := now.Sub(st.last); d > 0 {
		st.tokens = min(Burst, st.tokens+float64(d)/float64(Every))
	}
	st.last = now
	if st.tokens < 1 {
		st.suppressed++
		return false, 0
	}
	st.tokens--
	n := st.suppressed
	st.suppressed = 0
	return true, n
}

// Reasons of a refused handshake (the "reason" attribute, and the kinds the lines are
// limited by).
const (
	ReasonNoCertificate = "certificate required"
	ReasonUnknownCA     = "unknown certificate authority"
	ReasonExpired       = "certificate expired or not yet valid"
	ReasonBadCert       = "bad certificate"
	ReasonNotTLS        = "not TLS"
	ReasonClientRefused = "refused by the client"
	ReasonNoCommon      = "no common TLS version, cipher suite or protocol"
	ReasonTimeout       = "timeout"
	ReasonOther         = "other"
	// At debug level: the client left (EOF, reset: health checks, port scanners, certificate
	// monitors that hang up once they have seen the server's certificate) or this process
	// closed the connection (the pending connections' cap, shutdown).
	ReasonClientLeft = "client closed the connection"
	ReasonClosed     = "closed by the server"
)

// Reason classifies the error of a refused TLS handshake; warn is false for a client that
// left and for a connection this process closed, which are logged at debug level. It reads
// the error's type where it has one, and its text otherwise (net/http hands only the text).
func Reason(err error) (reason string, warn bool) {
	msg := err.Error()
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	var (
		ne      net.Error
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		rhe     tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled), has("use of closed network connection"):
		return ReasonClosed, false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), msg == "EOF", msg == "unexpected EOF", has("connection reset by peer", "broken pipe"):
		return ReasonClientLeft, false
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), has("i/o timeout", "deadline exceeded"):
		return ReasonTimeout, true
	case has("client didn't provide a certificate"):
		return ReasonNoCertificate, true
	case errors.As(err, &unknown), has("certificate signed by unknown authority"):
		return ReasonUnknownCA, true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired, has("certificate has expired or is not yet valid"):
		return ReasonExpired, true
	case errors.As(err, &rhe), has("does not look like a TLS handshake", "client sent an HTTP request to an HTTPS server"):
		return ReasonNotTLS, true
	case strings.HasPrefix(msg, "remote error: "):
		// The client sent an alert: it refused the server's certificate, say.
		return ReasonClientRefused, true
	case errors.As(err, &verify), has("x509: ", "failed to verify certificate"):
		return ReasonBadCert, true
	case has("unsupported versions", "no cipher suite", "unsupported application protocols",
		"no application protocol", "ALPN"):
		return ReasonNoCommon, true
	}
	return ReasonOther, true
}

// Handshakes logs refused TLS handshakes. Safe for concurrent use.
type Handshakes struct {
	logger *slog.Logger
	msg    string
	lim    *Limiter
}

// NewHandshakes logs to logger with message msg (e.g. "transport: rejected TLS handshake").
func NewHandshakes(logger *slog.Logger, msg string) *Handshakes {
	return &Handshakes{logger: logger, msg: msg, lim: NewLimiter(nil)}
}

// Report logs the handshake with remote that failed with err: at warn level, at most Burst
// at once and one every Every per reason (the next line says how many were dropped:
// "suppressed"), or at debug level, not limited, for a client that left or a connection this
// process closed.
func (h *Handshakes) Report(remote string, err error) {
	reason, warn := Reason(err)
	attrs := []slog.Attr{slog.String("remote", remote), slog.String("reason", reason), slog.String("err", err.Error())}
	if !warn {
		h.logger.LogAttrs(context.Background(), slog.LevelDebug, h.msg, attrs...)
		return
	}
	ok, suppressed := h.lim.Allow(reason)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	h.logger.LogAttrs(context.Background(), slog.LevelWarn, h.msg, attrs...)
}
