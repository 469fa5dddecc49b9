package serf

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	hserf "github.com/hashicorp/serf/serf"

	"github.com/commitlog-go/commitlog/discovery"
)

// Defaults used for zero Config fields.
const (
	// DefaultBindAddr is the gossip address used when Config.BindAddr is empty (the seed's
	// --bind-addr default).
	DefaultBindAddr = "127.0.0.1:8401"
	// DefaultRetryJoinInterval is the first delay between two attempts to join
	// Config.StartJoinAddrs; it doubles after every failed attempt.
	DefaultRetryJoinInterval = time.Second
	// DefaultRetryJoinMaxInterval caps the delay between two join attempts.
	DefaultRetryJoinMaxInterval = 30 * time.Second
	// DefaultAdvertiseResolveTimeout is how long New waits for a host name in
	// Config.AdvertiseAddr that does not resolve yet.
	DefaultAdvertiseResolveTimeout = 2 * time.Minute
	// MaxTagsSize is the largest encoded size of a node's tags that gossip can carry
	// (memberlist's metadata limit).
	MaxTagsSize = memberlist.MetaMaxSize
)

// Timing selects a set of gossip timings (probe and gossip intervals, timeouts, how long dead
// members are remembered). Faster timings detect failures sooner and cost more traffic.
type Timing int

// The timing profiles.
const (
	// TimingLAN, the default, is memberlist's and serf's default for a LAN: failures are
	// detected in a few seconds, failed and left members are remembered for 24 hours.
	TimingLAN Timing = iota
	// TimingLocal is memberlist's profile for nodes on one host or a fast local network:
	// shorter timeouts than TimingLAN.
	TimingLocal
	// TimingTest is for tests on one machine: failures are detected within about a second or
	// two, leaves propagate in a fraction of a second, failed and left members are reaped
	// after a few seconds, and StartJoinAddrs are retried every 50 ms at first. Too aggressive
	// for real networks.
	TimingTest
)

// String returns the profile's name ("lan", "local", "test").
func (t Timing) String() string {
	switch t {
	case TimingLAN:
		return "lan"
	case TimingLocal:
		return "local"
	case TimingTest:
		return "test"
	default:
		return "timing(" + strconv.Itoa(int(t)) + ")"
	}
}

// Config configures a Membership. Zero values mean the documented defaults; New validates the
// whole struct and does not keep references to its maps and slices.
type Config struct {
	// NodeName is the node's unique name in the cluster. Default: the host name.
	NodeName string
	// BindAddr is the host:port the gossip listeners (TCP and UDP, same port) bind to. The
	// host must be an IP address or a name that resolves to one; an empty host binds every
	// interface; port 0 picks a free port (read it back from LocalMember().Addr).
	// Default: DefaultBindAddr.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes use to reach this one, when it differs from
	// BindAddr (NAT, containers, Kubernetes: bind 0.0.0.0, advertise the pod IP). A host name
	// is resolved once, at New, which waits up to AdvertiseResolveTimeout for a name that does
	// not resolve yet (NewContext: or until its ctx ends). An unspecified address (0.0.0.0, ::) is rejected: nobody can reach it.
	// Port 0 advertises the port gossip binds (the free one taken when BindAddr asks for port 0).
	// Default: the bind address, or, when binding every interface, a private IP of this host
	// chosen by memberlist.
	AdvertiseAddr string
	// AdvertiseResolveTimeout is how long New keeps trying a host name in AdvertiseAddr that
	// does not resolve: a Kubernetes pod's own DNS name under a headless Service exists only once
	// its IP is published, which may be after the process starts. Default:
	// DefaultAdvertiseResolveTimeout; negative: one attempt.
	AdvertiseResolveTimeout time.Duration
	// Tags are advertised to every member (commitlog puts its Raft and API addresses there).
	// Their encoded size must stay under MaxTagsSize.
	Tags map[string]string
	// StartJoinAddrs are gossip addresses of existing members. If set, New returns at once
	// and a background goroutine tries to join them, retrying with exponential backoff (from
	// RetryJoinInterval up to RetryJoinMaxInterval, with jitter) until one attempt reaches at
	// least one other node or the Membership is closed. An attempt that finds another live
	// member holding NodeName at another address does not count: the others refuse this node
	// under that name, so it is logged as an error and retried (it succeeds once that member
	// has left or failed). The list may name this node itself
	// (every pod of a Kubernetes StatefulSet gets the same list): reaching only itself does not
	// count, so nodes started together never stop retrying before they found each other.
	// Joined reports when it succeeded.
	StartJoinAddrs []string
	// RetryJoinInterval is the first delay between join attempts. Default:
	// DefaultRetryJoinInterval (50 ms with TimingTest).
	RetryJoinInterval time.Duration
	// RetryJoinMaxInterval caps the delay between join attempts. Default:
	// DefaultRetryJoinMaxInterval (1 s with TimingTest).
	RetryJoinMaxInterval time.Duration
	// EncryptKey, if set, is the base64 (standard encoding) of a 16, 24 or 32-byte AES key
	// (GenerateKey makes one). Gossip is then encrypted and authenticated, and messages that
	// are not encrypted with this key are rejected, so a node with a different key, or none,
	// cannot join. Every member of a cluster must use the same key. It stays the only key:
	// a keyring changed by serf's key queries (which any member may send) is put back within
	// a moment. Default: no encryption.
	EncryptKey string
	// Handler receives membership events, from one goroutine, in order (see
	// discovery.Handler). Default: events are dropped.
	Handler discovery.Handler
	// Logger receives this package's logs and those of serf and memberlist, at their levels,
	// with a "component" attribute ("serf", "memberlist"). Default: logs are dropped.
	Logger *slog.Logger
	// Timing selects the gossip timings. Default: TimingLAN.
	Timing Timing
	// Accept, if set, is asked about every member that gossip would add or update: each
	// member of a join's or a state sync's push/pull, and each alive message (this node's own
	// included). An error refuses it: the alive message is ignored, and a join or state sync
	// that carries such a member fails as a whole, on both ends (the joining node's Join
	// reports the error). Two gossip pools that refuse each other's members so never merge:
	// commitlog refuses the members of another cluster. It is called from gossip's goroutines,
	// with a copy of the member: it must be quick and safe for concurrent use. Default: every
	// member is accepted.
	Accept func(discovery.Member) error
}

// settings is a validated Config with its defaults applied.
type settings struct {
	cfg           Config
	bindHost      string
	bindPort      int
	advertiseHost string // "" when not set
	advertisePort int
	key           []byte
	logger        *slog.Logger
	handler       discovery.Handler
}

// withDefaults returns cfg with every zero field set to its default, and copies of its map and
// slice (New keeps no reference to the caller's).
func (cfg Config) withDefaults() Config {
	cfg.Tags = cloneTags(cfg.Tags)
	cfg.StartJoinAddrs = append([]string(nil), cfg.StartJoinAddrs...)
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname() // none: validate reports it
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if cfg.RetryJoinInterval == 0 {
		cfg.RetryJoinInterval = DefaultRetryJoinInterval
		if cfg.Timing == TimingTest {
			cfg.RetryJoinInterval = 50 * time.Millisecond
		}
	}
	if cfg.RetryJoinMaxInterval == 0 {
		cfg.RetryJoinMaxInterval = DefaultRetryJoinMaxInterval
		if cfg.Timing == TimingTest {
			cfg.RetryJoinMaxInterval = time.Second
		}
	}
	if cfg.AdvertiseResolveTimeout == 0 {
		cfg.AdvertiseResolveTimeout = DefaultAdvertiseResolveTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Handler == nil {
		cfg.Handler = discovery.HandlerFunc(func(discovery.Event) {})
	}
	return cfg
}

// validate checks a Config with its defaults applied (host names are resolved later, by
// serfConfig). The error names the field at fault and wraps discovery.ErrInvalidConfig.
func (cfg Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s "+format, append([]any{discovery.ErrInvalidConfig, field}, args...)...)
	}
	if cfg.NodeName == "" {
		return bad("NodeName", "is empty and the host name cannot be read")
	}
	if _, _, err := splitHostPort(cfg.BindAddr); err != nil {
		return bad("BindAddr", "%q: %w", cfg.BindAddr, err)
	}
	if cfg.AdvertiseAddr != "" {
		host, _, err := splitHostPort(cfg.AdvertiseAddr)
		switch {
		case err != nil:
			return bad("AdvertiseAddr", "%q: %w", cfg.AdvertiseAddr, err)
		case host == "" || net.ParseIP(host).IsUnspecified():
			return bad("AdvertiseAddr", "%q: other nodes cannot reach an unspecified address", cfg.AdvertiseAddr)
		}
	}
	if err := checkTags(cfg.Tags); err != nil {
		return bad("Tags", "%w", err)
	}
	for i, a := range cfg.StartJoinAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad(fmt.Sprintf("StartJoinAddrs[%d]", i), "%q: %w", a, err)
		}
	}
	if cfg.EncryptKey != "" {
		if _, err := decodeKey(cfg.EncryptKey); err != nil {
			return bad("EncryptKey", "%w", err)
		}
	}
	switch cfg.Timing {
	case TimingLAN, TimingLocal, TimingTest:
	default:
		return bad("Timing", "%d is not a timing profile", int(cfg.Timing))
	}
	if cfg.RetryJoinInterval < 0 {
		return bad("RetryJoinInterval", "%v is negative", cfg.RetryJoinInterval)
	}
	if cfg.RetryJoinMaxInterval < 0 {
		return bad("RetryJoinMaxInterval", "%v is negative", cfg.RetryJoinMaxInterval)
	}
	return nil
}

// newSettings applies cfg's defaults, validates it and parses it. Errors wrap
// discovery.ErrInvalidConfig.
func newSettings(cfg Config) (*settings, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &settings{cfg: cfg, handler: cfg.Handler}
	s.cfg.RetryJoinMaxInterval = max(cfg.RetryJoinMaxInterval, cfg.RetryJoinInterval)
	s.bindHost, s.bindPort, _ = splitHostPort(cfg.BindAddr) // checked by validate
	if s.bindHost == "" {
		s.bindHost = "0.0.0.0"
	}
	if cfg.AdvertiseAddr != "" {
		s.advertiseHost, s.advertisePort, _ = splitHostPort(cfg.AdvertiseAddr)
	}
	if cfg.EncryptKey != "" {
		s.key, _ = decodeKey(cfg.EncryptKey)
	}
	s.logger = cfg.Logger.With(slog.String("node", cfg.NodeName))
	return s, nil
}

// serfConfig builds the hashicorp/serf configuration. Host names in the bind and advertise
// addresses are resolved here; ctx ends the wait for an advertised name (resolveAdvertise).
//
// onConflict is called with the address of each node that serf reports claiming this node's
// name while alive (see nameConflictAddr).
func (s *settings) serfConfig(ctx context.Context, events chan<- hserf.Event, onConflict func(addr string)) (*hserf.Config, error) {
	bindIP, err := resolveIP(s.bindHost)
	if err != nil {
		return nil, fmt.Errorf("%w: BindAddr %q: %w", discovery.ErrInvalidConfig, s.cfg.BindAddr, err)
	}
	// serf's DefaultConfig panics when the host name cannot be read.
	if _, err := os.Hostname(); err != nil {
		return nil, fmt.Errorf("discovery/serf: host name: %w", err)
	}
	conf := hserf.DefaultConfig()
	switch s.cfg.Timing {
	case TimingLocal:
		conf.MemberlistConfig = memberlist.DefaultLocalConfig()
	case TimingTest:
		conf.MemberlistConfig = testMemberlistConfig()
		applyTestSerfTimings(conf)
	}
	// No name conflict resolution: with it, a member that finds its name held at another
	// address asks the others which address they know and, in the minority, shuts its gossip
	// down for good. Anyone with the gossip key can take a dead member's name (below), so a
	// server coming back from a crash or restart found a squatter there and lost its gossip
	// until it restarted again. Without it the conflict is logged; memberlist still refuses a
	// second address for a live member, and the real member is seen again once the other
	// stops (Raft's membership never takes gossip's word for a name: see server/admission.go).
	conf.EnableNameConflictResolution = false
	ml := conf.MemberlistConfig
	if ml.DeadNodeReclaimTime == 0 {
		// A failed member may come back under its name at another address at once: a
		// Kubernetes pod restarts with a new IP. memberlist's default (0) refused such a
		// member ("Conflicting address") until it forgot the dead one, GossipToTheDeadTime (30 s
		// on a LAN) after its death, and longer until the next state sync: the restarted server
		// was seen failed meanwhile. Only a member already declared dead is replaced: a live one
		// keeps its address against any other claiming its name.
		ml.DeadNodeReclaimTime = deadNodeReclaimTime
	}
	ml.Name = s.cfg.NodeName
	ml.BindAddr = bindIP
	ml.BindPort = s.bindPort
	ml.AdvertisePort = s.bindPort
	if s.advertiseHost != "" {
		advIP, err := s.resolveAdvertise(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q: %w", discovery.ErrInvalidConfig, s.cfg.AdvertiseAddr, err)
		}
		if net.ParseIP(advIP).IsUnspecified() {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q resolves to an unspecified address",
				discovery.ErrInvalidConfig, s.cfg.AdvertiseAddr)
		}
		ml.AdvertiseAddr = advIP
		if s.advertisePort != 0 { // port 0: the port gossip binds (New reads it back)
			ml.AdvertisePort = s.advertisePort
		}
	}
	if s.key != nil {
		ml.SecretKey = s.key
		ml.GossipVerifyIncoming = true
		ml.GossipVerifyOutgoing = true
	}
	ml.Logger = newStdLogger(s.logger, "memberlist")
	ml.LogOutput = nil
	serfLog := &logWriter{logger: s.logger, component: "serf", remote: newRemoteLines(time.Now), onConflict: onConflict}
	conf.Logger = log.New(serfLog, "", 0)
	conf.LogOutput = nil
	conf.NodeName = s.cfg.NodeName
	conf.Tags = cloneTags(s.cfg.Tags)
	conf.EventCh = events
	if s.cfg.Accept != nil {
		conf.Merge = acceptDelegate(s.cfg.Accept)
	}
	return conf, nil
}

// acceptDelegate is serf's merge delegate for Config.Accept: serf asks it about the members
// of every push/pull merge and of every alive message.
type acceptDelegate func(discovery.Member) error

// NotifyMerge refuses members, all of them, when Accept refuses one.
func (a acceptDelegate) NotifyMerge(members []*hserf.Member) error {
	for _, mem := range members {
		if err := a(convertMember(*mem)); err != nil {
			return fmt.Errorf("discovery/serf: refusing gossip member %q at %s: %w", mem.Name, mem.Addr, err)
		}
	}
	return nil
}

// testMemberlistConfig is memberlist's local profile, sped up for tests on one machine.
// Probe timeouts stay well above scheduling delays seen under -race on a loaded 2-core box,
// so that live nodes are not declared failed.
func testMemberlistConfig() *memberlist.Config {
	ml := memberlist.DefaultLocalConfig()
	ml.ProbeInterval = 250 * time.Millisecond
	ml.ProbeTimeout = 200 * time.Millisecond
	ml.SuspicionMult = 3
	ml.GossipInterval = 20 * time.Millisecond
	ml.PushPullInterval = 2 * time.Second
	ml.TCPTimeout = time.Second
	ml.GossipToTheDeadTime = 2 * time.Second
	ml.DeadNodeReclaimTime = time.Second
	// LAN's value, not local's 2: serf's leave intent must reach every node before
	// memberlist's own leave message, or the leave is reported as a failure first.
	ml.RetransmitMult = 4
	return ml
}

// applyTestSerfTimings shortens serf's own timers for tests.
func applyTestSerfTimings(conf *hserf.Config) {
	conf.BroadcastTimeout = 2 * time.Second
	conf.LeavePropagateDelay = 200 * time.Millisecond
	conf.ReapInterval = 500 * time.Millisecond
	conf.ReconnectInterval = 500 * time.Millisecond
	conf.ReconnectTimeout = 5 * time.Second
	conf.TombstoneTimeout = 5 * time.Second
	conf.QueueCheckInterval = 5 * time.Second
	conf.FlapTimeout = 5 * time.Second
}

// splitHostPort splits "host:port" and parses the port (0-65535).
func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	return host, int(port), nil
}

// resolveAdvertise resolves the advertised host, retrying a name that does not resolve (yet)
// for up to AdvertiseResolveTimeout: a pod of a StatefulSet starts before its DNS name under the
// headless Service is published, and failing there made every pod of a new cluster exit once.
// It gives up when ctx ends (with ctx's error): the process is being stopped, and a stop
// signal must not wait out the whole timeout.
func (s *settings) resolveAdvertise(ctx context.Context) (string, error) {
	deadline := time.Now().Add(s.cfg.AdvertiseResolveTimeout)
	wait := 100 * time.Millisecond
	for {
		ip, err := resolveIPContext(ctx, s.advertiseHost)
		if err == nil || time.Now().Add(wait).After(deadline) {
			return ip, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return "", fmt.Errorf("resolve %q: %w (%v)", s.advertiseHost, cerr, err)
		}
		s.logger.Warn("the advertised host does not resolve yet: retrying", "host", s.advertiseHost, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("resolve %q: %w (%v)", s.advertiseHost, ctx.Err(), err)
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// deadNodeReclaimTime is how long a member must have been dead before another address may take
// its name (memberlist's DeadNodeReclaimTime).
const deadNodeReclaimTime = time.Second

// lookupIP is net.DefaultResolver's LookupIP (any family); tests replace it.
var lookupIP = func(ctx context.Context, host string) ([]net.IP, error) {
	return net.DefaultResolver.LookupIP(ctx, "ip", host)
}

// resolveIP returns host if it is an IP address, else the first address it resolves to
// (IPv4 preferred).
func resolveIP(host string) (string, error) {
	return resolveIPContext(context.Background(), host)
}

// resolveIPContext is resolveIP, whose lookup ctx can cut short.
func resolveIPContext(ctx context.Context, host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	ips, err := lookupIP(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve %q: no address", host)
	}
	return ips[0].String(), nil
}

// decodeKey decodes a base64 gossip key and checks its length.
func decodeKey(key string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("encrypt key is not valid base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	default:
		return nil, fmt.Errorf("encrypt key is %d bytes, want 16, 24 or 32", len(b))
	}
}
