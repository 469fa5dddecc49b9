// Package serf implements discovery.Membership with hashicorp/serf: nodes find each other by
// gossip (SWIM, through hashicorp/memberlist), advertise tags, and detect failures.
//
// A Membership binds a gossip port (TCP and UDP), joins the nodes in Config.StartJoinAddrs in
// the background (retrying until it succeeds), and hands every membership change to the
// Config.Handler as a discovery.Event, one at a time, in order. Leave announces a graceful
// exit; Close stops without one, so the others see the node fail.
//
// Gossip can be encrypted and authenticated with a shared AES key (Config.EncryptKey,
// GenerateKey); a node without the key, or with another key, cannot join. serf's and
// memberlist's logs are forwarded to the Config.Logger at their levels.
package serf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	hserf "github.com/hashicorp/serf/serf"

	"github.com/commitlog-go/commitlog/discovery"
)

// eventBuffer is the capacity of the channel serf sends events on. It exceeds the 1024
// events serf's internal query filter can hold, so that, once serf is shut down and the
// channel drained, serf's forwarding goroutine can never block on it.
const eventBuffer = 4096

// setTagsAttempts bounds how many times SetTags re-sends a tag update that was not
// confirmed sent.
const setTagsAttempts = 3

// Membership is a serf gossip agent. It implements discovery.Membership.
//
// Concurrency: every method is safe for concurrent use. The handler is called from one
// goroutine owned by the Membership; Close and Leave wait for it to return.
type Membership struct {
	s       *settings
	logger  *slog.Logger
	handler discovery.Handler
	serf    *hserf.Serf
	events  chan hserf.Event

	mu      sync.Mutex     // guards closing and wg.Add (no Add once closing)
	closing bool           // Close has started
	wg      sync.WaitGroup // every goroutine started by the Membership

	// opSem (capacity 1) serializes serf's Join and Leave: serf drops a leave whose intent
	// is broadcast while a join is still completing (the join's intent, newer by serf's clock,
	// revives the node, and the others then see it fail instead of leave), and a join after a
	// leave would rejoin. Held for the whole serf call, even when the caller's ctx ends.
	opSem   chan struct{}
	leaving bool // guarded by opSem: Leave has started; no more joins

	closingCh  chan struct{} // closed when Close starts: stop delivering, stop retrying
	shutdownCh chan struct{} // closed when serf is shut down: the event loop may drain and exit
	joinedCh   chan struct{} // closed when the start join succeeded (or there was none)
	closeOnce  sync.Once
	closeErr   error

	conflictMu   sync.Mutex
	conflicts    uint64 // how many times serf reported another live node holding this node's name
	conflictAddr string // the address of the last such node
	// joinConflict is the address of the live member holding this node's name that refused
	// the last start join attempt; "" once a start join succeeded, or none was refused so.
	joinConflict string
}

var _ discovery.Membership = (*Membership)(nil)

// New starts a gossip agent: it binds Config.BindAddr, starts delivering events to
// Config.Handler (the local node's own join comes first), and, if Config.StartJoinAddrs is
// set, starts joining them in the background. The caller must Close (or Leave) it.
// Errors: discovery.ErrInvalidConfig (naming the Config field at fault); a bind failure (port in use).
func New(cfg Config) (*Membership, error) {
	return NewContext(context.Background(), cfg)
}

// NewContext is New, whose wait for a host name in Config.AdvertiseAddr that does not resolve
// yet (up to Config.AdvertiseResolveTimeout) ends when ctx does: a process stopped while it
// waits (SIGTERM, Ctrl-C) stops at once, not minutes later. ctx bounds only the start: the
// Membership runs until Close. Errors: New's; ctx's error, wrapped, when it ended the wait.
func NewContext(ctx context.Context, cfg Config) (*Membership, error) {
	s, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		s:          s,
		logger:     s.logger,
		handler:    s.handler,
		events:     make(chan hserf.Event, eventBuffer),
		opSem:      make(chan struct{}, 1),
		closingCh:  make(chan struct{}),
		shutdownCh: make(chan struct{}),
		joinedCh:   make(chan struct{}),
	}
	conf, err := s.serfConfig(ctx, m.events, m.noteConflict)
	if err != nil {
		return nil, err
	}
	// serf.Create leaks a goroutine when memberlist fails to start, so the likeliest failure,
	// a port already in use, is checked first.
	if err := probeBind(conf.MemberlistConfig.BindAddr, conf.MemberlistConfig.BindPort); err != nil {
		return nil, fmt.Errorf("discovery/serf: bind %s: %w", s.cfg.BindAddr, err)
	}
	// The stream connections of others go through the bounds of guard.go.
	ml := conf.MemberlistConfig
	gt, err := newGuardedTransport(ml.BindAddr, ml.BindPort, ml.Logger)
	if err != nil {
		return nil, fmt.Errorf("discovery/serf: bind %s: %w", s.cfg.BindAddr, err)
	}
	if ml.BindPort == 0 { // as memberlist does with the transport it makes
		port := gt.GetAutoBindPort()
		if ml.AdvertisePort == 0 { // not an AdvertiseAddr's own port
			ml.AdvertisePort = port
		}
		ml.BindPort = port
	}
	ml.Transport = gt
	m.serf, err = hserf.Create(conf)
	if err != nil {
		_ = gt.Shutdown()
		return nil, fmt.Errorf("discovery/serf: start gossip on %s: %w", s.cfg.BindAddr, err)
	}
	m.wg.Add(1)
	go m.eventLoop()
	if kr := conf.MemberlistConfig.Keyring; s.key != nil && kr != nil {
		m.wg.Add(1)
		go m.guardKeyring(kr, s.key)
	}
	if len(s.cfg.StartJoinAddrs) > 0 {
		m.wg.Add(1)
		go m.retryJoin(s.cfg.StartJoinAddrs)
	} else {
		close(m.joinedCh)
	}
	m.logger.Info("gossip started", slog.String("addr", m.LocalMember().Addr),
		slog.Bool("encrypted", m.serf.EncryptionEnabled()), slog.String("timing", s.cfg.Timing.String()))
	return m, nil
}

// Joined returns a channel that is closed once a background join of Config.StartJoinAddrs
// has reached at least one of them (at once if there were none) and met no live member
// holding this node's name. It is never closed if the Membership is closed before that.
func (m *Membership) Joined() <-chan struct{} { return m.joinedCh }

// Members implements discovery.Membership. After Close it returns the last known view.
func (m *Membership) Members() []discovery.Member {
	sm := m.serf.Members()
	out := make([]discovery.Member, 0, len(sm))
	for _, mem := range sm {
		out = append(out, convertMember(mem))
	}
	return out
}

// LocalMember implements discovery.Membership. Its Addr is the advertised gossip address
// (with the actual port when Config.BindAddr asked for port 0).
func (m *Membership) LocalMember() discovery.Member {
	return convertMember(m.serf.LocalMember())
}

// Join implements discovery.Membership. A partial success (some addresses reached) returns
// the count and no error; the failures are logged. Joins and Leave run one at a time.
func (m *Membership) Join(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, discovery.ErrNoAddrs
	}
	addrs = append([]string(nil), addrs...)
	if err := m.lockOps(ctx); err != nil {
		return 0, err
	}
	if m.leaving {
		m.unlockOps()
		return 0, discovery.ErrClosed
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	if !m.goTracked(func() {
		defer m.unlockOps()
		n, err := m.serf.Join(addrs, true)
		done <- result{n, err}
	}) {
		m.unlockOps()
		return 0, discovery.ErrClosed
	}
	select {
	case r := <-done:
		if r.n == 0 {
			if m.isClosing() {
				return 0, discovery.ErrClosed
			}
			return 0, &discovery.JoinError{Addrs: addrs, Err: r.err}
		}
		if r.err != nil {
			m.logger.Warn("join reached only some addresses", slog.Int("reached", r.n),
				slog.Any("addrs", addrs), slog.Any("err", r.err))
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Leave implements discovery.Membership: it waits for a join in progress to finish, broadcasts
// a graceful leave, waits for serf to propagate it (bounded by serf's broadcast timeout and
// leave propagation delay, and by ctx) and then closes the Membership. If ctx ends first,
// Leave closes anyway and returns ctx.Err() together with any close error.
func (m *Membership) Leave(ctx context.Context) error {
	if m.isClosing() {
		return discovery.ErrClosed
	}
	if err := m.lockOps(ctx); err != nil {
		if errors.Is(err, discovery.ErrClosed) {
			return err
		}
		return errors.Join(fmt.Errorf("discovery/serf: leave: %w", err), m.Close())
	}
	m.leaving = true
	done := make(chan error, 1)
	if !m.goTracked(func() {
		defer m.unlockOps()
		done <- m.serf.Leave()
	}) {
		m.unlockOps()
		return discovery.ErrClosed
	}
	var err error
	select {
	case err = <-done:
		if err != nil {
			err = fmt.Errorf("discovery/serf: leave: %w", err)
		} else {
			m.logger.Info("left the cluster")
		}
	case <-ctx.Done():
		err = fmt.Errorf("discovery/serf: leave: %w", ctx.Err())
	}
	return errors.Join(err, m.Close())
}

// lockOps takes opSem, giving up when ctx ends or Close starts (ErrClosed).
func (m *Membership) lockOps(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m.opSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closingCh:
		return discovery.ErrClosed
	}
	if m.isClosing() {
		m.unlockOps()
		return discovery.ErrClosed
	}
	return nil
}

// unlockOps releases opSem.
func (m *Membership) unlockOps() { <-m.opSem }

// SetTags implements discovery.Membership. The tags map is copied.
//
// memberlist can drop a tag update that races with a refutation of a false suspicion of the
// local node (the refutation re-advertises the old tags with a newer incarnation); the update
// then never reports that it was sent. SetTags therefore retries, up to setTagsAttempts times,
// each attempt bounded by serf's broadcast timeout, until the update is confirmed sent or ctx
// ends. Re-advertising identical tags does not produce another EventUpdate elsewhere.
func (m *Membership) SetTags(ctx context.Context, tags map[string]string) error {
	if err := checkTags(tags); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= setTagsAttempts; attempt++ {
		done := make(chan error, 1)
		if !m.goTracked(func() { done <- m.serf.SetTags(cloneTags(tags)) }) {
			return discovery.ErrClosed
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			return fmt.Errorf("discovery/serf: set tags: %w", ctx.Err())
		}
		if err == nil {
			return nil
		}
		if m.isClosing() {
			return discovery.ErrClosed
		}
		m.logger.Warn("tag update not confirmed, retrying", slog.Int("attempt", attempt), slog.Any("err", err))
	}
	return fmt.Errorf("discovery/serf: set tags: %d attempts: %w", setTagsAttempts, err)
}

// Close implements discovery.Membership: it shuts serf down without leaving, stops the
// background join and the event loop, and waits for every goroutine it started (a Join or
// Leave in flight finishes within serf's timeouts). Idempotent.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closing = true
		m.mu.Unlock()
		close(m.closingCh)
		if err := m.serf.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("discovery/serf: shutdown: %w", err)
		}
		close(m.shutdownCh)
		m.wg.Wait()
		m.logger.Info("gossip stopped")
	})
	return m.closeErr
}

// isClosing reports whether Close has started.
func (m *Membership) isClosing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

// goTracked runs f in a goroutine that Close waits for. It returns false, without running f,
// if Close has started.
func (m *Membership) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// eventLoop delivers serf's member events to the handler until Close. Events that arrive
// once Close has started are dropped; after serf has shut down the loop drains the channel
// (so serf never blocks sending) and exits.
func (m *Membership) eventLoop() {
	defer m.wg.Done()
	for {
		select {
		case e := <-m.events:
			select {
			case <-m.closingCh:
				continue
			default:
			}
			m.deliver(e)
		case <-m.shutdownCh:
			for {
				select {
				case <-m.events:
				default:
					return
				}
			}
		}
	}
}

// deliver hands one serf event to the handler, as one discovery.Event per member.
func (m *Membership) deliver(e hserf.Event) {
	me, ok := e.(hserf.MemberEvent)
	if !ok {
		return // user events and queries are not part of the contract
	}
	typ, ok := convertEventType(me.Type)
	if !ok {
		return
	}
	for _, mem := range me.Members {
		ev := discovery.Event{Type: typ, Member: convertMember(mem)}
		m.logger.Debug("member event", slog.String("event", typ.String()),
			slog.String("member", ev.Member.Name), slog.String("addr", ev.Member.Addr))
		m.handler.HandleEvent(ev)
	}
}

// retryJoin joins addrs, retrying with exponential backoff and jitter until one attempt
// reaches at least one other node (reaching only this node's own address, which the list may
// hold, does not count) or Close starts.
func (m *Membership) retryJoin(addrs []string) {
	defer m.wg.Done()
	delay := m.s.cfg.RetryJoinInterval
	for attempt := 1; ; attempt++ {
		if m.lockOps(context.Background()) != nil {
			return // closed
		}
		if m.leaving {
			m.unlockOps()
			return
		}
		conflictsBefore, _ := m.lastConflict()
		n, err := m.serf.Join(addrs, true)
		// A list naming this node too (every pod of a StatefulSet gets the same list) reaches
		// this node itself at once: that joins nothing, so it does not count.
		others := m.serf.NumNodes() > 1
		m.unlockOps()
		if conflicts, holder := m.lastConflict(); n > 0 && conflicts != conflictsBefore {
			// memberlist refused this node's alive message: the others keep the live member at
			// holder under this name, and never see this node (when holder is the only member
			// reached, this node sees no other either). Joining again succeeds once that member
			// is gone (dead for deadNodeReclaimTime, or left).
			m.logger.Error("not joined: another live member holds this node's name at another address; names must be unique",
				slog.String("name", m.s.cfg.NodeName), slog.String("holder", holder),
				slog.String("addr", m.LocalMember().Addr), slog.Int("attempt", attempt))
			err = fmt.Errorf("node name %q is held by a live member at %s", m.s.cfg.NodeName, holder)
			m.setJoinConflict(holder)
		} else if n > 0 && !others && err == nil {
			err = errors.New("reached only this node")
		} else if n > 0 && others {
			m.logger.Info("joined the cluster", slog.Int("reached", n), slog.Int("attempt", attempt))
			m.setJoinConflict("")
			close(m.joinedCh)
			return
		}
		if m.isClosing() {
			return
		}
		// Jitter of ±20 % keeps nodes started together from retrying in lockstep.
		wait := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		m.logger.Warn("join failed, will retry", slog.Any("addrs", addrs), slog.Int("attempt", attempt),
			slog.Duration("retry_in", wait), slog.Any("err", err))
		t := time.NewTimer(wait)
		select {
		case <-m.closingCh:
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, m.s.cfg.RetryJoinMaxInterval)
	}
}

// noteConflict records that serf reported a live node at addr holding this node's name.
func (m *Membership) noteConflict(addr string) {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	m.conflicts++
	m.conflictAddr = addr
}

// setJoinConflict records the outcome of a start join attempt for NameConflict.
func (m *Membership) setJoinConflict(holder string) {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	m.joinConflict = holder
}

// NameConflict reports whether this node's start join (Config.StartJoinAddrs) was refused
// because another live member holds this node's name at another address (holder): the other
// members keep that member and never see this node, which is then part of no cluster. It stays
// so until a start join succeeds (once the holder left or failed); it is false for a node
// without a start join, and for the live holder.
func (m *Membership) NameConflict() (holder string, conflict bool) {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	return m.joinConflict, m.joinConflict != ""
}

// lastConflict returns how many name conflicts serf reported so far, and the address of the
// node of the last one.
func (m *Membership) lastConflict() (uint64, string) {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	return m.conflicts, m.conflictAddr
}

// convertMember turns a serf member into a discovery.Member (a copy).
func convertMember(mem hserf.Member) discovery.Member {
	addr := ""
	if mem.Addr != nil {
		addr = net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port)))
	}
	return discovery.Member{
		Name:   mem.Name,
		Addr:   addr,
		Tags:   cloneTags(mem.Tags),
		Status: convertStatus(mem.Status),
	}
}

// convertStatus maps serf's member status.
func convertStatus(s hserf.MemberStatus) discovery.Status {
	switch s {
	case hserf.StatusAlive:
		return discovery.StatusAlive
	case hserf.StatusLeaving:
		return discovery.StatusLeaving
	case hserf.StatusLeft:
		return discovery.StatusLeft
	case hserf.StatusFailed:
		return discovery.StatusFailed
	default:
		return discovery.StatusUnknown
	}
}

// convertEventType maps serf's member event types; ok is false for any other event.
func convertEventType(t hserf.EventType) (discovery.EventType, bool) {
	switch t {
	case hserf.EventMemberJoin:
		return discovery.EventJoin, true
	case hserf.EventMemberLeave:
		return discovery.EventLeave, true
	case hserf.EventMemberFailed:
		return discovery.EventFailed, true
	case hserf.EventMemberUpdate:
		return discovery.EventUpdate, true
	case hserf.EventMemberReap:
		return discovery.EventReap, true
	default:
		return 0, false
	}
}

// probeBind checks that the TCP and UDP port can be bound on ip, then releases them. Port 0
// always can.
func probeBind(ip string, port int) error {
	if port == 0 {
		return nil
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	return u.Close()
}

// keyringCheckEvery is how often guardKeyring compares the gossip keyring with the configured
// key.
const keyringCheckEvery = 250 * time.Millisecond

// guardKeyring keeps key the only key of the gossip keyring kr until Close. Serf answers the
// key queries of any member (_serf_install-key, _serf_use-key, _serf_remove-key: what `serf
// keys` sends) and cannot be told not to, and anyone who knows the gossip key is a member: such
// a process could make every node encrypt with a key of its own and drop the configured one,
// so that a node started again with the configured key (a restart, a new server) could no
// longer join. Keys are not rotated through gossip here (every member is given its key at
// start), so a keyring that is not the configured key alone is put back, and logged.
func (m *Membership) guardKeyring(kr *memberlist.Keyring, key []byte) {
	defer m.wg.Done()
	t := time.NewTicker(keyringCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-m.closingCh:
			return
		case <-t.C:
		}
		if restoreKeyring(kr, key) {
			m.logger.Warn("gossip keyring changed by a member's key query (install-key, use-key or remove-key); put the configured key back as the only key: a process that knows the gossip key is trying to replace it")
		}
	}
}

// restoreKeyring makes key the only key of kr; it reports whether kr had any other key, or
// another primary key.
func restoreKeyring(kr *memberlist.Keyring, key []byte) bool {
	keys := kr.GetKeys() // the primary key first
	if len(keys) == 1 && bytes.Equal(keys[0], key) {
		return false
	}
	_ = kr.AddKey(key) // a no-op when installed
	_ = kr.UseKey(key)
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, key) {
			_ = kr.RemoveKey(k)
		}
	}
	return true
}
