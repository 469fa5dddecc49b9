package client_test

import (
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// TestCheckAddress: the addresses New takes, and why it refuses the others. A port given as a
// service name is taken, as the dialer takes it (New refused one when its check took every port
// for a number).
func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:8400", ""},
		{"[::1]:1", ""},
		{"localhost:65535", ""},
		{"127.0.0.1:https", ""},
		{"nonsense", "want host:port"},
		{"127.0.0.1:0", "port 0 is out of range"},
		{"127.0.0.1:99999", "port 99999 is out of range"},
		{"127.0.0.1:-5", "port -5 is out of range"},
		{"127.0.0.1:abc", `port "abc" is neither a number nor a service name`},
	} {
		err := client.CheckAddress(tc.addr)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckAddress(%q) = %v, want %q", tc.addr, err, tc.want)
		}
	}
}
