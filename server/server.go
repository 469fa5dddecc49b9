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
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/discovery"
	dserf "github.com/commitlog-go/commitlog/discovery/serf"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/internal/chaosbugs"
	"github.com/commitlog-go/commitlog/server/telemetry"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
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

	ln      net.Listener
	mux     *mux.Mux
	log     storage.Log
	fsm     *fsm.FSM // the default topic's partition 0 (sm.Default())
	sm      *fsm.Machine
	node    *craft.Node
	api     transport.Server
	svc     *service
	forward *forwarder
	serf    discovery.Membership // Serf, or Config.Membership's
	recon   *reconciler
	acl     authz.Authorizer // casbin, Config.Authorizer or nil (everyone may do everything)

	// insecure lists what this node leaves unprotected on a non-loopback address (none: safe).
	insecure []string

	tel *telemetry.Telemetry

	tagMu      sync.Mutex    // serializes changes of this node's Serf tags
	clusterTag chan struct{} // kicks syncClusterTag: the cluster ID was set

	stopping  chan struct{}
	closeOnce sync.Once
	closeErr  error
	bg        sync.WaitGroup
}

// New opens the node's data, binds its port and starts Raft; it serves nothing until Run.
// On error everything it opened is closed again.
func New(cfg Config) (s *Server, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("server: config: %w", err)
	}
	if cfg.InsecurePlaintextPeers {
		cfg.Logger.Warn(insecurePeersWarning)
	}
	s = &Server{cfg: cfg, stopping: make(chan struct{}), clusterTag: make(chan struct{}, 1)}
	built := s // the returns below set s to nil before this runs
	defer func() {
		if err != nil {
			_ = built.Close()
		}
	}()
	if err := prepareDataDir(cfg.DataDir, cfg.Logger); err != nil {
		return nil, err
	}

	host, _, _ := net.SplitHostPort(cfg.BindAddr)
	port := cfg.RPCPort
	if port < 0 {
		port = 0
	}
	s.ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("server: listen: %w", err)
	}
	// Raft is protected when the mux has a peer TLS configuration.
	s.insecure = insecureReasons(s.ln.Addr().(*net.TCPAddr).IP, &s.cfg, cfg.PeerServerTLS != nil)
	advertise := host
	if cfg.AdvertiseHost != "" {
		advertise = cfg.AdvertiseHost
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Bound to every interface: advertise an address others can actually dial (the seed
		// advertised 0.0.0.0).
		advertise = reachableIP()
	}
	s.addr = net.JoinHostPort(advertise, strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port))

	advertiseAddr, err := net.ResolveTCPAddr("tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("server: advertised address %s: %w", s.addr, err)
	}
	s.mux, err = mux.New(s.ln, mux.Config{
		PeerServerTLS:  cfg.PeerServerTLS,
		PeerClientTLS:  cfg.PeerClientTLS,
		PeerServerName: cfg.PeerServerName,
		Advertise:      advertiseAddr,
		MaxPending:     cfg.MaxPendingConns,
		Logger:         cfg.Logger.With("component", "mux"),
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}

	openLog := cfg.OpenLog
	if openLog == nil {
		openLog = s.openSegments
	}
	// log/ is the default topic's partition 0: the single log of servers before topics.
	s.log, err = openLog(filepath.Join(cfg.DataDir, "log"))
	if err != nil {
		return nil, fmt.Errorf("server: open the commit log: %w", err)
	}
	s.sm, err = fsm.NewMachine(fsm.MachineConfig{
		Config: fsm.Config{
			Log:    s.log,
			Logger: cfg.Logger.With("component", "fsm"),
			Limits: fsm.Limits{MaxRecordBytes: cfg.MaxRecordBytes, MaxBatchRecords: cfg.MaxBatchRecords},
		},
		// topics/<topic ID>/<partition>/: every other partition's segments.
		Dir:     filepath.Join(cfg.DataDir, "topics"),
		OpenLog: openLog,
	})
	if err != nil {
		return nil, fmt.Errorf("server: state machine: %w", err)
	}
	s.fsm = s.sm.Default()
	s.tel, err = telemetry.New(context.Background(), telemetry.Config{
		NodeID:         cfg.NodeName,
		MetricsAddr:    cfg.MetricsAddr,
		SampleRatio:    cfg.TraceSampleRatio,
		SpanProcessors: cfg.TraceProcessors,
		Disabled:       cfg.DisableTelemetry,
		RPCMetrics:     cfg.RPCMetrics,
		Logger:         cfg.Logger.With("component", "telemetry"),

		MaxPartitionSeries: cfg.MetricsMaxPartitionSeries,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	rcfg := craft.Config{
		ID:          cfg.NodeName,
		DataDir:     filepath.Join(cfg.DataDir, "raft"),
		StreamLayer: craft.NewStreamLayer(s.mux.Raft(), s.mux.Raft().Dial),
		Address:     s.addr,
		Bootstrap:   cfg.bootstrapsAtOnce(),
		OnClusterID: s.clusterIDSet,
		Logger:      cfg.Logger.With("component", "raft"),
	}
	chaosbugs.TuneRaft(&rcfg.SnapshotThreshold, &rcfg.TrailingLogs, &rcfg.SnapshotInterval, &rcfg.WALSegmentSize) // no-op unless -tags chaosbugs
	s.node, err = craft.New(rcfg, telemetry.InstrumentStateMachine(s.sm, s.tel.Metrics()))
	if err != nil {
		return nil, fmt.Errorf("server: raft: %w", err)
	}

	s.acl = cfg.Authorizer
	if cfg.ACLPolicyFile != "" {
		if s.acl, err = casbin.New(casbin.Config{ModelFile: cfg.ACLModelFile, PolicyFile: cfg.ACLPolicyFile}); err != nil {
			return nil, fmt.Errorf("server: authorization: %w", err)
		}
	}
	az := s.acl
	if az == nil {
		az = authz.AllowAll{}
	}
	// Authorized when a call's headers arrive, before its request is read (Admit); the
	// interceptor then skips the check it already passed. A casbin policy names callers by
	// their certificates, so it needs one; any authorizer trusts a forwarded-for claim only
	// from a peer.
	admit, intercept := admitEarly(authorizer(az, authRules{
		requireIdentity: cfg.ACLPolicyFile != "",
		forwardOnlyPeer: s.acl != nil,
	}, peerRule(cfg.PeerServerTLS)))

	newServer := func(c transport.ServerConfig) (transport.Server, error) { return tconnect.NewServer(c) }
	if cfg.Transport == TransportGRPC {
		newServer = func(c transport.ServerConfig) (transport.Server, error) { return tgrpc.NewServer(c) }
	}
	s.forward = newForwarder(client.NewTransportClient(cfg.Transport), transport.ClientConfig{TLS: cfg.ForwardTLS, Telemetry: s.tel.Transport()}, cfg.MaxForwardClients)
	div, err := openDivergence(cfg.DataDir, cfg.Logger.With("component", "divergence"))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.svc = &service{node: s.node, acl: az, fsm: s.fsm, sm: s.sm, forward: s.forward, cfg: &s.cfg, stop: s.stopping, size: s.logSize, div: div, admit: s.admit,
		// One election: a follower notices the leader is gone (heartbeat timeout), then wins.
		leaderWait: craft.DefaultHeartbeatTimeout + craft.DefaultElectionTimeout,
		insecure:   s.insecureMembers}
	if err := s.tel.Metrics().ObserveDivergence(div.raised); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	api := telemetry.InstrumentLog(s.svc, s.tel.Metrics())
	s.api, err = newServer(transport.ServerConfig{
		Log:             api,
		Cluster:         api,
		Topics:          s.svc,
		Telemetry:       s.tel.Transport(),
		TLS:             cfg.ServerTLS,
		MaxMessageBytes: cfg.maxMessageBytes(),
		Limits:          cfg.transportLimits(),
		Keepalive:       transport.Keepalive{MaxIdle: cfg.IdleTimeout},
		Admit:           admit,
		Intercept:       intercept,
		Logger:          cfg.Logger.With("component", "api"),
	})
	if err != nil {
		return nil, fmt.Errorf("server: api: %w", err)
	}
	// NOT_SERVING until a leader is known; telemetry follows leader changes from now on.
	s.api.SetHealth(transport.HealthNotServing)
	var segs telemetry.SegmentStats
	if st, ok := s.log.(telemetry.SegmentStats); ok {
		segs = st
	}
	if err := s.tel.Observe(telemetry.Sources{Consensus: s.node, Segments: segs, Live: s.sm.Err, SetHealth: s.api.SetHealth,
		Certificates: s.certExpiries}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.startMembership(); err != nil {
		return nil, err
	}
	if err := s.startBootstrap(); err != nil {
		return nil, err
	}
	s.warnIfInsecure()
	s.checkCertExpiry(time.Now())
	return s, nil
}

// openSegments opens the default commit log: storage/segment in dir.
func (s *Server) openSegments(dir string) (storage.Log, error) {
	syncPolicy, err := segment.ParseSyncPolicy(s.cfg.Sync)
	if err != nil {
		return nil, err
	}
	l, err := segment.Open(dir, segment.Config{
		Sync:         syncPolicy,
		SegmentBytes: s.cfg.SegmentBytes,
		// Every record the state machine may have to store, whatever --max-record-bytes says:
		// that flag decides what this node accepts as leader, never what a replica stores.
		MaxRecordBytes: fsm.MaxStoredRecordBytes,
		// Retention is decided by the leader and applied through Raft (retentionLoop), not by
		// each node's storage on its own.
		Logger: s.cfg.Logger.With("component", "storage"),
		FS:     s.cfg.logFS,
	})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return l, nil
}

// logSize returns the commit log's size on disk, when its implementation tells (0 otherwise).
func (s *Server) logSize() int64 {
	if l, ok := s.log.(interface{ Size() int64 }); ok {
		return l.Size()
	}
	return 0
}

var gossipProfiles = map[string]dserf.Timing{"lan": dserf.TimingLAN, "local": dserf.TimingLocal, "test": dserf.TimingTest}

// startMembership starts Serf, advertising this node's Raft and API addresses, and the
// reconciler that turns Serf's events into Raft membership changes on the leader.
func (s *Server) startMembership() error {
	s.recon = &reconciler{
		self:     s.cfg.NodeName,
		admit:    s.admit,
		proves:   s.cfg.PeerClientTLS != nil,
		node:     s.node,
		cluster:  s.node.ClusterID,
		bounds:   s.forward.appliedIndexOf,
		interval: s.cfg.ReconcileInterval,
		logger:   s.cfg.Logger.With("component", "membership"),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	advertise := ""
	if s.cfg.AdvertiseHost != "" {
		_, port, _ := net.SplitHostPort(s.cfg.BindAddr)
		advertise = net.JoinHostPort(s.cfg.AdvertiseHost, port)
	}
	tags := s.tags()
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	if id := s.node.ClusterID(); id != "" {
		tags[tagClusterID] = id
	}
	var m discovery.Membership
	var err error
	if s.cfg.Membership != nil {
		m, err = s.cfg.Membership(MembershipConfig{
			NodeName: s.cfg.NodeName,
			Tags:     tags,
			Handler:  s.recon,
			Logger:   s.cfg.Logger.With("component", "membership"),
		})
	} else {
		m, err = dserf.New(dserf.Config{
			NodeName:       s.cfg.NodeName,
			BindAddr:       s.cfg.BindAddr,
			AdvertiseAddr:  advertise,
			Tags:           tags,
			StartJoinAddrs: s.cfg.StartJoinAddrs,
			EncryptKey:     s.cfg.GossipKey,
			Handler:        s.recon,
			Logger:         s.cfg.Logger.With("component", "gossip"),
			Timing:         gossipProfiles[s.cfg.GossipProfile],
		})
	}
	if err != nil {
		return fmt.Errorf("server: gossip: %w", err)
	}
	s.serf = m
	s.recon.members = m
	s.svc.removed = s.recon.forget
	s.recon.start()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.syncClusterTag() }()
	return nil
}

// admit checks that the server at raftAddr proves it is id before it enters Raft's
// configuration (see admit).
func (s *Server) admit(ctx context.Context, id, raftAddr string) error {
	return admit(ctx, s.cfg.PeerClientTLS, id, raftAddr)
}

// tags are the Serf tags this node advertises.
func (s *Server) tags() map[string]string {
	tags := map[string]string{tagRaftAddr: s.addr, tagRPCAddr: s.addr}
	if len(s.insecure) > 0 {
		tags[tagInsecure] = "true"
	}
	return tags
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
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RetentionInterval)
	defer cancel()
	got, err := s.sm.ProposeRetention(ctx, s.node, p.Target, first)
	if err != nil {
		log.Warn("retention: proposing the new log start failed", "first", first, "err", err)
		return
	}
	log.Info("retention: log start moved", "from", lowest, "to", got)
}

// watchApply reacts, once, to the state machine stopping (it could not store a committed
// entry; the FSM has logged why): this node keeps answering reads below the failure point and
// status calls, so that `cluster status` shows the failure, but a leader hands leadership
// over, since every write it committed would fail on it.
func (s *Server) watchApply() {
	select {
	case <-s.stopping:
		return
	case <-s.sm.Failed():
	}
	s.cfg.Logger.Error("this node stopped applying committed entries; it needs an operator (fix the cause, restart it)", "err", s.sm.Err())
	if !s.node.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.node.TransferLeadership(ctx, ""); err != nil {
		s.cfg.Logger.Warn("leadership transfer after the state machine stopped failed", "err", err)
	}
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
// the other members are asked, and only the leader's own answer counts.
func (s *Server) removedFromCluster() bool {
	if s.serf == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, m := range s.serf.Members() {
		addr := m.Tags[tagRPCAddr]
		if m.Name == s.cfg.NodeName || m.Status != discovery.StatusAlive || addr == "" {
			continue
		}
		c, release, err := s.forward.client(addr)
		if err != nil {
			continue
		}
		res, err := c.GetServers(ctx, &logv1.GetServersRequest{})
		release()
		if err != nil {
			continue
		}
		answeredByLeader, listed := false, false
		for _, srv := range res.GetServers() {
			answeredByLeader = answeredByLeader || (srv.GetId() == m.Name && srv.GetIsLeader())
			listed = listed || srv.GetId() == s.cfg.NodeName
		}
		if answeredByLeader {
			return !listed
		}
	}
	return false
}

// Close stops everything at once and releases the node's data. It is idempotent; Run calls it.
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
		if s.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := s.api.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("stop api: %w", err))
			}
			cancel()
		}
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
		s.bg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
