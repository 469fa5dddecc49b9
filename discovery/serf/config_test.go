package serf_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   serf.Config
		field string // the field the error names
	}{
		{"bind address without port", serf.Config{BindAddr: "127.0.0.1"}, "BindAddr"},
		{"bind port out of range", serf.Config{BindAddr: "127.0.0.1:70000"}, "BindAddr"},
		{"unresolvable bind host", serf.Config{BindAddr: "no-such-host.invalid:0"}, "BindAddr"},
		{"advertise 0.0.0.0", serf.Config{BindAddr: "0.0.0.0:0", AdvertiseAddr: "0.0.0.0:8401"}, "AdvertiseAddr"},
		{"advertise ::", serf.Config{AdvertiseAddr: "[::]:8401"}, "AdvertiseAddr"},
		{"advertise without host", serf.Config{AdvertiseAddr: ":8401"}, "AdvertiseAddr"},
		{"key not base64", serf.Config{EncryptKey: "not base64!"}, "EncryptKey"},
		{"key of 10 bytes", serf.Config{EncryptKey: base64.StdEncoding.EncodeToString(make([]byte, 10))}, "EncryptKey"},
		{"tags too large", serf.Config{Tags: map[string]string{"k": strings.Repeat("v", serf.MaxTagsSize)}}, "Tags"},
		{"start join address without port", serf.Config{StartJoinAddrs: []string{"127.0.0.1:8401", "127.0.0.1"}}, "StartJoinAddrs[1]"},
		{"unknown timing", serf.Config{Timing: serf.Timing(42)}, "Timing"},
		{"negative retry interval", serf.Config{RetryJoinInterval: -1}, "RetryJoinInterval"},
		{"negative retry max interval", serf.Config{RetryJoinMaxInterval: -1}, "RetryJoinMaxInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.NodeName = "n"
			if tt.cfg.BindAddr == "" {
				tt.cfg.BindAddr = "127.0.0.1:0"
			}
			m, err := serf.New(tt.cfg)
			if err == nil {
				_ = m.Close()
				t.Fatal("New succeeded, want ErrInvalidConfig")
			}
			if !errors.Is(err, discovery.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("New = %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestNewFailsWhenPortInUse(t *testing.T) {
	a := startNode(t, "a", serf.Config{})
	m, err := serf.New(serf.Config{NodeName: "b", BindAddr: a.m.LocalMember().Addr, Timing: serf.TimingTest})
	if err == nil {
		_ = m.Close()
		t.Fatal("New on a port in use succeeded")
	}
}

func TestTimingString(t *testing.T) {
	for tm, want := range map[serf.Timing]string{serf.TimingLAN: "lan", serf.TimingLocal: "local", serf.TimingTest: "test", 9: "timing(9)"} {
		if got := tm.String(); got != want {
			t.Errorf("Timing(%d).String() = %q, want %q", int(tm), got, want)
		}
	}
}

func TestEveryTimingStarts(t *testing.T) {
	for _, tm := range []serf.Timing{serf.TimingLAN, serf.TimingLocal, serf.TimingTest} {
		t.Run(tm.String(), func(t *testing.T) {
			m, err := serf.New(serf.Config{NodeName: "n", BindAddr: "127.0.0.1:0", Timing: tm})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.LocalMember(); got.Name != "n" || got.Status != discovery.StatusAlive {
				t.Errorf("LocalMember() = %+v", got)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
