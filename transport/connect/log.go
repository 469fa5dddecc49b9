package connect

import (
	"bytes"
	"errors"
	"log"
	"log/slog"
	"strings"

	"github.com/commitlog-go/commitlog/transport/internal/rejectlog"
)

// tlsHandshakeError is how net/http's server begins the line of a failed TLS handshake:
// "http: TLS handshake error from <remote>: <error>".
const tlsHandshakeError = "http: TLS handshake error from "

// slogErrorLog routes net/http's internal errors to logger: a failed TLS handshake as a
// refused one (rejectlog: at warn level, with the remote address and the reason, limited per
// reason; at debug level when the client hung up), the rest (malformed requests and the
// like, caused by clients and carrying no action for the operator) at debug level.
func slogErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(&errorLogWriter{
		logger:     logger,
		handshakes: rejectlog.NewHandshakes(logger, "transport: rejected TLS handshake"),
	}, "", 0)
}

// errorLogWriter is the io.Writer of slogErrorLog's logger; *log.Logger calls Write once per
// line. Safe for concurrent use.
type errorLogWriter struct {
	logger     *slog.Logger
	handshakes *rejectlog.Handshakes
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	if rest, ok := strings.CutPrefix(line, tlsHandshakeError); ok {
		// The remote address holds no ": " (an IPv6 one is bracketed); the error text may.
		if remote, reason, ok := strings.Cut(rest, ": "); ok {
			w.handshakes.Report(remote, errors.New(reason))
			return len(p), nil
		}
	}
	w.logger.Debug(line)
	return len(p), nil
}
