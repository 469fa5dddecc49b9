package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

func TestInsecureReasons(t *testing.T) {
	tlsCfg := &Config{ServerTLS: newTestPKI(t).client("", ""), GossipKey: "k"}
	tests := []struct {
		name    string
		ip      string
		cfg     *Config
		peerTLS bool
		want    []string
	}{
		{"loopback plaintext", "127.0.0.1", &Config{}, false, nil},
		{"loopback v6 plaintext", "::1", &Config{}, false, nil},
		{"every interface plaintext", "0.0.0.0", &Config{}, false, []string{"API", "Raft", "gossip"}},
		{"every interface v6", "::", &Config{}, false, []string{"API", "Raft", "gossip"}},
		{"private address plaintext", "10.1.2.3", &Config{}, false, []string{"API", "Raft", "gossip"}},
		{"API TLS, plaintext Raft", "10.1.2.3", tlsCfg, false, []string{"Raft"}},
		{"everything protected", "10.1.2.3", tlsCfg, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := insecureReasons(net.ParseIP(tt.ip), tt.cfg, tt.peerTLS)
			if len(got) != len(tt.want) {
				t.Fatalf("insecureReasons = %q, want %d reasons naming %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("reason %d = %q, want it to name %s", i, got[i], w)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestInsecureServer starts a node bound to every interface without TLS: it logs a warning,
// and GetServers says it is insecure. A loopback node is not.
func TestInsecureServer(t *testing.T) {
	var logs syncBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for gossip
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	srv, err := New(Config{
		DataDir: t.TempDir(), NodeName: "open", BindAddr: net.JoinHostPort("0.0.0.0", strconv.Itoa(port)), RPCPort: -1,
		AdvertiseHost: "127.0.0.1", // the test's traffic stays on this host
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitLeader(t, srv)
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
	res, err := newClient(t, TransportGRPC, srv.Addr()).GetServers(ctxT(t, 10*time.Second), &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.GetServers(); len(s) != 1 || !s[0].GetInsecure() {
		t.Errorf("GetServers = %v, want the node insecure", s)
	}

	safe := startServer(t, Config{})
	res, err = newClient(t, TransportGRPC, safe.Addr()).GetServers(ctxT(t, 10*time.Second), &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.GetServers(); len(s) != 1 || s[0].GetInsecure() {
		t.Errorf("loopback node: GetServers = %v, want it not insecure", s)
	}
}

// TestCertExpiry checks the expiry gauge of a TLS node's certificates and the warning for a
// certificate that expires within CertExpiryWarning, and that Reload replaces both.
func TestCertExpiry(t *testing.T) {
	p := newTestPKI(t)
	certFile, keyFile := p.cert("short", certgen.Server, certgen.Options{
		CommonName: "short", DNSNames: []string{"localhost", tlsutil.NodeDNSName("node-0")}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Days: 3,
	})
	var logs syncBuffer
	srv, src := startWithAPICredentials(t, certFile, keyFile, p.caFile, Config{
		Transport:   TransportGRPC, // the CLI tests cover the Connect transport with reloadable TLS
		MetricsAddr: "127.0.0.1:0",
		GossipKey:   p.gossipKey(), // TLS requires it
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	short := src.Expiries()[0].NotAfter

	gauge := func(subject, kind string) float64 {
		t.Helper()
		fams := telemetrytest.Scrape(t, srv.MetricsAddr())
		m, err := telemetrytest.Find(fams, "commitlog_tls_cert_expiry_seconds", map[string]string{"role": "server", "kind": kind, "subject": subject})
		if err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	upper := time.Until(short).Seconds()
	got := gauge("short", "cert")
	if lower := time.Until(short).Seconds(); got > upper || got < lower {
		t.Errorf("expiry gauge of the 3-day certificate = %v s, want between %v and %v s", got, lower, upper)
	}
	if got := gauge("test CA", "ca"); got < 300*24*3600 {
		t.Errorf("expiry gauge of the CA = %v s, want most of its validity", got)
	}
	if l := logs.String(); !strings.Contains(l, "certificate expires soon") || !strings.Contains(l, "subject=short") {
		t.Errorf("no warning for the certificate that expires in 3 days:\n%s", l)
	}

	// A longer certificate in place of the short one, then Reload: the gauge follows.
	longCert, longKey := p.cert("long", certgen.Server, certgen.Options{
		CommonName: "long", DNSNames: []string{"localhost", tlsutil.NodeDNSName("node-0")}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Days: 90,
	})
	replaceFiles(t, map[string]string{longCert: certFile, longKey: keyFile})
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := gauge("long", "cert"); got < 89*24*3600 {
		t.Errorf("after Reload, the expiry gauge = %v s, want about 90 days", got)
	}
	c := tlsClient(t, TransportGRPC, srv.Addr(), p.client(p.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := c.GetServers(ctxT(t, 10*time.Second), &logv1.GetServersRequest{}); err != nil {
		t.Errorf("a client after the reload: %v", err)
	}
}

// TestReloadRevokesOpenStreams: a reload of the policy (SIGHUP) that revokes a client's rights
// applies to the streams it has open too: its tailing ConsumeStream ends PermissionDenied
// instead of carrying the next record, and its ProduceStream's next request is refused and
// never appended.
func TestReloadRevokesOpenStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(t.TempDir(), "policy.csv")
			write := func(text string) {
				t.Helper()
				if err := os.WriteFile(policy+".new", []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(policy+".new", policy); err != nil {
					t.Fatal(err)
				}
			}
			const rootRules = "p, root, *, produce\np, root, *, consume\n"
			write(rootRules + "p, alice, *, produce\np, alice, *, consume\n")
			srv := startServer(t, pki.secureConfig(tr, policy))
			ctx := ctxT(t, 30*time.Second)
			root := tlsClient(t, tr, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
			alice := tlsClient(t, tr, srv.Addr(), pki.client(pki.cert("alice", certgen.Client, certgen.Options{CommonName: "alice"})))
			produce := func(v string) {
				t.Helper()
				if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}}); err != nil {
					t.Fatalf("Produce as root: %v", err)
				}
			}
			produce("before") // a Connect stream opens once its first message is sent
			cs, err := alice.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			ps, err := alice.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()

			if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("alice before")}}); err != nil {
				t.Fatalf("alice's ProduceStream send: %v", err)
			}
			if res, err := ps.Receive(); err != nil || res.GetOffset() != 1 {
				t.Fatalf("alice's ProduceStream before the reload: %v, %v; want offset 1", res, err)
			}
			for off := range uint64(2) {
				if res, err := cs.Receive(); err != nil || res.GetRecord().GetOffset() != off {
					t.Fatalf("alice's ConsumeStream before the reload: %v, %v; want offset %d", res, err, off)
				}
			}

			write(rootRules) // alice may do nothing now
			if err := srv.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			produce("after")
			if res, err := cs.Receive(); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("alice's ConsumeStream after her right was revoked: %q, %v; want PermissionDenied", res.GetRecord().GetValue(), err)
			}
			_ = ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("alice after")}}) // a failed Send: Receive says why
			if res, err := ps.Receive(); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("alice's ProduceStream after her right was revoked: %v, %v; want PermissionDenied", res, err)
			}
			if b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil || b.GetNextOffset() != 3 {
				t.Errorf("GetBounds = %v, %v; want next offset 3 (alice's record after the revocation not appended)", b, err)
			}
		})
	}
}

// TestReloadPolicy checks Server.Reload (what SIGHUP calls) with a good policy file, which
// takes effect at once, then a bad one, which is reported naming the file while the previous
// policy keeps deciding.
func TestReloadPolicy(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(policy+".new", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(policy+".new", policy); err != nil {
			t.Fatal(err)
		}
	}
	write("p, root, *, produce\np, root, *, consume\n")
	srv := startServer(t, pki.secureConfig(TransportConnect, policy))
	ctx := ctxT(t, 30*time.Second)
	nobody := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("nobody", certgen.Client, certgen.Options{CommonName: "nobody"})))
	produce := func() error {
		_, err := nobody.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		return err
	}
	if err := produce(); transport.CodeOf(err) != transport.PermissionDenied {
		t.Fatalf("nobody's produce before the reload = %v, want PermissionDenied", err)
	}

	write("p, root, *, produce\np, nobody, *, produce\n")
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload of a good policy: %v", err)
	}
	if err := produce(); err != nil {
		t.Fatalf("nobody's produce after granting it: %v", err)
	}

	write("p, nobody, *, produce, extra\n")
	err := srv.Reload()
	if err == nil || !strings.Contains(err.Error(), policy) {
		t.Fatalf("Reload of a bad policy = %v, want an error naming %s", err, policy)
	}
	if err := produce(); err != nil {
		t.Errorf("after a bad policy file, the previous policy was not kept: %v", err)
	}
}

// replaceFiles copies each source file over its destination atomically (a new file renamed
// over the old one), as an operator rotating certificates should.
func replaceFiles(t *testing.T, srcToDst map[string]string) {
	t.Helper()
	for src, dst := range srcToDst {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".new", dst); err != nil {
			t.Fatal(err)
		}
	}
}
