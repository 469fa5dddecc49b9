package connect

import (
	"log"
	"log/slog"
)

// slogErrorLog routes net/http's internal errors (TLS handshake failures,
// malformed requests) to logger at debug level: they are caused by clients
// and carry no action for the operator.
func slogErrorLog(logger *slog.Logger) *log.Logger {
	return slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
}
