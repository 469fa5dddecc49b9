// Package static implements discovery.Membership over a fixed member list taken from
// configuration: no gossip, no failure detection. It suits tests and deployments where the
// set of nodes is known in advance.
//
// A Membership delivers one discovery.EventJoin per member (the local node first, then the
// peers in configuration order) from a goroutine of its own, and then nothing: its view never
// changes. Join and SetTags return discovery.ErrNotSupported.
package static

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/commitlog-go/commitlog/discovery"
)

// Config configures a static Membership. New copies everything it keeps.
type Config struct {
	// Local is the local node. Its Name is required; Status is forced to StatusAlive.
	Local discovery.Member
	// Peers are the other members. Names must be unique and differ from Local's; Status is
	// forced to StatusAlive.
	Peers []discovery.Member
	// Handler receives the join events. Default: events are dropped.
	Handler discovery.Handler
	// Logger receives the membership's logs. Default: logs are dropped.
	Logger *slog.Logger
}

// Membership is a fixed member list. It implements discovery.Membership.
//
// Concurrency: every method is safe for concurrent use; the handler is called from one
// goroutine that Close waits for.
type Membership struct {
	local   discovery.Member
	members []discovery.Member // local first, then peers
	logger  *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
	done      chan struct{} // closed when the delivery goroutine returns
}

var _ discovery.Membership = (*Membership)(nil)

// withDefaults returns cfg with its nil Handler and Logger set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Handler == nil {
		cfg.Handler = discovery.HandlerFunc(func(discovery.Event) {})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks cfg. The error names the field at fault and wraps
// discovery.ErrInvalidConfig.
func (cfg Config) validate() error {
	if cfg.Local.Name == "" {
		return fmt.Errorf("%w: Local.Name is empty", discovery.ErrInvalidConfig)
	}
	seen := map[string]bool{cfg.Local.Name: true}
	for i, p := range cfg.Peers {
		if p.Name == "" {
			return fmt.Errorf("%w: Peers[%d].Name is empty", discovery.ErrInvalidConfig, i)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: Peers[%d].Name %q is not unique", discovery.ErrInvalidConfig, i, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// New validates cfg and starts delivering one EventJoin per member to cfg.Handler.
// Errors: discovery.ErrInvalidConfig (empty or duplicate names; the error names the field).
func New(cfg Config) (*Membership, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		local:  alive(cfg.Local),
		logger: cfg.Logger,
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	m.members = append(m.members, m.local)
	for _, p := range cfg.Peers {
		m.members = append(m.members, alive(p))
	}
	handler := cfg.Handler
	go m.deliver(handler)
	return m, nil
}

// alive returns a deep copy of mem with StatusAlive.
func alive(mem discovery.Member) discovery.Member {
	mem = mem.Clone()
	mem.Status = discovery.StatusAlive
	return mem
}

// deliver sends one join per member, stopping early if Close starts.
func (m *Membership) deliver(h discovery.Handler) {
	defer close(m.done)
	for _, mem := range m.members {
		select {
		case <-m.closed:
			return
		default:
		}
		h.HandleEvent(discovery.Event{Type: discovery.EventJoin, Member: mem.Clone()})
	}
	m.logger.Debug("static members delivered", slog.Int("members", len(m.members)))
}

// Members implements discovery.Membership: the local node, then the peers.
func (m *Membership) Members() []discovery.Member {
	out := make([]discovery.Member, len(m.members))
	for i, mem := range m.members {
		out[i] = mem.Clone()
	}
	return out
}

// LocalMember implements discovery.Membership.
func (m *Membership) LocalMember() discovery.Member { return m.local.Clone() }

// Join implements discovery.Membership: a static list cannot grow.
// Errors: discovery.ErrNoAddrs, discovery.ErrClosed, discovery.ErrNotSupported.
func (m *Membership) Join(_ context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, discovery.ErrNoAddrs
	}
	if m.isClosed() {
		return 0, discovery.ErrClosed
	}
	return 0, fmt.Errorf("static: join %v: %w", addrs, discovery.ErrNotSupported)
}

// Leave implements discovery.Membership: there is no one to tell, so it just closes.
// Errors: discovery.ErrClosed if already closed.
func (m *Membership) Leave(context.Context) error {
	if m.isClosed() {
		return discovery.ErrClosed
	}
	return m.Close()
}

// SetTags implements discovery.Membership: a static list never changes.
// Errors: discovery.ErrClosed, discovery.ErrNotSupported.
func (m *Membership) SetTags(context.Context, map[string]string) error {
	if m.isClosed() {
		return discovery.ErrClosed
	}
	return fmt.Errorf("static: set tags: %w", discovery.ErrNotSupported)
}

// Close implements discovery.Membership: it stops the delivery of joins not yet handed out
// and waits for the delivering goroutine. Idempotent.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	<-m.done
	return nil
}

// isClosed reports whether Close has started.
func (m *Membership) isClosed() bool {
	select {
	case <-m.closed:
		return true
	default:
		return false
	}
}
