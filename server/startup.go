package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
	"github.com/commitlog-go/commitlog/client"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/discovery"
	dserf "github.com/commitlog-go/commitlog/discovery/serf"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/internal/chaosbugs"
	"github.com/commitlog-go/commitlog/server/telemetry"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// The composition root's startup, step by step. New runs the steps in the order startupSteps
// lists them; each builds one piece from the configuration and the pieces of the steps before
// it, and stores it in the Server. Close releases whatever the Server holds, so a step that
// fails leaves nothing of the earlier steps open.

// step is one named step of New.
type step struct {
	name string
	run  func() error
}

// startupSteps are New's steps, in order.
func (s *Server) startupSteps() []step {
	return []step{
		// First: a policy or model file that does not load is refused before anything is
		// made on disk (it was refused after the data dir and Raft's log were made).
		{"authorizer", s.newAuthorizer},
		// Then the ports: one in use is refused before the data dir is made (it was refused
		// after the data dir, the commit log and Raft's state, bootstrapped, were).
		{"listen", s.listen},
		{"prepare data dir", s.prepareDataDir},
		{"mux", s.newMux},
		{"open logs", s.openLogs},
		{"telemetry", s.startTelemetry},
		{"raft", s.startRaft},
		{"forwarder", s.newForwarder},
		{"service", s.newService},
		{"api", s.startAPI},
		{"membership", s.startMembership},
		{"bootstrap", s.startBootstrap},
	}
}

// runStep runs st, unless the test hook beforeStep fails it first.
func (c *Config) runStep(st step) error {
	if c.beforeStep != nil {
		if err := c.beforeStep(st.name); err != nil {
			return err
		}
	}
	return st.run()
}

// prepareDataDir creates DataDir, or checks an existing one (datadir.go).
func (s *Server) prepareDataDir() error {
	return prepareDataDir(s.cfg.DataDir, s.cfg.Logger)
}

// listen binds the port of the API and Raft on BindAddr's host, and works out the address
// other nodes and clients reach it at.
func (s *Server) listen() error {
	host, _, _ := net.SplitHostPort(s.cfg.BindAddr)
	port := s.cfg.RPCPort
	if port < 0 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		// Named as --bind-addr's error below is: "server: listen: listen tcp …: address
		// already in use" did not say which of serve's two ports was taken.
		return fmt.Errorf("server: listen: --rpc-port %d (the API and Raft): %w", s.cfg.RPCPort, err)
	}
	s.ln = ln
	// Raft is protected when the mux has a peer TLS configuration.
	s.insecure = insecureReasons(ln.Addr().(*net.TCPAddr).IP, &s.cfg, s.cfg.PeerServerTLS != nil)
	advertise := host
	if s.cfg.AdvertiseHost != "" {
		advertise = s.cfg.AdvertiseHost
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Bound to every interface: advertise an address others can actually dial (the seed
		// advertised 0.0.0.0).
		advertise = reachableIP()
	}
	s.addr = net.JoinHostPort(advertise, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	return checkGossipPort(s.cfg.BindAddr)
}

// checkGossipPort binds BindAddr's TCP and UDP port for a moment (Serf binds both), so that a
// port in use is refused before the data dir is made. A port 0 picks a free one: nothing to
// check.
func checkGossipPort(bindAddr string) error {
	if _, port, err := net.SplitHostPort(bindAddr); err != nil || port == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return fmt.Errorf("server: gossip: --bind-addr %s: %w", bindAddr, err)
	}
	_ = ln.Close()
	pc, err := net.ListenPacket("udp", bindAddr)
	if err != nil {
		return fmt.Errorf("server: gossip: --bind-addr %s: %w", bindAddr, err)
	}
	_ = pc.Close()
	return nil
}

// advertisedAddr is the host:port this node advertises, as a net.Addr that is not resolved:
// Raft's listener reports it (the transport's local address, which Raft sends its peers), and
// peers dial it by name. A Kubernetes pod's name under its headless Service does not resolve
// until the pod's IP is published, which may be after the process starts: resolving it here
// made every pod of a new StatefulSet exit once; gossip waits for it (discovery/serf).
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// newMux splits the port between the API and Raft (by first byte; Raft over peer TLS).
func (s *Server) newMux() error {
	var err error
	s.mux, err = mux.New(s.ln, mux.Config{
		PeerServerTLS:  tlsutil.AcceptPeersOnly(s.cfg.PeerServerTLS), // the peer rule, whatever built it
		PeerClientTLS:  s.cfg.PeerClientTLS,
		PeerServerName: s.cfg.PeerServerName,
		Advertise:      advertisedAddr(s.addr),
		MaxPending:     s.cfg.MaxPendingConns,
		MaxConns:       s.cfg.MaxConns,
		APITLS:         s.cfg.ServerTLS != nil, // a non-TLS first byte waits with the handshakes
		Logger:         s.cfg.Logger.With("component", "mux"),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// openLogs opens the commit log (the default topic's partition 0, DataDir/log: the single log
// of servers before topics) and the state machine over it and every other partition
// (DataDir/topics/<topic ID>/<partition>/), all with Config.OpenLog. The Machine opens the
// topics' partitions only when Raft restores its snapshot and replays its log (startRaft).
func (s *Server) openLogs() error {
	openLog, workers := s.logOpener()
	var err error
	s.log, err = openLog(filepath.Join(s.cfg.DataDir, "log"))
	if err != nil {
		return fmt.Errorf("server: open the commit log: %w%s", err, corruptRepair(err, s.cfg.NodeName))
	}
	s.sm, err = fsm.NewMachine(fsm.MachineConfig{
		Config: fsm.Config{
			Log:    s.log,
			Logger: s.cfg.Logger.With("component", "fsm"),
			Limits: fsm.Limits{MaxRecordBytes: s.cfg.MaxRecordBytes, MaxBatchRecords: s.cfg.MaxBatchRecords},
		},
		Dir:         s.topicsDir(),
		OpenLog:     openLog,
		OpenWorkers: workers,
	})
	if err != nil {
		return fmt.Errorf("server: state machine: %w%s", err, corruptRepair(err, s.cfg.NodeName))
	}
	s.fsm = s.sm.Default()
	return nil
}

// logOpener is what opens a partition's log: Config.OpenLog or storage/segment, and how many
// partitions the Machine may open at once with it.
func (s *Server) logOpener() (openLog func(dir string) (storage.Log, error), workers int) {
	if s.cfg.OpenLog != nil {
		return s.cfg.OpenLog, 1
	}
	// storage/segment's Open is safe for concurrent use: a topic's partitions are created 16
	// at a time (their fsyncs overlap).
	return segmentOpener(&s.cfg), 16
}

// topicsDir holds the partitions of every topic but the default one's partition 0.
func (s *Server) topicsDir() string { return filepath.Join(s.cfg.DataDir, "topics") }

// corruptRepair is what an operator does about a commit log that refuses to open as corrupt
// (durable bytes damaged or missing, a segment gone): the other servers hold every
// acknowledged record, so the node is rebuilt from them. Empty for any other error.
func corruptRepair(err error, node string) string {
	if !errors.Is(err, storage.ErrCorrupt) {
		return ""
	}
	return fmt.Sprintf(" (this node cannot restart on its data dir; the other servers hold every acknowledged record: stop it, remove it from the cluster (commitlog cluster remove %s), wipe its data dir and start it to rejoin; a single server: restore its data dir from a backup)", node)
}

// segmentOpener is Config.OpenLog's default: storage/segment, configured by cfg.
func segmentOpener(cfg *Config) func(dir string) (storage.Log, error) {
	return func(dir string) (storage.Log, error) {
		syncPolicy, err := segment.ParseSyncPolicy(cfg.Sync)
		if err != nil {
			return nil, err
		}
		l, err := segment.Open(dir, segment.Config{
			Sync:         syncPolicy,
			SegmentBytes: cfg.SegmentBytes,
			// Every record the state machine may have to store, whatever --max-record-bytes
			// says: that flag decides what this node accepts as leader, never what a replica
			// stores.
			MaxRecordBytes: fsm.MaxStoredRecordBytes,
			// A time index of the records' timestamps, for offsets by time
			// (fsm.FSM.OffsetForTime).
			Timestamp: fsm.StoredTimestamp,
			// Retention is decided by the leader and applied through Raft (retentionLoop),
			// not by each node's storage on its own.
			Logger: cfg.Logger.With("component", "storage"),
			FS:     cfg.logFS,
		})
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return l, nil
	}
}

// startTelemetry starts tracing, metrics and the /metrics, /healthz and /readyz endpoint.
// partitionExists reports whether topic's partition exists (false once the topic is deleted),
// for the telemetry, which drops the series of deleted partitions.
func (s *Server) partitionExists(topic string, partition uint32) bool {
	if s.sm == nil {
		return true
	}
	_, _, err := s.sm.Partition(topic, partition)
	return !unknownTarget(err)
}

func (s *Server) startTelemetry() error {
	var err error
	s.tel, err = telemetry.New(context.Background(), telemetry.Config{
		NodeID:         s.cfg.NodeName,
		MetricsAddr:    s.cfg.MetricsAddr,
		SampleRatio:    s.cfg.TraceSampleRatio,
		SpanProcessors: s.cfg.TraceProcessors,
		Disabled:       s.cfg.DisableTelemetry,
		RPCMetrics:     s.cfg.RPCMetrics,
		Logger:         s.cfg.Logger.With("component", "telemetry"),

		MaxPartitionSeries: s.cfg.MetricsMaxPartitionSeries,
		PartitionExists:    s.partitionExists,
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// startRaft starts the Raft node (DataDir/raft) on the mux's Raft side, replicating into the
// state machine.
func (s *Server) startRaft() error {
	// What the partitions hold (the default one and every topic's stored on disk) was applied
	// from Raft's log: Raft's files ending before the highest index any of them applied were
	// damaged, and the node must not start (nor bootstrap) on them. The Machine knows the
	// default partition's applied index; it opens the others only as Raft restores its
	// snapshot and replays its log (craft.New), too late for that check: read theirs from
	// their files now, before it opens them (each holds its segments' lock while open).
	openLog, _ := s.logOpener()
	stored, err := fsm.StoredAppliedIndex(s.topicsDir(), openLog)
	if err != nil {
		return fmt.Errorf("server: state machine: %w%s", err, corruptRepair(err, s.cfg.NodeName))
	}
	// A node whose divergence alarm is kept, or that stopped on damaged data, starts fenced
	// (fence.go): it votes for nobody from its first RPC.
	if s.div, err = openDivergence(s.cfg.DataDir, s.cfg.Logger.With("component", "divergence")); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fenced, err := fenceAtStart(s.cfg.DataDir, s.div)
	if err != nil {
		return err
	}
	layer := craft.NewStreamLayer(s.mux.Raft(), s.mux.Raft().Dial)
	if s.cfg.raftLayer != nil {
		layer = s.cfg.raftLayer(layer)
	}
	rcfg := craft.Config{
		ID:          s.cfg.NodeName,
		DataDir:     filepath.Join(s.cfg.DataDir, "raft"),
		StreamLayer: layer,
		Address:     s.addr,
		Bootstrap:   s.cfg.bootstrapsAtOnce(),
		OnClusterID: s.clusterIDSet,
		Logger:      s.cfg.Logger.With("component", "raft"),
		// The state machine's tables (producers, group offsets) outgrow the default 8 MiB.
		MaxManifestSize: fsm.MaxManifestBytes,
		// Bounds one AppendEntries RPC by bytes (about craft.MaxAppendBytes), not by count alone.
		MaxEntryBytes: s.fsm.Limits().MaxCommandBytes,
		AppliedIndex:  max(s.sm.AppliedIndex(), stored),
		Fenced:        fenced,
	}
	chaosbugs.TuneRaft(&rcfg.SnapshotThreshold, &rcfg.TrailingLogs, &rcfg.SnapshotInterval, &rcfg.WALSegmentSize) // no-op unless -tags chaosbugs
	s.node, err = craft.New(rcfg, telemetry.InstrumentStateMachine(s.sm, s.tel.Metrics()))
	if err != nil {
		return fmt.Errorf("server: raft: %w", err)
	}
	node := s.node
	s.div.onRaise = func(msg string) { node.Fence(divergenceFence(msg)) }
	return nil
}

// newAuthorizer builds the authorization of API calls: Config.Authorizer, casbin from the ACL
// files, or everyone may do everything.
func (s *Server) newAuthorizer() error {
	s.acl = s.cfg.Authorizer
	if s.cfg.ACLPolicyFile != "" {
		var err error
		if s.acl, err = casbin.New(casbin.Config{ModelFile: s.cfg.ACLModelFile, PolicyFile: s.cfg.ACLPolicyFile}); err != nil {
			return fmt.Errorf("server: authorization: %w", err)
		}
	}
	if s.acl != nil {
		logGroupChecks(s.cfg.Logger, s.acl)
	}
	// Authorized when a call's headers arrive, before its request is read (Admit); the
	// interceptor then skips the check it already passed. A casbin policy names callers by
	// their certificates, so it needs one; any authorizer trusts a forwarded-for claim only
	// from a peer.
	s.apiAdmit, s.apiIntercept = admitEarly(authorizer(s.effectiveACL(), authRules{
		requireIdentity: s.cfg.ACLPolicyFile != "",
		forwardOnlyPeer: s.acl != nil,
	}, peerRule(s.peerIdentityTLS())))
	return nil
}

// peerIdentityTLS is the configuration whose CA makes an API caller a cluster peer: the peer
// TLS, or, with plaintext Raft (InsecurePlaintextPeers) next to an API with mutual TLS, the
// API's, as it would secure Raft without that flag. Raft's plaintext is no reason to stop
// telling peers on the API: without them nobody could forward a write or ask the
// cluster-internal calls under an ACL, and a cluster under one never grew past its first node.
func (s *Server) peerIdentityTLS() *tls.Config {
	if s.cfg.PeerServerTLS != nil || !s.cfg.InsecurePlaintextPeers || s.cfg.ServerTLS == nil || s.cfg.ServerTLS.ClientCAs == nil {
		return s.cfg.PeerServerTLS
	}
	peer, err := tlsutil.PeerConfigFromServer(s.cfg.ServerTLS, s.cfg.PeerServerName)
	if err != nil {
		return nil
	}
	return peer
}

// effectiveACL is the authorizer in force: s.acl, or everyone may do everything.
func (s *Server) effectiveACL() authz.Authorizer {
	if s.acl == nil {
		return authz.AllowAll{}
	}
	return s.acl
}

// newForwarder builds the client a follower forwards writes to the leader with (and asks
// peers how far they are). It sends every request this node's own bounds admit (the
// transport client's default, 4 MiB, refused larger batches and records).
func (s *Server) newForwarder() error {
	s.forward = newForwarder(peerClient(s.cfg.Transport),
		transport.ClientConfig{TLS: s.cfg.ForwardTLS, Telemetry: s.tel.Transport(), MaxMessageBytes: s.cfg.maxMessageBytes()}, s.cfg.MaxForwardClients)
	return nil
}

// peerClient returns how a server with the transport name opens clients to the other
// servers: always speaking the gRPC protocol, which both transports serve (a connect-go server
// accepts it besides Connect's own; a grpc-go server accepts nothing else), so that servers
// started with different --transport flags still forward writes and ask each other how far they
// are.
func peerClient(name string) transport.NewClientFunc {
	if name == TransportGRPC {
		return client.NewTransportClient(name)
	}
	return func(addr string, cfg transport.ClientConfig) (transport.Client, error) {
		c, err := tconnect.NewClientProtocol(addr, cfg, tconnect.ProtocolGRPC)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return c, nil
	}
}

// newService builds the API's implementation over the Raft node and the state machine, with
// the divergence alarm kept in DataDir.
func (s *Server) newService() error {
	div := s.div // opened by startRaft
	s.removed = &removedServers{}
	s.svc = &service{node: s.node, acl: s.effectiveACL(), fsm: s.fsm, sm: s.sm, forward: s.forward, cfg: &s.cfg, stop: s.stopping, div: div, admit: s.admit,
		removed: s.removed.mark,
		// One election: a follower notices the leader is gone (heartbeat timeout), then wins.
		leaderWait: craft.DefaultHeartbeatTimeout + craft.DefaultElectionTimeout,
		insecure:   s.insecureMembers,
		groups:     newCoordinator(s.node, s.sm, s.cfg.GroupSessionTimeout, s.cfg.Logger.With("component", "groups")),
		leaderLoss: watchLeaderLoss(s.node)}
	s.svc.combine = newCombiner(s.svc.combineFits, s.svc.proposeLocal)
	if err := s.tel.Metrics().ObserveDivergence(div.raised); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.tel.Metrics().ObserveGroupLag(s.svc.groupLags); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.tel.Metrics().ObserveConnections(func() telemetry.ConnStats {
		st := s.mux.Stats()
		return telemetry.ConnStats{Open: int64(st.APIOpen), Refused: st.Refused}
	}); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// startAPI builds the API server (Connect or gRPC) on the service, NOT_SERVING until a leader
// is known, and has telemetry follow the node. It serves from Run on.
func (s *Server) startAPI() error {
	newServer := func(c transport.ServerConfig) (transport.Server, error) { return tconnect.NewServer(c) }
	if s.cfg.Transport == TransportGRPC {
		newServer = func(c transport.ServerConfig) (transport.Server, error) { return tgrpc.NewServer(c) }
	}
	api := telemetry.InstrumentLog(s.svc, s.tel.Metrics())
	var err error
	s.api, err = newServer(transport.ServerConfig{
		Log:             api,
		Cluster:         api,
		Topics:          telemetry.InstrumentTopics(s.svc, s.tel.Metrics()),
		Groups:          telemetry.InstrumentGroups(s.svc, s.tel.Metrics()),
		Telemetry:       s.tel.Transport(),
		TLS:             s.cfg.ServerTLS,
		MaxMessageBytes: s.cfg.maxMessageBytes(),
		Limits:          s.cfg.transportLimits(),
		Keepalive:       transport.Keepalive{MaxIdle: s.cfg.IdleTimeout},
		Admit:           s.apiAdmit,
		Intercept:       s.apiIntercept,
		Logger:          s.cfg.Logger.With("component", "api"),
	})
	if err != nil {
		return fmt.Errorf("server: api: %w", err)
	}
	// NOT_SERVING until a leader is known; telemetry follows leader changes from now on.
	s.api.SetHealth(transport.HealthNotServing)
	var segs telemetry.SegmentStats
	if st, ok := s.log.(telemetry.SegmentStats); ok {
		segs = st
	}
	if err := s.tel.Observe(telemetry.Sources{Consensus: s.node, Segments: segs, Live: s.sm.Err, SetHealth: s.api.SetHealth,
		Certificates: s.certExpiries, LeaderCommitIndex: s.leaderCommitIndex, Diverged: s.svc.div.message,
		NotMember: s.notMember}); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

var gossipProfiles = map[string]dserf.Timing{"lan": dserf.TimingLAN, "local": dserf.TimingLocal, "test": dserf.TimingTest}

// startMembership starts the membership (Serf, or Config.Membership's), advertising this
// node's Raft and API addresses, and the reconciler that turns its events into Raft membership
// changes on the leader.
func (s *Server) startMembership() error {
	events := make(memberEvents, 1)
	tags := s.tags()
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	if id := s.node.ClusterID(); id != "" {
		tags[tagClusterID] = id
	}
	m, err := s.newMembership(tags, events)
	if err != nil {
		return fmt.Errorf("server: gossip: %w", err)
	}
	s.serf = m
	if nc, ok := m.(nameConflicter); ok {
		s.conflicts.Store(&nc)
	}
	s.recon = newReconciler(reconcilerConfig{
		self:            s.cfg.NodeName,
		addr:            s.addr,
		admit:           s.admit,
		proves:          s.cfg.PeerClientTLS != nil,
		node:            s.node,
		cluster:         s.node.ClusterID,
		members:         m,
		events:          events,
		removed:         s.removed,
		bounds:          s.forward.appliedIndexOf,
		announceRemoved: s.announceRemoved,
		unheard:         s.svc.leaderLoss.unheardFor,
		unheardAfter:    leaderUnheardAfter,
		askLeader: func(ctx context.Context) (bool, bool) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return s.leaderListing(ctx)
		},
		interval: s.cfg.ReconcileInterval,
		logger:   s.cfg.Logger.With("component", "membership"),
	})
	s.recon.start()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.syncClusterTag() }()
	return nil
}

// leaderUnheardAfter is how long a node that knew a leader hears from none before it asks the
// leader whether it was removed (see reconciler.watchSelf): several election timeouts, so that
// an ordinary election or hand-over does not make it ask.
const leaderUnheardAfter = 3 * (craft.DefaultHeartbeatTimeout + craft.DefaultElectionTimeout)

// announceRemoved advertises this node's Raft address in gossip, or (removed) withdraws it: a
// member without one is no server to add (see reconciler.watchSelf).
func (s *Server) announceRemoved(ctx context.Context, removed bool) error {
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	next := maps.Clone(s.serf.LocalMember().Tags)
	if removed {
		delete(next, tagRaftAddr)
	} else {
		next[tagRaftAddr] = s.addr
	}
	return s.serf.SetTags(ctx, next)
}

// acceptMember refuses, at the gossip level, a member of another cluster: one whose
// cluster_id tag is set and differs from this node's (when it has one). Without it, a server of
// another cluster given this one's gossip address (--start-join-addrs) merged the two gossip
// pools for good: each leader ignored the other's servers, but both leaders then saw every
// new server that joined either cluster with an empty data dir and both added it, so that it
// could end up in the cluster it was not meant for, and always stayed a stale unreachable
// non-voter in the other's configuration. A member with no cluster ID (a new or wiped server)
// is accepted, and so is every member while this node has none.
func (s *Server) acceptMember(m discovery.Member) error {
	theirs := m.Tags[tagClusterID]
	if theirs == "" || s.node == nil {
		return nil
	}
	if ours := s.node.ClusterID(); ours != "" && theirs != ours {
		return fmt.Errorf("%w: member %q is a server of cluster %s, this node's cluster is %s",
			errOtherCluster, m.Name, theirs, ours)
	}
	return nil
}

// errOtherCluster refuses a gossip member of another cluster (acceptMember).
var errOtherCluster = errors.New("a gossip member of another cluster")

// newMembership starts Config.Membership, or Serf, advertising tags and reporting to handler.
func (s *Server) newMembership(tags map[string]string, handler discovery.Handler) (discovery.Membership, error) {
	if s.cfg.Membership != nil {
		return s.cfg.Membership(MembershipConfig{
			NodeName: s.cfg.NodeName,
			Tags:     tags,
			Handler:  handler,
			Logger:   s.cfg.Logger.With("component", "membership"),
		})
	}
	advertise := ""
	if host := cmp.Or(s.cfg.GossipAdvertiseHost, s.cfg.AdvertiseHost); host != "" {
		_, port, _ := net.SplitHostPort(s.cfg.BindAddr)
		advertise = net.JoinHostPort(host, port)
	}
	m, err := dserf.NewContext(s.startCtx, dserf.Config{
		NodeName:       s.cfg.NodeName,
		BindAddr:       s.cfg.BindAddr,
		AdvertiseAddr:  advertise,
		Tags:           tags,
		StartJoinAddrs: s.cfg.StartJoinAddrs,
		EncryptKey:     s.cfg.GossipKey,
		Handler:        handler,
		Logger:         s.cfg.Logger.With("component", "gossip"),
		Timing:         gossipProfiles[s.cfg.GossipProfile],
		Accept:         s.acceptMember,
	})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return m, nil
}
