package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestNewClosesEarlierStepsOnFailure fails New at each of its steps in turn (before the step
// runs, so every earlier step has opened what it opens) and checks that New closed it all
// again: no goroutine left, no file descriptor left, the API and Raft port and the gossip
// ports free, and the data dir usable by the next New on the same ports.
func TestNewClosesEarlierStepsOnFailure(t *testing.T) {
	steps := (&Server{}).startupSteps()
	if len(steps) < 10 {
		t.Fatalf("%d steps: New is not split into its steps", len(steps))
	}
	config := func(t *testing.T, dir string) Config {
		rpc, gossip := freePort(t), freePort(t)
		return Config{
			DataDir: dir, NodeName: "node-0", GossipProfile: "test",
			BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(gossip)), RPCPort: rpc,
			MetricsAddr: "127.0.0.1:0", // the telemetry endpoint's listener counts too
		}
	}
	// Once in full first: what the process opens once and keeps (the poller, telemetry's
	// globals) is not a leak of the runs below.
	warm, err := New(config(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Close(); err != nil {
		t.Fatal(err)
	}

	injected := errors.New("injected failure")
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cfg := config(t, t.TempDir())
			ignoreRunning := goleak.IgnoreCurrent()
			fds := openFDs(t)
			var ran []string
			cfg.beforeStep = func(name string) error {
				ran = append(ran, name)
				if name == st.name {
					return injected
				}
				return nil
			}
			s, err := New(cfg)
			if s != nil || !errors.Is(err, injected) {
				t.Fatalf("New = %v, %v; want nil and the injected failure", s, err)
			}
			if len(ran) != i+1 {
				t.Fatalf("steps run: %q; want the %d before %q and it", ran, i, st.name)
			}

			goleak.VerifyNone(t, ignoreRunning,
				goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
			if left := openFDs(t); len(left) > len(fds) {
				t.Errorf("file descriptors left open: %q", newFDs(fds, left))
			}
			for _, network := range []string{"tcp", "udp"} { // Serf listens on both
				addr := cfg.BindAddr
				if network == "tcp" {
					if err := listenAndClose(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.RPCPort))); err != nil {
						t.Errorf("API and Raft port: %v", err)
					}
				}
				if err := listenAndClose(network, addr); err != nil {
					t.Errorf("gossip port: %v", err)
				}
			}

			// The same data dir and ports serve the next start.
			cfg.beforeStep = nil
			s, err = New(cfg)
			if err != nil {
				t.Fatalf("New after a failed New: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNewStepOrder pins the order of startup: each step uses what the ones before it built.
func TestNewStepOrder(t *testing.T) {
	var names []string
	for _, st := range (&Server{}).startupSteps() {
		names = append(names, st.name)
	}
	want := []string{"authorizer", "listen", "prepare data dir", "mux", "open logs", "telemetry", "raft",
		"forwarder", "service", "api", "membership", "bootstrap"}
	if !slices.Equal(names, want) {
		t.Fatalf("steps %q, want %q", names, want)
	}
}

// freePort returns a TCP port that was free a moment ago.
// freePort returns a port free on 127.0.0.1 for TCP and UDP, below Linux's ephemeral range
// (32768-60999): a port the kernel hands out (":0") can be taken meanwhile by any outgoing
// connection of the test processes running in parallel, between the test's check and its bind.
func freePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if listenAndClose("tcp", addr) == nil && listenAndClose("udp", addr) == nil {
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

func listenAndClose(network, addr string) error {
	if network == "udp" {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// openFDs lists this process's open file descriptors with what each refers to.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("cannot count file descriptors: %v", err)
	}
	fds := make(map[string]string, len(entries))
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed since
		}
		fds[e.Name()] = target
	}
	return fds
}

// newFDs describes the descriptors of after that before did not have.
func newFDs(before, after map[string]string) []string {
	var out []string
	for fd, target := range after {
		if before[fd] != target {
			out = append(out, fmt.Sprintf("%s → %s", fd, target))
		}
	}
	slices.Sort(out)
	return out
}

// TestAdvertiseHostNotResolvableYet: the Helm chart advertises each pod's DNS name under the
// headless Service, which resolves only once the pod's IP is published, possibly after the
// server starts. New must not need it to resolve: it failed ("advertised address ...: no such
// host"), and every pod of a new StatefulSet exited once and waited out a crash-loop back-off.
// (Gossip, which needs the IP, waits for the name: discovery/serf.)
func TestAdvertiseHostNotResolvableYet(t *testing.T) {
	const host = "commitlog-0.commitlog-headless.prod.svc.invalid" // .invalid never resolves
	srv := startServer(t, Config{AdvertiseHost: host, Membership: staticMembership()})
	if h, _, _ := net.SplitHostPort(srv.Addr()); h != host {
		t.Errorf("Addr() = %s, want the advertised host %s", srv.Addr(), host)
	}
	servers, err := srv.node.Servers(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].Address != srv.Addr() {
		t.Errorf("Raft configuration %+v, want this node at %s", servers, srv.Addr())
	}
}

// TestGossipAdvertiseHost: Serf gossips at GossipAdvertiseHost (the Helm chart gives the pod's
// IP), while Raft and the API keep AdvertiseHost (the pod's DNS name, which its certificate
// names). Resolving the DNS name for gossip at start could give the IP of the pod's previous
// incarnation, still in DNS caches for a few seconds after a restart: the node then gossiped at
// an address nobody listens on, and the others saw it failed until its next restart.
func TestGossipAdvertiseHost(t *testing.T) {
	const host = "commitlog-0.commitlog-headless.prod.svc.invalid" // never resolves
	port := strconv.Itoa(freePort(t))
	srv, err := New(Config{
		DataDir: t.TempDir(), NodeName: "commitlog-0", BindAddr: "127.0.0.1:" + port, RPCPort: -1,
		AdvertiseHost: host, GossipAdvertiseHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := &testServer{Server: srv, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() { ts.shutdown(t) })
	waitLeader(t, srv)
	if got, want := srv.serf.LocalMember().Addr, "127.0.0.1:"+port; got != want {
		t.Errorf("gossip address %s, want %s (GossipAdvertiseHost)", got, want)
	}
	if h, _, _ := net.SplitHostPort(srv.Addr()); h != host {
		t.Errorf("Raft and API address %s, want the host %s (AdvertiseHost)", srv.Addr(), host)
	}
}

// TestPortInUseRefusedBeforeDataDir: a gossip port (--bind-addr) in use was refused only by
// the membership step, after the data dir, the commit log and Raft's state had been made (and,
// with --bootstrap-wait 0, a one-node cluster bootstrapped in it, which the node could then no
// longer leave to join another); an API port in use left an empty data dir behind. Both are
// now refused before the data dir is made.
func TestPortInUseRefusedBeforeDataDir(t *testing.T) {
	for _, which := range []string{"gossip tcp", "gossip udp", "api"} {
		t.Run(which, func(t *testing.T) {
			rpc, gossip := freePort(t), freePort(t)
			busy := gossip
			if which == "api" {
				busy = rpc
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(busy))
			if which == "gossip udp" {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
			} else {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
			}
			dir := filepath.Join(t.TempDir(), "data")
			s, err := New(Config{
				DataDir: dir, NodeName: "node-0", GossipProfile: "test",
				BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(gossip)), RPCPort: rpc,
			})
			if err == nil {
				_ = s.Close()
				t.Fatalf("New started with port %d in use", busy)
			}
			if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("New failed (%v) but made the data dir %s (stat: %v)", err, dir, serr)
			}
		})
	}
}
