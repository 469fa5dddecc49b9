package cli

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServeConfigErrorsNameFlags: a flag value that the server's configuration refuses is
// reported with the flag's name, as given: the message named the Go field of server.Config
// ("invalid config: RPCPort 70000 is out of range"), and a negative duration in nanoseconds.
func TestServeConfigErrorsNameFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rpc-port", "70000"}, "--rpc-port 70000 is out of range"},
		{[]string{"--sync", "bogus"}, `--sync "bogus": want never, interval or always`},
		{[]string{"--read-header-timeout", "-1s"}, "--read-header-timeout -1s is negative"},
		{[]string{"--group-offsets-retention", "-2h"}, "--group-offsets-retention -2h0m0s is negative"},
		{[]string{"--bootstrap-expect", "3", "--bootstrap"}, "--bootstrap-expect and --bootstrap are mutually exclusive"},
		{[]string{"--max-request-bytes", "10"}, "--max-request-bytes 10 must be at least --max-record-bytes + 64 KiB"},
		{[]string{"--segment-bytes", "10"}, "--segment-bytes 10 is not in"},
	} {
		args := append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--bind-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
			"--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error"}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "--rpc-port") {
			args = append(args, "--rpc-port", "0")
		}
		code, _, errOut := run(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("serve %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
