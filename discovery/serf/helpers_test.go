package serf_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// waitTimeout bounds every wait in these tests; gossip on loopback normally settles in well
// under a second, the margin is for loaded machines under -race.
const waitTimeout = 30 * time.Second

// node is a running Membership with the recorder that receives its events.
type node struct {
	m   *serf.Membership
	rec *discoverytest.Recorder
}

// startNode starts a Membership with test timings on a free loopback port; cfg fields left
// empty get test defaults. The Membership is closed at the end of the test.
func startNode(t *testing.T, name string, cfg serf.Config) node {
	t.Helper()
	rec := &discoverytest.Recorder{}
	var inFlight, overlaps atomic.Int32
	t.Cleanup(func() {
		if n := overlaps.Load(); n > 0 {
			t.Errorf("%s: the handler was called concurrently %d times", name, n)
		}
	})
	cfg.NodeName = name
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	cfg.Timing = serf.TimingTest
	if cfg.Handler == nil {
		cfg.Handler = rec
	}
	inner := cfg.Handler
	cfg.Handler = discovery.HandlerFunc(func(e discovery.Event) {
		if inFlight.Add(1) != 1 {
			overlaps.Add(1)
		}
		defer inFlight.Add(-1)
		runtime.Gosched() // widen the window in which a concurrent call would overlap
		inner.HandleEvent(e)
	})
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("DISCOVERY_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	m, err := serf.New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return node{m: m, rec: rec}
}

// startCluster starts a seed and n-1 nodes that join it through StartJoinAddrs, and waits
// until every node sees every other alive.
func startCluster(t *testing.T, n int) []node {
	t.Helper()
	nodes := []node{startNode(t, "node-0", serf.Config{Tags: map[string]string{"id": "0"}})}
	seed := nodes[0].m.LocalMember().Addr
	for i := 1; i < n; i++ {
		nodes = append(nodes, startNode(t, "node-"+strconv.Itoa(i), serf.Config{
			Tags:           map[string]string{"id": strconv.Itoa(i)},
			StartJoinAddrs: []string{seed},
		}))
	}
	for _, nd := range nodes {
		waitAliveCount(t, nd.m, n)
	}
	return nodes
}

// waitCtx returns a context bounded by waitTimeout.
func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor waits for an event of type typ about member name on rec.
func waitFor(t *testing.T, rec *discoverytest.Recorder, typ discovery.EventType, name string) discovery.Event {
	t.Helper()
	e, err := rec.WaitFor(waitCtx(t), typ, name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// poll calls cond until it returns true or waitTimeout passes. Used only for state that
// has no notification (Members()).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(delay)
	}
}

// waitAliveCount waits until m sees exactly n alive members.
func waitAliveCount(t *testing.T, m *serf.Membership, n int) {
	t.Helper()
	poll(t, strconv.Itoa(n)+" alive members on "+m.LocalMember().Name, func() bool {
		return aliveCount(m) == n
	})
}

func aliveCount(m *serf.Membership) int {
	c := 0
	for _, mem := range m.Members() {
		if mem.Status == discovery.StatusAlive {
			c++
		}
	}
	return c
}

// memberStatus returns the status m sees for member name.
func memberStatus(m *serf.Membership, name string) discovery.Status {
	i := slices.IndexFunc(m.Members(), func(mem discovery.Member) bool { return mem.Name == name })
	if i < 0 {
		return discovery.StatusUnknown
	}
	return m.Members()[i].Status
}

// freePort returns a loopback port that was free for both TCP and UDP a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port for TCP and UDP")
	return 0
}

// logRecord is one captured log record.
type logRecord struct {
	Level     slog.Level
	Msg       string
	Component string
	Node      string
	Attrs     map[string]string // every attribute, by key
}

// captureHandler is a slog.Handler that keeps every record.
type captureHandler struct {
	mu      *sync.Mutex
	records *[]logRecord
	attrs   []slog.Attr
}

func newCaptureHandler() *captureHandler {
	return &captureHandler{mu: &sync.Mutex{}, records: &[]logRecord{}}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	find := func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		switch a.Key {
		case "component":
			rec.Component = a.Value.String()
		case "node":
			rec.Node = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		find(a)
	}
	r.Attrs(find)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, rec)
	return nil
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &captureHandler{mu: h.mu, records: h.records, attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

// has reports whether a record matching pred was captured.
func (h *captureHandler) has(pred func(logRecord) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(*h.records, pred)
}
