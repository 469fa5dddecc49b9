package serf

import (
	"log/slog"
	"testing"
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
