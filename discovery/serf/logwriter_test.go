package serf

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line      string
		level     slog.Level
		component string
		msg       string
	}{
		{"[INFO] serf: EventMemberJoin: a 127.0.0.1\n", slog.LevelInfo, "serf", "EventMemberJoin: a 127.0.0.1"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5555", slog.LevelDebug, "memberlist", "Stream connection from=127.0.0.1:5555"},
		{"[WARN] memberlist: Was able to connect to b over TCP", slog.LevelWarn, "memberlist", "Was able to connect to b over TCP"},
		{"[WARNING] x", slog.LevelWarn, "dflt", "x"},
		{"[ERR] memberlist: Failed to send ping: write: broken pipe", slog.LevelError, "memberlist", "Failed to send ping: write: broken pipe"},
		{"[ERROR] serf.snapshot: oops", slog.LevelError, "serf.snapshot", "oops"},
		{"[ERR] Failed to shutdown transport: boom", slog.LevelError, "dflt", "Failed to shutdown transport: boom"},
		{"[TRACE] memberlist: detail", LevelTrace, "memberlist", "detail"},
		{"[debug] serf: lower-case level", slog.LevelDebug, "serf", "lower-case level"},
		{"no level at all", slog.LevelInfo, "dflt", "no level at all"},
		{"[CUSTOM] kept whole", slog.LevelInfo, "dflt", "[CUSTOM] kept whole"},
		{"[INFO] Node Name: a b", slog.LevelInfo, "dflt", "Node Name: a b"},
		{"   ", slog.LevelInfo, "dflt", ""},
	}
	for _, tt := range tests {
		level, component, msg := parseLogLine(tt.line, "dflt")
		if level != tt.level || component != tt.component || msg != tt.msg {
			t.Errorf("parseLogLine(%q) = %v, %q, %q; want %v, %q, %q",
				tt.line, level, component, msg, tt.level, tt.component, tt.msg)
		}
	}
}

// recordingHandler keeps every record logged through it.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// count returns how many records' messages start with prefix, and the "suppressed" attribute
// of the last of them (0 without one).
func (h *recordingHandler) count(prefix string) (n int, suppressed int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if !strings.HasPrefix(r.Message, prefix) {
			continue
		}
		n++
		suppressed = 0
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				suppressed = a.Value.Int64()
			}
			return true
		})
	}
	return n, suppressed
}

// Anyone who reaches the gossip port without the key makes memberlist log a line per packet
// ("Decrypt packet failed: ... from=<address>") or per stream ("failed to receive: ...
// from=<address>"): 20,000 UDP packets sent in 0.2 s wrote 6,569 ERROR lines (1.2 MB) to a
// node's log. Such lines are limited per kind, whatever error and address the sender makes
// them carry; other lines are all logged.
func TestLogWriterLimitsRemoteLines(t *testing.T) {
	h := &recordingHandler{}
	now := time.Unix(1_000_000, 0)
	w := &logWriter{logger: slog.New(h), component: "memberlist", remote: newRemoteLines(func() time.Time { return now })}
	std := log.New(w, "", 0)
	const sent = 1000
	for i := range sent {
		std.Printf("[ERR] memberlist: Decrypt packet failed: unsupported encryption version %d from=10.0.0.%d:%d", i%256, i%250, 1000+i)
		std.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.1:%d", 2000+i)
		std.Printf("[INFO] serf: EventMemberUpdate: n%d", i)
	}
	if n, _ := h.count("Decrypt packet failed"); n != remoteLineBurst {
		t.Errorf("%d undecryptable packets logged %d lines, want %d", sent, n, remoteLineBurst)
	}
	if n, _ := h.count("failed to receive"); n != remoteLineBurst {
		t.Errorf("%d unencrypted streams logged %d lines, want %d (a kind of its own)", sent, n, remoteLineBurst)
	}
	if n, _ := h.count("EventMemberUpdate"); n != sent {
		t.Errorf("%d lines about no remote sender logged %d, want all", sent, n)
	}
	// A second later, one more line of the kind, which says how many were dropped.
	now = now.Add(remoteLineEvery)
	std.Printf("[ERR] memberlist: Decrypt packet failed: payload is too small to decrypt: 8 from=10.0.0.9:9")
	std.Printf("[ERR] memberlist: Decrypt packet failed: payload is too small to decrypt: 8 from=10.0.0.9:9")
	n, suppressed := h.count("Decrypt packet failed")
	if n != remoteLineBurst+1 || suppressed != sent-remoteLineBurst {
		t.Errorf("a second later: %d lines, the last saying %d suppressed; want %d lines, %d suppressed",
			n, suppressed, remoteLineBurst+1, sent-remoteLineBurst)
	}
	// New kinds made up by the sender share one allowance beyond remoteKindsMax.
	before := len(h.records)
	for i := range sent {
		std.Printf("[WARN] memberlist: made-up kind %d: x from=10.0.0.1:1", i)
	}
	if got, most := len(h.records)-before, (remoteKindsMax-2)*remoteLineBurst+remoteLineBurst; got > most {
		t.Errorf("%d lines of %d made-up kinds logged %d lines, want at most %d", sent, sent, got, most)
	}
}

// serf prints the other node's address as IP:port, also for IPv6; the conflict reports it as
// host:port (an IPv6 host in brackets), and no other line is taken for a conflict.
func TestNameConflictAddr(t *testing.T) {
	tests := []struct {
		msg    string
		want   string
		wantOK bool
	}{
		{"Node name conflicts with another node at 10.0.0.2:7946. Names must be unique! (Resolution enabled: false)", "10.0.0.2:7946", true},
		{"Node name conflicts with another node at ::1:7946. Names must be unique! (Resolution enabled: false)", "[::1]:7946", true},
		{"Name conflict for 'b' both 10.0.0.2:7946 and 10.0.0.3:7946 are claiming", "", false},
		{"Node name conflicts with another node at 10.0.0.2:7946", "", false},
	}
	for _, tt := range tests {
		got, ok := nameConflictAddr(tt.msg)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("nameConflictAddr(%q) = %q, %v; want %q, %v", tt.msg, got, ok, tt.want, tt.wantOK)
		}
	}
}
