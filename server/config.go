package server

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/commitlog-go/commitlog/authz"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/transport"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// Transport names accepted by Config.Transport.
const (
	TransportConnect = "connect"
	TransportGRPC    = "grpc"
)

// Defaults for the zero values of Config.
const (
	DefaultBindAddr       = "127.0.0.1:8401"
	DefaultRPCPort        = 8400
	DefaultMaxRecordBytes = 1 << 20
	DefaultMaxConsumeWait = time.Second
	DefaultSegmentBytes   = 64 << 20
	// DefaultRetentionInterval is how often retention runs.
	DefaultRetentionInterval = time.Minute
	// DefaultBootstrapWait is `commitlog serve`'s --bootstrap-wait (Config.BootstrapWait's zero
	// value means no wait).
	DefaultBootstrapWait = 15 * time.Second

	// DefaultMaxSmallRequestBytes bounds requests that carry no record.
	DefaultMaxSmallRequestBytes = transport.DefaultMaxSmallMessageBytes
	// DefaultMaxBatchRecords bounds the records of one ProduceBatch.
	DefaultMaxBatchRecords = transport.DefaultMaxBatchRecords
	// DefaultMaxConcurrentStreams bounds the calls in flight on one connection.
	DefaultMaxConcurrentStreams = transport.DefaultMaxConcurrentStreams
	// DefaultReadHeaderTimeout bounds a new connection's TLS handshake and request headers.
	DefaultReadHeaderTimeout = transport.DefaultReadHeaderTimeout
	// DefaultRequestReadTimeout bounds the arrival of a unary request's body.
	DefaultRequestReadTimeout = transport.DefaultRequestReadTimeout
	// DefaultIdleTimeout closes connections that carried no call for this long.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxStreamInflightBytes bounds what one ProduceStream holds unanswered.
	DefaultMaxStreamInflightBytes = 8 << 20
	// DefaultMaxPendingConns bounds the connections whose first byte is awaited, unless a
	// quarter of the open-files limit, or MaxConns, is less (see Config.MaxPendingConns).
	DefaultMaxPendingConns = mux.DefaultMaxPending
	// DefaultMaxConns bounds the API connections open at once (NATS's max_connections),
	// unless half the open-files limit is less (see Config.MaxConns).
	DefaultMaxConns = 64 << 10
	// DefaultMaxForwardClients bounds the forwarder's cached clients.
	DefaultMaxForwardClients = 16
)

// Config configures a Server. The zero value of every field means the documented default; New
// validates it.
type Config struct {
	// DataDir holds the node's data: log/ (the commit log's segments) and raft/ (Raft's log,
	// stable store and snapshots). Default: DefaultDataDir ("data" in the working directory).
	// It is created with mode 0700 and must not be writable by group or others nor belong to
	// another user; what the node writes there is 0600.
	DataDir string
	// NodeName is this node's unique id in the cluster. Default: the host name.
	NodeName string
	// BindAddr is the Serf gossip address (host:port). Default 127.0.0.1:8401. Its host is also
	// the host the API and Raft listen on (with Membership set, only the host is used).
	BindAddr string
	// RPCPort is the port of the API and of Raft, which share it. Default 8400; -1 picks a free
	// port (for tests).
	RPCPort int
	// AdvertiseHost, when set, is the host other nodes and clients are told to reach this node
	// at, instead of BindAddr's host (which may be 0.0.0.0).
	AdvertiseHost string
	// GossipAdvertiseHost, when set, is the host Serf advertises for this node's gossip
	// instead of AdvertiseHost (which Raft and the API keep): gossip needs an IP address, which
	// a host name is resolved to once, at start. A Kubernetes pod's DNS name may then still
	// resolve to the IP its previous incarnation had (DNS caches keep it for a few seconds), and
	// the node would gossip, for its whole life, at an address where nobody listens; the Helm
	// chart gives the pod's own IP here (status.podIP).
	GossipAdvertiseHost string
	// StartJoinAddrs are the Serf addresses of existing members to join.
	StartJoinAddrs []string
	// Bootstrap makes this node bootstrap a new cluster with itself as the only voter when it
	// has no Raft state yet. A node with neither StartJoinAddrs nor BootstrapExpect bootstraps
	// whatever this says, so that `commitlog serve` with no flags runs a working single-node
	// server. See BootstrapWait for what a node without Raft state checks first.
	Bootstrap bool
	// BootstrapExpect, when positive, makes a node without Raft state wait until this many
	// servers (itself included) are alive in gossip, none of them already in a cluster; then
	// the one with the lowest NodeName bootstraps them all as voters and the others are
	// brought in by Raft. A node that sees a server already in a cluster never bootstraps: it
	// waits to be added. Mutually exclusive with Bootstrap.
	BootstrapExpect int
	// BootstrapWait is how long a node that would bootstrap alone (Bootstrap, or no
	// StartJoinAddrs) but has no Raft state first waits for an existing cluster: a gossip
	// member that carries a cluster ID, or a leader that still has this node in its
	// configuration and contacts it over Raft. Either way it joins that cluster instead of
	// founding a second one (its data dir was lost). Zero or negative: bootstrap at once (the
	// library default, for tests and embedding; `commitlog serve` defaults to 15s).
	BootstrapWait time.Duration
	// Transport is the API transport: "connect" (default; Connect, gRPC and gRPC-Web, JSON) or
	// "grpc" (grpc-go).
	Transport string

	// ServerTLS, when set, serves the API over TLS (with client certificates required when its
	// ClientCAs is set). PeerServerTLS and PeerClientTLS, when set (both or neither), secure Raft
	// traffic with mutual TLS: PeerServerTLS for accepted peer connections (its ClientCAs is the
	// peer CA), PeerClientTLS for dialed ones (tlsutil.PeerConfig builds one for both).
	//
	// Secure by construction: when ServerTLS requires client certificates and no peer
	// configuration is given, the API's certificate, key and client CA serve as the peer
	// credentials (tlsutil.PeerConfigFromServer). The peer certificate must name this node
	// (tlsutil.NodeDNSName(NodeName) among its DNS names) and be one that peers trusting
	// PeerServerTLS's ClientCAs accept (tlsutil.VerifyOwnPeer: a certificate of another CA would
	// be refused by every peer): New refuses it otherwise. A secured
	// API (ServerTLS or an ACL policy) with plaintext Raft is refused unless
	// InsecurePlaintextPeers is set.
	ServerTLS     *tls.Config
	PeerServerTLS *tls.Config
	PeerClientTLS *tls.Config
	// InsecurePlaintextPeers accepts plaintext Raft next to a secured API: anyone who reaches
	// the port can then depose the leader and append records past the ACL, and new members are
	// admitted without proof of identity. New logs a warning at every start. On the API, with
	// mutual TLS, peers are still the callers with a certificate from the API's client CA
	// that names a node.
	InsecurePlaintextPeers bool
	// PeerServerName is the name peers' certificates are verified against when dialing them
	// (default: the host of the address dialed).
	PeerServerName string
	// TLSCredentials are the reloadable credentials the TLS configurations above were built
	// from (see tlsutil.Source), by role: "server" (--server-tls-*) and "peer" (--peer-tls-*).
	// Reload (SIGHUP) reloads them, the metric commitlog_tls_cert_expiry_seconds reports when
	// each certificate expires, and a warning is logged while one expires within
	// CertExpiryWarning. Optional: configurations built otherwise simply do not reload.
	TLSCredentials map[string]*tlsutil.Source
	// ForwardTLS is the client TLS configuration a follower uses to forward writes to the
	// leader's API (nil: plaintext).
	ForwardTLS *tls.Config
	// ACLModelFile and ACLPolicyFile configure casbin authorization (the seed's model.conf and
	// policy.csv work unchanged). With no policy file every caller may do everything, which is
	// only meant for plaintext use on loopback.
	ACLModelFile  string
	ACLPolicyFile string

	// GossipKey is the base64 AES key (16, 24 or 32 bytes) that encrypts Serf gossip; every
	// member must use the same one (`commitlog tls gossip-key` makes one). Empty: plaintext,
	// which is refused when TLS is configured (ServerTLS or peer TLS).
	GossipKey string
	// GossipProfile selects Serf's timings: "lan" (default), "local" (one host or a fast
	// network: faster failure detection) or "test".
	GossipProfile string
	// The three fields below assemble the server from other implementations of the modules'
	// contracts; each nil field keeps the default. See "Assembling a server" in the README.

	// OpenLog opens the commit log's storage in dir (DataDir/log, created by OpenLog if it needs it).
	// Default: storage/segment, configured by Sync and SegmentBytes, which apply to it only.
	// The log must store every record the state machine applies, up to
	// fsm.MaxStoredRecordBytes, whatever MaxRecordBytes says. The server closes it. A log that
	// also has `Segments() int` and `Size() int64` methods reports them as metrics and in
	// cluster status. A log that forgets its records on restart (storage/memory) suits a node
	// whose Raft state is thrown away with it.
	OpenLog func(dir string) (storage.Log, error)
	// Membership starts the membership that tells this node which servers exist (MembershipConfig
	// says what it must advertise and to whom it reports). Default: discovery/serf, configured
	// by BindAddr, StartJoinAddrs, GossipKey and GossipProfile, which apply to it only.
	// discovery/static fits a fixed set of servers: give it the peers as PeerMember builds them.
	// The server closes it.
	Membership func(MembershipConfig) (discovery.Membership, error)
	// Authorizer decides every API call (authz.Authorizer: the subject is the caller's verified
	// client-certificate name, "" for a caller without one). Default: casbin from
	// ACLModelFile/ACLPolicyFile when a policy file is given, else everyone may do everything.
	// It and ACLPolicyFile are mutually exclusive. Like an ACL policy it secures the API, so
	// Raft must be secured too (peer TLS) or InsecurePlaintextPeers set; only a cluster peer
	// may forward a write on a client's behalf. Reload (SIGHUP) calls its `Reload() error`
	// method when it has one.
	Authorizer authz.Authorizer

	// LeaveOnShutdown makes a graceful stop leave the cluster: the node leaves Serf and the
	// leader removes it from Raft. Off by default, as for Consul servers, so that restarting a
	// node never shrinks the quorum.
	LeaveOnShutdown bool
	// ReconcileInterval is how often the leader reconciles Raft with Serf without an event
	// (default DefaultReconcileInterval).
	ReconcileInterval time.Duration

	// Sync is the commit log's fsync policy: "never" (the default, safe: Raft's own log is
	// fsynced before every acknowledgement and replays what a crash loses), "interval", "always".
	Sync string
	// SegmentBytes is the size at which commit-log segments roll (default 64 MiB).
	SegmentBytes int64
	// MaxRecordBytes bounds one record (default 1 MiB, at most fsm.MaxRecordValueBytes) and MaxRequestBytes one request
	// (default 4 MiB + framing). It is checked by the leader before it proposes (a follower
	// forwards a larger record rather than refusing it); a replica stores every committed
	// record, whatever its own MaxRecordBytes.
	MaxRecordBytes int
	// MaxRequestBytes bounds one ProduceBatch request, the largest message the API reads
	// (default: 4 MiB, or MaxRecordBytes + 64 KiB if more). Produce and each ProduceStream
	// message are bounded by MaxRecordBytes + 64 KiB, every other request by
	// MaxSmallRequestBytes (default 16 KiB): health and reflection included. Each bound is
	// enforced before the request is decoded (connect-go: before it is read, and on its
	// decompressed size).
	MaxRequestBytes      int
	MaxSmallRequestBytes int
	// MaxBatchRecords bounds the records of one ProduceBatch, counted before decoding, and of
	// one command (default 10000).
	MaxBatchRecords int
	// MaxStreamInflightBytes bounds the bytes of the requests one ProduceStream has received
	// and not yet answered; beyond it the server stops reading the stream (default 8 MiB,
	// never less than one record).
	MaxStreamInflightBytes int
	// MaxConcurrentStreams bounds the calls in flight on one HTTP/2 connection (default 256).
	MaxConcurrentStreams int
	// ReadHeaderTimeout bounds a new connection's TLS handshake and each request's headers
	// (default 10 s); RequestReadTimeout the arrival of a unary request's body on the Connect
	// transport (default 30 s; streams are exempt); IdleTimeout closes connections that
	// carried no call for that long (default 10 min; a stream open is not idle).
	ReadHeaderTimeout  time.Duration
	RequestReadTimeout time.Duration
	IdleTimeout        time.Duration
	// MaxPendingConns bounds the connections the shared port holds while waiting for their
	// first byte, or an API connection over TLS for the end of its handshake; beyond it the
	// oldest is closed. Default (0): DefaultMaxPendingConns, at most a quarter of the soft
	// open-files limit and at most MaxConns, so that waiting connections and MaxConns together
	// leave a quarter of the open files to segments, Raft and gossip.
	MaxPendingConns int
	// MaxConns bounds the API connections open at once on the shared port; one more closes the
	// oldest still in its TLS handshake, or, with none, is closed as soon as it is sorted to
	// the API (and logged). Raft's connections are not counted,
	// so clients filling it cannot lock peers out. Default (0): DefaultMaxConns, at most half
	// the soft open-files limit (RLIMIT_NOFILE), so that connections leave the other half to
	// segment files, Raft's log and snapshots, waiting connections and gossip.
	MaxConns int
	// MaxForwardClients bounds the API clients a follower keeps to forward writes and query
	// peers (default 16); the least recently used is closed.
	MaxForwardClients int
	// MaxConsumeWait bounds every wait of Consume, whatever the client's deadline (default
	// 1 s): a long poll asked with max_wait_ms, and a replica catching up to the commit point it
	// learned from the leader. A past-end Consume without max_wait_ms answers OutOfRange at once.
	MaxConsumeWait time.Duration
	// RetentionBytes and RetentionAge, when positive, bound the log: the leader keeps at most
	// RetentionBytes of stored records and none older than RetentionAge (by the time the
	// leader appended them, stored in each record), always at least the last record. It
	// decides the new first offset and replicates it through Raft: every node serves the same
	// [first, next) and drops its whole segments below first. The leader's settings decide.
	RetentionBytes int64
	RetentionAge   time.Duration
	// RetentionInterval is how often retention runs (default 1 minute).
	RetentionInterval time.Duration
	// GroupSessionTimeout is how long a consumer group member may go without a heartbeat
	// before the coordinator removes it and its partitions move (default
	// DefaultGroupSessionTimeout). GroupOffsetsRetention is how long the committed offsets of
	// a group without members are kept after its last commit (default
	// DefaultGroupOffsetsRetention); the leader decides, through Raft. See GROUPS.md.
	GroupSessionTimeout   time.Duration
	GroupOffsetsRetention time.Duration
	// DivergenceCheckInterval is how often the leader compares the chained checksum of its log
	// with every follower's (see divergence.go); default DefaultDivergenceCheckInterval,
	// negative: never.
	DivergenceCheckInterval time.Duration

	// logFS is the commit log's file system (nil: the OS's); tests inject faults with it.
	logFS vfs.FS
	// raftLayer, when set, wraps the stream layer Raft runs on (tests cut a node's Raft off
	// with it).
	raftLayer func(craft.StreamLayer) craft.StreamLayer
	// beforeStep, when set, is called before each step of New with the step's name; an error
	// fails New there, as if the step had (tests check what a failed startup leaves open).
	beforeStep func(step string) error
	// keepStoppedLeadership, when set, keeps a leader whose state machine stopped from handing
	// leadership over (watchApply), as when every other node stopped too or the transfers
	// fail: tests see what such a leader answers.
	keepStoppedLeadership bool

	// MetricsAddr is the host:port of the telemetry endpoint: /metrics (Prometheus), /healthz
	// and /readyz; port 0 picks a free one (see Server.MetricsAddr). "" or "off": none.
	MetricsAddr string
	// TraceSampleRatio is the fraction of new traces sampled, in [0, 1] (calls that arrive
	// with a sampled trace are always followed). Zero: 0.1; negative: none. Spans are
	// exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.
	TraceSampleRatio float64
	// TraceProcessors also receive every sampled span (tests record them in memory).
	TraceProcessors []sdktrace.SpanProcessor
	// RPCMetrics adds the transports' semantic-convention RPC metrics (rpc.server.call.duration
	// and the like) to our own; they repeat commitlog_request_duration_seconds at a CPU cost.
	RPCMetrics bool
	// MetricsMaxPartitionSeries bounds the partitions whose records are counted under their
	// own topic and partition labels (commitlog_partition_*): the first ones this node serves;
	// later ones count as topic="other", partition="other". Zero: 100; negative: none. It
	// bounds commitlog_group_lag's (group, topic, partition) series the same way.
	MetricsMaxPartitionSeries int
	// DisableTelemetry turns tracing and metrics off (health and readiness still answer):
	// for measuring what they cost.
	DisableTelemetry bool

	// Logger receives the node's structured logs (nil: discard).
	Logger *slog.Logger
}

// withDefaults sets every zero field of c to its default (a NodeName stays empty when the host
// name cannot be read: validate reports it).
func (c *Config) withDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.RPCPort == 0 {
		c.RPCPort = DefaultRPCPort
	}
	if c.Transport == "" {
		c.Transport = TransportConnect
	}
	if c.Sync == "" {
		c.Sync = "never"
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.GossipProfile == "" {
		c.GossipProfile = "lan"
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.GroupSessionTimeout == 0 {
		c.GroupSessionTimeout = DefaultGroupSessionTimeout
	}
	if c.GroupOffsetsRetention == 0 {
		c.GroupOffsetsRetention = DefaultGroupOffsetsRetention
	}
	if c.DivergenceCheckInterval == 0 {
		c.DivergenceCheckInterval = DefaultDivergenceCheckInterval
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.MaxConsumeWait == 0 {
		c.MaxConsumeWait = DefaultMaxConsumeWait
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = max(4<<20, c.MaxRecordBytes+64<<10)
	}
	setDefault(&c.MaxSmallRequestBytes, DefaultMaxSmallRequestBytes)
	setDefault(&c.MaxBatchRecords, DefaultMaxBatchRecords)
	setDefault(&c.MaxStreamInflightBytes, DefaultMaxStreamInflightBytes)
	setDefault(&c.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	setDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&c.RequestReadTimeout, DefaultRequestReadTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.MaxConns, defaultMaxConns())
	setDefault(&c.MaxPendingConns, defaultMaxPendingConns(c.MaxConns))
	setDefault(&c.MaxForwardClients, DefaultMaxForwardClients)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// derivePeerTLS makes the API's mutual TLS secure Raft too when no peer TLS is given (secure by
// construction): the server certificate, key and client CA become the peer credentials.
func (c *Config) derivePeerTLS() error {
	if c.PeerServerTLS == nil && c.PeerClientTLS == nil && c.ServerTLS != nil && c.ServerTLS.ClientCAs != nil && !c.InsecurePlaintextPeers {
		peer, err := tlsutil.PeerConfigFromServer(c.ServerTLS, c.PeerServerName)
		if err != nil {
			return fmt.Errorf("%w: ServerTLS as the peer credentials: %w", ErrInvalidConfig, err)
		}
		c.PeerServerTLS, c.PeerClientTLS = peer, peer
	}
	return nil
}

// MembershipConfig is what Config.Membership is given to start a membership.
type MembershipConfig struct {
	// NodeName is the local member's name (Config.NodeName).
	NodeName string
	// Tags are what the local member must advertise (its Raft and API addresses, and whether
	// it is insecure). The server later adds its cluster ID with SetTags when the membership
	// supports it (discovery.ErrNotSupported is fine: the ID only helps new nodes find an
	// existing cluster).
	Tags map[string]string
	// Handler must receive the membership's events: the leader adds, promotes and removes
	// Raft servers from them.
	Handler discovery.Handler
	// Logger is the membership's logger.
	Logger *slog.Logger
}

// PeerMember returns the discovery.Member that describes another commitlog server named name
// whose API and Raft listen at addr (its host:port, Config.RPCPort), as a fixed membership
// such as discovery/static lists it.
func PeerMember(name, addr string) discovery.Member {
	return discovery.Member{Name: name, Addr: addr, Tags: map[string]string{tagRaftAddr: addr, tagRPCAddr: addr}}
}

// ErrInvalidConfig is wrapped by every error New returns for a Config that cannot work; the
// message names the field. Several fields at fault give several errors, joined.
var ErrInvalidConfig = errors.New("server: invalid config")

// ErrPlaintextPeers means the API is secured (TLS or an ACL policy) while Raft, on the same
// port, would be plaintext.
var ErrPlaintextPeers = errors.New("the API is secured (TLS or an ACL policy) but Raft, on the same port, would be plaintext: " +
	"anyone who reaches the port could depose the leader and append records past the ACL")

// ErrNoGossipKey means TLS is configured but gossip would be plaintext.
var ErrNoGossipKey = errors.New("TLS is configured but gossip is not encrypted: give a gossip key " +
	"(commitlog serve --gossip-key-file; make one with `commitlog tls gossip-key`)")

// validatePeers checks the security settings that fit together: peer TLS with a secured API,
// a gossip key with TLS, a peer certificate that names this node.
func (c *Config) validatePeers() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalidConfig, field}, args...)...))
	}
	if (c.PeerServerTLS == nil) != (c.PeerClientTLS == nil) {
		bad("PeerServerTLS", "and PeerClientTLS go together: give both or neither")
	}
	secured := c.ServerTLS != nil || c.ACLPolicyFile != "" || c.Authorizer != nil
	switch {
	case c.PeerServerTLS != nil && c.InsecurePlaintextPeers:
		bad("InsecurePlaintextPeers", "is set, but peer TLS is configured: drop one of them")
	case secured && c.PeerServerTLS == nil && !c.InsecurePlaintextPeers:
		bad("PeerServerTLS", "is missing: %w; add peer TLS (commitlog serve: --server-tls-ca-file makes the server certificate "+
			"secure Raft too, or give --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file), "+
			"or accept the risk with --insecure-plaintext-peers", ErrPlaintextPeers)
	}
	if (c.ServerTLS != nil || c.PeerServerTLS != nil) && c.GossipKey == "" && c.Membership == nil {
		bad("GossipKey", "is missing: %w", ErrNoGossipKey)
	}
	if c.PeerServerTLS != nil && c.PeerServerTLS.ClientCAs == nil {
		// Without a peer CA nothing verifies the certificates of accepted Raft connections.
		bad("PeerServerTLS", "has no ClientCAs: the peer CA that accepted Raft peers' certificates must chain to "+
			"(tlsutil.PeerConfig builds a peer configuration)")
	}
	if c.PeerServerTLS != nil && tlsutil.ValidNodeName(c.NodeName) == nil { // a bad name is refused by validate
		if leaf, err := tlsutil.Leaf(c.PeerServerTLS); err != nil {
			bad("PeerServerTLS", "certificate: %w", err)
		} else if !tlsutil.CertificateNamesNode(leaf, c.NodeName) {
			bad("PeerServerTLS", "certificate %q does not name node %q (it needs the DNS name %s; it names %v): "+
				"create one with `commitlog tls cert create --server --node-name %s`",
				leaf.Subject.CommonName, c.NodeName, tlsutil.NodeDNSName(c.NodeName), tlsutil.CertificateNodes(leaf), c.NodeName)
		} else if cert, err := tlsutil.Presented(c.PeerServerTLS); err == nil && c.PeerServerTLS.ClientCAs != nil {
			// The chain this node presents, against the peer CA it verifies its peers with (the
			// cluster's: peers verify it against theirs), by the peers' rules; a certificate of
			// another CA would start and be refused by every peer.
			var certFile, caFile string
			if src := c.TLSCredentials[c.peerCertRole()]; src != nil {
				certFile, _, caFile = src.Files()
			}
			if err := tlsutil.VerifyOwnPeer(cert, c.PeerServerTLS.ClientCAs, certFile, caFile); err != nil {
				bad("PeerServerTLS", "%w", err)
			}
		}
	}
	return errors.Join(errs...)
}

// peerCertRole is the TLSCredentials role whose certificate this node presents to its peers:
// "peer" (--peer-tls-*), or "server" when the API's credentials secure Raft too; "" when no
// certificate is a peer's.
func (c *Config) peerCertRole() string {
	switch {
	case c.TLSCredentials["peer"] != nil:
		return "peer"
	case c.PeerServerTLS != nil && c.TLSCredentials["server"] != nil:
		return "server"
	}
	return ""
}

// validHost reports whether h is an IP address (IPv6 with or without brackets) or a host name
// that a resolver could answer: dot-separated labels of letters, digits, '-' and '_' (which
// some DNS names, as Kubernetes' SRV-style ones, hold), 1 to 63 bytes each, 253 in all, an
// ending dot allowed.
func validHost(h string) bool {
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil {
		return true
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// checkHostPort checks that addr is host:port with a port from 0 to 65535.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q, want 0 to 65535", port)
	}
	return nil
}

// setDefault sets *v to def when it is zero.
func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// maxMessageBytes bounds the largest API message, a ProduceBatch.
func (c *Config) maxMessageBytes() int { return c.MaxRequestBytes }

// maxRecordMessageBytes bounds a message carrying one record: the record plus framing.
func (c *Config) maxRecordMessageBytes() int { return c.MaxRecordBytes + 64<<10 }

// transportLimits are the API server's limits.
func (c *Config) transportLimits() transport.Limits {
	return transport.Limits{
		MaxRecordMessageBytes: c.maxRecordMessageBytes(),
		MaxSmallMessageBytes:  c.MaxSmallRequestBytes,
		MaxBatchRecords:       c.MaxBatchRecords,
		MaxConcurrentStreams:  uint32(c.MaxConcurrentStreams),
		ReadHeaderTimeout:     c.ReadHeaderTimeout,
		RequestReadTimeout:    c.RequestReadTimeout,
	}
}

// validate checks a Config with its defaults applied. Every field at fault gives an error that
// names it and wraps ErrInvalidConfig; they are joined.
func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalidConfig, field}, args...)...))
	}
	if c.NodeName == "" {
		bad("NodeName", "is empty and the host name cannot be read")
	} else if err := tlsutil.ValidNodeName(c.NodeName); err != nil {
		// With or without peer TLS: the name is the Raft server ID, Serf's member name and a
		// log field, and with TLS later a certificate's DNS name; a newline or a 3,000-byte
		// name was taken as given.
		bad("NodeName", "%q: letters, digits, '-', '_' and '.' only, not starting or ending with '.', at most 238 bytes: %w", c.NodeName, err)
	}
	_, gossipPort, err := net.SplitHostPort(c.BindAddr)
	if err != nil {
		bad("BindAddr", "%q: %w", c.BindAddr, err)
	} else if _, perr := strconv.ParseUint(gossipPort, 10, 16); perr != nil && c.Membership == nil {
		// Serf refused it only when it started, after the data dir was made and a lone node
		// had bootstrapped its Raft state there.
		bad("BindAddr", "%q: bad port %q, want 0 to 65535", c.BindAddr, gossipPort)
	}
	// Addresses that Serf and the telemetry endpoint refused only when they started, after the
	// data dir was made (and, for Serf, Raft's log opened in it).
	if c.Membership == nil {
		for i, a := range c.StartJoinAddrs {
			if err := checkHostPort(a); err != nil {
				bad("StartJoinAddrs", "[%d] %q: %w", i, a, err)
			}
		}
	}
	if c.MetricsAddr != "" && c.MetricsAddr != "off" {
		if err := checkHostPort(c.MetricsAddr); err != nil {
			bad("MetricsAddr", "%q: %w", c.MetricsAddr, err)
		}
	}
	for _, h := range []struct{ field, host string }{{"AdvertiseHost", c.AdvertiseHost}, {"GossipAdvertiseHost", c.GossipAdvertiseHost}} {
		if _, _, err := net.SplitHostPort(h.host); err == nil {
			// A host:port was looked up as a name, and waited for, up to 2 minutes.
			bad(h.field, "%q holds a port: want a host alone (the ports are RPCPort's and BindAddr's)", h.host)
		} else if h.host != "" && !validHost(h.host) {
			// A name that can never resolve ("my host") was waited for too, up to 2 minutes.
			bad(h.field, "%q is neither an IP address nor a valid host name (labels of letters, digits, '-' and '_', "+
				"separated by dots, at most 63 bytes each and 253 in all)", h.host)
		}
	}
	if c.GossipKey != "" && c.Membership == nil {
		// Serf refused it only when it started, after the data dir was made and Raft's log opened.
		if key, err := base64.StdEncoding.DecodeString(c.GossipKey); err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			bad("GossipKey", "is not a gossip key: want the base64 (standard encoding) of 16, 24 or 32 bytes, as `commitlog tls gossip-key` makes")
		}
	}
	if c.RPCPort < -1 || c.RPCPort > 65535 {
		bad("RPCPort", "%d is out of range [-1, 65535]", c.RPCPort)
	}
	// The API and Raft listen on BindAddr's host too: the same port would fail only at bind
	// time, after the data dir was made. Without Serf (Membership) BindAddr's port is unused.
	if p, err := strconv.Atoi(gossipPort); err == nil && p > 0 && p == c.RPCPort && c.Membership == nil {
		bad("RPCPort", "%d is also BindAddr's port (%s): the API and Raft (commitlog serve --rpc-port) and Serf gossip "+
			"(--bind-addr) listen on the same host and need different ports", c.RPCPort, c.BindAddr)
	}
	switch c.Transport {
	case TransportConnect, TransportGRPC:
	default:
		bad("Transport", "%q: want %q or %q", c.Transport, TransportConnect, TransportGRPC)
	}
	switch c.GossipProfile {
	case "lan", "local", "test":
	default:
		bad("GossipProfile", "%q: want lan, local or test", c.GossipProfile)
	}
	switch c.Sync {
	case "never", "interval", "always":
	default:
		bad("Sync", "%q: want never, interval or always", c.Sync)
	}
	for _, f := range []struct {
		field string
		value int64
		dur   bool // a time.Duration: printed as one (-1s, not -1000000000)
	}{
		{"MaxRecordBytes", int64(c.MaxRecordBytes), false},
		{"SegmentBytes", c.SegmentBytes, false},
		{"RetentionBytes", c.RetentionBytes, false},
		{"RetentionAge", int64(c.RetentionAge), true},
		{"BootstrapExpect", int64(c.BootstrapExpect), false},
		{"MaxRequestBytes", int64(c.MaxRequestBytes), false},
		{"MaxSmallRequestBytes", int64(c.MaxSmallRequestBytes), false},
		{"MaxBatchRecords", int64(c.MaxBatchRecords), false},
		{"MaxStreamInflightBytes", int64(c.MaxStreamInflightBytes), false},
		{"MaxConcurrentStreams", int64(c.MaxConcurrentStreams), false},
		{"ReadHeaderTimeout", int64(c.ReadHeaderTimeout), true},
		{"RequestReadTimeout", int64(c.RequestReadTimeout), true},
		{"IdleTimeout", int64(c.IdleTimeout), true},
		{"MaxPendingConns", int64(c.MaxPendingConns), false},
		{"MaxConns", int64(c.MaxConns), false},
		{"MaxForwardClients", int64(c.MaxForwardClients), false},
		{"RetentionInterval", int64(c.RetentionInterval), true},
		{"ReconcileInterval", int64(c.ReconcileInterval), true},
		{"MaxConsumeWait", int64(c.MaxConsumeWait), true},
		{"GroupSessionTimeout", int64(c.GroupSessionTimeout), true},
		{"GroupOffsetsRetention", int64(c.GroupOffsetsRetention), true},
	} {
		switch {
		case f.value < 0 && f.dur:
			bad(f.field, "%v is negative", time.Duration(f.value))
		case f.value < 0:
			bad(f.field, "%d is negative", f.value)
		}
	}
	if c.OpenLog == nil && c.SegmentBytes > 0 && (c.SegmentBytes < segment.MinSegmentBytes || c.SegmentBytes > segment.MaxSegmentBytesLimit) {
		// The segment log refused it only when it opened, after the data dir was made.
		bad("SegmentBytes", "%d is not in [%d, %d]", c.SegmentBytes, segment.MinSegmentBytes, segment.MaxSegmentBytesLimit)
	}
	if c.MaxRecordBytes > fsm.MaxRecordValueBytes {
		bad("MaxRecordBytes", "%d is above %d, the largest record a command carries", c.MaxRecordBytes, fsm.MaxRecordValueBytes)
	}
	if c.MaxBatchRecords > fsm.MaxBatchRecords {
		// The state machine capped it silently: a batch above the cap passed the transport's
		// check, and was refused by the command's.
		bad("MaxBatchRecords", "%d is above %d, the most records a command carries", c.MaxBatchRecords, fsm.MaxBatchRecords)
	}
	if c.MaxConcurrentStreams > 1<<31-1 {
		bad("MaxConcurrentStreams", "%d is above %d", c.MaxConcurrentStreams, 1<<31-1)
	}
	if c.BootstrapExpect > 0 && c.Bootstrap {
		bad("BootstrapExpect", "and Bootstrap are mutually exclusive")
	}
	if c.MaxRequestBytes > 0 && c.MaxRequestBytes < c.MaxRecordBytes+64<<10 {
		bad("MaxRequestBytes", "%d must be at least MaxRecordBytes + 64 KiB (%d)", c.MaxRequestBytes, c.MaxRecordBytes+64<<10)
	}
	if c.ACLModelFile != "" && c.ACLPolicyFile == "" {
		bad("ACLModelFile", "needs an ACLPolicyFile")
	}
	if c.Authorizer != nil && c.ACLPolicyFile != "" {
		bad("Authorizer", "and ACLPolicyFile are mutually exclusive")
	}
	errs = append(errs, c.validatePeers())
	return errors.Join(errs...)
}
