// Package grpc serves and calls the commitlog API with grpc-go.
//
// [NewServer] serves a [transport.LogService] (and optionally a
// [transport.ClusterService]) over gRPC on any net.Listener, with the
// standard gRPC health service and server reflection (v1 and v1alpha), so
// grpcurl works. [NewClient] returns a [transport.Client] over one gRPC
// connection. Errors cross the wire as gRPC statuses with the log.v1.NotLeader
// detail when present.
package grpc

import (
	"context"
	"errors"
	"net"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/internal/lifecycle"
)

// Server is a gRPC server for the commitlog API. Create it with NewServer.
// Its methods are safe for concurrent use.
type Server struct {
	cfg     transport.ServerConfig
	gs      *ggrpc.Server
	health  *health.Server
	stopper *lifecycle.Stopper

	mu      sync.Mutex
	serving bool
	stopped chan struct{} // closed when Stop has finished
	stopErr error
}

var _ transport.Server = (*Server)(nil)

// services are the names the health service reports on, "" being the whole server.
var services = []string{"", logv1.Log_ServiceDesc.ServiceName, logv1.Cluster_ServiceDesc.ServiceName}

// NewServer builds a server from cfg (see transport.ServerConfig for the
// defaults). It returns transport.ErrNoService or an error wrapping
// transport.ErrInvalidConfig for a bad config. The health status starts
// SERVING.
func NewServer(cfg transport.ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s := &Server{cfg: cfg, health: health.NewServer(), stopper: lifecycle.NewStopper(), stopped: make(chan struct{})}
	opts := []ggrpc.ServerOption{
		ggrpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		ggrpc.MaxSendMsgSize(cfg.MaxMessageBytes + transport.ResponseOverhead),
		ggrpc.KeepaliveParams(keepalive.ServerParameters{
			Time:              cfg.Keepalive.Time,
			Timeout:           cfg.Keepalive.Timeout,
			MaxConnectionIdle: cfg.Keepalive.MaxIdle,
		}),
		ggrpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             transport.MinClientPingInterval,
			PermitWithoutStream: true,
		}),
		ggrpc.ChainUnaryInterceptor(s.unaryInterceptor),
		ggrpc.ChainStreamInterceptor(s.streamInterceptor),
	}
	if cfg.TLS != nil {
		opts = append(opts, ggrpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	if cfg.Telemetry != nil {
		opts = append(opts, ggrpc.StatsHandler(otelgrpc.NewServerHandler(otelOptions(cfg.Telemetry, true)...)))
	}
	s.gs = ggrpc.NewServer(opts...)
	logv1.RegisterLogServer(s.gs, logServer{svc: cfg.Log})
	if cfg.Cluster != nil {
		logv1.RegisterClusterServer(s.gs, clusterServer{svc: cfg.Cluster})
	} else {
		logv1.RegisterClusterServer(s.gs, logv1.UnimplementedClusterServer{})
	}
	healthpb.RegisterHealthServer(s.gs, s.health)
	reflection.Register(s.gs)
	s.SetHealth(transport.HealthServing)
	return s, nil
}

// Serve accepts connections on l until Stop; see transport.Server. It
// closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.serving || s.stopper.Stopped() {
		s.mu.Unlock()
		l.Close()
		return transport.ErrServerStopped
	}
	s.serving = true
	s.mu.Unlock()
	err := s.gs.Serve(l)
	if errors.Is(err, ggrpc.ErrServerStopped) {
		return transport.ErrServerStopped
	}
	if s.stopper.Stopped() {
		return nil
	}
	return err
}

// SetHealth sets the status reported by the health service; see
// transport.Server. After Stop it has no effect.
func (s *Server) SetHealth(status transport.HealthStatus) {
	for _, name := range services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_ServingStatus(status))
	}
}

// Stop stops the server gracefully within ctx; see transport.Server.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopper.Stop() {
		select {
		case <-s.stopped:
			return s.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.health.Shutdown() // NOT_SERVING for everything, from now on
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.gs.GracefulStop()
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.gs.Stop()
		<-done
		err = ctx.Err()
	}
	s.stopErr = err
	close(s.stopped)
	return err
}

// call prepares the context of one Log or Cluster call: it records the
// peer and runs the interception hook.
func (s *Server) call(ctx context.Context, method string) (context.Context, error) {
	p := transport.Peer{Protocol: "grpc"}
	if gp, ok := peer.FromContext(ctx); ok {
		if gp.Addr != nil {
			p.Addr = gp.Addr.String()
		}
		if info, ok := gp.AuthInfo.(credentials.TLSInfo); ok {
			p.Subject = transport.PeerSubject(&info.State)
			p.Certificates = transport.PeerCertificates(&info.State)
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(transport.ForwardedForHeader); len(v) > 0 {
			p.ForwardedFor = v[0]
		}
	}
	ctx = transport.ContextWithPeer(ctx, p)
	if s.cfg.Intercept != nil {
		nctx, err := s.cfg.Intercept(ctx, method, p)
		if err != nil {
			return nil, err
		}
		if nctx != nil {
			ctx = nctx
		}
	}
	return ctx, nil
}

// ours reports whether method belongs to log.v1 (not health or reflection).
func ours(method string) bool {
	const prefix = "/log.v1."
	return len(method) > len(prefix) && method[:len(prefix)] == prefix
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *ggrpc.UnaryServerInfo, handler ggrpc.UnaryHandler) (any, error) {
	if !ours(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, err := s.call(ctx, info.FullMethod)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := handler(ctx, req)
	return resp, toStatus(err)
}

func (s *Server) streamInterceptor(srv any, ss ggrpc.ServerStream, info *ggrpc.StreamServerInfo, handler ggrpc.StreamHandler) error {
	// Every stream ends on Stop: ours, health watches, reflection.
	ctx, cancel := s.stopper.Bind(ss.Context())
	defer cancel()
	if !ours(info.FullMethod) {
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	ctx, err := s.call(ctx, info.FullMethod)
	if err != nil {
		return toStatus(err)
	}
	return toStatus(handler(srv, &ctxStream{ServerStream: ss, ctx: ctx}))
}

// ctxStream replaces a server stream's context.
type ctxStream struct {
	ggrpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// logServer adapts a transport.LogService to the generated gRPC interface.
type logServer struct {
	logv1.UnimplementedLogServer
	svc transport.LogService
}

func (l logServer) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	return l.svc.Produce(ctx, req)
}

func (l logServer) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	return l.svc.ProduceBatch(ctx, req)
}

func (l logServer) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	return l.svc.Consume(ctx, req)
}

func (l logServer) ConsumeStream(req *logv1.ConsumeRequest, stream ggrpc.ServerStreamingServer[logv1.ConsumeResponse]) error {
	return l.svc.ConsumeStream(stream.Context(), req, stream)
}

func (l logServer) ProduceStream(stream ggrpc.BidiStreamingServer[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	return l.svc.ProduceStream(stream.Context(), bidiServer{stream})
}

func (l logServer) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	return l.svc.GetServers(ctx, req)
}

func (l logServer) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	return l.svc.GetBounds(ctx, req)
}

// bidiServer adapts grpc-go's Recv to the neutral Receive.
type bidiServer struct {
	s ggrpc.BidiStreamingServer[logv1.ProduceRequest, logv1.ProduceResponse]
}

func (b bidiServer) Receive() (*logv1.ProduceRequest, error) { return b.s.Recv() }
func (b bidiServer) Send(r *logv1.ProduceResponse) error     { return b.s.Send(r) }

// clusterServer adapts a transport.ClusterService to the generated gRPC interface.
type clusterServer struct {
	logv1.UnimplementedClusterServer
	svc transport.ClusterService
}

func (c clusterServer) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	return c.svc.Join(ctx, req)
}

func (c clusterServer) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	return c.svc.RemoveServer(ctx, req)
}

func (c clusterServer) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	return c.svc.TransferLeadership(ctx, req)
}

// otelOptions translates t into otelgrpc options. Only log.v1 calls are
// instrumented (not health checks or reflection); server says whether t's
// PublicEndpoint applies.
func otelOptions(t *transport.Telemetry, server bool) []otelgrpc.Option {
	tp, mp, prop := t.Providers()
	opts := []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithMeterProvider(mp),
		otelgrpc.WithPropagators(prop),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool { return ours(info.FullMethodName) }),
	}
	if server && t.PublicEndpoint {
		opts = append(opts, otelgrpc.WithPublicEndpoint())
	}
	return opts
}
