package server

import (
	"strings"
	"testing"
)

// TestValidHost: the host names and addresses an advertise host may be (those a resolver can
// answer) pass validate; a name that can never resolve is refused there, before anything is
// made on disk, where it was waited for, up to 2 minutes.
func TestValidHost(t *testing.T) {
	for _, h := range []string{"localhost", "node-1.commitlog.default.svc.cluster.local", "_srv.example.", "10.0.0.7", "::1", "[::1]", "My-Host_2"} {
		cfg := Config{DataDir: t.TempDir(), NodeName: "n", BindAddr: "127.0.0.1:0", AdvertiseHost: h, GossipAdvertiseHost: h}
		cfg.withDefaults()
		if err := cfg.validate(); err != nil {
			t.Errorf("advertise host %q: %v", h, err)
		}
	}
	for _, h := range []string{"my host", "a..b", ".", "bad/name", "x\x00", strings.Repeat("x", 64), strings.Repeat("a.", 127) + "ab"} {
		cfg := Config{DataDir: t.TempDir(), NodeName: "n", BindAddr: "127.0.0.1:0", AdvertiseHost: h}
		cfg.withDefaults()
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "is neither an IP address nor a valid host name") {
			t.Errorf("advertise host %q: %v; want it refused", h, err)
		}
	}
}
