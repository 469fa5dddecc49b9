// Package server is commitlog's composition root: it wires the storage engine, the Raft node,
// the commit-log state machine, the API transport and authorization into one Server, and is
// what the `commitlog serve` command runs.
//
// A Server listens on one port for both the API and Raft (a first-byte mux tells them apart),
// stores the commit log under DataDir/log and Raft's state under DataDir/raft, and with no
// configuration at all runs a working single-node cluster on loopback.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/telemetry"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// Compile-time checks that the pieces fit.
var (
	_ consensus.Consensus      = (*craft.Node)(nil)
	_ consensus.StateMachine   = (*fsm.Machine)(nil)
	_ consensus.SnapshotSource = (*fsm.Machine)(nil)
	_ transport.LogService     = (*service)(nil)
	_ transport.NewClientFunc  = tconnect.NewClient
	_ transport.NewClientFunc  = tgrpc.NewClient
)

// insecurePeersWarning is logged at every start with InsecurePlaintextPeers.
const insecurePeersWarning = "INSECURE: Raft runs in plaintext next to a secured API (--insecure-plaintext-peers): anyone who " +
	"reaches the port can depose the leader, append records past the ACL and join without proving who it is"

// Server is one commitlog node. Create it with New, then call Run.
type Server struct {
	cfg  Config
	addr string // the API and Raft address others reach this node at
	// startCtx ends the waits of the startup steps (NewContext); only they use it.
	startCtx context.Context

	ln      net.Listener
	mux     *mux.Mux
	log     storage.Log
	div     *divergence // the divergence alarm, opened before Raft (its raised alarm fences the node: fence.go)
	fsm     *fsm.FSM    // the default topic's partition 0 (sm.Default())
	sm      *fsm.Machine
	node    *craft.Node
	api     transport.Server
	svc     *service
	forward *forwarder
	serf    discovery.Membership // Serf, or Config.Membership's
	recon   *reconciler
	removed *removedServers  // servers an operator removed: the service marks, the reconciler skips
	acl     authz.Authorizer // casbin, Config.Authorizer or nil (everyone may do everything)
	// apiAdmit and apiIntercept authorize API calls (as the headers arrive, and as the call
	// runs: see admitEarly).
	apiAdmit, apiIntercept transport.Interceptor

	// insecure lists what this node leaves unprotected on a non-loopback address (none: safe).
	insecure []string

	tel *telemetry.Telemetry

	// conflicts is the membership when it can tell that a live member holds this node's name
	// (discovery/serf's NameConflict): set once the membership has started.
	conflicts atomic.Pointer[nameConflicter]

	tagMu      sync.Mutex    // serializes changes of this node's Serf tags
	clusterTag chan struct{} // kicks syncClusterTag: the cluster ID was set

	stopping  chan struct{}
	closeOnce sync.Once
	closeErr  error
	bg        sync.WaitGroup
}

// New opens the node's data, binds its port and starts Raft; it serves nothing until Run.
// It runs the steps of startupSteps (startup.go) in order: the authorizer, prepare the data
// dir, listen, the mux, the logs, telemetry, Raft, the forwarder, the service, the API, the
// membership, the bootstrap. When one fails, New closes what the earlier ones opened and
// returns its error.
func New(cfg Config) (*Server, error) {
	return NewContext(context.Background(), cfg)
}

// NewContext is New, whose waits at start ctx cuts short: gossip's wait for an advertised host
// name that does not resolve yet (--advertise-host, --gossip-advertise-host: up to 2 minutes)
// ends when ctx does, so that a process stopped meanwhile (SIGTERM, Ctrl-C) stops at once.
// ctx bounds only the start: the server runs until Run's context ends. Errors: New's; ctx's
// error, wrapped, when it ended a wait.
func NewContext(ctx context.Context, cfg Config) (*Server, error) {
	cfg.withDefaults()
	if err := cfg.derivePeerTLS(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.InsecurePlaintextPeers {
		cfg.Logger.Warn(insecurePeersWarning)
	}
	s := &Server{cfg: cfg, startCtx: ctx, stopping: make(chan struct{}), clusterTag: make(chan struct{}, 1)}
	for _, st := range s.startupSteps() {
		if err := s.cfg.runStep(st); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.warnIfInsecure()
	s.checkCertExpiry(time.Now())
	return s, nil
}

// admit checks that the server at raftAddr proves it is id before it enters Raft's
// configuration (see admit).
func (s *Server) admit(ctx context.Context, id, raftAddr string) error {
	return admit(ctx, s.cfg.PeerClientTLS, id, raftAddr)
}

// tags are the Serf tags this node advertises, with a start tag (tagStart) of its own: a
// random nonce, new at each call (once per start).
func (s *Server) tags() map[string]string {
	tags := map[string]string{tagRaftAddr: s.addr, tagRPCAddr: s.addr, tagStart: startNonce()}
	if len(s.insecure) > 0 {
		tags[tagInsecure] = "true"
	}
	if s.cfg.BootstrapExpect > 0 {
		tags[tagExpect] = strconv.Itoa(s.cfg.BootstrapExpect)
	}
	return tags
}

// startNonce returns a new start tag: 8 random bytes in hex (24 bytes of the tags' 512 once
// encoded, with its key).
func startNonce() string { return randomHex(8) }

// randomHex returns n random bytes in hex (start tags, group member IDs).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

// GossipAddr returns the address Serf gossips on.
func (s *Server) GossipAddr() string {
	if s.serf == nil {
		return ""
	}
	return s.serf.LocalMember().Addr
}

// reachableIP returns this host's first non-loopback unicast IPv4 address, or 127.0.0.1.
func reachableIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// Addr returns the address of the API (and of Raft) as other nodes and clients reach it.
func (s *Server) Addr() string { return s.addr }

// MetricsAddr returns the address of the telemetry endpoint (/metrics, /healthz, /readyz), or
// "" when it is off.
func (s *Server) MetricsAddr() string { return s.tel.MetricsAddr() }

// ID returns the node's id (its name).
func (s *Server) ID() string { return s.cfg.NodeName }

// Run serves the API and Raft until ctx is done, then stops gracefully: a leader hands
// leadership over first, streams end, data is closed. A state machine that stops applying
// (see fsm.ErrFailed) does not end Run: the node stays up, reports it (log, metric,
// /healthz, GetBounds) and serves nothing past the failure.
func (s *Server) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	s.bg.Add(1)
	go func() { defer s.bg.Done(); serveErr <- s.api.Serve(s.mux.API()) }()
	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.retentionLoop() }()
	go func() { defer s.bg.Done(); s.watchApply() }()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.groupsLoop() }()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.handOverWhileDiverged() }()
	if s.cfg.DivergenceCheckInterval > 0 {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.divergenceLoop() }()
	}
	if len(s.cfg.TLSCredentials) > 0 {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.certLoop() }()
	}
	s.cfg.Logger.Info("serving", "node", s.cfg.NodeName, "addr", s.addr, "transport", s.cfg.Transport, "data_dir", s.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			runErr = fmt.Errorf("server: serve: %w", err)
		}
	}
	if err := s.shutdown(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// retentionLoop runs retention every RetentionInterval until the server stops.
func (s *Server) retentionLoop() {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case now := <-t.C:
			s.enforceRetention(now)
		}
	}
}

// enforceRetention is one retention pass. Every node drops the storage segments below the
// log's replicated first offset. The leader, when this node's retention settings ask for it,
// evaluates them on its log (sizes and the records' own timestamps) and proposes the new first
// offset through Raft: every replica then cuts at exactly that offset, and reads below it are
// OutOfRange everywhere.
func (s *Server) enforceRetention(now time.Time) {
	for _, p := range s.sm.Partitions() {
		select {
		case <-s.stopping:
			return
		default:
		}
		s.enforcePartitionRetention(now, p)
	}
}

// enforcePartitionRetention is one retention pass over one partition, with its topic's
// settings over the server's (the leader's).
func (s *Server) enforcePartitionRetention(now time.Time, p fsm.PartitionRef) {
	log := s.cfg.Logger
	if !p.Target.IsDefault() {
		log = log.With("topic", p.Topic.Name, "partition", p.Partition)
	}
	if err := p.FSM.Compact(); err != nil {
		log.Warn("retention: dropping old segments failed", "err", err)
	}
	policy := p.Topic.Config.Retention(fsm.RetentionPolicy{Bytes: s.cfg.RetentionBytes, Age: s.cfg.RetentionAge})
	if (policy.Bytes <= 0 && policy.Age <= 0) || !s.node.IsLeader() || s.sm.Err() != nil {
		return
	}
	lowest, _ := p.FSM.Bounds()
	first, err := p.FSM.RetentionPoint(policy, now)
	if err != nil {
		log.Warn("retention: evaluating the policy failed", "err", err)
		return
	}
	if first <= lowest {
		return
	}
	tctx, tcancel := context.WithTimeout(context.Background(), s.cfg.RetentionInterval)
	defer tcancel()
	ctx, cancel := s.untilStopping(tctx) // Close waits for this pass
	defer cancel()
	got, err := s.sm.ProposeRetention(ctx, s.node, p.Target, first)
	if err != nil {
		log.Warn("retention: proposing the new log start failed", "first", first, "err", err)
		return
	}
	log.Info("retention: log start moved", "from", lowest, "to", got)
}

// watchApply reacts to the state machine stopping (it could not store a committed entry; the
// FSM has logged why): this node keeps answering reads below the failure point and status
// calls, so that `cluster status` shows the failure, but whenever it leads — when it stops,
// or elected later (its Raft log is whole, so it can win an election) — it hands leadership
// over, since it refuses every write (fsm.ErrStopped). It checks every stoppedLeaderCheck;
// when leadership keeps coming back (every other node stopped too, and hands it back), the
// hand-overs are spaced out (handOverDue), so that stopped nodes do not pass leadership back
// and forth every second.
func (s *Server) watchApply() {
	select {
	case <-s.stopping:
		return
	case <-s.sm.Failed():
	}
	if !s.fenceIfCorrupt(s.sm.Err()) {
		s.cfg.Logger.Error("this node stopped applying committed entries; it needs an operator (fix the cause, restart it)", "err", s.sm.Err())
	}
	tick := time.NewTicker(stoppedLeaderCheck)
	defer tick.Stop()
	h := stoppedLeader{transfer: s.handOverStopped, now: time.Now, logger: s.cfg.Logger}
	for {
		if s.node.IsLeader() && !s.cfg.keepStoppedLeadership {
			h.leads()
		}
		select {
		case <-s.stopping:
			return
		case <-tick.C:
		}
	}
}

// stoppedLeaderCheck is how often a node whose state machine stopped checks whether it leads;
// stoppedLeaderMaxWait is the longest it then waits between two hand-overs.
const (
	stoppedLeaderCheck   = time.Second
	stoppedLeaderMaxWait = time.Minute
)

// handOverDue decides, at now, for a stopped node that leads, whether to hand leadership over
// again after the last hand-over (zero: none yet), and returns the backoff to use from then on.
// Leadership back within twice the backoff is a ping-pong between stopped nodes: the next
// hand-over waits until the backoff has passed, and the backoff doubles, up to
// stoppedLeaderMaxWait. Leadership back after longer (this node elected again, much later) is
// handed over at once, and the backoff starts again from stoppedLeaderCheck.
func handOverDue(now, last time.Time, backoff time.Duration) (bool, time.Duration) {
	since := now.Sub(last)
	switch {
	case last.IsZero() || since >= 2*backoff:
		return true, stoppedLeaderCheck
	case since >= backoff:
		return true, min(2*backoff, stoppedLeaderMaxWait)
	default:
		return false, backoff
	}
}

// stoppedLeader is watchApply's hand-over state, owned by its goroutine.
type stoppedLeader struct {
	transfer func() error     // hands leadership over (handOverStopped)
	now      func() time.Time // time.Now
	logger   *slog.Logger
	last     time.Time     // the end of the last hand-over (zero: none yet)
	backoff  time.Duration // handOverDue's (unused before the first hand-over)
}

// leads is called whenever the stopped node finds that it leads: it hands leadership over when
// one is due (handOverDue). A failed transfer is logged and counts as a hand-over: it is tried
// again once the backoff has passed, as when leadership comes back, so that a node with no
// other voter to hand over to (or whose transfers keep failing) neither gives up nor logs every
// stoppedLeaderCheck.
func (l *stoppedLeader) leads() {
	var due bool
	if due, l.backoff = handOverDue(l.now(), l.last, l.backoff); !due {
		return
	}
	if err := l.transfer(); err != nil {
		l.logger.Warn("leadership transfer after the state machine stopped failed", "err", err)
	}
	l.last = l.now()
}

// handOverStopped transfers leadership away from this node, whose state machine stopped.
func (s *Server) handOverStopped() error {
	tctx, tcancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer tcancel()
	ctx, cancel := s.untilStopping(tctx)
	defer cancel()
	return s.node.TransferLeadership(ctx, "")
}

// shutdownTimeout bounds each step of a graceful stop.
const shutdownTimeout = 5 * time.Second

// shutdown stops gracefully: NOT_SERVING, leadership handed over, (with LeaveOnShutdown) the
// cluster left, streams ended, then Close.
func (s *Server) shutdown() error {
	s.tel.Drain() // NOT_SERVING and unready from now on, whatever the leader does
	s.api.SetHealth(transport.HealthNotServing)
	s.recon.close()
	if s.node.IsLeader() {
		if servers, err := s.node.Servers(context.Background()); err == nil && len(servers) > 1 {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := s.node.TransferLeadership(ctx, ""); err != nil {
				s.cfg.Logger.Warn("leadership transfer before stopping failed", "err", err)
			}
			cancel()
		}
	}
	if s.cfg.LeaveOnShutdown || s.removedFromCluster() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		if err := s.serf.Leave(ctx); err != nil {
			s.cfg.Logger.Warn("leaving the cluster failed", "err", err)
		}
		cancel()
	}
	return s.Close()
}

// removedFromCluster reports whether the leader's configuration no longer lists this node (an
// operator removed it). Such a node leaves Serf when it stops, so that no later leader, seeing
// it alive a moment longer, adds it back. A removed node no longer hears from the leader, so
// the other members are asked, and only the leader's own answer counts (see leaderListing).
func (s *Server) removedFromCluster() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	listed, answered := s.leaderListing(ctx)
	return answered && !listed
}

// leaderListing asks the other members alive in gossip for the Raft configuration, and reports
// whether the leader's lists this node (listed), and whether the leader answered at all
// (answered): only an answer that leaderAnswer takes as the leader's counts, so that neither a
// follower with a stale configuration nor a stranger can make a node think it was removed.
func (s *Server) leaderListing(ctx context.Context) (listed, answered bool) {
	if s.serf == nil {
		return false, false
	}
	local, err := s.node.Servers(ctx)
	if err != nil {
		return false, false
	}
	known := make(map[string]bool, len(local))
	for _, srv := range local {
		known[srv.ID] = true
	}
	cluster := s.node.ClusterID()
	var asked []listingMember
	for _, m := range s.serf.Members() {
		addr := m.Tags[tagRPCAddr]
		if m.Name == s.cfg.NodeName || m.Status != discovery.StatusAlive || addr == "" || !known[m.Name] {
			continue
		}
		if theirs := m.Tags[tagClusterID]; theirs != "" && cluster != "" && theirs != cluster {
			continue
		}
		asked = append(asked, listingMember{name: m.Name, rpcAddr: addr})
	}
	return askListing(ctx, s.cfg.NodeName, cluster, known, asked, func(ctx context.Context, addr string) (*logv1.GetServersResponse, error) {
		c, release, err := s.forward.client(addr)
		if err != nil {
			return nil, err
		}
		defer release()
		return c.GetServers(ctx, &logv1.GetServersRequest{})
	})
}

// listingMember is a gossip member leaderListing asks: its name and API address.
type listingMember struct{ name, rpcAddr string }

// askListing asks every member of members for the Raft configuration at once (getServers) and
// returns the first answer that leaderAnswer takes as the leader's, or answered false once
// every member has failed or ctx is done. At once, not in turn: a member that does not answer
// (cut off by a partition, paused, a black hole) used up the whole of ctx before the leader,
// later in the list, was asked. It waits for the calls it cancels.
func askListing(ctx context.Context, self, cluster string, known map[string]bool, members []listingMember,
	getServers func(ctx context.Context, addr string) (*logv1.GetServersResponse, error)) (listed, answered bool) {
	type answer struct{ listed, ok bool }
	answers := make(chan answer, len(members))
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, m := range members {
		wg.Go(func() {
			res, err := getServers(ctx, m.rpcAddr)
			if err != nil {
				answers <- answer{}
				return
			}
			l, ok := leaderAnswer(self, m.name, cluster, known, res)
			answers <- answer{l, ok}
		})
	}
	for range members {
		if a := <-answers; a.ok {
			return a.listed, true
		}
	}
	return false, false
}

// leaderAnswer reads res, the answer of the gossip member named member to GetServers, asked by
// the node self of the cluster cluster whose own Raft configuration lists the servers known.
// It is the leader's answer (ok) only when member names itself leader in it, is a server known
// (a stranger's word does not count, whatever it claims), and does not say it is of another
// cluster (an older server says no cluster ID); listed then says whether the leader's
// configuration lists self. Any other answer (a follower's, which may be stale) tells nothing.
func leaderAnswer(self, member, cluster string, known map[string]bool, res *logv1.GetServersResponse) (listed, ok bool) {
	if !known[member] || (res.GetClusterId() != "" && cluster != "" && res.GetClusterId() != cluster) {
		return false, false
	}
	for _, srv := range res.GetServers() {
		ok = ok || (srv.GetId() == member && srv.GetIsLeader())
		listed = listed || srv.GetId() == self
	}
	return listed && ok, ok
}

// Close stops everything at once and releases the node's data: it stops the API, waits for the
// background goroutines (whose waits end with it), then closes Raft and the logs. It is
// idempotent; Run calls it.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopping)
		var errs []error
		if s.recon != nil {
			s.recon.close()
		}
		if s.serf != nil {
			if err := s.serf.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close gossip: %w", err))
			}
		}
		if s.mux != nil {
			// Refuse new connections before the API stops: one accepted while Raft still
			// holds the shared port would reach no API and be closed with its request
			// unread, an outcome the client cannot know. The API's GOAWAY sends the calls
			// it did not take elsewhere; a refused connection tells a client so too.
			_ = s.mux.StopAccepting()
		}
		if s.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := s.api.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("stop api: %w", err))
			}
			cancel()
		}
		// The background goroutines (retention, group expiry, the divergence check, the
		// bootstrap loop, …) watch s.stopping and end their waits with it: wait for them
		// before closing what they use (the forwarder, telemetry, Raft, the logs), so that
		// none of them calls into a store that is closing or closed. The API's Serve is one
		// of them: it returned once the API stopped.
		s.bg.Wait()
		if s.forward != nil {
			_ = s.forward.Close()
		}
		if s.tel != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := s.tel.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("close telemetry: %w", err))
			}
			cancel()
		}
		if s.svc != nil && s.svc.leaderLoss != nil {
			s.svc.leaderLoss.stop()
		}
		if s.node != nil {
			if err := s.node.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft: %w", err))
			}
		}
		if s.mux != nil {
			_ = s.mux.Close()
		} else if s.ln != nil {
			_ = s.ln.Close()
		}
		if s.sm != nil {
			if err := s.sm.Close(); err != nil && (s.sm.Err() == nil || !errors.Is(err, storage.ErrFailed)) {
				errs = append(errs, fmt.Errorf("close topic logs: %w", err))
			}
		}
		if s.log != nil {
			// A log that failed under the state machine was reported when it failed.
			if err := s.log.Close(); err != nil && (s.sm == nil || s.sm.Err() == nil || !errors.Is(err, storage.ErrFailed)) {
				errs = append(errs, fmt.Errorf("close log: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// untilStopping returns a context that ends with parent, or when the server begins stopping.
func (s *Server) untilStopping(parent context.Context) (context.Context, context.CancelFunc) {
	return untilClosed(parent, s.stopping)
}

// untilClosed returns a context that ends with parent, or when stop is closed. Its goroutine
// ends with the context: call the CancelFunc.
func untilClosed(parent context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
