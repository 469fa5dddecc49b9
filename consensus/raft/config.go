package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/types"

	"github.com/commitlog-go/commitlog/consensus"
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("consensus/raft: invalid config")

// StreamLayer is the network a Node speaks Raft over: a listener for inbound connections and a
// dialer for outbound ones. It is hashicorp/raft's StreamLayer, so a first-byte connection mux
// that shares a port with another protocol can be plugged in. NewStreamLayer adapts a listener
// and a dial function that take plain string addresses.
type StreamLayer = hraft.StreamLayer

// NewStreamLayer returns a StreamLayer that accepts connections from ln and dials with dial.
// Closing the StreamLayer closes ln. It is safe for concurrent use if ln and dial are.
func NewStreamLayer(ln net.Listener, dial func(address string, timeout time.Duration) (net.Conn, error)) StreamLayer {
	return &streamLayer{Listener: ln, dial: dial}
}

type streamLayer struct {
	net.Listener
	dial func(address string, timeout time.Duration) (net.Conn, error)
}

func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(address), timeout)
}

// TCPStreamLayer listens on addr (e.g. "127.0.0.1:0") and dials plain TCP. For tests, tools
// and single-purpose ports; a server sharing its API port passes its own mux instead.
func TCPStreamLayer(addr string) (StreamLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("consensus/raft: listen %s: %w", addr, err)
	}
	return NewStreamLayer(ln, func(address string, timeout time.Duration) (net.Conn, error) {
		return net.DialTimeout("tcp", address, timeout)
	}), nil
}

// Defaults applied to zero Config fields.
const (
	DefaultHeartbeatTimeout   = 1000 * time.Millisecond
	DefaultElectionTimeout    = 1000 * time.Millisecond
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultSnapshotInterval   = 120 * time.Second
	DefaultSnapshotThreshold  = 8192
	DefaultTrailingLogs       = 10240
	DefaultMaxAppendEntries   = 512
	DefaultRetainSnapshots    = 2
	DefaultMaxManifestSize    = 8 << 20
	DefaultTransportPool      = 3
	DefaultTransportTimeout   = 10 * time.Second
)

// MaxAppendBytes is the most bytes of commands one AppendEntries RPC (and one group commit)
// carries when Config.MaxEntryBytes is set, unless a single command is larger;
// minAppendEntries is the fewest entries per RPC it then leaves.
//
// Why 32 MiB: a follower stores and fsyncs an AppendEntries before it answers anything, and
// with hashicorp/raft's heartbeat fast path off (voteGuard.SetHeartbeatHandler) its heartbeats wait
// behind it, so the leader hears nothing from a follower while it writes one RPC. Its lease
// (500 ms) expires when no quorum answered for that long. At 256 MiB (64 commands of 4 MiB),
// followers took 1.3–4.9 s to store one RPC (150–240 MB), and a 3-node cluster on one 2-core
// VM under 48 clients writing 4 MB batches lost its leader 9 times in 90 s; at 32 MiB, RPCs
// took at most 0.41 s and the leader held.
const (
	MaxAppendBytes   = 32 << 20
	minAppendEntries = 1
)

// Config configures a Node. The zero value of every field but ID, DataDir and one of
// StreamLayer/Transport means the documented default. New validates it.
type Config struct {
	// ID is this server's stable identity in the Raft configuration. Required.
	ID string
	// DataDir holds the Raft log ("wal/") and snapshots ("snapshots/"). Required; created if
	// missing.
	DataDir string

	// StreamLayer carries Raft over the network (New builds a hashicorp/raft NetworkTransport
	// on it; the Node owns it and closes it on Close, or New does if it fails). Exactly one of StreamLayer and Transport must be set.
	StreamLayer StreamLayer
	// Transport is a ready raft.Transport, e.g. raft.InmemTransport in tests. The caller owns
	// it: the Node does not close it.
	Transport hraft.Transport
	// Address is the address other servers reach this one at. Default: the StreamLayer's
	// listener address, or Transport.LocalAddr().
	Address string

	// Bootstrap makes a node with no Raft state bootstrap a single-voter cluster of itself.
	// It is a no-op when state exists (restart), so it is safe to leave set.
	Bootstrap bool
	// BootstrapServers, with Bootstrap, is the initial configuration instead of this node
	// alone; it must include this node. Every node of a new cluster may be given the same list
	// and the same ClusterID (required when the list has more than one server).
	BootstrapServers []consensus.Server

	// ClusterID is the cluster ID a bootstrap sets (with Bootstrap, or Node.Bootstrap).
	// Default: a new random UUID. Pin it only in tests; ignored when the node already has one.
	ClusterID string
	// OnClusterID, if set, is called once the node's cluster ID is set for the first time (at
	// bootstrap, or adopted from the first cluster that adds it), from the goroutine that set
	// it; it must not block. A node that already had one when New opened it gets no call.
	OnClusterID func(id string)

	// HeartbeatTimeout: how long a follower waits without hearing from the leader before it
	// starts an election. Default 1s.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: how long a candidate waits before starting a new election. Default 1s.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: how long a leader stays leader without reaching a quorum. Must not
	// exceed HeartbeatTimeout. Default 500ms.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: the longest a follower may go without learning the commit index.
	// Default 50ms.
	CommitTimeout time.Duration

	// SnapshotInterval: how often Raft checks whether to snapshot. Default 120s.
	SnapshotInterval time.Duration
	// SnapshotThreshold: snapshot once this many entries were logged since the last one.
	// Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs: entries kept in the log after a snapshot, so a slightly lagging follower
	// catches up from the log rather than a snapshot. Default 10240.
	TrailingLogs uint64
	// MaxAppendEntries: the most entries per AppendEntries RPC and per group commit (≤ 1024).
	// Default 512, or fewer with MaxEntryBytes.
	MaxAppendEntries int
	// MaxEntryBytes, when positive, is the largest command the caller proposes. hashicorp/raft
	// bounds an AppendEntries RPC (and the entries the leader reads into memory to send it, and
	// the follower decodes) by its count of entries alone: 512 commands of 4 MiB made 2 GiB RPCs,
	// and a follower catching up on such a log peaked at 8 GB of memory; 64 of them (256 MiB)
	// took followers seconds to fsync, longer than the leader's lease. With MaxEntryBytes,
	// MaxAppendEntries defaults to MaxAppendBytes (32 MiB) / MaxEntryBytes, within [1, 512]: 8
	// for 4 MiB commands, 512 for commands of 64 KiB or less.
	MaxEntryBytes int
	// RetainSnapshots: snapshots kept on disk. Default 2.
	RetainSnapshots int
	// MaxManifestSize bounds a snapshot manifest (what Snapshot.Persist writes). Default 8 MiB.
	MaxManifestSize int

	// TransportPool and TransportTimeout tune the NetworkTransport built on StreamLayer:
	// pooled connections per peer (default 3) and I/O timeout (default 10s): the longest an RPC
	// waits without moving a byte, not its whole duration (see trackedConn).
	TransportPool    int
	TransportTimeout time.Duration

	// WALSegmentSize is the size at which raft-wal starts a new log segment. Default 64 MiB
	// (raft-wal's). Log compaction deletes whole segments only; entries compacted away but
	// still in the tail segment stay readable and may be replicated instead of a snapshot.
	WALSegmentSize int

	// WALFS and WALMeta exist for tests that simulate a power failure of Raft's own log
	// (server/fsm's power-loss tests put it on storage/vfs/crashfs). WALFS, when set, holds
	// raft-wal's segment files (under DataDir/wal) instead of the operating system's file
	// system. WALMeta, when set, wraps raft-wal's meta store: the segment list, term and vote,
	// a BoltDB file (DataDir/wal/wal-meta.db) that is always on the real disk; the Node calls
	// the wrapper's Close, which must close the store it wraps.
	WALFS   WALFS
	WALMeta func(WALMetaStore) WALMetaStore

	// AppliedIndex is the Raft index the state machine's own durable state has applied, as it
	// stands on disk when New is called (0: unknown, or nothing). A state machine applies only
	// entries that Raft's log or a snapshot held durably, so New refuses to start when the log
	// and the snapshots end below it: Raft's files were deleted, truncated or replaced, and the
	// node would otherwise start (or bootstrap a new cluster) on a log that lost its
	// configuration and entries the state machine applied. A state machine stored in several
	// logs (one per partition) passes the highest index any of them applied, those it opens
	// only once New restores a snapshot or replays the log included. Ignored with
	// UnsafeInmemLog.
	AppliedIndex uint64

	// Fenced, when not empty, starts the node fenced, for this reason (see Node.Fence): it
	// refuses every vote and pre-vote and never campaigns, from the first RPC on, until
	// Node.Unfence. For a node whose caller knows at start that it lost committed data (an
	// alarm kept on disk).
	Fenced string

	// UnsafeInmemLog keeps Raft's log and stable store in memory: nothing survives a restart
	// and nothing is fsynced. For benchmarks (the in-memory floor) and throwaway tests only.
	UnsafeInmemLog bool

	// Logger receives the Node's and hashicorp/raft's logs. Nil discards them.
	Logger *slog.Logger

	// OnFatal is called when the node cannot go on without a restart: its Raft log on disk
	// no longer matches what Raft holds in memory after a failed write (fsynced entries
	// missing when the log was reopened, or a write failing right after Raft cut the log's
	// tail). Nil: log the error, print it on stderr and exit the process with status 1, so that
	// a supervisor restarts the node (Raft then reloads its state from disk). Tests set it.
	OnFatal func(error)
}

// WALFS is the file system interface of hashicorp/raft-wal (its types.VFS).
type WALFS = types.VFS

// WALMetaStore is hashicorp/raft-wal's meta store interface (its types.MetaStore).
type WALMetaStore = types.MetaStore

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, min(DefaultLeaderLeaseTimeout, c.HeartbeatTimeout))
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.TransportTimeout, DefaultTransportTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = DefaultMaxAppendEntries
		if c.MaxEntryBytes > 0 {
			c.MaxAppendEntries = min(DefaultMaxAppendEntries, max(minAppendEntries, MaxAppendBytes/c.MaxEntryBytes))
		}
	}
	if c.RetainSnapshots == 0 {
		c.RetainSnapshots = DefaultRetainSnapshots
	}
	if c.MaxManifestSize == 0 {
		c.MaxManifestSize = DefaultMaxManifestSize
	}
	if c.TransportPool == 0 {
		c.TransportPool = DefaultTransportPool
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Address == "" {
		switch {
		case c.StreamLayer != nil:
			c.Address = c.StreamLayer.Addr().String()
		case c.Transport != nil:
			c.Address = string(c.Transport.LocalAddr())
		}
	}
	return c
}

func (c Config) bootstrapClusterID() string {
	if c.ClusterID != "" {
		return c.ClusterID
	}
	return NewClusterID()
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "":
		return bad("ID is required")
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.StreamLayer == nil && c.Transport == nil:
		return bad("one of StreamLayer and Transport is required")
	case c.StreamLayer != nil && c.Transport != nil:
		return bad("StreamLayer and Transport are mutually exclusive")
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return bad("HeartbeatTimeout %v is below 5ms", c.HeartbeatTimeout)
	case c.ElectionTimeout < 5*time.Millisecond:
		return bad("ElectionTimeout %v is below 5ms", c.ElectionTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond:
		return bad("LeaderLeaseTimeout %v is below 5ms", c.LeaderLeaseTimeout)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout %v exceeds HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.CommitTimeout < time.Millisecond:
		return bad("CommitTimeout %v is below 1ms", c.CommitTimeout)
	case c.MaxEntryBytes < 0:
		return bad("MaxEntryBytes %d is negative", c.MaxEntryBytes)
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return bad("MaxAppendEntries %d is outside [1, 1024]", c.MaxAppendEntries)
	case c.SnapshotInterval < 5*time.Millisecond:
		return bad("SnapshotInterval %v is below 5ms", c.SnapshotInterval)
	case c.RetainSnapshots < 1:
		return bad("RetainSnapshots %d is below 1", c.RetainSnapshots)
	case c.MaxManifestSize < 1:
		return bad("MaxManifestSize %d is below 1", c.MaxManifestSize)
	case c.UnsafeInmemLog && (c.WALFS != nil || c.WALMeta != nil):
		return bad("UnsafeInmemLog excludes WALFS and WALMeta")
	case c.WALSegmentSize < 0:
		return bad("WALSegmentSize %d is negative", c.WALSegmentSize)
	case c.TransportPool < 1:
		return bad("TransportPool %d is below 1", c.TransportPool)
	case c.Address == "":
		return bad("Address is required (none could be derived)")
	case len(c.ClusterID) > maxClusterIDLen:
		return bad("ClusterID is longer than %d bytes", maxClusterIDLen)
	}
	if len(c.BootstrapServers) > 0 {
		self := false
		for _, s := range c.BootstrapServers {
			if s.ID == "" || s.Address == "" {
				return bad("BootstrapServers entry %+v lacks an ID or address", s)
			}
			self = self || s.ID == c.ID
		}
		if !self {
			return bad("BootstrapServers does not include this node %q", c.ID)
		}
		if len(c.BootstrapServers) > 1 && c.ClusterID == "" {
			return bad("BootstrapServers of several servers requires ClusterID (the same on every one of them), or they would found different clusters")
		}
	}
	return nil
}

// raftConfig translates c (with defaults applied) to hashicorp/raft's Config.
func (c Config) raftConfig() *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.MaxAppendEntries = c.MaxAppendEntries
	// The leader gathers every proposal waiting on the apply channel into one group commit
	// (one log write, one fsync) either way. A buffered channel (BatchApplyCh) was measured no
	// faster here, and hashicorp/raft v1.8.0 never answers the futures still buffered in it
	// when it shuts down, which would strand their callers (TestCloseWithProposalsInFlight).
	rc.BatchApplyCh = false
	rc.NoLegacyTelemetry = true
	// A leader removed from the configuration (`cluster remove` of the leader) steps down and
	// stays a follower: shut down, as hashicorp/raft's default has it, its Raft never came
	// back while the process ran on, and the next leader, seeing it alive in gossip, added it
	// back and promoted it, a voter that could never vote or store an entry again.
	rc.ShutdownOnRemove = false
	return rc
}

// trackingLayer remembers the connections it accepted and dialed so that Close can end them:
// hashicorp/raft's NetworkTransport.Close closes only the listener, leaving connection
// handlers (and their goroutines) alive until the peer hangs up.
type trackingLayer struct {
	StreamLayer
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newTrackingLayer(s StreamLayer) *trackingLayer {
	return &trackingLayer{StreamLayer: s, conns: map[*trackedConn]struct{}{}}
}

func (l *trackingLayer) track(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingLayer) Accept() (net.Conn, error) {
	c, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return l.track(c)
}

func (l *trackingLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	return l.track(c)
}

// Close closes the listener and every tracked connection. Idempotent.
func (l *trackingLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	err := l.StreamLayer.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	return err
}

// trackedConn also turns the deadline hashicorp/raft's NetworkTransport sets on a connection
// before each RPC (SetDeadline(now + Timeout)) into a deadline for progress: every read or write
// that moves bytes moves the deadline to that many seconds from then. The transport's Timeout
// bounds the whole RPC, request and response, whatever its size: an AppendEntries of 64
// commands of 4 MiB (256 MiB, before MaxAppendBytes was 32 MiB) needs more than 25.6 MB/s to
// finish in the default 10 s, and on a slower
// link every catch-up RPC timed out and was sent again from the same entry, so that the follower
// never caught up. A peer that stops answering still fails the RPC after Timeout without bytes.
type trackedConn struct {
	net.Conn
	l    *trackingLayer
	once sync.Once
	// span is the length of the last deadline set (0: none), renewed on progress.
	span atomic.Int64
}

// progressChunk is the most bytes one Write hands the connection before renewing the deadline,
// so that a large write (a 4 MiB command, which bufio passes on unbuffered) on a slow link is
// progress, not one step that must fit in the timeout.
const progressChunk = 64 << 10

func (c *trackedConn) SetDeadline(t time.Time) error {
	span := int64(0)
	if !t.IsZero() {
		span = max(int64(time.Until(t)), 1)
	}
	c.span.Store(span)
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) renew() {
	if span := c.span.Load(); span > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(time.Duration(span)))
	}
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && err == nil {
		c.renew()
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), progressChunk)
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		c.renew()
		p = p[k:]
	}
	return n, nil
}

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
