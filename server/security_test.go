package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
	dserf "github.com/commitlog-go/commitlog/discovery/serf"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// readmeConfig is a node secured as the README's "Security" section shows it: mutual TLS and
// the seed's ACL files on the API, a gossip key, and no peer TLS configuration of its own.
func (p *testPKI) readmeConfig(node string) Config {
	p.t.Helper()
	certFile, keyFile := filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem")
	if _, err := os.Stat(certFile); err != nil {
		certFile, keyFile = p.serverCert()
	}
	api, err := tlsutil.ServerConfig(certFile, keyFile, p.caFile)
	if err != nil {
		p.t.Fatalf("ServerConfig: %v", err)
	}
	fwd, err := tlsutil.ClientConfig(certFile, keyFile, p.caFile, "")
	if err != nil {
		p.t.Fatalf("ClientConfig: %v", err)
	}
	return Config{
		NodeName:          node,
		ServerTLS:         api,
		ForwardTLS:        fwd,
		ACLModelFile:      filepath.Join(seedACLDir, "model.conf"),
		ACLPolicyFile:     filepath.Join(seedACLDir, "policy.csv"),
		GossipKey:         p.gossipKey(),
		GossipProfile:     "test",
		ReconcileInterval: 100 * time.Millisecond,
	}
}

// rawRaftLayer is hashicorp/raft's StreamLayer of a stranger: it dials the mux's Raft byte,
// then TLS with tlsCfg when set, and accepts nothing.
type rawRaftLayer struct {
	tlsCfg *tls.Config
	closed chan struct{}
	once   sync.Once
}

func (l *rawRaftLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{mux.RaftByte}); err != nil {
		conn.Close()
		return nil, err
	}
	if l.tlsCfg != nil {
		tc := tls.Client(conn, l.tlsCfg)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			tc.Close()
			return nil, err
		}
		conn = tc
	}
	// The cluster handshake every Raft connection opens with (consensus/raft): a stranger
	// claims no cluster ID, which a node accepts (the dialer adopts the node's), and reads the
	// node's answer.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{'C', 'L', 'I', 'D', 0}); err != nil {
		conn.Close()
		return nil, err
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := io.ReadFull(conn, make([]byte, hdr[4])); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

func (l *rawRaftLayer) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *rawRaftLayer) Close() error              { l.once.Do(func() { close(l.closed) }); return nil }
func (l *rawRaftLayer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestRaftRefusesStrangers sends AppendEntries with a much higher term, as hashicorp/raft's own
// NetworkTransport does, to the Raft side of a node secured as the README shows (API mutual TLS
// and ACLs, no peer flags): in plaintext, over TLS with a client certificate from the API's CA,
// and over TLS with a certificate from that CA allowing both usages but naming no node. Every
// attempt is refused; the node stays leader in the same term and nothing is appended.
func TestRaftRefusesStrangers(t *testing.T) {
	pki := newTestPKI(t)
	srv := startServer(t, pki.readmeConfig("node-0"))
	ctx := ctxT(t, 60*time.Second)
	root := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
		t.Fatalf("Produce as root: %v", err)
	}
	before := srv.node.Status()

	rootCert, rootKey := filepath.Join(pki.dir, "root.pem"), filepath.Join(pki.dir, "root-key.pem")
	unnamedCert, unnamedKey := pki.nodeCert("mallory")
	strangerTLS := func(cert, key string) *tls.Config {
		c, err := tlsutil.ClientConfig(cert, key, pki.caFile, peerName)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"plaintext", nil},
		{"TLS with a client certificate from the API's CA", strangerTLS(rootCert, rootKey)},
		{"TLS with a certificate of both usages from the API's CA naming no node", strangerTLS(unnamedCert, unnamedKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := forgeAppendEntries(srv, tc.tls, before)
			if err == nil {
				t.Fatalf("AppendEntries from a stranger was answered: %+v", resp)
			}
			t.Logf("refused: %v", err)
			after := srv.node.Status()
			if !srv.node.IsLeader() || after.Term != before.Term || after.LastIndex != before.LastIndex {
				t.Fatalf("after the stranger's AppendEntries: leader %v, term %d -> %d, last index %d -> %d; want unchanged",
					srv.node.IsLeader(), before.Term, after.Term, before.LastIndex, after.LastIndex)
			}
		})
	}
	// The node still serves, and only root's record is in the log.
	if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
		t.Fatalf("Produce as root after the attempts: %v", err)
	}
	b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil || b.GetNextOffset() != 2 {
		t.Fatalf("GetBounds = %v, %v; want next offset 2", b, err)
	}
}

// TestAdmissionRefusesUnprovenMembers forms a 2-node cluster secured as the README shows, then
// lets three strangers that know the gossip key join its gossip: a plaintext `commitlog serve`
// (mallory), a member advertising a real node's address as both its raft_addr and rpc_addr
// (fake), and one advertising its own raft_addr with a real, caught-up node's rpc_addr (fake2).
// None proves its name with a peer certificate: none ever enters the Raft configuration (so
// none is promoted), and no byte of the log reaches mallory's data dir.
func TestAdmissionRefusesUnprovenMembers(t *testing.T) {
	pki := newTestPKI(t)
	logs := newLogRecorder()
	nodes := make([]*testServer, 2)
	for i := range nodes {
		cfg := pki.readmeConfig(fmt.Sprintf("node-%d", i))
		cfg.Logger = slog.New(logs)
		cfg.LeaveOnShutdown = true // see the strangers below
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfg, i == 0)
	}
	voters := func() []string {
		servers, err := nodes[0].node.Servers(context.Background())
		if err != nil {
			return nil
		}
		var ids []string
		for _, s := range servers {
			ids = append(ids, fmt.Sprintf("%s/%v", s.ID, s.Suffrage))
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{fmt.Sprintf("node-0/%v", consensus.Voter), fmt.Sprintf("node-1/%v", consensus.Voter)}
	waitFor(t, 30*time.Second, "both nodes are voters", func() bool { return slices.Equal(voters(), want) })

	ctx := ctxT(t, 60*time.Second)
	root := tlsClient(t, TransportConnect, nodes[0].Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	secret := []byte("secret-record-7f3a9c")
	for range 3 {
		if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: secret}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}

	// The strangers (and the nodes) leave the gossip gracefully when the test ends, so that no
	// node is still probing a failed one when it stops (memberlist's probes outlive its
	// shutdown, by up to several probe intervals once failures raised its awareness timeouts).
	mallory := startNode(t, Config{NodeName: "mallory", GossipKey: pki.gossipKey(), GossipProfile: "test",
		StartJoinAddrs: []string{nodes[0].GossipAddr()}, LeaveOnShutdown: true}, false)
	real := nodes[1].Addr()
	for _, f := range []struct{ name, raftAddr, rpcAddr string }{
		{"fake", real, real},
		{"fake2", mallory.Addr(), real},
	} {
		startGossip(t, dserf.Config{NodeName: f.name, BindAddr: "127.0.0.1:0", EncryptKey: pki.gossipKey(),
			Tags:           map[string]string{tagRaftAddr: f.raftAddr, tagRPCAddr: f.rpcAddr},
			StartJoinAddrs: []string{nodes[0].GossipAddr()}, Timing: dserf.TimingTest})
	}

	// The leader tries each stranger and refuses it; checked from then on, the configuration
	// still holds only the two real nodes, and stays so.
	refused := func() bool {
		for _, name := range []string{"mallory", "fake", "fake2"} {
			if !logs.has("msg", "refusing server into the Raft configuration", "id", name) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	var refusedAt time.Time
	for refusedAt.IsZero() || time.Since(refusedAt) < 2*time.Second {
		if got := voters(); !slices.Equal(got, want) {
			t.Fatalf("Raft configuration = %v, want only %v", got, want)
		}
		if refusedAt.IsZero() && refused() {
			refusedAt = time.Now() // then check a while longer that the configuration stays so
		}
		if refusedAt.IsZero() && time.Now().After(deadline) {
			t.Fatal("the leader did not try (and refuse) every stranger within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An operator's Join is held to the same rule: a name the certificate at that address does
	// not carry is refused before Raft's configuration changes.
	leader := leaderOf(t, nodes)
	for _, j := range []*logv1.JoinRequest{
		{Id: "fake", RaftAddr: real},
		{Id: "mallory", RaftAddr: mallory.Addr(), Nonvoter: true},
	} {
		if _, err := leader.svc.Join(ctx, j); transport.CodeOf(err) != transport.FailedPrecondition || !errors.Is(err, ErrNotAdmitted) {
			t.Errorf("Join %s at %s = %v, want FailedPrecondition (not admitted)", j.GetId(), j.GetRaftAddr(), err)
		}
	}
	if got := voters(); !slices.Equal(got, want) {
		t.Fatalf("after the Joins, Raft configuration = %v, want only %v", got, want)
	}
	if st := mallory.node.Status(); st.LastIndex != 0 {
		t.Errorf("mallory's Raft log reaches index %d, want nothing", st.LastIndex)
	}
	err := filepath.WalkDir(mallory.cfg.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(data, secret) {
			t.Errorf("%s holds a record of the cluster", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestForwardedForNeedsPeerCertificate checks the one notion of a peer on the API: a client
// certificate from the API's CA that allows both usages but names no node cannot claim to
// forward for root, nor make the cluster-internal calls; a server's certificate (naming its
// node) can.
func TestForwardedForNeedsPeerCertificate(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			cfg := pki.readmeConfig("node-0")
			cfg.Transport = tr
			srv := startServer(t, cfg)
			ctx := ctxT(t, 60*time.Second)
			asRoot := transport.ContextWithForwardedFor(ctx, "root")
			produce := func(c transport.Client) error {
				_, err := c.Produce(asRoot, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
				return err
			}
			dual := tlsClient(t, tr, srv.Addr(), pki.client(pki.nodeCert("mallory")))
			if err := produce(dual); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("forwarded for root with a dual-usage certificate naming no node: %v, want PermissionDenied", err)
			}
			if _, err := dual.GetBounds(ctx, &logv1.GetBoundsRequest{}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("GetBounds with a dual-usage certificate naming no node: %v, want PermissionDenied", err)
			}
			peer := tlsClient(t, tr, srv.Addr(), pki.client(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")))
			if err := produce(peer); err != nil {
				t.Errorf("forwarded for root with a server certificate: %v", err)
			}
			if _, err := peer.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
				t.Errorf("GetBounds with a server certificate: %v", err)
			}
		})
	}
}

// TestConfigRefusesInsecurePeers checks the start-up refusals of a secured node whose Raft or
// gossip would not be: plaintext Raft next to API TLS or an ACL policy, TLS without a gossip
// key, a peer certificate that does not name the node; and that the explicit escape starts
// with a warning.
func TestConfigRefusesInsecurePeers(t *testing.T) {
	pki := newTestPKI(t)
	certFile, keyFile := pki.serverCert()
	tlsOnly, err := tlsutil.ServerConfig(certFile, keyFile, "") // API TLS, no client certificates
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  func() Config
		want error
		text string
	}{
		{"API TLS, plaintext Raft", func() Config { return Config{ServerTLS: tlsOnly, GossipKey: pki.gossipKey()} }, ErrPlaintextPeers, "--insecure-plaintext-peers"},
		{"ACL policy, plaintext Raft", func() Config {
			return Config{ACLPolicyFile: filepath.Join(seedACLDir, "policy.csv")}
		}, ErrPlaintextPeers, "peer TLS"},
		{"TLS without a gossip key", func() Config { c := pki.readmeConfig("node-0"); c.GossipKey = ""; return c }, ErrNoGossipKey, "gossip-key-file"},
		{"peer certificate naming another node", func() Config { return pki.readmeConfig("node-9") }, nil, `does not name node "node-9"`},
		{"node name that fits no certificate", func() Config { return pki.readmeConfig("node 9") }, nil, "node name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
			if cfg.NodeName == "" {
				cfg.NodeName = "node-0"
			}
			srv, err := New(cfg)
			if err == nil {
				_ = srv.Close()
				t.Fatal("New accepted the configuration")
			}
			if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("New = %v; want %v saying %q", err, tc.want, tc.text)
			}
			if _, statErr := os.Stat(cfg.DataDir); statErr == nil {
				t.Error("New created the data dir of a refused configuration")
			}
		})
	}

	t.Run("--insecure-plaintext-peers starts with a warning", func(t *testing.T) {
		logs := newLogRecorder()
		srv := startServer(t, Config{ServerTLS: tlsOnly, GossipKey: pki.gossipKey(), InsecurePlaintextPeers: true, Logger: slog.New(logs)})
		if srv.cfg.PeerServerTLS != nil {
			t.Error("peer TLS configured despite InsecurePlaintextPeers")
		}
		if !logs.has("msg", insecurePeersWarning) {
			t.Error("no warning logged at start")
		}
	})
}

// forgeAppendEntries sends srv (node-0) over Raft's port, with tlsCfg (nil: plaintext), an
// AppendEntries of a forged entry at a term 100 above before's, as a stranger would.
func forgeAppendEntries(srv *testServer, tlsCfg *tls.Config, before consensus.Status) (hraft.AppendEntriesResponse, error) {
	layer := &rawRaftLayer{tlsCfg: tlsCfg, closed: make(chan struct{})}
	trans := hraft.NewNetworkTransport(layer, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	req := &hraft.AppendEntriesRequest{
		RPCHeader:         hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte("127.0.0.1:1")},
		Term:              before.Term + 100,
		PrevLogEntry:      before.LastIndex,
		PrevLogTerm:       before.Term,
		LeaderCommitIndex: before.LastIndex + 1,
		Entries: []*hraft.Log{{Index: before.LastIndex + 1, Term: before.Term + 100, Type: hraft.LogCommand,
			Data: []byte("forged")}},
	}
	var resp hraft.AppendEntriesResponse
	err := trans.AppendEntries("node-0", hraft.ServerAddress(srv.Addr()), req, &resp)
	return resp, err
}
