package cli

import (
	"strings"
	"testing"
	"time"
)

// TestAddrFlagRefusedAtOnce: an --addr whose port no dial can reach (out of range, 0) was
// dialled for the SDK's whole retry budget, about 9 s, and its error ("dial tcp: address
// 99999: invalid port") did not name --addr; nor did an --addr without a port.
func TestAddrFlagRefusedAtOnce(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:99999", `--addr "127.0.0.1:99999": port 99999 is out of range`},
		{"127.0.0.1:0", `--addr "127.0.0.1:0": port 0 is out of range`},
		{"127.0.0.1:-5", `--addr "127.0.0.1:-5": port -5 is out of range`},
		{"localhost", `--addr "localhost": want host:port`},
		{"", "--addr: want the host:port of one or more servers"},
	} {
		start := time.Now()
		code, out, errOut := run(t, t.Context(), "consume", "--addr", tc.addr)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("consume --addr %q: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.addr, code, out, errOut, tc.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("consume --addr %q took %v; want it refused at once", tc.addr, d)
		}
	}
}
