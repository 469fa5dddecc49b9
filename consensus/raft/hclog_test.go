package raft

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapterLevels(t *testing.T) {
	tests := []struct {
		name    string
		handler slog.Level
		log     func(hclog.Logger)
		want    string // "" = nothing logged
	}{
		{"info at info", slog.LevelInfo, func(l hclog.Logger) { l.Info("hello", "k", 1) }, "level=INFO msg=hello logger=raft k=1"},
		{"warn", slog.LevelInfo, func(l hclog.Logger) { l.Warn("w") }, "level=WARN msg=w"},
		{"error", slog.LevelInfo, func(l hclog.Logger) { l.Error("e") }, "level=ERROR msg=e"},
		{"debug filtered", slog.LevelInfo, func(l hclog.Logger) { l.Debug("d") }, ""},
		{"debug at debug", slog.LevelDebug, func(l hclog.Logger) { l.Debug("d") }, "level=DEBUG msg=d"},
		{"trace below debug", slog.LevelDebug, func(l hclog.Logger) { l.Trace("t") }, ""},
		{"trace at trace", LevelTrace, func(l hclog.Logger) { l.Trace("t") }, "level=DEBUG-4 msg=t"},
		{"named and with", slog.LevelInfo, func(l hclog.Logger) { l.Named("wal").With("seg", 3).Info("x", "y", 2) },
			"msg=x logger=raft.wal seg=3 y=2"},
		{"hclog.Fmt rendered", slog.LevelInfo, func(l hclog.Logger) { l.Info("cfg", "servers", hclog.Fmt("%d servers", 3)) },
			"msg=cfg logger=raft servers=\"3 servers\""},
		{"standard logger", slog.LevelInfo, func(l hclog.Logger) { l.StandardLogger(nil).Print("std line") }, "msg=\"std line\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: tt.handler,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			})
			tt.log(newHclog(slog.New(h), "raft"))
			got := strings.TrimSpace(buf.String())
			if tt.want == "" {
				if got != "" {
					t.Fatalf("logged %q, want nothing", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("logged %q, want it to contain %q", got, tt.want)
			}
		})
	}
	l := newHclog(slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})), "")
	if l.IsInfo() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Fatalf("IsInfo=%v IsWarn=%v GetLevel=%v for a warn handler", l.IsInfo(), l.IsWarn(), l.GetLevel())
	}
}

// A follower that is down made the leader log each failed heartbeat and append (raft retries
// every 0.5 s at most), 2 to 3 lines a second for as long as it was down.
func TestHclogLimitsRepeatedLines(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, nil)), "raft")
	now := time.Unix(1000, 0)
	l.(*hclogAdapter).lines.now = func() time.Time { return now }
	count := func(substr string) int { return strings.Count(buf.String(), substr) }

	// 10 minutes of failed heartbeats to node-2, every 0.5 s, through a derived logger.
	hb := l.Named("replication")
	for range 1200 {
		hb.Error("failed to heartbeat to", "peer", "127.0.0.1:2", "backoff time", "500ms", "error", "connection refused")
		now = now.Add(500 * time.Millisecond)
	}
	if n := count("failed to heartbeat to"); n > lineBurst+int(10*time.Minute/lineEvery)+1 {
		t.Fatalf("logged %d lines of 1200 failed heartbeats in 10 minutes, want at most one per %v after %d", n, lineEvery, lineBurst)
	}
	if !strings.Contains(buf.String(), "suppressed=") {
		t.Fatalf("no line says how many were suppressed:\n%s", buf.String())
	}

	// Another follower failing is another kind: its first lines are logged.
	buf.Reset()
	hb.Error("failed to heartbeat to", "peer", "127.0.0.1:3", "error", "connection refused")
	if count("peer=127.0.0.1:3") != 1 {
		t.Fatalf("the first failed heartbeat to another peer was not logged: %q", buf.String())
	}

	// Lines that do not repeat, and debug lines, are all logged.
	buf.Reset()
	l.Info("entering leader state", "leader", "node-1")
	l.Info("entering follower state", "leader", "node-2")
	if count("entering") != 2 {
		t.Fatalf("distinct lines dropped: %q", buf.String())
	}
	buf.Reset()
	dl := newHclog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	for range 20 {
		dl.Debug("appending", "peer", "x")
	}
	if n := count("appending"); n != 20 {
		t.Fatalf("logged %d of 20 debug lines", n)
	}
}
