package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/static"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// staticMembership is a Config.Membership that lists peers and nothing else.
func staticMembership(peers ...discovery.Member) func(MembershipConfig) (discovery.Membership, error) {
	return func(c MembershipConfig) (discovery.Membership, error) {
		return static.New(static.Config{
			Local:   discovery.Member{Name: c.NodeName, Tags: c.Tags},
			Peers:   peers,
			Handler: c.Handler,
			Logger:  c.Logger,
		})
	}
}

// TestAssembledServer: a server from swapped parts (Config.OpenLog, Membership, Authorizer)
// serves the API on them: records go to the given log (no segment file on disk), the custom
// authorizer decides every call, and no Serf runs.
func TestAssembledServer(t *testing.T) {
	var logs atomic.Int32
	var decided atomic.Int32
	cfg := Config{
		OpenLog: func(string) (storage.Log, error) {
			logs.Add(1)
			l, err := memory.New(memory.Config{})
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		// Everyone may produce and consume; nobody may administer.
		Authorizer: authz.AuthorizerFunc(func(_ context.Context, subject, object, action string) error {
			decided.Add(1)
			if action == authz.ActionAdmin {
				return &authz.DeniedError{Subject: subject, Object: object, Action: action}
			}
			return nil
		}),
		Membership: staticMembership(),
	}

	// An authorizer secures the API: plaintext Raft next to it must be asked for.
	noPeers := cfg
	noPeers.DataDir, noPeers.BindAddr, noPeers.RPCPort = t.TempDir(), "127.0.0.1:0", -1
	if _, err := New(noPeers); !errors.Is(err, ErrPlaintextPeers) {
		t.Fatalf("New with an Authorizer and plaintext Raft: %v, want ErrPlaintextPeers", err)
	}
	both := noPeers
	both.InsecurePlaintextPeers, both.ACLPolicyFile = true, "policy.csv"
	if _, err := New(both); err == nil {
		t.Fatal("New with an Authorizer and an ACL policy file: no error")
	}

	cfg.InsecurePlaintextPeers = true
	srv := startServer(t, cfg)
	if logs.Load() != 1 {
		t.Fatalf("OpenLog called %d times", logs.Load())
	}
	if _, ok := srv.serf.(*static.Membership); !ok {
		t.Fatalf("membership %T, want the static one", srv.serf)
	}
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	for i := range 3 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "r%d", i)}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 2})
	if err != nil || string(res.GetRecord().GetValue()) != "r2" {
		t.Fatalf("Consume 2 = %v, %v", res, err)
	}
	if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "node-0"}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Fatalf("RemoveServer: %v, want PermissionDenied from the custom authorizer", err)
	}
	if decided.Load() < 5 {
		t.Fatalf("the authorizer decided %d calls, want every one", decided.Load())
	}
	if lowest, next := srv.log.Bounds(); lowest != 0 || next != 3 {
		t.Fatalf("the memory log holds [%d, %d), want [0, 3)", lowest, next)
	}
	if entries, _ := os.ReadDir(filepath.Join(srv.cfg.DataDir, "log")); len(entries) != 0 {
		t.Fatalf("the data dir's log directory holds %d files; the log is in memory", len(entries))
	}
}

// freePorts returns n loopback ports free a moment ago (a fixed membership needs its servers'
// addresses before they start).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		if p := freePort(t); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// TestStaticMembershipCluster: three servers that know each other from a fixed list
// (discovery/static, no gossip) bootstrap one cluster with BootstrapExpect, replicate, and
// forward writes from a follower.
func TestStaticMembershipCluster(t *testing.T) {
	const n = 3
	ports := freePorts(t, n)
	members := make([]discovery.Member, n)
	for i := range n {
		members[i] = PeerMember(fmt.Sprintf("node-%d", i), net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])))
	}
	nodes := make([]*testServer, n)
	for i := range n {
		var peers []discovery.Member
		for j := range n {
			if j != i {
				peers = append(peers, members[j])
			}
		}
		cfg := Config{
			NodeName: members[i].Name, DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", RPCPort: ports[i],
			BootstrapExpect: n, ReconcileInterval: 100 * time.Millisecond,
			Membership: staticMembership(peers...),
		}
		srv, err := New(cfg)
		if err != nil {
			t.Fatalf("New %s: %v", cfg.NodeName, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ts := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
		go func() { ts.done <- srv.Run(ctx) }()
		t.Cleanup(func() { ts.shutdown(t) })
		nodes[i] = ts
	}
	waitVoters(t, nodes)
	leader := leaderOf(t, nodes)
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
		}
	}
	c := newClient(t, TransportConnect, follower.Addr())
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("via a follower")}}); err != nil {
		t.Fatalf("Produce on a follower: %v", err)
	}
	for _, nd := range nodes {
		checkLog(t, nd, []string{"via a follower"})
	}
}
