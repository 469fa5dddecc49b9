package raft

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace records are logged at (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

// hclogAdapter is an hclog.Logger that writes slog records, so hashicorp/raft's and
// raft-wal's logs come out of the Node's *slog.Logger at matching levels. It is safe for
// concurrent use (slog.Logger is).
//
// Lines that repeat are limited (lines, shared by the loggers With and Named derive): raft
// logs each failed heartbeat and append to a follower that is down, and each election a node
// cut off from the majority starts, 2 to 3 lines a second for as long as the fault lasts.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []any
	lines   *lineLimiter
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHclog(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{l: l, name: name, lines: newLineLimiter(time.Now)}
}

// Repeated lines: lineBurst lines of one kind (logger, message and the peer it is about) are
// logged at once, then one every lineEvery; the next line logged says how many were dropped
// ("suppressed"). Only warnings and errors are limited: info lines (a change of state, an
// election won) are kept, and debug and trace lines are asked for.
const (
	lineBurst = 5
	lineEvery = 10 * time.Second
	// lineKindsMax bounds the kinds remembered; beyond it, new kinds share one.
	lineKindsMax = 1024
)

// peerKeys are the arguments naming the server a raft line is about: lines about two
// followers are two kinds, so that one failing does not hide the other.
var peerKeys = map[string]bool{"peer": true, "server-id": true, "target": true, "id": true, "from": true, "address": true}

type lineLimiter struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*lineKind
}

type lineKind struct {
	tokens     float64
	last       time.Time
	suppressed int // lines dropped since the last one logged
}

func newLineLimiter(now func() time.Time) *lineLimiter {
	return &lineLimiter{now: now, kinds: make(map[string]*lineKind)}
}

// allow reports whether a line of kind may be logged now and, when it may, how many lines of
// its kind were dropped since the last one logged.
func (r *lineLimiter) allow(kind string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	st, ok := r.kinds[kind]
	if !ok {
		if len(r.kinds) >= lineKindsMax {
			kind = "\x00other"
			st = r.kinds[kind]
		}
		if st == nil {
			st = &lineKind{tokens: lineBurst, last: now}
			r.kinds[kind] = st
		}
	}
	if d := now.Sub(st.last); d > 0 {
		st.tokens = min(lineBurst, st.tokens+float64(d)/float64(lineEvery))
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

// lineKindOf is a line's kind: its logger, message and the values of its peerKeys arguments.
// (implied, then the line's own).
func lineKindOf(name, msg string, implied, args []any) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(0)
	b.WriteString(msg)
	for _, kv := range [2][]any{implied, args} {
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok && peerKeys[k] {
				fmt.Fprintf(&b, "\x00%s=%v", k, kv[i+1])
			}
		}
	}
	return b.String()
}

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := slogLevel(level)
	ctx := context.Background()
	if !a.l.Enabled(ctx, lv) {
		return
	}
	suppressed := 0
	if lv >= slog.LevelWarn && a.lines != nil {
		ok, n := a.lines.allow(lineKindOf(a.name, msg, a.implied, args))
		if !ok {
			return
		}
		suppressed = n
	}
	attrs := make([]any, 0, len(a.implied)+len(args)+4)
	if a.name != "" {
		attrs = append(attrs, slog.String("logger", a.name))
	}
	attrs = append(attrs, a.implied...)
	for _, arg := range args {
		attrs = append(attrs, hclogValue(arg))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	a.l.Log(ctx, lv, msg, attrs...)
}

// hclogValue renders hclog's deferred formats (hclog.Fmt, as raft logs its configuration with)
// the way hclog does, instead of as a slice holding the format string.
func hclogValue(v any) any {
	if f, ok := v.(hclog.Format); ok && len(f) > 0 {
		if format, ok := f[0].(string); ok {
			return fmt.Sprintf(format, f[1:]...)
		}
	}
	return v
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(lv slog.Level) bool { return a.l.Enabled(context.Background(), lv) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(LevelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	implied := make([]any, 0, len(a.implied)+len(args))
	implied = append(implied, a.implied...)
	implied = append(implied, args...)
	return &hclogAdapter{l: a.l, name: a.name, implied: implied, lines: a.lines}
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return &hclogAdapter{l: a.l, name: name, implied: a.implied, lines: a.lines}
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: a.l, name: name, implied: a.implied, lines: a.lines}
}

// SetLevel is a no-op: the level is the slog handler's.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsTrace():
		return hclog.Trace
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return stdWriter{a: a, level: level}
}

type stdWriter struct {
	a     *hclogAdapter
	level hclog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	w.a.Log(w.level, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
