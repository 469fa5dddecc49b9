package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesInvalidAdvertiseHost: an --advertise-host (or --gossip-advertise-host) that
// can never resolve, as one holding a space, was waited for as a name that does not resolve
// yet, for 2 minutes, before serve failed. It is refused at once, naming the flag, before the
// data dir is made.
func TestServeRefusesInvalidAdvertiseHost(t *testing.T) {
	for _, tc := range []struct{ flag, host string }{
		{"--advertise-host", "my host"},
		{"--gossip-advertise-host", "my host"},
		{"--advertise-host", "bad/name"},
		{"--advertise-host", "a..b"},
		{"--advertise-host", strings.Repeat("x", 64) + ".example"},
	} {
		t.Run(tc.flag+"="+tc.host, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			code, _, errOut := run(t, ctx, "serve", "--data-dir", data, "--bind-addr", "127.0.0.1:0", "--rpc-port", "0",
				"--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error", tc.flag, tc.host)
			took := time.Since(start)
			if code == 0 || took > 5*time.Second || !strings.Contains(errOut, tc.flag+` "`+tc.host+`" is neither an IP address nor a valid host name`) {
				t.Errorf("serve %s %q: exit %d after %v, stderr %q; want a refusal at once naming the flag", tc.flag, tc.host, code, took.Round(time.Millisecond), errOut)
			}
			if _, err := os.Stat(data); err == nil {
				t.Error("serve created its data directory before refusing the host")
			}
		})
	}
}
