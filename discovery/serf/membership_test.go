package serf_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

func TestThreeNodesJoinWithTags(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, nd := range nodes {
		select {
		case <-nd.m.Joined():
		case <-waitCtx(t).Done():
			t.Errorf("%s: Joined never closed although the cluster formed", nd.m.LocalMember().Name)
		}
		for i, other := range nodes {
			name := "node-" + strconv.Itoa(i)
			e := waitFor(t, nd.rec, discovery.EventJoin, name)
			if got, want := e.Member.Tags, map[string]string{"id": strconv.Itoa(i)}; !maps.Equal(got, want) {
				t.Errorf("%s saw %s join with tags %v, want %v", nd.m.LocalMember().Name, name, got, want)
			}
			if e.Member.Addr != other.m.LocalMember().Addr {
				t.Errorf("%s saw %s join at %q, want %q", nd.m.LocalMember().Name, name, e.Member.Addr, other.m.LocalMember().Addr)
			}
			if e.Member.Status != discovery.StatusAlive {
				t.Errorf("join event status = %v, want alive", e.Member.Status)
			}
		}
	}
}

func TestGracefulLeaveIsSeenAsLeave(t *testing.T) {
	nodes := startCluster(t, 3)
	leaver := nodes[2]
	if err := leaver.m.Leave(waitCtx(t)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, nd := range nodes[:2] {
		waitFor(t, nd.rec, discovery.EventLeave, "node-2")
		poll(t, "node-2 left", func() bool { return memberStatus(nd.m, "node-2") == discovery.StatusLeft })
	}
	// Gossip is unordered: a node slow to answer probes while it leaves may be reported
	// failed first, but the leave must always win.
	for _, nd := range nodes[:2] {
		var last discovery.Event
		for _, e := range nd.rec.Events() {
			if e.Member.Name == "node-2" && e.Type != discovery.EventReap {
				last = e
			}
		}
		if last.Type != discovery.EventLeave {
			t.Errorf("%s: last event about node-2 is %v, want a leave", nd.m.LocalMember().Name, last)
		}
	}
	// Leave closed the membership.
	if err := leaver.m.SetTags(t.Context(), map[string]string{"a": "b"}); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("SetTags after Leave = %v, want ErrClosed", err)
	}
	if err := leaver.m.Leave(waitCtx(t)); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("second Leave = %v, want ErrClosed", err)
	}
	if err := leaver.m.Close(); err != nil {
		t.Errorf("Close after Leave = %v", err)
	}
}

func TestCloseWithoutLeaveIsSeenAsFailed(t *testing.T) {
	nodes := startCluster(t, 3)
	if err := nodes[2].m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, nd := range nodes[:2] {
		e := waitFor(t, nd.rec, discovery.EventFailed, "node-2")
		if e.Member.Status != discovery.StatusFailed {
			t.Errorf("failed event status = %v, want failed", e.Member.Status)
		}
	}
	for _, e := range nodes[0].rec.Events() {
		if e.Type == discovery.EventLeave && e.Member.Name == "node-2" {
			t.Errorf("a crash was reported as a graceful leave: %v", e)
		}
	}
}

func TestSetTagsIsSeenAsUpdate(t *testing.T) {
	nodes := startCluster(t, 3)
	want := map[string]string{"id": "1", "rpc_addr": "127.0.0.1:9400"}
	if err := nodes[1].m.SetTags(t.Context(), want); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	if got := nodes[1].m.LocalMember().Tags; !maps.Equal(got, want) {
		t.Errorf("LocalMember().Tags = %v, want %v", got, want)
	}
	for _, nd := range []node{nodes[0], nodes[2]} {
		ctx := waitCtx(t)
		err := nd.rec.Wait(ctx, func(evs []discovery.Event) bool {
			for _, e := range evs {
				if e.Type == discovery.EventUpdate && e.Member.Name == "node-1" && maps.Equal(e.Member.Tags, want) {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("%s: %v", nd.m.LocalMember().Name, err)
		}
	}
}

func TestSetTagsRejectsOversizedTags(t *testing.T) {
	nd := startNode(t, "solo", serf.Config{})
	big := map[string]string{"k": string(make([]byte, serf.MaxTagsSize))}
	if err := nd.m.SetTags(t.Context(), big); !errors.Is(err, discovery.ErrInvalidTags) {
		t.Fatalf("SetTags(oversized) = %v, want ErrInvalidTags", err)
	}
}

func TestLocalJoinIsDelivered(t *testing.T) {
	nd := startNode(t, "solo", serf.Config{Tags: map[string]string{"role": "voter"}})
	e := waitFor(t, nd.rec, discovery.EventJoin, "solo")
	if e.Member.Tags["role"] != "voter" {
		t.Errorf("local join tags = %v", e.Member.Tags)
	}
	if got := nd.m.LocalMember(); got.Name != "solo" || got.Status != discovery.StatusAlive || got.Addr == "" {
		t.Errorf("LocalMember() = %+v", got)
	}
}

func TestJoinErrors(t *testing.T) {
	nd := startNode(t, "a", serf.Config{})
	deadAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name  string
		ctx   context.Context
		addrs []string
		want  error
	}{
		{"no address", t.Context(), nil, discovery.ErrNoAddrs},
		{"nobody listening", t.Context(), []string{deadAddr}, discovery.ErrJoinFailed},
		{"canceled context", canceled, []string{deadAddr}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := nd.m.Join(tt.ctx, tt.addrs)
			if n != 0 || !errors.Is(err, tt.want) {
				t.Fatalf("Join = %d, %v; want 0, %v", n, err, tt.want)
			}
		})
	}
	var je *discovery.JoinError
	if _, err := nd.m.Join(t.Context(), []string{deadAddr}); !errors.As(err, &je) || je.Addrs[0] != deadAddr {
		t.Errorf("Join error = %v, want a *JoinError naming %s", err, deadAddr)
	}

	if err := nd.m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := nd.m.Join(t.Context(), []string{deadAddr}); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Join after Close = %v, want ErrClosed", err)
	}
}

func TestJoinExplicit(t *testing.T) {
	a := startNode(t, "a", serf.Config{})
	b := startNode(t, "b", serf.Config{})
	n, err := b.m.Join(waitCtx(t), []string{a.m.LocalMember().Addr})
	if err != nil || n != 1 {
		t.Fatalf("Join = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, a.rec, discovery.EventJoin, "b")
	waitFor(t, b.rec, discovery.EventJoin, "a")
}

func TestCloseIsIdempotentAndStopsEvents(t *testing.T) {
	a := startNode(t, "a", serf.Config{})
	b := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	waitFor(t, a.rec, discovery.EventJoin, "b")
	for range 3 {
		if err := a.m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	seen := len(a.rec.Events())
	if err := b.m.SetTags(t.Context(), map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := b.m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(a.rec.Events()); got != seen {
		t.Errorf("%d events delivered after Close", got-seen)
	}
	if err := a.m.Leave(t.Context()); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Leave after Close = %v, want ErrClosed", err)
	}
}

func TestRetryJoinWhenSeedStartsLater(t *testing.T) {
	port := freePort(t)
	seedAddr := "127.0.0.1:" + strconv.Itoa(port)
	logs := newCaptureHandler()
	joiner := startNode(t, "joiner", serf.Config{
		StartJoinAddrs: []string{seedAddr},
		Logger:         slogNew(logs),
	})
	// The first attempts fail: nobody listens yet.
	poll(t, "a failed join attempt", func() bool {
		return logs.has(func(r logRecord) bool { return r.Msg == "join failed, will retry" })
	})
	select {
	case <-joiner.m.Joined():
		t.Fatal("Joined closed before the seed started")
	default:
	}
	seed := startNode(t, "seed", serf.Config{BindAddr: seedAddr})
	select {
	case <-joiner.m.Joined():
	case <-waitCtx(t).Done():
		t.Fatal("joiner never joined the late seed")
	}
	waitFor(t, seed.rec, discovery.EventJoin, "joiner")
	waitFor(t, joiner.rec, discovery.EventJoin, "seed")
}

// Every pod of a StatefulSet gets the same join list, its own address included. Reaching only
// itself must not end the retries: a node whose peers are not up yet would stay alone.
func TestRetryJoinListNamingSelf(t *testing.T) {
	selfAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	peerAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	logs := newCaptureHandler()
	a := startNode(t, "a", serf.Config{
		BindAddr:       selfAddr,
		StartJoinAddrs: []string{selfAddr, peerAddr},
		Logger:         slogNew(logs),
	})
	poll(t, "a join attempt that reached only itself", func() bool {
		return logs.has(func(r logRecord) bool { return r.Msg == "join failed, will retry" })
	})
	select {
	case <-a.m.Joined():
		t.Fatal("Joined closed although only the node itself was reached")
	default:
	}
	b := startNode(t, "b", serf.Config{BindAddr: peerAddr})
	select {
	case <-a.m.Joined():
	case <-waitCtx(t).Done():
		t.Fatal("a never joined b, which started later")
	}
	waitFor(t, b.rec, discovery.EventJoin, "a")
	waitFor(t, a.rec, discovery.EventJoin, "b")
}

func TestAdvertiseAddrDiffersFromBindAddr(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	a := startNode(t, "a", serf.Config{BindAddr: "0.0.0.0:" + port, AdvertiseAddr: "localhost:" + port})
	if got, want := a.m.LocalMember().Addr, "127.0.0.1:"+port; got != want {
		t.Fatalf("LocalMember().Addr = %q, want the advertised %q", got, want)
	}
	b := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	if e := waitFor(t, b.rec, discovery.EventJoin, "a"); e.Member.Addr != "127.0.0.1:"+port {
		t.Errorf("b sees a at %q, want the advertised address", e.Member.Addr)
	}
}

// TestAdvertiseAddrPort0: an AdvertiseAddr of port 0 advertises the port gossip binds, the
// free one taken for a BindAddr of port 0 (it was refused: a server given an advertise host
// and a gossip port 0 did not start), and another node joins there. An AdvertiseAddr's own
// port stays advertised with a BindAddr of port 0 (it was replaced by the bound one).
func TestAdvertiseAddrPort0(t *testing.T) {
	a := startNode(t, "a", serf.Config{AdvertiseAddr: "127.0.0.1:0"})
	_, port, err := net.SplitHostPort(a.m.LocalMember().Addr)
	if err != nil || port == "0" {
		t.Fatalf("LocalMember().Addr = %q, want the bound port", a.m.LocalMember().Addr)
	}
	b := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	waitFor(t, b.rec, discovery.EventJoin, "a")

	nat := strconv.Itoa(freePort(t))
	c := startNode(t, "c", serf.Config{AdvertiseAddr: "127.0.0.1:" + nat})
	if got, want := c.m.LocalMember().Addr, "127.0.0.1:"+nat; got != want {
		t.Errorf("LocalMember().Addr = %q, want the advertised %q", got, want)
	}
}
