package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults applied by ServerConfig.WithDefaults and ClientConfig.WithDefaults.
const (
	// DefaultMaxMessageBytes bounds every message received, as grpc-go does
	// by default. connect-go has no default bound; we always set one.
	DefaultMaxMessageBytes = 4 << 20
	// MaxHeaderBytes bounds the headers (metadata) of one call, on every transport.
	MaxHeaderBytes = 64 << 10
	// DefaultCompressMinBytes is the smallest response the Connect server
	// compresses: gzip on tiny responses cost 25-40% of throughput here.
	DefaultCompressMinBytes = 1024
	// DefaultKeepaliveTime is how long a connection may stay silent before
	// the server pings the client to check it is alive.
	DefaultKeepaliveTime = time.Minute
	// DefaultKeepaliveTimeout is how long the server waits for a ping answer
	// before closing the connection.
	DefaultKeepaliveTimeout = 20 * time.Second
	// ResponseOverhead is added to MaxMessageBytes for messages servers send
	// and clients receive: a response carries a record as large as the
	// largest request could, plus its offset, term and framing.
	ResponseOverhead = 1 << 10
	// MinClientPingInterval is the shortest interval between client pings
	// the servers accept; clients of this package ping less often.
	MinClientPingInterval = 10 * time.Second
	// DefaultMaxSmallMessageBytes bounds requests that carry no record:
	// Consume, GetServers, GetBounds, the Cluster RPCs, health and reflection.
	DefaultMaxSmallMessageBytes = 16 << 10
	// DefaultMaxBatchRecords bounds the records of one ProduceBatch request.
	DefaultMaxBatchRecords = 10_000
	// MaxRecordHeaders is the most headers one record may carry (the
	// server's state machine stores no more). The servers count them in a
	// ProduceBatch's encoded bytes and refuse more before decoding it.
	MaxRecordHeaders = 1024
	// DefaultMaxConcurrentStreams bounds the calls in flight on one
	// connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
	DefaultMaxConcurrentStreams = 256
	// DefaultReadHeaderTimeout bounds how long a new connection may take to
	// send its TLS handshake and its first request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultRequestReadTimeout bounds how long a unary request's body may
	// take to arrive (Connect server; streams are exempt).
	DefaultRequestReadTimeout = 30 * time.Second
)

// Errors returned by server and client constructors and lifecycles.
var (
	// ErrNoService is returned by server constructors when ServerConfig.Log is nil.
	ErrNoService = errors.New("transport: ServerConfig.Log is required")
	// ErrInvalidConfig is wrapped by constructors when a config value is out of range.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrServerStopped is returned by Serve called after Stop (or twice).
	ErrServerStopped = errors.New("transport: server stopped")
)

// Interceptor is the single hook a server runs before every Log and Cluster
// handler, unary or streaming (not before health and reflection, which carry
// no data). method is the full method name (see MethodProduce); peer is the
// caller as PeerFromContext would give it. A non-nil error ends the call
// without running the handler and is sent to the client as AsError would
// convert it (so return Errorf(PermissionDenied, ...) to deny). The
// returned context, if non-nil, replaces ctx for the handler. It is called
// concurrently from many goroutines.
type Interceptor func(ctx context.Context, method string, peer Peer) (context.Context, error)

// Limits bound what one caller can make a server read, decode and keep.
// Zero fields take the defaults above (see ServerConfig.WithDefaults).
type Limits struct {
	// MaxRecordMessageBytes bounds a Produce request and each ProduceStream
	// message (one record). Default: ServerConfig.MaxMessageBytes.
	MaxRecordMessageBytes int
	// MaxSmallMessageBytes bounds every request that carries no record:
	// Consume, ConsumeStream, GetServers, GetBounds, the Cluster and Topics
	// RPCs, the Groups RPCs but Heartbeat and CommitOffsets (bound by
	// MaxRecordMessageBytes), the health service and reflection. Default
	// DefaultMaxSmallMessageBytes.
	MaxSmallMessageBytes int
	// MaxBatchRecords bounds the records of one ProduceBatch request; they
	// are counted in the encoded bytes before the request is decoded.
	// Default DefaultMaxBatchRecords.
	MaxBatchRecords int
	// MaxConcurrentStreams bounds the calls in flight on one HTTP/2
	// connection. Default DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// ReadHeaderTimeout bounds the TLS handshake and the arrival of a
	// request's headers. Default DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// RequestReadTimeout bounds how long the body of a unary request may
	// take to arrive on the Connect server (grpc-go has no per-call read
	// deadline; its calls are bounded by MaxConcurrentStreams and the
	// keepalive). Streams are exempt: they live as long as the client wants.
	// A body late is answered DeadlineExceeded, saying so.
	// Default DefaultRequestReadTimeout.
	RequestReadTimeout time.Duration
}

// MaxRequestBytes returns the largest request message the server reads for
// method (a full method name such as MethodProduce; any other name, health
// and reflection included, gets MaxSmallMessageBytes). c must have its
// defaults set.
func (c ServerConfig) MaxRequestBytes(method string) int {
	switch method {
	case MethodProduceBatch:
		return c.MaxMessageBytes
	case MethodProduce, MethodProduceStream:
		return c.Limits.MaxRecordMessageBytes
	case MethodHeartbeat, MethodCommitOffsets:
		// A member's partitions, offsets and their metadata (up to 4 KiB each): record-sized.
		return c.Limits.MaxRecordMessageBytes
	default:
		return c.Limits.MaxSmallMessageBytes
	}
}

// Keepalive configures server pings on idle connections. Zero fields take
// the defaults above.
type Keepalive struct {
	// Time is the idle time after which the server pings the client.
	Time time.Duration
	// Timeout is how long the server waits for the ping answer.
	Timeout time.Duration
	// MaxIdle closes connections that carried no request for this long.
	// Zero: never.
	MaxIdle time.Duration
}

// HealthStatus is the status the standard gRPC health service reports
// (grpc.health.v1), numbered as there.
type HealthStatus int32

// Health statuses.
const (
	HealthUnknown    HealthStatus = 0
	HealthServing    HealthStatus = 1
	HealthNotServing HealthStatus = 2
)

// ServerConfig configures a transport server. Zero values take the
// documented defaults; call WithDefaults to see them, Validate to check.
type ServerConfig struct {
	// Log serves log.v1.Log. Required.
	Log LogService
	// Cluster serves log.v1.Cluster. Nil: its RPCs answer Unimplemented.
	Cluster ClusterService
	// Topics serves log.v1.Topics. Nil: its RPCs answer Unimplemented.
	Topics TopicsService
	// Groups serves log.v1.Groups. Nil: its RPCs answer Unimplemented.
	Groups GroupsService
	// TLS, when set, makes the server accept TLS only. Set ClientAuth to
	// tls.RequireAndVerifyClientCert and ClientCAs for mTLS; the verified
	// client certificate's CN becomes Peer.Subject. Nil: plaintext (h2c
	// and HTTP/1.1 for Connect).
	TLS *tls.Config
	// MaxMessageBytes bounds each received message; bigger messages are
	// refused with ResourceExhausted before being read into memory. Sent
	// messages may be up to MaxMessageBytes+ResponseOverhead. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// CompressMinBytes is the smallest response the Connect server
	// compresses when the client accepts gzip. The grpc-go server neither
	// compresses nor takes compressed requests (no compressor is registered:
	// a gzip request is answered Unimplemented). Default
	// DefaultCompressMinBytes.
	CompressMinBytes int
	// Keepalive configures server-side pings.
	Keepalive Keepalive
	// Limits bound per-method request sizes, records per batch, streams
	// per connection and read times.
	Limits Limits
	// Admit, when set, runs for every Log and Cluster call as soon as its
	// headers arrive, before the request message is read or decoded, so a
	// caller it refuses costs the server no more than its headers. peer is
	// as Intercept gets it. A non-nil error refuses the call (sent as AsError
	// would convert it); the returned context, if non-nil, carries into
	// Intercept and the handler. It runs on the connection's reading
	// goroutine (grpc-go) and must be fast. Telemetry does not see the
	// calls it refuses.
	Admit Interceptor
	// Intercept, when set, runs before every Log and Cluster handler.
	Intercept Interceptor
	// Logger receives the server's background events, among them the TLS handshakes the
	// server refuses: at warn level with the remote address and the reason ("transport:
	// rejected TLS handshake"; a 10-line burst then one a second per reason, the next line
	// counting those dropped: "suppressed"), at debug level when the client hung up (EOF,
	// reset). Default: discards.
	Logger *slog.Logger
	// Telemetry, when set, traces and measures every call of the log.v1
	// services (Log, Cluster, Topics, Groups; not health checks or
	// reflection) with OpenTelemetry. Nil: none.
	Telemetry *Telemetry
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c ServerConfig) WithDefaults() ServerConfig {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.CompressMinBytes == 0 {
		c.CompressMinBytes = DefaultCompressMinBytes
	}
	if c.Keepalive.Time == 0 {
		c.Keepalive.Time = DefaultKeepaliveTime
	}
	if c.Keepalive.Timeout == 0 {
		c.Keepalive.Timeout = DefaultKeepaliveTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Limits.MaxRecordMessageBytes == 0 {
		c.Limits.MaxRecordMessageBytes = c.MaxMessageBytes
	}
	if c.Limits.MaxSmallMessageBytes == 0 {
		c.Limits.MaxSmallMessageBytes = DefaultMaxSmallMessageBytes
	}
	if c.Limits.MaxBatchRecords == 0 {
		c.Limits.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if c.Limits.MaxConcurrentStreams == 0 {
		c.Limits.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.Limits.ReadHeaderTimeout == 0 {
		c.Limits.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.Limits.RequestReadTimeout == 0 {
		c.Limits.RequestReadTimeout = DefaultRequestReadTimeout
	}
	return c
}

// MaxReceivedBytes returns the largest request message any method reads: the
// transport-wide bound, applied before MaxRequestBytes. c must have its
// defaults set.
func (c ServerConfig) MaxReceivedBytes() int {
	return max(c.MaxMessageBytes, c.Limits.MaxRecordMessageBytes, c.Limits.MaxSmallMessageBytes)
}

// Validate reports ErrNoService (no Log), or an error that names the field
// out of range and wraps ErrInvalidConfig, when c cannot configure a server.
// Zero fields are valid (WithDefaults sets them); the servers' constructors
// call Validate, then WithDefaults.
func (c ServerConfig) Validate() error {
	if c.Log == nil {
		return ErrNoService
	}
	negative := []struct {
		field string
		value int64
	}{
		{"MaxMessageBytes", int64(c.MaxMessageBytes)},
		{"CompressMinBytes", int64(c.CompressMinBytes)},
		{"Keepalive.Time", int64(c.Keepalive.Time)},
		{"Keepalive.Timeout", int64(c.Keepalive.Timeout)},
		{"Keepalive.MaxIdle", int64(c.Keepalive.MaxIdle)},
		{"Limits.MaxRecordMessageBytes", int64(c.Limits.MaxRecordMessageBytes)},
		{"Limits.MaxSmallMessageBytes", int64(c.Limits.MaxSmallMessageBytes)},
		{"Limits.MaxBatchRecords", int64(c.Limits.MaxBatchRecords)},
		{"Limits.ReadHeaderTimeout", int64(c.Limits.ReadHeaderTimeout)},
		{"Limits.RequestReadTimeout", int64(c.Limits.RequestReadTimeout)},
	}
	for _, f := range negative {
		if f.value < 0 {
			return fmt.Errorf("%w: %s %d is negative", ErrInvalidConfig, f.field, f.value)
		}
	}
	return nil
}

// Server is the lifecycle both transport servers share, so the composition
// root can choose one by flag.
type Server interface {
	// Serve accepts connections on l until Stop; it returns nil after Stop,
	// ErrServerStopped when called after Stop, or the listener's error.
	// Serve may be called once.
	Serve(l net.Listener) error
	// SetHealth sets the status the gRPC health service reports for the
	// whole server ("") and for log.v1.Log and log.v1.Cluster. Safe for
	// concurrent use.
	SetHealth(status HealthStatus)
	// Stop reports NOT_SERVING, stops accepting connections, cancels the
	// contexts of open streams (so ConsumeStream handlers return), waits for
	// calls in flight to finish until ctx is done, then closes every
	// connection. It returns ctx.Err() if it had to force connections
	// closed. Idempotent; safe to call concurrently with Serve.
	Stop(ctx context.Context) error
}

// ClientConfig configures a transport client. Zero values take the defaults.
type ClientConfig struct {
	// TLS, when set, makes the client dial TLS (set Certificates for mTLS,
	// RootCAs and ServerName to verify the server). Nil: plaintext.
	TLS *tls.Config
	// MaxMessageBytes bounds each sent message (as the server's limit does)
	// and, plus ResponseOverhead, each received one. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// KeepaliveTime is how long a connection may stay idle before the client
	// pings the server. Zero: 30s. Values below MinClientPingInterval are raised to it.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long the client waits for the ping answer. Zero: 10s.
	KeepaliveTimeout time.Duration
	// Telemetry, when set, traces and measures every call with
	// OpenTelemetry and sends the caller's trace context to the server.
	// Nil: none.
	Telemetry *Telemetry
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c ClientConfig) WithDefaults() ClientConfig {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = 30 * time.Second
	}
	c.KeepaliveTime = max(c.KeepaliveTime, MinClientPingInterval)
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = 10 * time.Second
	}
	return c
}

// NewClientFunc is the signature shared by the implementations' client
// constructors (grpc.NewClient, connect.NewClient), so callers can pick one
// at run time.
type NewClientFunc func(addr string, cfg ClientConfig) (Client, error)
