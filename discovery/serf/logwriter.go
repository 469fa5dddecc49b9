package serf

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
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
//
// Lines about what a remote address sent (memberlist ends them with "from=<address>": a packet
// that does not decrypt, a stream that is not encrypted, a message that does not decode) are
// limited per kind (see remoteLines): anyone who reaches the gossip port, without the key,
// makes one such line per packet, and would otherwise flood the log (and the disk it is
// written to) at the rate they send.
type logWriter struct {
	logger    *slog.Logger
	component string
	remote    *remoteLines
	// onConflict, if set, is called with the other node's address (host:port) for each of
	// serf's lines that says another node holds this node's name (see nameConflictAddr).
	onConflict func(addr string)
}

// newStdLogger returns a *log.Logger, without its own prefix or timestamp, that forwards to
// logger. component names the library when a line does not name it.
func newStdLogger(logger *slog.Logger, component string) *log.Logger {
	return log.New(&logWriter{logger: logger, component: component, remote: newRemoteLines(time.Now)}, "", 0)
}

// Write logs every non-empty line of p, but lines about what a remote address sent beyond
// their kind's allowance (see remoteLines). It never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		level, component, msg := parseLogLine(string(line), w.component)
		if msg == "" {
			continue
		}
		if w.onConflict != nil {
			if addr, ok := nameConflictAddr(msg); ok {
				w.onConflict(addr)
			}
		}
		attrs := []slog.Attr{slog.String("component", component)}
		if w.remote != nil && strings.Contains(msg, "from=") {
			ok, suppressed := w.remote.allow(remoteKind(msg))
			if !ok {
				continue
			}
			if suppressed > 0 {
				attrs = append(attrs, slog.Int("suppressed", suppressed))
			}
		}
		w.logger.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

// nameConflictPrefix and nameConflictSuffix frame the address in serf's line about a node at
// another address that claims this node's name (serf's handleNodeConflict, called by
// memberlist when it refuses an alive message for a live member at a second address):
//
//	[ERR] serf: Node name conflicts with another node at 10.0.0.2:7946. Names must be unique! (Resolution enabled: false)
//
// serf has no other way to report it: memberlist's conflict delegate is serf's own.
const (
	nameConflictPrefix = "Node name conflicts with another node at "
	nameConflictSuffix = ". Names must be unique!"
)

// nameConflictAddr returns the address (host:port, an IPv6 host in brackets) of serf's line
// about a node that claims this node's name; ok is false for any other line.
func nameConflictAddr(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, nameConflictPrefix)
	if !ok {
		return "", false
	}
	addr, _, ok := strings.Cut(rest, nameConflictSuffix)
	if !ok {
		return "", false
	}
	// serf prints IP:port without brackets, also for an IPv6 address.
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = net.JoinHostPort(addr[:i], addr[i+1:])
	}
	return addr, true
}

// Allowance of the lines about what a remote address sent, per kind: a burst of
// remoteLineBurst, then one every remoteLineEvery. At most remoteKindsMax kinds are counted
// apart; further kinds share one allowance.
const (
	remoteLineBurst = 10
	remoteLineEvery = time.Second
	remoteKindsMax  = 64
)

// remoteLines is a token bucket per kind of line. Safe for concurrent use.
type remoteLines struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*remoteKindState
}

type remoteKindState struct {
	tokens     float64
	last       time.Time
	suppressed int // lines dropped since the last one logged
}

func newRemoteLines(now func() time.Time) *remoteLines {
	return &remoteLines{now: now, kinds: make(map[string]*remoteKindState)}
}

// allow reports whether a line of kind may be logged now and, when it may, how many lines of
// its kind were dropped since the last one logged.
func (r *remoteLines) allow(kind string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	st, ok := r.kinds[kind]
	if !ok {
		if len(r.kinds) >= remoteKindsMax {
			kind = "\x00other" // no line's kind: remoteKind never returns a control character
			st = r.kinds[kind]
		}
		if st == nil {
			st = &remoteKindState{tokens: remoteLineBurst, last: now}
			r.kinds[kind] = st
		}
	}
	if d := now.Sub(st.last); d > 0 {
		st.tokens = min(remoteLineBurst, st.tokens+float64(d)/float64(remoteLineEvery))
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

// remoteKind is a line's kind: its message up to the first ": " or " from=", whichever comes
// first ("Decrypt packet failed", "failed to receive"), so that the details a sender chooses
// (the error, its address) do not make new kinds.
func remoteKind(msg string) string {
	if i := strings.Index(msg, " from="); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 64 {
		msg = msg[:64]
	}
	return msg
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
