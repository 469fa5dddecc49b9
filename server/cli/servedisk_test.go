package cli

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesBeforeTouchingDisk: serve flags that the server refused only when the step
// using them ran, after the data dir was made (and Raft's log and the commit log opened in it),
// are refused before anything is made on disk, with an error naming the flag: --segment-bytes
// out of the segment log's range (refused when the log opened), a --gossip-key-file that is
// not a key (when Serf started), an --acl-policy-file or --acl-model-file that does not load
// (when the authorizer was built, after Raft), and a --max-batch-records above what a command
// carries (capped silently).
func TestServeRefusesBeforeTouchingDisk(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir)
	write := func(name, body string) {
		if err := os.WriteFile(f(name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gossip.key", mustRun(t, "tls", "gossip-key"))
	write("notbase64.key", "garbage!\n")
	write("short.key", base64.StdEncoding.EncodeToString([]byte("0123456789"))+"\n")
	write("bad-model.conf", "[bad\n")
	write("bad-policy.csv", "q, root, *, produce\n")
	mtls := []string{"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"), "--gossip-key-file", f("gossip.key")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"segment bytes below the minimum", []string{"--segment-bytes", "10"}, "--segment-bytes 10 is not in [56, 1073741824]"},
		{"segment bytes above the maximum", []string{"--segment-bytes", "2147483648"}, "--segment-bytes 2147483648 is not in [56, 1073741824]"},
		{"gossip key not base64", []string{"--gossip-key-file", f("notbase64.key")}, "--gossip-key-file is not a gossip key"},
		{"gossip key of 10 bytes", []string{"--gossip-key-file", f("short.key")}, "--gossip-key-file is not a gossip key"},
		{"missing policy file", append([]string{"--acl-policy-file", f("nope.csv")}, mtls...), "nope.csv"},
		{"bad model file", append([]string{"--acl-policy-file", filepath.Join(seedACLDir, "policy.csv"), "--acl-model-file", f("bad-model.conf")}, mtls...), "invalid model"},
		{"bad policy file", append([]string{"--acl-policy-file", f("bad-policy.csv")}, mtls...), "invalid policy"},
		{"max batch records above a command's", []string{"--max-batch-records", "100000"}, "--max-batch-records 100000 is above 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := f("data-" + strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"serve", "--data-dir", data, "--bind-addr", "127.0.0.1:0",
				"--rpc-port", "0", "--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error"}, tc.args...)
			// A serve that wrongly starts is stopped after a while, and fails the test.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			code, _, errOut := run(t, ctx, args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure containing %q", code, errOut, tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				entries, _ := os.ReadDir(data)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("serve created its data directory (holding %q) before refusing the flags", names)
			}
		})
	}
}
