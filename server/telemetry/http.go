package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
)

// Sources is the node state Observe reports on. Every field is optional.
type Sources struct {
	// Consensus gives the Raft indices, follower lag and leader changes, and drives readiness.
	Consensus consensus.Consensus
	// Segments gives the commit log's segment count and size on disk.
	Segments SegmentStats
	// Live returns an error once the node can no longer work (its state machine stopped
	// applying): /healthz then answers 503 and the commitlog_apply_stopped gauge is 1.
	Live func() error
	// SetHealth receives the gRPC health status to report: SERVING while a leader is known,
	// NOT_SERVING while none is and, for good, once Drain is called. It is called from the
	// consensus notification goroutine and must not block.
	SetHealth func(transport.HealthStatus)
	// Certificates lists the node's TLS certificates (nil: none), for MetricCertExpiry. It is
	// called at every collection and must be cheap and safe for concurrent use.
	Certificates func() []CertExpiry
	// LeaderCommitIndex asks the leader for its commit index (the server asks it over the
	// peer API). A follower is ready once it has applied that far; without it, a follower's
	// own commit index is the target, and it lags the leader's.
	LeaderCommitIndex func(ctx context.Context, leader consensus.Server) (uint64, error)
	// Diverged returns the divergence alarm's message, "" while none is raised: a node whose
	// alarm is raised refuses every read, so it is not ready (it stays alive: a restart keeps
	// the alarm). Nil: never.
	Diverged func() string
	// NotMember returns why this node is part of no cluster, "" while nothing says so (the
	// server: its gossip start join is refused because another live member holds its name).
	// Such a node is not ready, whatever its own Raft state says, and its reason is the one
	// /readyz gives. Called on every readiness check: keep it cheap. Nil: never.
	NotMember func() string
}

// Observe starts reporting on src: observable gauges, the leader-change counter, readiness
// and the gRPC health status. Call it once, after the node has started; Close stops it.
func (t *Telemetry) Observe(src Sources) error {
	if err := t.metrics.observe(src.Consensus, src.Segments, src.Live); err != nil {
		return err
	}
	if err := t.metrics.observeCertificates(src.Certificates); err != nil {
		return err
	}
	if src.Consensus != nil {
		t.health.observe(src.Consensus, src.Live, src.SetHealth, src.LeaderCommitIndex, src.Diverged, src.NotMember)
	}
	return nil
}

// Drain marks the node as stopping: /readyz answers 503 and the gRPC health status is
// NOT_SERVING from now on. Idempotent.
func (t *Telemetry) Drain() { t.health.drain() }

// Ready reports whether the node is ready (see the package doc) and, if not, why.
func (t *Telemetry) Ready() (ready bool, reason string) { return t.health.ready() }

// Handler returns the HTTP handler of the metrics endpoint: /metrics, /healthz and /readyz.
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog: errorLogger{t}, EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := t.health.alive(); err != nil {
			http.Error(w, "not alive: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, reason := t.health.ready()
		if !ready {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, reason)
	})
	return mux
}

// Timeouts of the HTTP endpoints (the metrics endpoint, and NewDebugServer's), so that a client
// that connects and then sends nothing, or its headers a byte at a time, cannot hold a
// connection (a goroutine and a file descriptor) for long. net/http applies ReadHeaderTimeout
// from a request's first byte only: without IdleTimeout (or ReadTimeout), a kept-alive
// connection waiting for its next request was never closed.
const (
	// HTTPReadHeaderTimeout bounds a new connection's wait for its first request's headers,
	// and each request's headers from its first byte.
	HTTPReadHeaderTimeout = 10 * time.Second
	// HTTPReadTimeout bounds reading a whole request, body included (the endpoints take GETs).
	HTTPReadTimeout = 30 * time.Second
	// HTTPIdleTimeout closes a kept-alive connection that sends no next request for this long
	// (a scraper reconnects at its next scrape; Go's client retries a GET on a connection the
	// server closed while idle).
	HTTPIdleTimeout = 30 * time.Second
	// metricsWriteTimeout bounds writing a response of the metrics endpoint.
	metricsWriteTimeout = time.Minute
)

// newHTTPServer returns a server of h with the endpoints' read and idle timeouts and no
// write timeout, logging its errors to logger at debug level.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// NewDebugServer returns an http.Server listening at addr (ListenAndServe) for h, such as
// net/http/pprof's handlers (`commitlog` serves them at COMMITLOG_PPROF_ADDR), with the
// endpoints' read and idle timeouts and no write timeout: /debug/pprof/profile and
// /debug/pprof/trace answer after the seconds they are asked for, and pprof refuses a duration
// at or beyond the server's WriteTimeout. A nil logger discards the server's errors.
func NewDebugServer(addr string, h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := newHTTPServer(h, logger)
	srv.Addr = addr
	return srv
}

// errorLogger routes promhttp's errors to the telemetry logger.
type errorLogger struct{ t *Telemetry }

func (e errorLogger) Println(v ...any) {
	e.t.cfg.Logger.Warn("metrics scrape", "err", fmt.Sprint(v...))
}
