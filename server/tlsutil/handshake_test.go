package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
)

// outcome is what each end of one handshake saw.
type outcome struct {
	serverSubject string // the client identity the server extracted
	clientSubject string // the server identity the client extracted
	serverErr     error
	clientErr     error
}

// handshakeDeadline only keeps a broken test from hanging; nothing here
// asserts on time.
const handshakeDeadline = 20 * time.Second

// handshake connects a client to a server over loopback TCP and reports
// what both sides saw. The server writes one byte once it has accepted the
// client's identity, and the client reads it: with TLS 1.3 the client
// finishes its handshake before the server has verified the client's
// certificate, so a refusal reaches the client only on its first read.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) outcome {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	var out outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			out.serverErr = err
			return
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(handshakeDeadline)); err != nil {
			out.serverErr = err
			return
		}
		tc := tls.Server(conn, serverCfg)
		if err := tc.Handshake(); err != nil {
			out.serverErr = err
			return
		}
		subject, err := tlsutil.SubjectFromState(tc.ConnectionState())
		if err != nil {
			out.serverErr = err
			return
		}
		out.serverSubject = subject
		if _, err := tc.Write([]byte{1}); err != nil {
			out.serverErr = err
		}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeDeadline)); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, clientCfg)
	clientErr := tc.Handshake()
	if clientErr == nil {
		out.clientSubject, clientErr = tlsutil.SubjectFromState(tc.ConnectionState())
	}
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	tc.Close()
	<-done
	out.clientErr = clientErr
	return out
}

func TestHandshake(t *testing.T) {
	f := newFixture(t)
	clock := func(d time.Duration) tlsutil.Option {
		return tlsutil.WithClock(func() time.Time { return f.base.Add(d) })
	}
	const day = 24 * time.Hour
	server := func(srv files, ca string, opts ...tlsutil.Option) func() (*tls.Config, error) {
		return func() (*tls.Config, error) { return tlsutil.ServerConfig(srv.cert, srv.key, ca, opts...) }
	}
	client := func(c files, ca, name string, opts ...tlsutil.Option) func() (*tls.Config, error) {
		return func() (*tls.Config, error) { return tlsutil.ClientConfig(c.cert, c.key, ca, name, opts...) }
	}
	peer := func(c files, name string) func() (*tls.Config, error) {
		return func() (*tls.Config, error) { return tlsutil.PeerConfig(c.cert, c.key, f.caFile, name) }
	}
	// present makes the client send its certificate even when it was not
	// issued by a CA the server lists (crypto/tls would otherwise send
	// none), so the server's own verification is what refuses it.
	present := func(build func() (*tls.Config, error)) func() (*tls.Config, error) {
		return func() (*tls.Config, error) {
			c, err := build()
			if c != nil {
				cert := c.Certificates[0]
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			return c, err
		}
	}
	tls11 := func(build func() (*tls.Config, error)) func() (*tls.Config, error) {
		return func() (*tls.Config, error) {
			c, err := build()
			if c != nil {
				c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			}
			return c, err
		}
	}

	tests := []struct {
		name       string
		server     func() (*tls.Config, error)
		client     func() (*tls.Config, error)
		wantClient string           // the identity the server must see; "" means refused
		wantServer string           // the identity the client must see, when accepted
		refusedBy  string           // "server" or "client", when refused
		check      func(error) bool // optional: is the refusing side's error the expected one
	}{
		{name: "valid client, DNS name", server: server(f.server, f.caFile), client: client(f.alice, f.caFile, "localhost"),
			wantClient: "alice", wantServer: "node-1"},
		{name: "valid client, IP address", server: server(f.server, f.caFile), client: client(f.alice, f.caFile, "127.0.0.1"),
			wantClient: "alice", wantServer: "node-1"},
		{name: "no client certificate", server: server(f.server, f.caFile), client: client(files{}, f.caFile, "localhost"),
			refusedBy: "server", check: noCertificate},
		{name: "client certificate from another CA", server: server(f.server, f.caFile), client: present(client(f.otherAlice, f.caFile, "localhost")),
			refusedBy: "server", check: unknownAuthority},
		{name: "client certificate from another CA, not presented", server: server(f.server, f.caFile), client: client(f.otherAlice, f.caFile, "localhost"),
			refusedBy: "server", check: noCertificate},
		{name: "self-signed client certificate", server: server(f.server, f.caFile), client: present(client(f.selfSigned, f.caFile, "localhost")),
			refusedBy: "server", check: unknownAuthority},
		{name: "expired client certificate", server: server(f.server, f.caFile, clock(400*day)), client: client(f.alice, f.caFile, "localhost"),
			refusedBy: "server", check: expired},
		{name: "client certificate not yet valid (clock)", server: server(f.server, f.caFile, clock(-2*day)), client: client(f.alice, f.caFile, "localhost"),
			refusedBy: "server", check: expired},
		{name: "client certificate not yet valid (issued for later)", server: server(f.server, f.caFile), client: client(f.futureAlice, f.caFile, "localhost"),
			refusedBy: "server", check: expired},
		{name: "clock inside validity accepts", server: server(f.server, f.caFile, clock(300*day)), client: client(f.alice, f.caFile, "localhost"),
			wantClient: "alice", wantServer: "node-1"},
		{name: "server-only certificate used as client certificate", server: server(f.server, f.caFile), client: client(f.serverOnly, f.caFile, "localhost"),
			refusedBy: "server", check: wrongUsage},
		{name: "client certificate without common name", server: server(f.server, f.caFile), client: client(f.noCN, f.caFile, "localhost"),
			refusedBy: "server", check: unauthenticated},
		{name: "server without CA asks for no identity", server: server(f.server, ""), client: client(f.alice, f.caFile, "localhost"),
			refusedBy: "server", check: unauthenticated},
		{name: "client certificate used as server certificate", server: server(f.aliceSAN, f.caFile), client: client(f.alice, f.caFile, "localhost"),
			refusedBy: "client", check: wrongUsage},
		{name: "server certificate from another CA", server: server(f.server, f.caFile), client: client(f.alice, f.otherCAFile, "localhost"),
			refusedBy: "client", check: unknownAuthority},
		{name: "wrong server name", server: server(f.server, f.caFile), client: client(f.alice, f.caFile, "db.example"),
			refusedBy: "client", check: wrongHost},
		{name: "expired server certificate (client clock)", server: server(f.server, f.caFile), client: client(f.alice, f.caFile, "localhost", clock(400*day)),
			refusedBy: "client", check: expired},
		{name: "TLS 1.1 client", server: server(f.server, f.caFile), client: tls11(client(f.alice, f.caFile, "localhost")),
			refusedBy: "server"},
		{name: "peers, shared server name", server: peer(f.server, ""), client: peer(f.node2, "server.commitlog"),
			wantClient: "node-2", wantServer: "node-1"},
		{name: "peers, by IP address", server: peer(f.server, ""), client: peer(f.node2, "127.0.0.1"),
			wantClient: "node-2", wantServer: "node-1"},
		{name: "peer without client authentication cannot dial", server: peer(f.server, ""), client: peer(f.serverOnly, "server.commitlog"),
			refusedBy: "server", check: wrongUsage},
		{name: "server certificate naming no node cannot dial as a peer", server: peer(f.server, ""), client: peer(f.unnamed, "server.commitlog"),
			refusedBy: "server", check: namesNoNode},
		{name: "server certificate naming no node cannot accept peers", server: peer(f.unnamed, ""), client: peer(f.node2, "server.commitlog"),
			refusedBy: "client", check: namesNoNode},
		{name: "client-only certificate cannot accept peers", server: peer(f.aliceSAN, ""), client: peer(f.node2, "localhost"),
			refusedBy: "client", check: wrongUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverCfg, err := tt.server()
			if err != nil {
				t.Fatal(err)
			}
			clientCfg, err := tt.client()
			if err != nil {
				t.Fatal(err)
			}
			out := handshake(t, serverCfg, clientCfg)
			if tt.wantClient != "" {
				if out.serverErr != nil || out.clientErr != nil {
					t.Fatalf("refused: server: %v; client: %v", out.serverErr, out.clientErr)
				}
				if out.serverSubject != tt.wantClient || out.clientSubject != tt.wantServer {
					t.Fatalf("identities: server saw %q, client saw %q; want %q, %q",
						out.serverSubject, out.clientSubject, tt.wantClient, tt.wantServer)
				}
				return
			}
			if out.serverSubject != "" {
				t.Fatalf("server accepted identity %q, want refusal", out.serverSubject)
			}
			if out.clientErr == nil {
				t.Fatalf("client saw no refusal (server: %v)", out.serverErr)
			}
			refusal := map[string]error{"server": out.serverErr, "client": out.clientErr}[tt.refusedBy]
			if refusal == nil {
				t.Fatalf("%s did not refuse (server: %v; client: %v)", tt.refusedBy, out.serverErr, out.clientErr)
			}
			if tt.check != nil && !tt.check(refusal) {
				t.Fatalf("%s refused for another reason: %v", tt.refusedBy, refusal)
			}
		})
	}
}

// Reasons for refusal, as crypto/tls and crypto/x509 report them.

func unknownAuthority(err error) bool {
	var e x509.UnknownAuthorityError
	return errors.As(err, &e)
}

func invalidBecause(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == reason
	}
}

var (
	expired    = invalidBecause(x509.Expired)
	wrongUsage = invalidBecause(x509.IncompatibleUsage)
)

func wrongHost(err error) bool {
	var e x509.HostnameError
	return errors.As(err, &e)
}

// noCertificate: the server required a certificate and got none. crypto/tls
// has no sentinel for it; the alert it sends is "certificate required".
func noCertificate(err error) bool {
	return err != nil && strings.Contains(err.Error(), "didn't provide a certificate")
}

func namesNoNode(err error) bool {
	return err != nil && strings.Contains(err.Error(), "names no node")
}

func unauthenticated(err error) bool { return errors.Is(err, tlsutil.ErrUnauthenticated) }
