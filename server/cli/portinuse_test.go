package cli

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServeRPCPortInUseNamesFlag: an --rpc-port already taken was refused as "server: listen:
// listen tcp 127.0.0.1:N: bind: address already in use", naming neither flag, where a taken
// --bind-addr port is named.
func TestServeRPCPortInUseNamesFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	code, _, errOut := run(t, t.Context(), "serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--rpc-port", port,
		"--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0s", "--log-level", "error")
	if code != 1 || !strings.Contains(errOut, "--rpc-port "+port) || !strings.Contains(errOut, "address already in use") {
		t.Errorf("serve --rpc-port %s (taken): exit %d, stderr %q; want exit 1 naming --rpc-port %s", port, code, errOut, port)
	}
}
