package static_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/static"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testConfig(h discovery.Handler) static.Config {
	return static.Config{
		Local: discovery.Member{Name: "a", Addr: "127.0.0.1:8401", Tags: map[string]string{"rpc_addr": "127.0.0.1:8400"}},
		Peers: []discovery.Member{
			{Name: "b", Addr: "127.0.0.1:8411", Tags: map[string]string{"rpc_addr": "127.0.0.1:8410"}},
			{Name: "c", Addr: "127.0.0.1:8421", Status: discovery.StatusFailed},
		},
		Handler: h,
	}
}

func TestDeliversOneJoinPerMemberInOrder(t *testing.T) {
	rec := &discoverytest.Recorder{}
	m, err := static.New(testConfig(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rec.Wait(ctx, func(evs []discovery.Event) bool { return len(evs) >= 3 }); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // waits for delivery to finish: nothing more can come
		t.Fatal(err)
	}
	evs := rec.Events()
	want := testConfig(nil)
	wantMembers := append([]discovery.Member{want.Local}, want.Peers...)
	if len(evs) != len(wantMembers) {
		t.Fatalf("got %d events, want %d: %v", len(evs), len(wantMembers), evs)
	}
	for i, e := range evs {
		w := wantMembers[i]
		if e.Type != discovery.EventJoin || e.Member.Name != w.Name || e.Member.Addr != w.Addr ||
			!maps.Equal(e.Member.Tags, w.Tags) || e.Member.Status != discovery.StatusAlive {
			t.Errorf("event %d = %+v, want join of %+v (alive)", i, e, w)
		}
	}
}

func TestMembersAndLocalMemberAreCopies(t *testing.T) {
	m, err := static.New(testConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.LocalMember(); got.Name != "a" || got.Status != discovery.StatusAlive {
		t.Errorf("LocalMember() = %+v", got)
	}
	ms := m.Members()
	if len(ms) != 3 || ms[0].Name != "a" || ms[1].Name != "b" || ms[2].Name != "c" {
		t.Fatalf("Members() = %+v", ms)
	}
	ms[0].Tags["rpc_addr"] = "changed"
	if got := m.LocalMember().Tags["rpc_addr"]; got != "127.0.0.1:8400" {
		t.Errorf("caller's change leaked into the membership: %q", got)
	}
}

func TestConfigIsCopied(t *testing.T) {
	cfg := testConfig(nil)
	m, err := static.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg.Peers[0].Name = "zzz"
	cfg.Local.Tags["rpc_addr"] = "changed"
	if got := m.Members(); got[1].Name != "b" || got[0].Tags["rpc_addr"] != "127.0.0.1:8400" {
		t.Errorf("Members() changed with the caller's config: %+v", got)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   static.Config
		field string // the field the error names
	}{
		{"local without name", static.Config{}, "Local.Name"},
		{"peer without name", static.Config{Local: discovery.Member{Name: "a"}, Peers: []discovery.Member{{}}}, "Peers[0].Name"},
		{"peer named as local", static.Config{Local: discovery.Member{Name: "a"}, Peers: []discovery.Member{{Name: "a"}}}, "Peers[0].Name"},
		{"duplicate peers", static.Config{Local: discovery.Member{Name: "a"}, Peers: []discovery.Member{{Name: "b"}, {Name: "b"}}}, "Peers[1].Name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := static.New(tt.cfg)
			if m != nil || !errors.Is(err, discovery.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig naming %s", m, err, tt.field)
			}
		})
	}
}

func TestUnsupportedAndClosedOperations(t *testing.T) {
	m, err := static.New(testConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Join(t.Context(), nil); !errors.Is(err, discovery.ErrNoAddrs) {
		t.Errorf("Join(nil) = %v, want ErrNoAddrs", err)
	}
	if _, err := m.Join(t.Context(), []string{"127.0.0.1:1"}); !errors.Is(err, discovery.ErrNotSupported) {
		t.Errorf("Join = %v, want ErrNotSupported", err)
	}
	if err := m.SetTags(t.Context(), map[string]string{"a": "b"}); !errors.Is(err, discovery.ErrNotSupported) {
		t.Errorf("SetTags = %v, want ErrNotSupported", err)
	}
	if err := m.Leave(t.Context()); err != nil {
		t.Fatalf("Leave = %v", err)
	}
	if err := m.Leave(t.Context()); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Leave after Leave = %v, want ErrClosed", err)
	}
	if _, err := m.Join(t.Context(), []string{"127.0.0.1:1"}); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Join after close = %v, want ErrClosed", err)
	}
	if err := m.SetTags(t.Context(), nil); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("SetTags after close = %v, want ErrClosed", err)
	}
	for range 2 {
		if err := m.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
}

// blockingHandler blocks in HandleEvent until released, to test Close during delivery.
type blockingHandler struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (h *blockingHandler) HandleEvent(discovery.Event) {
	h.mu.Lock()
	h.n++
	first := h.n == 1
	h.mu.Unlock()
	if first {
		close(h.entered)
		<-h.release
	}
}

func TestCloseStopsDeliveryMidway(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}), release: make(chan struct{})}
	m, err := static.New(testConfig(h))
	if err != nil {
		t.Fatal(err)
	}
	<-h.entered
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	// Close must wait for the handler; release it once Close has started.
	deadline := time.Now().Add(10 * time.Second)
	for !errors.Is(m.SetTags(t.Context(), nil), discovery.ErrClosed) {
		if time.Now().After(deadline) {
			t.Fatal("Close never started")
		}
		time.Sleep(time.Millisecond)
	}
	close(h.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n != 1 {
		t.Errorf("handler called %d times, want 1: delivery continued after Close", h.n)
	}
}
