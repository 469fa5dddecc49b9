package raft

import (
	"errors"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

func TestConfigValidate(t *testing.T) {
	_, trans := hraft.NewInmemTransport("a")
	base := func() Config { return Config{ID: "a", DataDir: "/tmp/x", Transport: trans} }
	tests := []struct {
		name   string
		mutate func(*Config)
		errHas string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "ID"},
		{"no dir", func(c *Config) { c.DataDir = "" }, "DataDir"},
		{"no transport", func(c *Config) { c.Transport = nil }, "StreamLayer"},
		{"lease above heartbeat", func(c *Config) {
			c.HeartbeatTimeout = 100 * time.Millisecond
			c.LeaderLeaseTimeout = 200 * time.Millisecond
		}, "LeaderLeaseTimeout"},
		{"short heartbeat lowers default lease", func(c *Config) { c.HeartbeatTimeout = 100 * time.Millisecond }, ""},
		{"max append too big", func(c *Config) { c.MaxAppendEntries = 4096 }, "MaxAppendEntries"},
		{"negative manifest", func(c *Config) { c.MaxManifestSize = -1 }, "MaxManifestSize"},
		{"bootstrap servers without self", func(c *Config) {
			c.BootstrapServers = []consensus.Server{{ID: "b", Address: "b"}}
		}, "does not include"},
		{"bootstrap server without address", func(c *Config) {
			c.BootstrapServers = []consensus.Server{{ID: "a"}}
		}, "lacks"},
		{"bootstrap servers with self", func(c *Config) {
			c.BootstrapServers = []consensus.Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := c.withDefaults().validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("validate = %v, want ErrInvalidConfig mentioning %q", err, tt.errHas)
			}
		})
	}
	if got := base().withDefaults(); got.Address != "a" || got.MaxAppendEntries != DefaultMaxAppendEntries || got.Logger == nil {
		t.Fatalf("defaults not applied: %+v", got)
	}
}

func TestNewOwnsStreamLayerOnFailure(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(StreamLayer) Config
	}{
		{"invalid config", func(s StreamLayer) Config { return Config{StreamLayer: s} }},
		{"unusable data dir", func(s StreamLayer) Config {
			return Config{ID: "a", DataDir: "/proc/forbidden/raft", StreamLayer: s}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := TCPStreamLayer("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(tt.cfg(s), &plainSM{}); err == nil {
				t.Fatalf("New succeeded")
			}
			if _, err := s.Accept(); err == nil {
				t.Fatalf("the stream layer is still open after New failed")
			}
		})
	}
}
