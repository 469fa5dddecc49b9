package serf

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// LevelTrace is the slog level given to serf's and memberlist's "[TRACE]" lines, below
// slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

// logWriter is an io.Writer for a standard library *log.Logger (as serf and memberlist use)
// that turns each line into a slog record. A line looks like
//
//	[WARN] memberlist: Was able to connect to node-2 over TCP but UDP probes failed
//
// The bracketed prefix gives the level (TRACE, DEBUG, INFO, WARN/WARNING, ERR/ERROR; anything
// else is logged at Info with the line kept whole), the "component:" word that follows, if
// any, becomes the "component" attribute (else the writer's default component is used), and
// the rest is the message.
//
// Concurrency: safe for concurrent use if the slog handler is (every slog handler in the
// standard library is). *log.Logger calls Write once per line.
type logWriter struct {
	logger    *slog.Logger
	component string
}

// newStdLogger returns a *log.Logger, without its own prefix or timestamp, that forwards to
// logger. component names the library when a line does not name it.
func newStdLogger(logger *slog.Logger, component string) *log.Logger {
	return log.New(&logWriter{logger: logger, component: component}, "", 0)
}

// Write logs every non-empty line of p. It never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		level, component, msg := parseLogLine(string(line), w.component)
		if msg == "" {
			continue
		}
		w.logger.Log(context.Background(), level, msg, slog.String("component", component))
	}
	return len(p), nil
}

// parseLogLine splits a serf or memberlist log line into its level, component and message.
func parseLogLine(line, defaultComponent string) (slog.Level, string, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	rest := line
	if strings.HasPrefix(line, "[") {
		if end := strings.IndexByte(line, ']'); end > 0 {
			known := true
			switch strings.ToUpper(line[1:end]) {
			case "TRACE":
				level = LevelTrace
			case "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				known = false
			}
			if known {
				rest = strings.TrimSpace(line[end+1:])
			}
		}
	}
	component := defaultComponent
	if name, msg, ok := strings.Cut(rest, ": "); ok && isComponentName(name) {
		component, rest = name, strings.TrimSpace(msg)
	}
	return level, component, rest
}

// isComponentName reports whether s looks like a library's log prefix ("serf", "memberlist",
// "serf.snapshot"): a short lower-case word.
func isComponentName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '.' && r != '-' && r != '_' {
			return false
		}
	}
	return true
}
