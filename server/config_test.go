package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/server/fsm"
)

// TestNewRejectsInvalidConfig: New refuses a Config field out of range before it opens
// anything, with an error that wraps ErrInvalidConfig and names the field.
func TestNewRejectsInvalidConfig(t *testing.T) {
	policy := filepath.Join(seedACLDir, "policy.csv")
	tests := []struct {
		field string
		set   func(*Config)
	}{
		{"BindAddr", func(c *Config) { c.BindAddr = "no-port" }},
		{"NodeName", func(c *Config) { c.NodeName = "bad\nname" }}, // without peer TLS too: a Raft ID, a Serf name, a log field
		{"NodeName", func(c *Config) { c.NodeName = "node 1" }},
		{"NodeName", func(c *Config) { c.NodeName = strings.Repeat("a", 3000) }},
		{"RPCPort", func(c *Config) { c.RPCPort = 70000 }},
		{"RPCPort", func(c *Config) { c.RPCPort = -2 }},
		{"RPCPort", func(c *Config) { c.BindAddr, c.RPCPort = "127.0.0.1:8450", 8450 }}, // Serf's port: bind fails after the data dir is made
		{"Transport", func(c *Config) { c.Transport = "carrier-pigeon" }},
		{"GossipProfile", func(c *Config) { c.GossipProfile = "wan" }},
		{"Sync", func(c *Config) { c.Sync = "sometimes" }},
		{"MaxRecordBytes", func(c *Config) { c.MaxRecordBytes = -1 }},
		{"MaxRecordBytes", func(c *Config) { c.MaxRecordBytes = fsm.MaxRecordValueBytes + 1 }}, // no command could carry it
		{"SegmentBytes", func(c *Config) { c.SegmentBytes = -1 }},
		{"RetentionBytes", func(c *Config) { c.RetentionBytes = -1 }},
		{"RetentionAge", func(c *Config) { c.RetentionAge = -time.Hour }},
		{"BootstrapExpect", func(c *Config) { c.BootstrapExpect = -1 }},
		{"BootstrapExpect", func(c *Config) { c.BootstrapExpect = 3; c.Bootstrap = true }},
		{"MaxRequestBytes", func(c *Config) { c.MaxRequestBytes = 1024 }},
		{"MaxSmallRequestBytes", func(c *Config) { c.MaxSmallRequestBytes = -1 }},
		{"MaxBatchRecords", func(c *Config) { c.MaxBatchRecords = -1 }},
		{"MaxStreamInflightBytes", func(c *Config) { c.MaxStreamInflightBytes = -1 }},
		{"MaxConcurrentStreams", func(c *Config) { c.MaxConcurrentStreams = -1 }},
		{"ReadHeaderTimeout", func(c *Config) { c.ReadHeaderTimeout = -time.Second }},
		{"RequestReadTimeout", func(c *Config) { c.RequestReadTimeout = -time.Second }},
		{"IdleTimeout", func(c *Config) { c.IdleTimeout = -time.Second }},
		{"MaxPendingConns", func(c *Config) { c.MaxPendingConns = -1 }},
		{"MaxConns", func(c *Config) { c.MaxConns = -1 }},
		{"MaxForwardClients", func(c *Config) { c.MaxForwardClients = -1 }},
		{"RetentionInterval", func(c *Config) { c.RetentionInterval = -time.Second }}, // a ticker would panic in Run
		{"ReconcileInterval", func(c *Config) { c.ReconcileInterval = -time.Second }},
		{"MaxConsumeWait", func(c *Config) { c.MaxConsumeWait = -time.Second }},
		{"GroupSessionTimeout", func(c *Config) { c.GroupSessionTimeout = -time.Second }},
		{"GroupOffsetsRetention", func(c *Config) { c.GroupOffsetsRetention = -time.Second }},
		{"ACLModelFile", func(c *Config) { c.ACLModelFile = filepath.Join(seedACLDir, "model.conf") }},
		{"Authorizer", func(c *Config) {
			c.Authorizer, c.ACLPolicyFile, c.InsecurePlaintextPeers = authz.AllowAll{}, policy, true
		}},
		{"PeerServerTLS", func(c *Config) { c.ACLPolicyFile = policy }}, // plaintext Raft next to an ACL
		{"InsecurePlaintextPeers", func(c *Config) {
			c.PeerServerTLS, c.PeerClientTLS, c.InsecurePlaintextPeers = &tls.Config{}, &tls.Config{}, true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cfg := Config{DataDir: dir, NodeName: "node-0", BindAddr: "127.0.0.1:0", RPCPort: -1}
			tt.set(&cfg)
			s, err := New(cfg)
			if s != nil {
				_ = s.Close()
			}
			if s != nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig naming %s", s, err, tt.field)
			}
			if _, statErr := os.Stat(dir); !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("New created %s before refusing its config (%v)", dir, statErr)
			}
		})
	}
}

// TestNewReportsEveryInvalidField: one error per field at fault, joined.
func TestNewReportsEveryInvalidField(t *testing.T) {
	_, err := New(Config{DataDir: t.TempDir(), NodeName: "node-0", Transport: "x", Sync: "y", MaxForwardClients: -1})
	for _, field := range []string{"Transport ", "Sync ", "MaxForwardClients "} {
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("New = %v; want ErrInvalidConfig naming %s", err, field)
		}
	}
}

// TestNewRejectsBadBindPortAndAdvertisePort: a BindAddr whose port is out of range or not a
// number passed validation, and Serf refused it only when it started: after the data dir was
// made and a lone node had bootstrapped its Raft state there. A host:port as AdvertiseHost or
// GossipAdvertiseHost was looked up as a host name, and waited for, up to 2 minutes. Both are
// refused before anything is created.
func TestNewRejectsBadBindPortAndAdvertisePort(t *testing.T) {
	rejectsBeforeDataDir(t, []badField{
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:-1" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:abc" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:" }},
		{"AdvertiseHost", func(c *Config) { c.AdvertiseHost = "10.0.0.1:8400" }},
		{"GossipAdvertiseHost", func(c *Config) { c.GossipAdvertiseHost = "[::1]:8401" }},
	})
}

// TestNewRejectsBadJoinAndMetricsAddrs: a StartJoinAddrs entry or a MetricsAddr that is no
// host:port was refused by Serf or the telemetry endpoint when they started: after the data
// dir was made and the commit log (and, for Serf, Raft's log) opened in it. They are refused
// by validation.
func TestNewRejectsBadJoinAndMetricsAddrs(t *testing.T) {
	rejectsBeforeDataDir(t, []badField{
		{"StartJoinAddrs", func(c *Config) { c.StartJoinAddrs = []string{"127.0.0.1:8401", "nope"} }},
		{"StartJoinAddrs", func(c *Config) { c.StartJoinAddrs = []string{"127.0.0.1:99999"} }},
		{"MetricsAddr", func(c *Config) { c.MetricsAddr = "127.0.0.1:99999" }},
		{"MetricsAddr", func(c *Config) { c.MetricsAddr = "nope" }},
	})
}

// badField is a Config field set to a value that validation must refuse.
type badField struct {
	field string
	set   func(*Config)
}

// rejectsBeforeDataDir checks that NewContext refuses each of tests as an invalid config naming
// its field, before the data dir exists.
func rejectsBeforeDataDir(t *testing.T, tests []badField) {
	t.Helper()
	for _, tt := range tests {
		dir := filepath.Join(t.TempDir(), "data")
		cfg := Config{DataDir: dir, NodeName: "node-0", BindAddr: "127.0.0.1:0", RPCPort: -1, GossipProfile: "test", BootstrapWait: -1}
		tt.set(&cfg)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // the old code waited for an advertised host:port
		s, err := NewContext(ctx, cfg)
		cancel()
		if s != nil {
			_ = s.Close()
		}
		if s != nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
			t.Errorf("%s: New = %v, %v; want ErrInvalidConfig naming %s", tt.field, s, err, tt.field)
		}
		if _, statErr := os.Stat(dir); !errors.Is(statErr, fs.ErrNotExist) {
			t.Errorf("%s: New created %s before refusing its config (%v)", tt.field, dir, statErr)
		}
	}
}
