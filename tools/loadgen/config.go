package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// Mode is how producers write records.
type Mode string

// The produce modes.
const (
	// ModeUnary: every producer goroutine calls Client.Produce in a loop, one record per request,
	// one request at a time. Latency is the request's round trip.
	ModeUnary Mode = "unary"
	// ModeBatch: producer goroutines hand records to one shared batching client.Producer, each
	// keeping up to Config.Window records outstanding. Latency is from Send to the record's
	// acknowledgement (so it includes the linger time).
	ModeBatch Mode = "batch"
	// ModeStream: every producer goroutine opens a ProduceStream to the leader and pipelines up
	// to Config.Window records on it. Latency is from Send to the matching response.
	ModeStream Mode = "stream"
)

// Defaults applied by Config.withDefaults for zero fields.
const (
	DefaultRecordSize   = 100
	DefaultDuration     = 10 * time.Second
	DefaultWindow       = 256
	DefaultDrainTimeout = 10 * time.Second
	DefaultProgress     = time.Second
	DefaultMaxErrors    = 1000
	DefaultStallTimeout = 10 * time.Second
)

// ErrInvalidConfig is wrapped by Run when the Config cannot describe a run.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// ErrTooManyErrors is wrapped by Run when the run stopped because requests failed more than
// Config.MaxErrors times; the Result returned with it holds what was measured until then.
var ErrTooManyErrors = errors.New("loadgen: too many errors")

// Config describes one load run. Zero values take the defaults named on each field; Run
// validates the result and fails with an error wrapping ErrInvalidConfig.
type Config struct {
	// Target is what is loaded: TargetCommitlog (default) or TargetNATS (a NATS JetStream
	// cluster, for comparison; see TargetNATS for how each mode maps to it).
	Target string
	// NATSStream and NATSReplicas name the JetStream stream TargetNATS publishes to and its
	// replica count; the run creates the stream (file storage) if it does not exist. Defaults
	// DefaultNATSStream, DefaultNATSReplicas.
	NATSStream   string
	NATSReplicas int
	// ServerPIDs, when set, are the server processes (on this machine, Linux) whose CPU time the
	// run reports per produced record (Result.ServerCPU).
	ServerPIDs []int
	// Addrs are the API addresses of one or more servers of the cluster (the client finds the
	// leader); with TargetNATS, NATS server URLs or host:port. Required.
	Addrs []string
	// Transport is client.TransportConnect (default) or client.TransportGRPC.
	Transport string
	// TLS, when set, is the client's TLS configuration (see client.LoadTLS). Nil: plaintext.
	TLS *tls.Config
	// Clients is how many independent SDK clients (each with its own connections) the workers
	// share round-robin. Default 1.
	Clients int

	// Mode is how producers write. Default ModeUnary.
	Mode Mode
	// Producers is the number of producing goroutines. Zero with Consumers or StreamConsumers
	// set gives a read-only run over existing records (see From); zero with neither is 1.
	Producers int
	// RecordSize is each record's value size in bytes. Default DefaultRecordSize. Values of at
	// least HeaderSize bytes carry a timestamp and checksum that readers verify.
	RecordSize int
	// Window bounds the records each producer goroutine has outstanding in ModeBatch and
	// ModeStream. Default DefaultWindow.
	Window int
	// BatchRecords, BatchBytes, Linger and MaxInFlight configure the client.Producer of
	// ModeBatch (client.ProducerBatchRecords, …). Zero: the client's defaults.
	BatchRecords int
	BatchBytes   int
	Linger       time.Duration
	MaxInFlight  int
	// Idempotent makes the batch mode's Producers idempotent (the SDK's default; then each
	// partition has one batch in flight). Off by default here: the tool measures raw appends,
	// with MaxInFlight batches in flight on the one partition.
	Idempotent bool

	// Duration is how long the measured phase lasts (after Warmup). Default DefaultDuration
	// unless Records is set.
	Duration time.Duration
	// Records, when positive, ends the measured phase once this many records were produced in
	// it (or, in a read-only run, read by each reader kind). With Duration also set, whichever
	// comes first ends the run.
	Records uint64
	// Warmup is run before the measured phase; what happens during it is not counted. A
	// read-only run (Producers 0) has none.
	Warmup time.Duration

	// Consumers is the number of goroutines that read records back with unary Consume calls:
	// the records produced in this run (tailing the producers), or in a read-only run the
	// existing range from From. Latency is the request's round trip.
	Consumers int
	// StreamConsumers is the number of goroutines that each read every record back through one
	// Client.Stream. Latency is end-to-end: from the producer's send time stamped in the
	// record to its arrival on the stream (meaningful only on one machine's clock); in a
	// read-only run, the records' age.
	StreamConsumers int
	// From is the first offset a read-only run reads. Default: the log's lowest offset.
	From uint64
	// DrainTimeout bounds how long readers may keep reading after the producers stopped, to
	// catch up with what was produced. Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// StallTimeout bounds the streams, which have no per-request deadline: a ModeStream produce
	// stream that leaves records unanswered this long is abandoned (its records count as failed)
	// and reopened, and so is a read stream that yields nothing this long while records it has
	// not read are known to exist (one failure). Unary and batch requests are bounded by the
	// SDK's request timeout instead. Default DefaultStallTimeout.
	StallTimeout time.Duration

	// MaxErrors stops the run with ErrTooManyErrors once requests failed more than this many
	// times in total. Default DefaultMaxErrors; negative: never stop for errors (a run bounded
	// only by Records then keeps retrying its readers against a cluster that keeps failing, until
	// its context ends).
	MaxErrors int
	// ProgressInterval is the period of the progress lines written to Run's out. Default
	// DefaultProgress; negative: no progress lines.
	ProgressInterval time.Duration
	// Logger receives debug events (reconnections, stream restarts). Default: discards.
	Logger *slog.Logger
	// ClientOptions are passed to client.New after the options Run derives from this Config.
	ClientOptions []client.Option
}

// readOnly reports whether the run only reads existing records.
func (c Config) readOnly() bool {
	return c.Producers == 0 && (c.Consumers > 0 || c.StreamConsumers > 0)
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Target == "" {
		c.Target = TargetCommitlog
	}
	if c.NATSStream == "" {
		c.NATSStream = DefaultNATSStream
	}
	if c.NATSReplicas == 0 {
		c.NATSReplicas = DefaultNATSReplicas
	}
	if c.Transport == "" {
		c.Transport = client.TransportConnect
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Mode == "" {
		c.Mode = ModeUnary
	}
	if c.Producers == 0 && c.Consumers == 0 && c.StreamConsumers == 0 {
		c.Producers = 1
	}
	if c.RecordSize == 0 {
		c.RecordSize = DefaultRecordSize
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Duration == 0 && c.Records == 0 {
		c.Duration = DefaultDuration
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MaxErrors == 0 {
		c.MaxErrors = DefaultMaxErrors
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgress
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config that went through withDefaults.
func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case len(c.Addrs) == 0:
		return bad("no server address")
	case c.Target != TargetCommitlog && c.Target != TargetNATS:
		return bad("target %q: want %s or %s", c.Target, TargetCommitlog, TargetNATS)
	case c.Target == TargetNATS && (c.Consumers > 0 || c.StreamConsumers > 0 || c.Producers == 0):
		return bad("target %s only produces: no consumers or stream consumers", TargetNATS)
	case c.NATSReplicas < 0:
		return bad("negative NATS replicas %d", c.NATSReplicas)
	case c.Transport != client.TransportConnect && c.Transport != client.TransportGRPC:
		return bad("transport %q: want %s or %s", c.Transport, client.TransportConnect, client.TransportGRPC)
	case c.Mode != ModeUnary && c.Mode != ModeBatch && c.Mode != ModeStream:
		return bad("mode %q: want %s, %s or %s", c.Mode, ModeUnary, ModeBatch, ModeStream)
	case c.Clients < 0, c.Producers < 0, c.Consumers < 0, c.StreamConsumers < 0:
		return bad("negative number of clients, producers or consumers")
	case c.RecordSize < 0:
		return bad("negative record size %d", c.RecordSize)
	case c.Window < 0:
		return bad("negative window %d", c.Window)
	case c.BatchRecords < 0, c.BatchBytes < 0, c.MaxInFlight < 0, c.Linger < 0:
		return bad("negative batch setting")
	case c.Duration < 0, c.Warmup < 0, c.DrainTimeout < 0, c.StallTimeout < 0:
		return bad("negative duration")
	}
	return nil
}
