package serf_test

import (
	"log/slog"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }

func TestSerfAndMemberlistLogsAreBridged(t *testing.T) {
	logs := newCaptureHandler()
	a := startNode(t, "a", serf.Config{Logger: slogNew(logs)})
	b := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	waitFor(t, a.rec, discovery.EventJoin, "b")
	if err := a.m.Close(); err != nil {
		t.Fatal(err)
	}
	_ = b
	tests := []struct {
		name string
		want func(logRecord) bool
	}{
		{"serf info", func(r logRecord) bool {
			return r.Component == "serf" && r.Level == slog.LevelInfo && r.Msg == "EventMemberJoin: b 127.0.0.1"
		}},
		{"node name on bridged lines", func(r logRecord) bool {
			return r.Component == "serf" && r.Node == "a"
		}},
		{"memberlist debug", func(r logRecord) bool {
			return r.Component == "memberlist" && r.Level == slog.LevelDebug
		}},
		{"serf warn on shutdown without leave", func(r logRecord) bool {
			return r.Component == "serf" && r.Level == slog.LevelWarn && r.Msg == "Shutdown without a Leave"
		}},
	}
	for _, tt := range tests {
		if !logs.has(tt.want) {
			t.Errorf("no %s line captured", tt.name)
		}
	}
}
