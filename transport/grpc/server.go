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
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/internal/lifecycle"
	"github.com/commitlog-go/commitlog/transport/internal/limits"
	"github.com/commitlog-go/commitlog/transport/internal/rejectlog"
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
var services = []string{"", logv1.Log_ServiceDesc.ServiceName, logv1.Cluster_ServiceDesc.ServiceName, logv1.Topics_ServiceDesc.ServiceName, logv1.Groups_ServiceDesc.ServiceName}

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
		// The largest any method reads; each method's own (smaller) bound
		// is checked before decoding, see decode.
		ggrpc.MaxRecvMsgSize(cfg.MaxReceivedBytes()),
		ggrpc.MaxSendMsgSize(cfg.MaxMessageBytes + transport.ResponseOverhead),
		ggrpc.MaxConcurrentStreams(cfg.Limits.MaxConcurrentStreams),
		// grpc-go's own default is 16 MiB a call.
		ggrpc.MaxHeaderListSize(transport.MaxHeaderBytes),
		ggrpc.ConnectionTimeout(cfg.Limits.ReadHeaderTimeout),
		ggrpc.ForceServerCodecV2(rawCodec{encoding.GetCodecV2(gproto.Name)}),
		ggrpc.KeepaliveParams(keepalive.ServerParameters{
			Time:              cfg.Keepalive.Time,
			Timeout:           cfg.Keepalive.Timeout,
			MaxConnectionIdle: cfg.Keepalive.MaxIdle,
		}),
		ggrpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             transport.MinClientPingInterval,
			PermitWithoutStream: true,
		}),
		ggrpc.ChainUnaryInterceptor(s.recoverUnary, s.unaryInterceptor),
		ggrpc.ChainStreamInterceptor(s.recoverStream, s.streamInterceptor),
	}
	if cfg.TLS != nil {
		opts = append(opts, ggrpc.Creds(loggingCreds{credentials.NewTLS(cfg.TLS),
			rejectlog.NewHandshakes(cfg.Logger, "transport: rejected TLS handshake")}))
	}
	if cfg.Admit != nil {
		opts = append(opts, ggrpc.InTapHandle(s.admit))
	}
	if cfg.Telemetry != nil {
		opts = append(opts, ggrpc.StatsHandler(otelgrpc.NewServerHandler(otelOptions(cfg.Telemetry, true)...)))
	}
	s.gs = ggrpc.NewServer(opts...)
	reg := registrar{s}
	logv1.RegisterLogServer(reg, logServer{svc: cfg.Log})
	if cfg.Cluster != nil {
		logv1.RegisterClusterServer(reg, clusterServer{svc: cfg.Cluster})
	} else {
		logv1.RegisterClusterServer(reg, logv1.UnimplementedClusterServer{})
	}
	if cfg.Topics != nil {
		logv1.RegisterTopicsServer(reg, topicsServer{svc: cfg.Topics})
	} else {
		logv1.RegisterTopicsServer(reg, logv1.UnimplementedTopicsServer{})
	}
	if cfg.Groups != nil {
		logv1.RegisterGroupsServer(reg, groupsServer{svc: cfg.Groups})
	} else {
		logv1.RegisterGroupsServer(reg, logv1.UnimplementedGroupsServer{})
	}
	healthpb.RegisterHealthServer(reg, s.health)
	reflection.Register(reg)
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
	if s.cfg.TLS == nil {
		l = http1Listener{l}
	}
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

// known are the methods Admit runs for.
var known = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range []*ggrpc.ServiceDesc{&logv1.Log_ServiceDesc, &logv1.Cluster_ServiceDesc, &logv1.Topics_ServiceDesc, &logv1.Groups_ServiceDesc} {
		for _, md := range d.Methods {
			m["/"+d.ServiceName+"/"+md.MethodName] = true
		}
		for _, sd := range d.Streams {
			m["/"+d.ServiceName+"/"+sd.StreamName] = true
		}
	}
	return m
}()

// admit runs ServerConfig.Admit when a call's headers arrive (grpc-go's
// InTapHandle), before its message is read.
func (s *Server) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if !known[info.FullMethodName] {
		return ctx, nil
	}
	p := peerOf(ctx)
	ctx = transport.ContextWithPeer(ctx, p)
	nctx, err := s.cfg.Admit(ctx, info.FullMethodName, p)
	if err != nil {
		return nil, toStatus(err)
	}
	if nctx != nil {
		ctx = nctx
	}
	return ctx, nil
}

// peerOf describes the caller of the call whose context is ctx.
func peerOf(ctx context.Context) transport.Peer {
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
	return p
}

// call prepares the context of one Log or Cluster call: it records the
// peer (the one Admit left in the context, with what it decided, else the
// connection's) and runs the interception hook.
func (s *Server) call(ctx context.Context, method string) (context.Context, error) {
	p, ok := transport.PeerFromContext(ctx)
	if !ok {
		p = peerOf(ctx)
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

// recoverUnary and recoverStream answer Internal for a handler that panics, and log it with
// its stack: grpc-go recovers no handler panic, so one would end the whole process, where
// net/http (the Connect server) ends only the stream.
func (s *Server) recoverUnary(ctx context.Context, req any, info *ggrpc.UnaryServerInfo, handler ggrpc.UnaryHandler) (_ any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return handler(ctx, req)
}

func (s *Server) recoverStream(srv any, ss ggrpc.ServerStream, info *ggrpc.StreamServerInfo, handler ggrpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return handler(srv, ss)
}

// recovered, deferred, turns a panic of a method's handler into an Internal *err.
func (s *Server) recovered(method string, err *error) {
	if p := recover(); p != nil {
		s.cfg.Logger.Error("transport: handler panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
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
	// Every stream ends on Stop: ours, health watches (once they reported
	// NOT_SERVING), reflection.
	if info.FullMethod == healthWatchMethod {
		ctx, w, cancel := s.stopper.BindWatch(ss.Context())
		defer cancel()
		return handler(srv, &watchStream{ctxStream: ctxStream{ServerStream: ss, ctx: ctx, s: s, method: info.FullMethod}, w: w})
	}
	ctx, cancel := s.stopper.Bind(ss.Context())
	defer cancel()
	if !ours(info.FullMethod) {
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx, s: s, method: info.FullMethod})
	}
	ctx, err := s.call(ctx, info.FullMethod)
	if err != nil {
		return toStatus(err)
	}
	return toStatus(handler(srv, &ctxStream{ServerStream: ss, ctx: ctx, s: s, method: info.FullMethod}))
}

// ctxStream replaces a server stream's context and checks each received
// message against its method's limits before decoding it.
type ctxStream struct {
	ggrpc.ServerStream
	ctx    context.Context
	s      *Server
	method string
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// healthWatchMethod is the health service's streaming method.
const healthWatchMethod = "/grpc.health.v1.Health/Watch"

// watchStream tells its health watch's lifecycle.Watch what it sent.
type watchStream struct {
	ctxStream
	w *lifecycle.Watch
}

func (c *watchStream) SendMsg(m any) error {
	err := c.ctxStream.SendMsg(m)
	if err == nil {
		c.w.Sent(lifecycle.FinalHealthStatus(m))
	}
	return err
}

func (c *ctxStream) RecvMsg(m any) error { return c.s.decode(c.method, c.ServerStream.RecvMsg, m) }

// rawMessage receives a request's encoded bytes from rawCodec, undecoded.
type rawMessage struct{ buf mem.Buffer }

// rawCodec is grpc-go's proto codec, except that it hands a *rawMessage
// the encoded bytes, so decode can check them before decoding.
type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		r.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// decode receives the next message of method with recv, refuses it with
// ResourceExhausted when it is larger than the method's bound or (a
// ProduceBatch) carries too many records or a record of too many headers,
// and otherwise decodes it into m.
func (s *Server) decode(method string, recv func(any) error, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return recv(m)
	}
	var raw rawMessage
	if err := recv(&raw); err != nil {
		return err
	}
	defer raw.buf.Free()
	b := raw.buf.ReadOnlyData()
	if limit := s.cfg.MaxRequestBytes(method); len(b) > limit {
		return toStatus(limits.TooLarge(method, len(b), limit))
	}
	switch method {
	case transport.MethodProduceBatch:
		if err := limits.CheckBatchProto(b, s.cfg.Limits.MaxBatchRecords, transport.MaxRecordHeaders); err != nil {
			return toStatus(err)
		}
	case transport.MethodProduce, transport.MethodProduceStream:
		if err := limits.CheckRecordProto(b, transport.MaxRecordHeaders); err != nil {
			return toStatus(err)
		}
	}
	// proto.Unmarshal copies what it keeps, so the buffer goes back to the pool.
	if err := proto.Unmarshal(b, pm); err != nil {
		// Malformed input, as connect-go answers it (DESIGN.md §2: InvalidArgument).
		return toStatus(transport.Errorf(transport.InvalidArgument, "malformed request: %v", err))
	}
	return nil
}

// registrar registers services with every unary method's request checked
// by decode (streams are checked by ctxStream).
type registrar struct{ s *Server }

func (r registrar) GetServiceInfo() map[string]ggrpc.ServiceInfo { return r.s.gs.GetServiceInfo() }

func (r registrar) RegisterService(desc *ggrpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = make([]ggrpc.MethodDesc, len(desc.Methods))
	for i, md := range desc.Methods {
		method, handler := "/"+desc.ServiceName+"/"+md.MethodName, md.Handler
		md.Handler = func(srv any, ctx context.Context, dec func(any) error, ic ggrpc.UnaryServerInterceptor) (any, error) {
			return handler(srv, ctx, func(m any) error { return r.s.decode(method, dec, m) }, ic)
		}
		d.Methods[i] = md
	}
	r.s.gs.RegisterService(&d, impl)
}

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
	return l.svc.ConsumeStream(stream.Context(), req, headerStream[logv1.ConsumeResponse]{stream})
}

// headerStream adapts a grpc-go server stream to transport.ServerStream: errors as
// *transport.Error (streamErr), and the headers sendable alone (transport.HeaderSender).
type headerStream[Res any] struct {
	ggrpc.ServerStreamingServer[Res]
}

func (s headerStream[Res]) Send(m *Res) error { return streamErr(s.ServerStreamingServer.Send(m)) }

// SendHeader sends the response headers, with no metadata of the handler's own.
func (s headerStream[Res]) SendHeader() error {
	return streamErr(s.ServerStreamingServer.SendHeader(nil))
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

// bidiServer adapts grpc-go's Recv to the neutral Receive, and its errors to
// *transport.Error (streamErr).
type bidiServer struct {
	s ggrpc.BidiStreamingServer[logv1.ProduceRequest, logv1.ProduceResponse]
}

func (b bidiServer) Receive() (*logv1.ProduceRequest, error) {
	m, err := b.s.Recv()
	return m, streamErr(err)
}

func (b bidiServer) Send(r *logv1.ProduceResponse) error { return streamErr(b.s.Send(r)) }

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

// topicsServer adapts a transport.TopicsService to the generated gRPC interface.
type topicsServer struct {
	logv1.UnimplementedTopicsServer
	svc transport.TopicsService
}

func (t topicsServer) CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	return t.svc.CreateTopic(ctx, req)
}

func (t topicsServer) DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	return t.svc.DeleteTopic(ctx, req)
}

func (t topicsServer) ListTopics(ctx context.Context, req *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error) {
	return t.svc.ListTopics(ctx, req)
}

func (t topicsServer) DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	return t.svc.DescribeTopic(ctx, req)
}

func (t topicsServer) AlterTopicConfig(ctx context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error) {
	return t.svc.AlterTopicConfig(ctx, req)
}

func (t topicsServer) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	return t.svc.InitProducer(ctx, req)
}

// groupsServer adapts a transport.GroupsService to the generated gRPC interface.
type groupsServer struct {
	logv1.UnimplementedGroupsServer
	svc transport.GroupsService
}

func (g groupsServer) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	return g.svc.Heartbeat(ctx, req)
}

func (g groupsServer) CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	return g.svc.CommitOffsets(ctx, req)
}

func (g groupsServer) FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return g.svc.FetchOffsets(ctx, req)
}

func (g groupsServer) ListGroups(ctx context.Context, req *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	return g.svc.ListGroups(ctx, req)
}

func (g groupsServer) DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	return g.svc.DescribeGroup(ctx, req)
}

func (g groupsServer) DeleteGroup(ctx context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	return g.svc.DeleteGroup(ctx, req)
}

func (g groupsServer) ResetOffsets(ctx context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	return g.svc.ResetOffsets(ctx, req)
}

func (g groupsServer) ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	return g.svc.ListOffsets(ctx, req)
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
