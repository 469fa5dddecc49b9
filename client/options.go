package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Transport names accepted by WithTransport.
const (
	// TransportConnect selects connect-go speaking the Connect protocol over
	// HTTP/2 (h2c on plaintext). It is the default.
	TransportConnect = "connect"
	// TransportGRPC selects grpc-go.
	TransportGRPC = "grpc"
)

// ReadPolicy says which servers serve reads (Consume, Stream, Bounds).
type ReadPolicy int

const (
	// ReadLeader sends every read to the leader. It is the default: a read
	// issued after an acknowledged Produce sees that record at once
	// (read-your-writes), and no follower lag is ever observed. When the
	// leader is unknown or unreachable, a read falls back to any replica.
	ReadLeader ReadPolicy = iota
	// ReadFollowers spreads reads round-robin over the followers and uses
	// the leader only when no follower answers. Followers serve committed
	// records only; one that has not applied a record yet (lagging, or
	// replaying its log after a restart) waits for it up to the server's
	// --max-consume-wait (1 s by default) and then answers Unavailable, and
	// the read is retried on the next server after a short backoff: reads
	// stay correct but may be slower right after a write.
	ReadFollowers
	// ReadAny spreads reads round-robin over every known server, leader
	// included.
	ReadAny
)

// String returns the policy's name.
func (p ReadPolicy) String() string {
	switch p {
	case ReadLeader:
		return "leader"
	case ReadFollowers:
		return "followers"
	case ReadAny:
		return "any"
	default:
		return fmt.Sprintf("ReadPolicy(%d)", int(p))
	}
}

// Defaults used by New when an option is not given.
const (
	DefaultRequestTimeout  = 10 * time.Second
	DefaultRefreshInterval = 30 * time.Second
	DefaultMaxRetries      = 16
	DefaultBackoffBase     = 25 * time.Millisecond
	DefaultBackoffMax      = time.Second
)

// An Option configures a Client. Options are values built by the With*
// functions of this package; the interface has an unexported method so that
// only this package can implement it.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	clusterID       string
	transport       string
	tls             *tls.Config
	logger          *slog.Logger
	requestTimeout  time.Duration
	maxMessageBytes int
	refreshInterval time.Duration
	readPolicy      ReadPolicy
	linearizable    bool
	maxRetries      int
	backoffBase     time.Duration
	backoffMax      time.Duration
}

// defaultOptions are the options before any Option applies: every default.
func defaultOptions() options {
	return options{
		transport:       TransportConnect,
		requestTimeout:  DefaultRequestTimeout,
		refreshInterval: DefaultRefreshInterval,
		readPolicy:      ReadLeader,
		maxRetries:      DefaultMaxRetries,
		backoffBase:     DefaultBackoffBase,
		backoffMax:      DefaultBackoffMax,
	}
}

// withDefaults fills in what an option may have left empty (WithLogger(nil)).
func (o options) withDefaults() options {
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// validate checks the options once every Option applied. The error names the option at fault
// and wraps ErrInvalidOption.
func (o options) validate() error {
	bad := func(option, format string, args ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrInvalidOption, option}, args...)...)
	}
	switch {
	case o.transport != TransportConnect && o.transport != TransportGRPC:
		return bad("WithTransport", "unknown transport %q (want %q or %q)", o.transport, TransportConnect, TransportGRPC)
	case o.readPolicy != ReadLeader && o.readPolicy != ReadFollowers && o.readPolicy != ReadAny:
		return bad("WithReadPolicy", "unknown read policy %d", int(o.readPolicy))
	case o.requestTimeout < 0:
		return bad("WithRequestTimeout", "%v is negative", o.requestTimeout)
	case o.refreshInterval < 0:
		return bad("WithRefreshInterval", "%v is negative", o.refreshInterval)
	case o.maxMessageBytes < 0:
		return bad("WithMaxMessageBytes", "%d is negative", o.maxMessageBytes)
	case o.maxRetries < 0:
		return bad("WithMaxRetries", "%d is negative", o.maxRetries)
	case o.backoffBase <= 0 || o.backoffMax < o.backoffBase:
		return bad("WithBackoff", "base %v must be > 0 and <= max %v", o.backoffBase, o.backoffMax)
	}
	return nil
}

// WithTransport selects the wire transport: TransportConnect (default) or
// TransportGRPC. Every server of a cluster serves the transport it was
// started with; pick the same one. New fails with ErrInvalidOption on an
// unknown name.
func WithTransport(name string) Option {
	return optionFunc(func(o *options) { o.transport = name })
}

// WithTLS makes the client speak TLS with the given configuration (for mTLS,
// set Certificates; for a private CA, set RootCAs). The client clones cfg.
// Without this option the client speaks plaintext (h2c), the zero-config
// default of a local server.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(o *options) {
		if cfg != nil {
			cfg = cfg.Clone()
		}
		o.tls = cfg
	})
}

// WithLogger sets the logger of the client's background work (server list
// refreshes, reconnections). By default nothing is logged. Errors of calls
// are returned, never logged.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithRequestTimeout bounds each attempt of a unary call (Produce, Consume,
// GetServers, …) when the caller's context has no earlier deadline. Zero
// means no per-attempt bound. Default DefaultRequestTimeout. A Stream is not
// bounded by it.
func WithRequestTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.requestTimeout = d })
}

// WithMaxMessageBytes bounds each message the client receives (a record
// read back, a server list). Default transport.DefaultMaxMessageBytes
// (4 MiB), the servers' default bound too.
func WithMaxMessageBytes(n int) Option {
	return optionFunc(func(o *options) { o.maxMessageBytes = n })
}

// WithRefreshInterval sets how often the client asks the cluster for its
// server list in the background, besides refreshing after failures. Zero
// disables the periodic refresh. Default DefaultRefreshInterval.
func WithRefreshInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.refreshInterval = d })
}

// WithReadPolicy says which servers serve reads; see ReadPolicy. Default
// ReadLeader.
func WithReadPolicy(p ReadPolicy) Option {
	return optionFunc(func(o *options) { o.readPolicy = p })
}

// WithMaxRetries bounds how many times one call is retried after a failure
// that is safe to retry (a read, or a write refused before it was proposed).
// Following a NotLeader redirect counts as a retry. Zero disables retries.
// Default DefaultMaxRetries: with the default backoff, 6 to 12 s of waiting
// in all, longer than an election after a leader dies (~1 s until its
// followers give up on it, then the vote; more on a loaded machine).
func WithMaxRetries(n int) Option {
	return optionFunc(func(o *options) { o.maxRetries = n })
}

// WithBackoff sets the exponential backoff between retries: the n-th wait is
// drawn uniformly from [d/2, d] where d = min(base·2ⁿ, max). A redirect to
// a named leader is followed at once, without waiting. Defaults
// DefaultBackoffBase and DefaultBackoffMax.
func WithBackoff(base, max time.Duration) Option {
	return optionFunc(func(o *options) {
		o.backoffBase = base
		o.backoffMax = max
	})
}

// WithLinearizableReads makes Consume and Bounds linearizable: they go to the
// leader, which confirms its leadership and applies every committed entry
// before reading, so a read reflects every write acknowledged before it
// started. It overrides the read policy for those calls (a Stream still
// follows the policy: it tails committed records anyway). Costs one round
// trip from the leader to a quorum per read.
func WithLinearizableReads() Option {
	return optionFunc(func(o *options) { o.linearizable = true })
}

// WithClusterID makes the client serve only the cluster with this ID (as
// `commitlog cluster status` shows it): a server of another cluster is
// refused from the first call. Without it, the client remembers the cluster
// ID of the first server that names one and refuses servers of any other
// (see ClusterMismatchError).
func WithClusterID(id string) Option {
	return optionFunc(func(o *options) { o.clusterID = id })
}
