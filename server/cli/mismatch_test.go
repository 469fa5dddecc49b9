package cli

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClientMismatchHints runs client commands whose flags do not match the server's (TLS on
// one side only, a CA that did not sign the server's certificate, no client certificate for a
// server that requires one, the Connect transport against a gRPC server) and checks that each
// fails, soon, with an error naming the flag that fixes it.
func TestClientMismatchHints(t *testing.T) {
	dir, otherDir := t.TempDir(), t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "ca", "create", "--dir", otherDir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "mtls-node")
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}

	mtls := startServe(t,
		"--data-dir", f("data-mtls"), "--node-name", "mtls-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--log-level", "error", "--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"))
	grpcPlain := startServe(t,
		"--data-dir", f("data-grpc"), "--node-name", "grpc-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--log-level", "error", "--transport", "grpc")

	root := []string{"--tls-ca-file", f("commitlog-ca.pem"),
		"--tls-cert-file", f("commitlog-root-client.pem"), "--tls-key-file", f("commitlog-root-client-key.pem")}
	status := []string{"cluster", "status"}
	tests := []struct {
		name  string
		cmd   []string // the command, then its flags
		value string   // an argument after the flags, if any
		want  string
	}{
		{"plaintext client, TLS server", append(status, "--addr", mtls), "", "pass --tls-ca-file"},
		{"no client certificate", append(status, "--addr", mtls, "--tls-ca-file", f("commitlog-ca.pem")), "",
			"pass --tls-cert-file and --tls-key-file"},
		{"CA that did not sign the server's certificate", append(append(status, "--addr", mtls, "--tls-ca-file",
			filepath.Join(otherDir, "commitlog-ca.pem")), root[2:]...), "", "pass --tls-ca-file with the CA that signed it"},
		{"TLS client, plaintext server", append(append(status, "--addr", grpcPlain, "--transport", "grpc"), root...), "",
			"leave out the --tls-* flags"},
		{"connect client, grpc server", append(status, "--addr", grpcPlain), "", "pass --transport grpc"},
		{"connect client, grpc server, produce", []string{"produce", "--addr", grpcPlain}, "x", "pass --transport grpc"},
	}
	for _, tr := range []string{"connect", "grpc"} {
		for _, tc := range tests {
			if tr == "grpc" && strings.Contains(tc.name, "grpc server") {
				continue // the grpc client speaks to it
			}
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				args := append(slices.Clone(tc.cmd), "--timeout", "5s")
				if !slices.Contains(args, "--transport") {
					args = append(args, "--transport", tr)
				}
				if tc.value != "" {
					args = append(args, tc.value)
				}
				start := time.Now()
				code, out, errOut := run(t, t.Context(), args...)
				if code == 0 || !strings.Contains(errOut, tc.want) {
					t.Errorf("commitlog %s: exit %d, stdout %q, stderr %q; want a failure with %q", strings.Join(args, " "), code, out, errOut, tc.want)
				}
				if d := time.Since(start); d > 20*time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
	// The grpc client speaks to a Connect server: nothing to explain.
	mustRun(t, append([]string{"cluster", "status", "--addr", mtls, "--transport", "grpc"}, root...)...)
}

// TestClientAtMaxConnsHint: a plaintext server at --max-conns closes a new connection at once,
// as a TLS server closes a plaintext client's: the hint names both causes, where it named only
// TLS (an operator told "the server likely requires TLS" went looking in the wrong place).
func TestClientAtMaxConnsHint(t *testing.T) {
	addr := startOneWith(t, "--max-conns", "1", "--read-header-timeout", "1h")
	for range 2 { // the first takes the one slot; the second is refused
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("P")); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := run(t, t.Context(), "cluster", "status", "--addr", addr, "--timeout", "5s")
	if code == 0 || !strings.Contains(errOut, "pass --tls-ca-file") || !strings.Contains(errOut, "serve --max-conns") {
		t.Fatalf("cluster status: exit %d, stdout %q, stderr %q; want a failure naming --tls-ca-file and --max-conns", code, out, errOut)
	}
}
