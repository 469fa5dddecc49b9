package raft

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	walfs "github.com/hashicorp/raft-wal/fs"

	"github.com/commitlog-go/commitlog/consensus"
)

// noAddrTransport is a Transport whose local address is empty, so none can be derived.
type noAddrTransport struct{ hraft.Transport }

func (noAddrTransport) LocalAddr() hraft.ServerAddress { return "" }

func TestConfigValidate(t *testing.T) {
	_, trans := hraft.NewInmemTransport("a")
	base := func() Config { return Config{ID: "a", DataDir: "/tmp/x", Transport: trans} }
	sl, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
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
			c.ClusterID = "c1"
		}, ""},
		{"stream layer and transport", func(c *Config) { c.StreamLayer = sl }, "mutually exclusive"},
		{"heartbeat too short", func(c *Config) {
			c.HeartbeatTimeout, c.LeaderLeaseTimeout = time.Millisecond, time.Millisecond
		}, "HeartbeatTimeout 1ms is below 5ms"},
		{"election too short", func(c *Config) { c.ElectionTimeout = time.Millisecond }, "ElectionTimeout 1ms is below 5ms"},
		{"lease too short", func(c *Config) { c.LeaderLeaseTimeout = time.Millisecond }, "LeaderLeaseTimeout 1ms is below 5ms"},
		{"commit timeout too short", func(c *Config) { c.CommitTimeout = time.Microsecond }, "CommitTimeout 1µs is below 1ms"},
		{"negative max append", func(c *Config) { c.MaxAppendEntries = -1 }, "MaxAppendEntries -1 is outside"},
		{"snapshot interval too short", func(c *Config) { c.SnapshotInterval = time.Millisecond }, "SnapshotInterval 1ms is below 5ms"},
		{"negative retained snapshots", func(c *Config) { c.RetainSnapshots = -1 }, "RetainSnapshots -1 is below 1"},
		{"negative WAL segment size", func(c *Config) { c.WALSegmentSize = -1 }, "WALSegmentSize -1 is negative"},
		{"in-memory log with a WAL file system", func(c *Config) { c.UnsafeInmemLog, c.WALFS = true, walfs.New() }, "UnsafeInmemLog excludes WALFS"},
		{"negative transport pool", func(c *Config) { c.TransportPool = -1 }, "TransportPool -1 is below 1"},
		{"no address derivable", func(c *Config) { c.Transport = noAddrTransport{trans} }, "Address is required"},
		{"several bootstrap servers without a cluster id", func(c *Config) {
			c.BootstrapServers = []consensus.Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}}
		}, "ClusterID"},
		{"cluster id too long", func(c *Config) { c.ClusterID = strings.Repeat("x", 256) }, "ClusterID is longer than 255 bytes"},
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

// TestLeaderAddressIsTheConfigurations: the leader's address a Node reports (Status, Leader,
// NotLeaderError) is the one in Raft's configuration, the address it was added with (here a host
// name), not the transport's advertised one (here the IP it listens on): the name is what its
// certificate carries and what clients and peers dial.
func TestLeaderAddressIsTheConfigurations(t *testing.T) {
	sl, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(sl.Addr().String())
	addr := net.JoinHostPort("localhost", port)
	n, err := New(Config{ID: "a", DataDir: t.TempDir(), StreamLayer: sl, Address: addr, Bootstrap: true}, &plainSM{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(10 * time.Second)
	// hashicorp/raft sets its state to leader a moment before it records itself as the leader.
	for _, known := n.Leader(); !n.IsLeader() || !known; _, known = n.Leader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := n.Status().Leader.Address; got != addr {
		t.Errorf("Status().Leader.Address = %q, want %q (the configuration's; the transport advertises %s)", got, addr, sl.Addr())
	}
	if l, ok := n.Leader(); !ok || l.Address != addr {
		t.Errorf("Leader() = %+v, %v; want %q", l, ok, addr)
	}
}
