package raft

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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
