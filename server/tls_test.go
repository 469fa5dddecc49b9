package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	dserf "github.com/commitlog-go/commitlog/discovery/serf"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// seedACLDir holds the seed's model.conf and policy.csv (root may produce and consume, nobody
// may do nothing), used here unchanged.
const seedACLDir = "../authz/casbin/testdata/seed"

// peerName is the DNS name every server certificate of these tests carries, verified by peers.
const peerName = "server.commitlog"

// testPKI is a CA with certificates written to files, as `commitlog tls` writes them.
type testPKI struct {
	t      *testing.T
	dir    string
	ca     *certgen.KeyPair
	caFile string
	key    string // gossip key
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := certgen.CreateCA(certgen.Options{CommonName: "test CA"})
	if err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), ca: ca}
	p.caFile, _ = p.write("ca", ca)
	return p
}

// write writes kp as <name>.pem and <name>-key.pem and returns their paths.
func (p *testPKI) write(name string, kp *certgen.KeyPair) (certFile, keyFile string) {
	p.t.Helper()
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	if err := kp.WriteFiles(certFile, keyFile, false); err != nil {
		p.t.Fatalf("WriteFiles %s: %v", name, err)
	}
	return certFile, keyFile
}

// cert creates a certificate of kind signed by the CA and writes it under name.
func (p *testPKI) cert(name string, kind certgen.Kind, opts certgen.Options) (certFile, keyFile string) {
	p.t.Helper()
	kp, err := certgen.CreateCert(p.ca, kind, opts)
	if err != nil {
		p.t.Fatalf("CreateCert %s: %v", name, err)
	}
	return p.write(name, kp)
}

// serverCert creates the server certificate every node of these tests shares (API and peers):
// it names the nodes node-0, node-1 and node-2.
func (p *testPKI) serverCert() (certFile, keyFile string) {
	p.t.Helper()
	return p.nodeCert("server", "node-0", "node-1", "node-2")
}

// nodeCert creates a server certificate naming nodes (none: a certificate with both usages
// that names no node) and writes it under name.
func (p *testPKI) nodeCert(name string, nodes ...string) (certFile, keyFile string) {
	p.t.Helper()
	dns := []string{"localhost", peerName}
	for _, n := range nodes {
		dns = append(dns, tlsutil.NodeDNSName(n))
	}
	return p.cert(name, certgen.Server, certgen.Options{CommonName: name, DNSNames: dns, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// gossipKey returns the gossip key of this PKI's cluster.
func (p *testPKI) gossipKey() string {
	p.t.Helper()
	if p.key == "" {
		k, err := dserf.GenerateKey()
		if err != nil {
			p.t.Fatal(err)
		}
		p.key = k
	}
	return p.key
}

// client returns a client TLS configuration trusting the CA and presenting certFile (none when
// empty).
func (p *testPKI) client(certFile, keyFile string) *tls.Config {
	p.t.Helper()
	cfg, err := tlsutil.ClientConfig(certFile, keyFile, p.caFile, "")
	if err != nil {
		p.t.Fatalf("ClientConfig: %v", err)
	}
	return cfg
}

// secureConfig returns a node configuration with mutual TLS on the API and between peers, the
// follower's forwarding client, and casbin with the given policy. It builds the configurations
// the way `commitlog serve --server-tls-* --peer-tls-*` does.
func (p *testPKI) secureConfig(tr, policyFile string) Config {
	p.t.Helper()
	certFile, keyFile := filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem")
	if _, err := os.Stat(certFile); err != nil {
		certFile, keyFile = p.serverCert()
	}
	api, err := tlsutil.ServerConfig(certFile, keyFile, p.caFile)
	if err != nil {
		p.t.Fatalf("ServerConfig: %v", err)
	}
	peer, err := tlsutil.PeerConfig(certFile, keyFile, p.caFile, peerName)
	if err != nil {
		p.t.Fatalf("PeerConfig: %v", err)
	}
	fwd, err := tlsutil.ClientConfig(certFile, keyFile, p.caFile, "")
	if err != nil {
		p.t.Fatalf("ClientConfig: %v", err)
	}
	return Config{
		Transport:      tr,
		ServerTLS:      api,
		PeerServerTLS:  peer,
		PeerClientTLS:  peer,
		PeerServerName: peerName,
		ForwardTLS:     fwd,
		ACLModelFile:   filepath.Join(seedACLDir, "model.conf"),
		ACLPolicyFile:  policyFile,
		GossipKey:      p.gossipKey(),
	}
}

// tlsClient dials addr over tr with tlsCfg (nil: plaintext).
func tlsClient(t *testing.T, tr, addr string, tlsCfg *tls.Config) transport.Client {
	t.Helper()
	newc := tconnect.NewClient
	if tr == TransportGRPC {
		newc = tgrpc.NewClient
	}
	c, err := newc(addr, transport.ClientConfig{TLS: tlsCfg})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startWithAPICredentials starts a server secured by reloadable API credentials read from
// certFile, keyFile and caFile (a tlsutil.Source named "server", as the CLI builds it, which
// also secures Raft when cfg has no peer credentials), cfg giving the rest, and returns the
// server and the Source.
func startWithAPICredentials(t *testing.T, certFile, keyFile, caFile string, cfg Config) (*testServer, *tlsutil.Source) {
	t.Helper()
	src, err := tlsutil.NewSource(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerTLS, err = src.ServerConfig(); err != nil {
		t.Fatal(err)
	}
	cfg.TLSCredentials = map[string]*tlsutil.Source{"server": src}
	return startServer(t, cfg), src
}

// call is one API method called with a fixed request.
type call struct {
	name string
	do   func(ctx context.Context, c transport.Client) error
}

// logCalls are the Log service's methods, unary and streaming, each taking one record or one
// offset.
var logCalls = []call{
	{"Produce", func(ctx context.Context, c transport.Client) error {
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		return err
	}},
	{"ProduceBatch", func(ctx context.Context, c transport.Client) error {
		_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("x")}}})
		return err
	}},
	{"ProduceStream", func(ctx context.Context, c transport.Client) error {
		s, err := c.ProduceStream(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		// A failed Send means the stream broke: Receive reports the status.
		sendErr := s.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		if _, err := s.Receive(); err != nil {
			return err
		}
		return sendErr
	}},
	{"Consume", func(ctx context.Context, c transport.Client) error {
		_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
		return err
	}},
	{"ConsumeStream", func(ctx context.Context, c transport.Client) error {
		s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Receive()
		return err
	}},
	{"GetBounds", func(ctx context.Context, c transport.Client) error {
		_, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
		return err
	}},
	{"GetServers", func(ctx context.Context, c transport.Client) error {
		_, err := c.GetServers(ctx, &logv1.GetServersRequest{})
		return err
	}},
}

// adminCalls are the Cluster service's methods, with requests that would change nothing even
// if they were allowed to run.
var adminCalls = []call{
	{"Join", func(ctx context.Context, c transport.Client) error {
		_, err := c.Join(ctx, &logv1.JoinRequest{Id: "intruder", RaftAddr: "127.0.0.1:1", Nonvoter: true})
		return err
	}},
	{"RemoveServer", func(ctx context.Context, c transport.Client) error {
		_, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "intruder"})
		return err
	}},
	{"TransferLeadership", func(ctx context.Context, c transport.Client) error {
		_, err := c.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: "intruder"})
		return err
	}},
}

// TestTLSAuthorization runs one node with mutual TLS and the seed's ACL files on each
// transport, and checks who may do what: root produces and consumes (unary and streams);
// nobody, and a server certificate used as a client, are PermissionDenied; certificates that do
// not verify, and plaintext, are refused before any handler runs.
func TestTLSAuthorization(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			srv := startServer(t, pki.secureConfig(tr, filepath.Join(seedACLDir, "policy.csv")))
			ctx := ctxT(t, 60*time.Second)

			root := tlsClient(t, tr, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
			t.Run("root produces and consumes", func(t *testing.T) {
				res, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hello")}})
				if err != nil {
					t.Fatalf("Produce: %v", err)
				}
				got, err := root.Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset()})
				if err != nil || string(got.GetRecord().GetValue()) != "hello" {
					t.Fatalf("Consume = %v, %v; want hello", got, err)
				}
				for _, c := range logCalls {
					if err := c.do(ctx, root); err != nil {
						t.Errorf("%s as root: %v", c.name, err)
					}
				}
			})

			t.Run("admin needs a policy", func(t *testing.T) {
				// The seed's policy grants root produce and consume only: no admin.
				for _, c := range adminCalls {
					if err := c.do(ctx, root); transport.CodeOf(err) != transport.PermissionDenied {
						t.Errorf("%s as root = %v, want PermissionDenied", c.name, err)
					}
				}
			})

			nobody := tlsClient(t, tr, srv.Addr(), pki.client(pki.cert("nobody", certgen.Client, certgen.Options{CommonName: "nobody"})))
			// A server certificate also allows client authentication (servers dial each
			// other with it); as a client it is an identity like any other, with no rights
			// the policy does not give.
			peer := tlsClient(t, tr, srv.Addr(), pki.client(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")))
			for _, who := range []struct {
				name    string
				c       transport.Client
				allowed map[string]bool
			}{
				{"nobody", nobody, nil},
				// Peers may ask each other who is in the cluster and how far they applied.
				{"server certificate", peer, map[string]bool{"GetBounds": true, "GetServers": true}},
			} {
				t.Run(who.name+" is denied", func(t *testing.T) {
					for _, c := range append(logCalls[:len(logCalls):len(logCalls)], adminCalls...) {
						err := c.do(ctx, who.c)
						if who.allowed[c.name] {
							if err != nil {
								t.Errorf("%s as %s = %v, want it allowed", c.name, who.name, err)
							}
						} else if transport.CodeOf(err) != transport.PermissionDenied {
							t.Errorf("%s as %s = %v, want PermissionDenied", c.name, who.name, err)
						}
					}
				})
			}

			// A client that is not a cluster peer cannot claim to forward for root.
			forged := transport.ContextWithForwardedFor(ctx, "root")
			if _, err := nobody.Produce(forged, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("nobody claiming to forward for root: %v, want PermissionDenied", err)
			}

			otherCA, err := certgen.CreateCA(certgen.Options{CommonName: "other CA"})
			if err != nil {
				t.Fatal(err)
			}
			otherRoot, err := certgen.CreateClientCert(otherCA, certgen.Options{CommonName: "root"})
			if err != nil {
				t.Fatal(err)
			}
			selfSigned, err := certgen.CreateCA(certgen.Options{CommonName: "root"})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			refused := []struct {
				name string
				tls  *tls.Config
			}{
				{"no client certificate", pki.client("", "")},
				{"certificate from another CA", pki.client(pki.write("other-ca-root", otherRoot))},
				{"self-signed certificate", pki.client(pki.write("self-signed-root", selfSigned))},
				{"expired certificate", pki.client(pki.cert("expired-root", certgen.Client,
					certgen.Options{CommonName: "root", Days: 1, Now: func() time.Time { return now.AddDate(0, 0, -3) }}))},
				{"not yet valid certificate", pki.client(pki.cert("future-root", certgen.Client,
					certgen.Options{CommonName: "root", Days: 1, Now: func() time.Time { return now.AddDate(0, 0, 3) }}))},
				{"certificate without client authentication", pki.client(pki.cert("server-only-root", certgen.ServerOnly,
					certgen.Options{CommonName: "root"}))},
				{"plaintext", nil},
			}
			for _, tc := range refused {
				t.Run("refused: "+tc.name, func(t *testing.T) {
					c := tlsClient(t, tr, srv.Addr(), tc.tls)
					for _, call := range []call{logCalls[0], logCalls[3], logCalls[4]} { // Produce, Consume, ConsumeStream
						cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						err := call.do(cctx, c)
						ctxErr := cctx.Err()
						cancel()
						if ctxErr != nil {
							t.Fatalf("%s: no answer before the deadline (%v): a refusal must be prompt", call.name, err)
						}
						// A handshake the server aborts surfaces as Unavailable on both clients
						// (the Connect client's broken pipe of a TLS 1.3 client whose certificate
						// was rejected after its handshake completed too: the context was not
						// canceled, checked above).
						switch code := transport.CodeOf(err); code {
						case transport.Unauthenticated, transport.Unavailable:
						default:
							t.Errorf("%s = %v (code %v), want Unauthenticated or Unavailable (refused)", call.name, err, code)
						}
					}
				})
			}

			// Nothing the refused clients sent reached the log: only root's records are there.
			b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{})
			if err != nil {
				t.Fatalf("GetBounds: %v", err)
			}
			if want := uint64(1 + 3); b.GetNextOffset() != want { // hello, then one record per produce call
				t.Errorf("next offset = %d, want %d", b.GetNextOffset(), want)
			}
		})
	}
}

// TestTLSClusterForwarding forms a 2-node cluster through Serf with mutual TLS on the API and
// on Raft, and checks that a write sent to the follower is forwarded to the leader for root,
// while nobody is denied at the follower.
//
// The policy is the seed's, unchanged: the follower forwards root's write naming root, and the
// leader authorizes root (it trusts the claim because the follower's certificate is a peer's).
func TestTLSClusterForwarding(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(seedACLDir, "policy.csv")
			leader, follower := startSecurePair(t, pki, tr, policy, nil)
			ctx := ctxT(t, 60*time.Second)

			root := tlsClient(t, tr, follower.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
			for i := range 3 {
				v := fmt.Sprintf("via-follower-%d", i)
				res, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
				if err != nil {
					t.Fatalf("Produce through the follower as root: %v", err)
				}
				if res.GetOffset() != uint64(i) {
					t.Fatalf("offset %d, want %d", res.GetOffset(), i)
				}
				got, err := root.Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset()})
				if err != nil || string(got.GetRecord().GetValue()) != v {
					t.Fatalf("Consume on the follower = %v, %v; want %q", got, err, v)
				}
			}
			if err := logCalls[2].do(ctx, root); err != nil { // ProduceStream
				t.Errorf("ProduceStream through the follower as root: %v", err)
			}

			nobody := tlsClient(t, tr, follower.Addr(), pki.client(pki.cert("nobody", certgen.Client, certgen.Options{CommonName: "nobody"})))
			for _, c := range logCalls {
				if err := c.do(ctx, nobody); transport.CodeOf(err) != transport.PermissionDenied {
					t.Errorf("%s through the follower as nobody = %v, want PermissionDenied", c.name, err)
				}
			}
			// The servers' own certificate is not an admin, on either node.
			for _, nd := range []*testServer{leader, follower} {
				peer := tlsClient(t, tr, nd.Addr(), pki.client(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")))
				for _, c := range adminCalls {
					if err := c.do(ctx, peer); transport.CodeOf(err) != transport.PermissionDenied {
						t.Errorf("%s on %s with the server certificate = %v, want PermissionDenied", c.name, nd.ID(), err)
					}
				}
			}
		})
	}
}

// TestTLSClientToPlaintextServer checks that a TLS client fails cleanly against a plaintext
// server instead of hanging or being served in the clear.
func TestTLSClientToPlaintextServer(t *testing.T) {
	pki := newTestPKI(t)
	srv := startServer(t, Config{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := tlsClient(t, tr, srv.Addr(), pki.client("", ""))
			ctx := ctxT(t, 10*time.Second)
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
			if code := transport.CodeOf(err); code != transport.Unavailable {
				t.Fatalf("Produce = %v (code %v), want Unavailable", err, code)
			}
		})
	}
}

// startSecurePair starts a two-node cluster secured as secureConfig secures a node (tweak, when
// set, changes each node's configuration) and returns its leader and its follower.
func startSecurePair(t *testing.T, pki *testPKI, tr, policy string, tweak func(*Config)) (leader, follower *testServer) {
	t.Helper()
	nodes := make([]*testServer, 2)
	for i := range nodes {
		cfg := pki.secureConfig(tr, policy)
		cfg.NodeName = fmt.Sprintf("node-%d", i)
		cfg.GossipProfile = "test"
		cfg.ReconcileInterval = 100 * time.Millisecond
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes[i] = startNode(t, cfg, i == 0)
	}
	waitVoters(t, nodes)
	leader = leaderOf(t, nodes)
	follower = nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	return leader, follower
}
