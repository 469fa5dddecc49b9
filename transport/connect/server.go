// Package connect serves and calls the commitlog API with connect-go.
//
// [NewServer] serves a [transport.LogService] (and optionally a
// [transport.ClusterService]) through one http.Handler that speaks the
// Connect, gRPC and gRPC-Web protocols, with binary protobuf and JSON, over
// HTTP/1.1 and HTTP/2 (h2c when plaintext, ALPN over TLS), plus the
// standard gRPC health service and server reflection. So grpcurl, a browser
// and curl all work:
//
//	curl -H 'Content-Type: application/json' -d '{"record":{"value":"aGk="}}' \
//	    http://127.0.0.1:8400/log.v1.Log/Produce
//
// [NewClient] returns a [transport.Client] speaking the Connect protocol;
// [NewClientProtocol] chooses gRPC or gRPC-Web instead. Errors cross the wire
// as Connect errors with the log.v1.NotLeader detail when present.
package connect

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/gen/log/v1/logv1connect"
	"github.com/commitlog-go/commitlog/transport/internal/lifecycle"
	"github.com/commitlog-go/commitlog/transport/internal/limits"
)

// drainGrace is how long Stop lets connections close by themselves once
// every handler has returned.
const drainGrace = 2 * time.Second

// services are the names the health service reports on, "" being the whole server.
var services = []string{"", logv1connect.LogName, logv1connect.ClusterName, logv1connect.TopicsName, logv1connect.GroupsName}

// Server is a Connect/gRPC/gRPC-Web server for the commitlog API. Create it
// with NewServer. Its methods are safe for concurrent use.
type Server struct {
	cfg     transport.ServerConfig
	http    *http.Server
	health  *grpchealth.StaticChecker
	stopper *lifecycle.Stopper
	otel    connect.Interceptor // nil without ServerConfig.Telemetry
	// headersHold is how long a plaintext connection holds a response's HEADERS frame for
	// the frame after it (headersConn).
	headersHold time.Duration

	mu      sync.Mutex
	serving bool
	active  int           // requests being handled
	idle    chan struct{} // closed when active drops to 0, if set
	stopped chan struct{} // closed when Stop has finished
	stopErr error
}

var _ transport.Server = (*Server)(nil)

// NewServer builds a server from cfg (see transport.ServerConfig for the
// defaults). It returns transport.ErrNoService or an error wrapping
// transport.ErrInvalidConfig for a bad config. The health status starts
// SERVING.
func NewServer(cfg transport.ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s := &Server{
		cfg:     cfg,
		health:  grpchealth.NewStaticChecker(services[1:]...),
		stopper: lifecycle.NewStopper(),
		stopped: make(chan struct{}),

		headersHold: headersHold,
	}
	if cfg.Telemetry != nil {
		ic, err := newOtelInterceptor(cfg.Telemetry, true)
		if err != nil {
			return nil, err
		}
		s.otel = ic
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout,
		IdleTimeout:       cfg.Keepalive.MaxIdle,
		MaxHeaderBytes:    transport.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(cfg.Limits.MaxConcurrentStreams),
			SendPingTimeout:      cfg.Keepalive.Time,
			PingTimeout:          cfg.Keepalive.Timeout,
		},
		ErrorLog: slogErrorLog(cfg.Logger),
	}
	s.http.Protocols = new(http.Protocols)
	s.http.Protocols.SetHTTP1(true)
	if cfg.TLS != nil {
		s.http.Protocols.SetHTTP2(true)
	} else {
		s.http.Protocols.SetUnencryptedHTTP2(true)
	}
	return s, nil
}

// Handler returns the http.Handler serving log.v1.Log, log.v1.Cluster,
// log.v1.Topics, log.v1.Groups, grpc.health.v1.Health and reflection (which
// lists them all), for callers that run their own http.Server (they must then
// enable HTTP/2 themselves for gRPC and bidirectional streams). Stop still
// ends the handler's streams.
func (s *Server) Handler() http.Handler {
	opts := []connect.HandlerOption{
		connect.WithSendMaxBytes(s.cfg.MaxMessageBytes + transport.ResponseOverhead),
		connect.WithCompressMinBytes(s.cfg.CompressMinBytes),
	}
	if s.otel != nil {
		// Outermost, so spans and metrics see what the client sees (the
		// interception hook's refusals included).
		opts = append(opts, connect.WithInterceptors(s.otel))
	}
	opts = append(opts, connect.WithInterceptors(interceptor{s}))
	// Each method reads at most what it needs (connect-go enforces the
	// bound before reading, and on the decompressed size): one handler
	// per bound.
	readMax := func(method string, more ...connect.HandlerOption) []connect.HandlerOption {
		return append(append(slicesClone(opts), connect.WithReadMaxBytes(s.cfg.MaxRequestBytes(method))), more...)
	}
	logh := logHandler{svc: s.cfg.Log}
	mux := http.NewServeMux()
	mux.Handle(logv1connect.NewLogHandler(logh, readMax(transport.MethodConsume)...))
	// Produce's, ProduceStream's and ProduceBatch's own handlers: their request types let
	// batchCodec refuse too many records, or a record of too many headers, with
	// ResourceExhausted (see batchRequest and recordRequest).
	logMethods := logv1.File_log_v1_log_proto.Services().ByName("Log").Methods()
	maxRecs := s.cfg.Limits.MaxBatchRecords
	codecs := []connect.HandlerOption{connect.WithCodec(batchCodec{max: maxRecs}), connect.WithCodec(batchCodec{json: true, max: maxRecs})}
	mux.Handle(logv1connect.LogProduceProcedure, connect.NewUnaryHandler(logv1connect.LogProduceProcedure, logh.produce,
		connect.WithSchema(logMethods.ByName("Produce")),
		connect.WithHandlerOptions(readMax(transport.MethodProduce, codecs...)...)))
	mux.Handle(logv1connect.LogProduceStreamProcedure, connect.NewBidiStreamHandler(logv1connect.LogProduceStreamProcedure, logh.produceStream,
		connect.WithSchema(logMethods.ByName("ProduceStream")),
		connect.WithHandlerOptions(readMax(transport.MethodProduceStream, codecs...)...)))
	mux.Handle(logv1connect.LogProduceBatchProcedure, connect.NewUnaryHandler(logv1connect.LogProduceBatchProcedure, logh.produceBatch,
		connect.WithSchema(logMethods.ByName("ProduceBatch")),
		connect.WithHandlerOptions(readMax(transport.MethodProduceBatch, codecs...)...)))
	if s.cfg.Cluster != nil {
		mux.Handle(logv1connect.NewClusterHandler(clusterHandler{svc: s.cfg.Cluster}, readMax(transport.MethodJoin)...))
	} else {
		mux.Handle(logv1connect.NewClusterHandler(logv1connect.UnimplementedClusterHandler{}, readMax(transport.MethodJoin)...))
	}
	if s.cfg.Topics != nil {
		mux.Handle(logv1connect.NewTopicsHandler(topicsHandler{svc: s.cfg.Topics}, readMax(transport.MethodJoin)...))
	} else {
		mux.Handle(logv1connect.NewTopicsHandler(logv1connect.UnimplementedTopicsHandler{}, readMax(transport.MethodJoin)...))
	}
	var groups logv1connect.GroupsHandler = logv1connect.UnimplementedGroupsHandler{}
	if s.cfg.Groups != nil {
		groups = groupsHandler{svc: s.cfg.Groups}
	}
	mux.Handle(logv1connect.NewGroupsHandler(groups, readMax(transport.MethodFetchOffsets)...))
	// Heartbeats and commits carry a member's partitions and offsets: record-sized.
	_, big := logv1connect.NewGroupsHandler(groups, readMax(transport.MethodCommitOffsets)...)
	mux.Handle(logv1connect.GroupsHeartbeatProcedure, big)
	mux.Handle(logv1connect.GroupsCommitOffsetsProcedure, big)
	small := connect.WithReadMaxBytes(s.cfg.Limits.MaxSmallMessageBytes)
	mux.Handle(grpchealth.NewHandler(s.health, connect.WithCompressMinBytes(s.cfg.CompressMinBytes), small,
		connect.WithInterceptors(healthWatchInterceptor{})))
	reflector := grpcreflect.NewStaticReflector(logv1connect.LogName, logv1connect.ClusterName, logv1connect.TopicsName,
		logv1connect.GroupsName, grpchealth.HealthV1ServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, small))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, small))
	errw := connect.NewErrorWriter(opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.enter()
		defer s.leave()
		ctx := r.Context()
		if !strings.HasPrefix(r.URL.Path, "/log.v1.") {
			// Health watches (once they reported NOT_SERVING) and reflection
			// streams end on Stop too; log.v1 streams are bound by the
			// interceptor, unary calls are not.
			var cancel context.CancelFunc
			if r.URL.Path == healthWatchProcedure {
				var w *lifecycle.Watch
				ctx, w, cancel = s.stopper.BindWatch(ctx)
				ctx = context.WithValue(ctx, watchKey{}, w)
			} else {
				ctx, cancel = s.stopper.Bind(ctx)
			}
			defer cancel()
		}
		p := transport.Peer{Addr: r.RemoteAddr, Subject: transport.PeerSubject(r.TLS), Certificates: transport.PeerCertificates(r.TLS),
			ForwardedFor: r.Header.Get(transport.ForwardedForHeader)}
		ctx = transport.ContextWithPeer(ctx, p)
		stream, ok := procedures[r.URL.Path]
		if ok && s.cfg.Admit != nil {
			// Before the body is read: a refused caller costs its headers.
			p.Protocol = protocolOf(r)
			nctx, err := s.cfg.Admit(transport.ContextWithPeer(ctx, p), r.URL.Path, p)
			if err != nil {
				_ = errw.Write(w, r, toConnect(err))
				return
			}
			if nctx != nil {
				ctx = nctx
			}
		}
		if enveloped(mediaType(r.Header.Get("Content-Type"))) {
			r.Body = &envelopeBody{ReadCloser: r.Body}
		}
		if (ok && !stream) || r.URL.Path == healthCheckProcedure {
			// A unary request's body must arrive in time; the deadline is
			// lifted once it has (so a long-poll is not cut on HTTP/1.1).
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(s.cfg.Limits.RequestReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: s.cfg.Limits.RequestReadTimeout}
			}
		}
		if ok && needsHint(r, stream) {
			w = &mediaTypeHint{ResponseWriter: w, r: r, stream: stream}
		}
		if r.URL.Path == logv1connect.LogProduceStreamProcedure {
			cw := &corkWriter{ResponseWriter: w}
			w, ctx = cw, context.WithValue(ctx, corkKey{}, cw)
			r.Body = newReadAheadBody(r.Body)
		}
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

func slicesClone(o []connect.HandlerOption) []connect.HandlerOption {
	return append([]connect.HandlerOption(nil), o...)
}

// healthCheckProcedure is the health service's unary method, healthWatchProcedure its stream.
const (
	healthCheckProcedure = "/grpc.health.v1.Health/Check"
	healthWatchProcedure = "/grpc.health.v1.Health/Watch"
)

// watchKey is the context key of a health watch's lifecycle.Watch.
type watchKey struct{}

// healthWatchInterceptor tells a health watch's lifecycle.Watch what the watch sent.
type healthWatchInterceptor struct{}

func (healthWatchInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

func (healthWatchInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (healthWatchInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {

		if w, ok := ctx.Value(watchKey{}).(*lifecycle.Watch); ok {
			conn = watchConn{StreamingHandlerConn: conn, w: w}
		}
		return next(ctx, conn)
	}
}

type watchConn struct {
	connect.StreamingHandlerConn
	w *lifecycle.Watch
}

func (c watchConn) Send(m any) error {
	err := c.StreamingHandlerConn.Send(m)
	if err == nil {
		c.w.Sent(lifecycle.FinalHealthStatus(m))
	}
	return err
}

// procedures are the log.v1 methods Admit runs for, each saying whether it
// is a stream.
var procedures = map[string]bool{
	logv1connect.LogProduceProcedure:                false,
	logv1connect.LogProduceBatchProcedure:           false,
	logv1connect.LogConsumeProcedure:                false,
	logv1connect.LogGetServersProcedure:             false,
	logv1connect.LogGetBoundsProcedure:              false,
	logv1connect.LogConsumeStreamProcedure:          true,
	logv1connect.LogProduceStreamProcedure:          true,
	logv1connect.ClusterJoinProcedure:               false,
	logv1connect.ClusterRemoveServerProcedure:       false,
	logv1connect.ClusterTransferLeadershipProcedure: false,
	logv1connect.TopicsCreateTopicProcedure:         false,
	logv1connect.TopicsDeleteTopicProcedure:         false,
	logv1connect.TopicsListTopicsProcedure:          false,
	logv1connect.TopicsDescribeTopicProcedure:       false,
	logv1connect.TopicsAlterTopicConfigProcedure:    false,
	logv1connect.TopicsInitProducerProcedure:        false,
	logv1connect.GroupsHeartbeatProcedure:           false,
	logv1connect.GroupsCommitOffsetsProcedure:       false,
	logv1connect.GroupsFetchOffsetsProcedure:        false,
	logv1connect.GroupsListGroupsProcedure:          false,
	logv1connect.GroupsDescribeGroupProcedure:       false,
	logv1connect.GroupsDeleteGroupProcedure:         false,
	logv1connect.GroupsResetOffsetsProcedure:        false,
	logv1connect.GroupsListOffsetsProcedure:         false,
}

// protocolOf names r's protocol as connect.Peer.Protocol does.
func protocolOf(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/grpc-web"):
		return connect.ProtocolGRPCWeb
	case strings.HasPrefix(ct, "application/grpc"):
		return connect.ProtocolGRPC
	default:
		return connect.ProtocolConnect
	}
}

// deadlineBody lifts the read deadline once the body is read to its end. Only then: lifted on
// the deadline's own error, a body of known length (Content-Length) still short of it was read
// again with no deadline by net/http, which reads what is left of a body before it writes the
// answer, so the call never answered.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"the request body did not arrive within %v (the server's request read timeout): %w", b.timeout, err))
	}
	return n, err
}

// batchCodec decodes ProduceBatch, Produce and ProduceStream requests (binary
// or JSON) after counting their records, and each record's headers, in the
// encoded bytes: more than max records, or a record of more than
// transport.MaxRecordHeaders headers, is refused before anything is
// allocated. connect-go reports every error a codec returns as
// InvalidArgument, so a refusal is not returned but kept in the batchRequest
// or recordRequest, which interceptor (ProduceStream: recordStream.Receive)
// answers (ResourceExhausted, as the grpc transport does) before the
// interception hook or the handler runs.
type batchCodec struct {
	json bool
	max  int
}

func (c batchCodec) Name() string {
	if c.json {
		return "json"
	}
	return "proto"
}

func (c batchCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", v)
	}
	if c.json {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

func (c batchCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", v)
	}
	if c.json && len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	var (
		err     error
		refused *error
	)
	switch r := v.(type) {
	case *batchRequest:
		m, refused = &r.ProduceBatchRequest, &r.refused
		if c.json {
			err = limits.CheckBatchJSON(data, c.max, transport.MaxRecordHeaders)
		} else {
			err = limits.CheckBatchProto(data, c.max, transport.MaxRecordHeaders)
		}
	case *recordRequest:
		m, refused = &r.ProduceRequest, &r.refused
		if c.json {
			err = limits.CheckRecordJSON(data, transport.MaxRecordHeaders)
		} else {
			err = limits.CheckRecordProto(data, transport.MaxRecordHeaders)
		}
	}
	if err != nil {
		*refused = err
		return nil
	}
	if c.json {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
	}
	return proto.Unmarshal(data, m)
}

// batchRequest is the request of the ProduceBatch handler: the decoded
// request or, when batchCodec refused it before decoding, the refusal.
type batchRequest struct {
	logv1.ProduceBatchRequest
	refused error
}

// recordRequest is batchRequest for a Produce and each ProduceStream message.
type recordRequest struct {
	logv1.ProduceRequest
	refused error
}

// refusal returns the error batchCodec kept in req's message, if any.
func refusal(req connect.AnyRequest) error {
	switch r := req.Any().(type) {
	case *batchRequest:
		return r.refused
	case *recordRequest:
		return r.refused
	}
	return nil
}

// enter and leave count the requests being handled.
func (s *Server) enter() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Server) leave() {
	s.mu.Lock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// idleChan returns a channel closed once no request is being handled.
func (s *Server) idleChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.active == 0 {
		close(ch)
	} else {
		s.idle = ch
	}
	return ch
}

// Serve accepts connections on l until Stop; see transport.Server. When
// ServerConfig.TLS is set, l must carry plaintext TCP: Serve does the TLS
// handshake. It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.serving || s.stopper.Stopped() {
		s.mu.Unlock()
		l.Close()
		return transport.ErrServerStopped
	}
	s.serving = true
	s.mu.Unlock()
	var err error
	if s.cfg.TLS != nil {
		err = s.http.ServeTLS(l, "", "")
	} else {
		err = s.http.Serve(headersListener{l, s.headersHold})
	}
	if errors.Is(err, http.ErrServerClosed) {
		if s.stopper.Stopped() {
			return nil
		}
		return transport.ErrServerStopped
	}
	return err
}

// SetHealth sets the status reported by the health service; see
// transport.Server. After Stop it has no effect.
func (s *Server) SetHealth(status transport.HealthStatus) {
	if s.stopper.Stopped() {
		return
	}
	s.setHealth(grpchealth.Status(status))
}

func (s *Server) setHealth(status grpchealth.Status) {
	for _, name := range services {
		s.health.SetStatus(name, status)
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
	s.setHealth(grpchealth.StatusNotServing)
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.http.Shutdown(ctx) }()
	var err error
	select {
	case err = <-shutdown:
	case <-s.idleChan():
		// Every handler has returned. HTTP/2 connections normally close
		// within a second of the GOAWAY; one a client keeps open with a
		// stream the server no longer serves must not hold Stop until ctx ends.
		t := time.NewTimer(drainGrace)
		select {
		case err = <-shutdown:
		case <-t.C:
			s.http.Close()
			<-shutdown
		}
		t.Stop()
	}
	if err != nil {
		s.http.Close()
	}
	s.stopErr = err
	close(s.stopped)
	return err
}

// interceptor runs the peer bookkeeping and the interception hook before
// every handler, binds streams to the server's stop signal, and converts
// handler errors to Connect errors.
type interceptor struct{ s *Server }

func (i interceptor) call(ctx context.Context, method, protocol string) (context.Context, error) {
	p, _ := transport.PeerFromContext(ctx)
	p.Protocol = protocol
	ctx = transport.ContextWithPeer(ctx, p)
	if i.s.cfg.Intercept != nil {
		nctx, err := i.s.cfg.Intercept(ctx, method, p)
		if err != nil {
			return nil, err
		}
		if nctx != nil {
			ctx = nctx
		}
	}
	return ctx, nil
}

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := refusal(req); err != nil {
			// Refused while decoding, as the grpc transport refuses it: before the hook.
			return nil, toConnect(err)
		}
		ctx, err := i.call(ctx, req.Spec().Procedure, req.Peer().Protocol)
		if err != nil {
			return nil, toConnect(err)
		}
		res, err := next(ctx, req)
		return res, toConnect(err)
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, cancel := i.s.stopper.Bind(ctx)
		defer cancel()
		ctx, err := i.call(ctx, conn.Spec().Procedure, conn.Peer().Protocol)
		if err != nil {
			return toConnect(err)
		}
		return toConnect(next(ctx, conn))
	}
}

// logHandler adapts a transport.LogService to the generated Connect interface.
type logHandler struct {
	svc transport.LogService
}

func handle[Req, Res any](ctx context.Context, call func(context.Context, *Req) (*Res, error), req *connect.Request[Req]) (*connect.Response[Res], error) {
	res, err := call(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

func (h logHandler) Produce(ctx context.Context, req *connect.Request[logv1.ProduceRequest]) (*connect.Response[logv1.ProduceResponse], error) {
	return handle(ctx, h.svc.Produce, req)
}

func (h logHandler) ProduceBatch(ctx context.Context, req *connect.Request[logv1.ProduceBatchRequest]) (*connect.Response[logv1.ProduceBatchResponse], error) {
	return handle(ctx, h.svc.ProduceBatch, req)
}

// produceBatch is ProduceBatch for the request batchCodec decodes. A request batchCodec
// refused never gets here: interceptor, installed on every handler, answers it first.
func (h logHandler) produceBatch(ctx context.Context, req *connect.Request[batchRequest]) (*connect.Response[logv1.ProduceBatchResponse], error) {
	res, err := h.svc.ProduceBatch(ctx, &req.Msg.ProduceBatchRequest)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

func (h logHandler) Consume(ctx context.Context, req *connect.Request[logv1.ConsumeRequest]) (*connect.Response[logv1.ConsumeResponse], error) {
	return handle(ctx, h.svc.Consume, req)
}

func (h logHandler) GetServers(ctx context.Context, req *connect.Request[logv1.GetServersRequest]) (*connect.Response[logv1.GetServersResponse], error) {
	return handle(ctx, h.svc.GetServers, req)
}

func (h logHandler) GetBounds(ctx context.Context, req *connect.Request[logv1.GetBoundsRequest]) (*connect.Response[logv1.GetBoundsResponse], error) {
	return handle(ctx, h.svc.GetBounds, req)
}

func (h logHandler) ConsumeStream(ctx context.Context, req *connect.Request[logv1.ConsumeRequest], stream *connect.ServerStream[logv1.ConsumeResponse]) error {
	return h.svc.ConsumeStream(ctx, req.Msg, headerStream[logv1.ConsumeResponse]{stream})
}

// headerStream is a connect.ServerStream that can send its headers alone (transport.HeaderSender).
type headerStream[Res any] struct {
	*connect.ServerStream[Res]
}

// SendHeader sends the response headers: connect-go's Send(nil) sends them with no message.
func (s headerStream[Res]) SendHeader() error { return s.Send(nil) }

func (h logHandler) ProduceStream(ctx context.Context, stream *connect.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	cork, _ := ctx.Value(corkKey{}).(*corkWriter)
	return h.svc.ProduceStream(ctx, bidiHandler{stream, cork, ctx})
}

// produce is Produce for the request batchCodec decodes. A request batchCodec refused never
// gets here: interceptor, installed on every handler, answers it first.
func (h logHandler) produce(ctx context.Context, req *connect.Request[recordRequest]) (*connect.Response[logv1.ProduceResponse], error) {
	res, err := h.svc.Produce(ctx, &req.Msg.ProduceRequest)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// produceStream is ProduceStream for the messages batchCodec decodes: a message it refused
// ends the stream with the refusal, as a message above the size bound does.
func (h logHandler) produceStream(ctx context.Context, stream *connect.BidiStream[recordRequest, logv1.ProduceResponse]) error {
	cork, _ := ctx.Value(corkKey{}).(*corkWriter)
	return h.svc.ProduceStream(ctx, bidiHandler{recordStream{stream}, cork, ctx})
}

// recordStream receives a ProduceStream's messages as batchCodec decoded them.
type recordStream struct {
	*connect.BidiStream[recordRequest, logv1.ProduceResponse]
}

func (s recordStream) Receive() (*logv1.ProduceRequest, error) {
	m, err := s.BidiStream.Receive()
	if err != nil {
		return nil, err
	}
	if m.refused != nil {
		return nil, toConnect(m.refused)
	}
	return &m.ProduceRequest, nil
}

// bidiHandler makes Receive return exactly io.EOF at the end of the
// client's messages, as transport.BidiStream promises, and sends batches of
// responses with one flush (SendBatch).
type bidiHandler struct {
	s    produceStreamConn
	cork *corkWriter // nil: every Send flushes
	ctx  context.Context
}

var _ transport.BatchSender[logv1.ProduceResponse] = bidiHandler{}

// produceStreamConn is the side of a ProduceStream bidiHandler uses: a
// *connect.BidiStream, or a recordStream.
type produceStreamConn interface {
	Receive() (*logv1.ProduceRequest, error)
	Send(*logv1.ProduceResponse) error
}

// SendBatch sends msgs, each its own message, and flushes once after the last.
func (b bidiHandler) SendBatch(msgs []*logv1.ProduceResponse) error {
	if b.cork == nil || len(msgs) < 2 {
		for _, m := range msgs {
			if err := b.s.Send(m); err != nil {
				return err
			}
		}
		return nil
	}
	b.cork.corked.Store(true)
	for _, m := range msgs {
		if err := b.s.Send(m); err != nil {
			b.cork.corked.Store(false)
			return err
		}
	}
	b.cork.corked.Store(false)
	return b.cork.flush()
}

// readAheadBody is the request body of a ProduceStream: connect-go reads each message with
// two or more small reads (its 5-byte prefix, then the message), and each read of an HTTP/2
// request body is a hop to the connection's serving goroutine (flow control). Reading ahead
// takes what has arrived at once, up to the buffer, so that a read serves many messages; it
// never waits for more than has arrived.
type readAheadBody struct {
	*bufio.Reader
	io.Closer
}

// readAheadBytes is a ProduceStream body's read-ahead buffer: an HTTP/2 frame's payload.
const readAheadBytes = 16 << 10

func newReadAheadBody(body io.ReadCloser) readAheadBody {
	return readAheadBody{Reader: bufio.NewReaderSize(body, readAheadBytes), Closer: body}
}

// corkWriter is the http.ResponseWriter of a ProduceStream: connect-go flushes after every
// message it sends (on HTTP/2, one frame write and a wait for the connection's writer each);
// while corked, those flushes are skipped and SendBatch flushes once.
type corkWriter struct {
	http.ResponseWriter
	corked atomic.Bool
}

// corkKey is the context key of a ProduceStream's *corkWriter.
type corkKey struct{}

func (w *corkWriter) Flush() {
	if !w.corked.Load() {
		_ = w.flush() // http.Flusher has no error; the next write reports a broken stream
	}
}

func (w *corkWriter) flush() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *corkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (b bidiHandler) Receive() (*logv1.ProduceRequest, error) {
	m, err := b.s.Receive()
	if err != nil && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		awaitReset(b.ctx, err, resetGrace)
	}
	return m, err
}

// resetGrace is how long a body's read error that connect-go could not name waits for the
// call's context to end (see awaitReset).
const resetGrace = 100 * time.Millisecond

// awaitReset waits, after err (the error of reading a stream's request body, which connect-go
// could not name: Unknown), up to grace for ctx to end. net/http's HTTP/2 server ends a reset
// stream's body with its error ("stream error: stream ID 3; CANCEL") and only then cancels the
// request's context, and connect-go names a reset Canceled only from a client's words ("…;
// received from peer"): a handler that looked at its context on such an error found it not
// yet ended, and answered the client's cancel with the read's error, Unknown in its account of
// the call. Once this returns, a client's reset has ended ctx (the handler reads ctx first).
func awaitReset(ctx context.Context, err error, grace time.Duration) {
	if ce, ok := errors.AsType[*connect.Error](err); ok && ce.Code() != connect.CodeUnknown {
		return
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (b bidiHandler) Send(r *logv1.ProduceResponse) error { return b.s.Send(r) }

// clusterHandler adapts a transport.ClusterService to the generated Connect interface.
type clusterHandler struct {
	svc transport.ClusterService
}

func (h clusterHandler) Join(ctx context.Context, req *connect.Request[logv1.JoinRequest]) (*connect.Response[logv1.JoinResponse], error) {
	return handle(ctx, h.svc.Join, req)
}

func (h clusterHandler) RemoveServer(ctx context.Context, req *connect.Request[logv1.RemoveServerRequest]) (*connect.Response[logv1.RemoveServerResponse], error) {
	return handle(ctx, h.svc.RemoveServer, req)
}

func (h clusterHandler) TransferLeadership(ctx context.Context, req *connect.Request[logv1.TransferLeadershipRequest]) (*connect.Response[logv1.TransferLeadershipResponse], error) {
	return handle(ctx, h.svc.TransferLeadership, req)
}

// topicsHandler adapts a transport.TopicsService to the generated Connect interface.
type topicsHandler struct {
	svc transport.TopicsService
}

func (h topicsHandler) CreateTopic(ctx context.Context, req *connect.Request[logv1.CreateTopicRequest]) (*connect.Response[logv1.CreateTopicResponse], error) {
	return handle(ctx, h.svc.CreateTopic, req)
}

func (h topicsHandler) DeleteTopic(ctx context.Context, req *connect.Request[logv1.DeleteTopicRequest]) (*connect.Response[logv1.DeleteTopicResponse], error) {
	return handle(ctx, h.svc.DeleteTopic, req)
}

func (h topicsHandler) ListTopics(ctx context.Context, req *connect.Request[logv1.ListTopicsRequest]) (*connect.Response[logv1.ListTopicsResponse], error) {
	return handle(ctx, h.svc.ListTopics, req)
}

func (h topicsHandler) DescribeTopic(ctx context.Context, req *connect.Request[logv1.DescribeTopicRequest]) (*connect.Response[logv1.DescribeTopicResponse], error) {
	return handle(ctx, h.svc.DescribeTopic, req)
}

func (h topicsHandler) AlterTopicConfig(ctx context.Context, req *connect.Request[logv1.AlterTopicConfigRequest]) (*connect.Response[logv1.AlterTopicConfigResponse], error) {
	return handle(ctx, h.svc.AlterTopicConfig, req)
}

func (h topicsHandler) InitProducer(ctx context.Context, req *connect.Request[logv1.InitProducerRequest]) (*connect.Response[logv1.InitProducerResponse], error) {
	return handle(ctx, h.svc.InitProducer, req)
}

// newOtelInterceptor builds the otelconnect interceptor t describes;
// server says whether t's PublicEndpoint applies.
func newOtelInterceptor(t *transport.Telemetry, server bool) (connect.Interceptor, error) {
	tp, mp, prop := t.Providers()
	opts := []otelconnect.Option{
		otelconnect.WithTracerProvider(tp),
		otelconnect.WithMeterProvider(mp),
		otelconnect.WithPropagator(prop),
	}
	if !server || !t.PublicEndpoint {
		opts = append(opts, otelconnect.WithTrustRemote())
	}
	if t.WithoutMetrics {
		opts = append(opts, otelconnect.WithoutMetrics()) // it builds attribute sets even for a no-op meter
	}
	ic, err := otelconnect.NewInterceptor(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: telemetry: %w", transport.ErrInvalidConfig, err)
	}
	return ic, nil
}

// groupsHandler adapts a transport.GroupsService to the generated Connect interface.
type groupsHandler struct {
	svc transport.GroupsService
}

func (h groupsHandler) Heartbeat(ctx context.Context, req *connect.Request[logv1.HeartbeatRequest]) (*connect.Response[logv1.HeartbeatResponse], error) {
	return handle(ctx, h.svc.Heartbeat, req)
}

func (h groupsHandler) CommitOffsets(ctx context.Context, req *connect.Request[logv1.CommitOffsetsRequest]) (*connect.Response[logv1.CommitOffsetsResponse], error) {
	return handle(ctx, h.svc.CommitOffsets, req)
}

func (h groupsHandler) FetchOffsets(ctx context.Context, req *connect.Request[logv1.FetchOffsetsRequest]) (*connect.Response[logv1.FetchOffsetsResponse], error) {
	return handle(ctx, h.svc.FetchOffsets, req)
}

func (h groupsHandler) ListGroups(ctx context.Context, req *connect.Request[logv1.ListGroupsRequest]) (*connect.Response[logv1.ListGroupsResponse], error) {
	return handle(ctx, h.svc.ListGroups, req)
}

func (h groupsHandler) DescribeGroup(ctx context.Context, req *connect.Request[logv1.DescribeGroupRequest]) (*connect.Response[logv1.DescribeGroupResponse], error) {
	return handle(ctx, h.svc.DescribeGroup, req)
}

func (h groupsHandler) DeleteGroup(ctx context.Context, req *connect.Request[logv1.DeleteGroupRequest]) (*connect.Response[logv1.DeleteGroupResponse], error) {
	return handle(ctx, h.svc.DeleteGroup, req)
}

func (h groupsHandler) ResetOffsets(ctx context.Context, req *connect.Request[logv1.ResetOffsetsRequest]) (*connect.Response[logv1.ResetOffsetsResponse], error) {
	return handle(ctx, h.svc.ResetOffsets, req)
}

func (h groupsHandler) ListOffsets(ctx context.Context, req *connect.Request[logv1.ListOffsetsRequest]) (*connect.Response[logv1.ListOffsetsResponse], error) {
	return handle(ctx, h.svc.ListOffsets, req)
}

// mediaType returns ct's media type without its parameters, surrounding spaces and case:
// "Application/JSON; charset=utf-8" is "application/json". Every check of a request's
// Content-Type here goes through it, so a request's header is parsed once.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// knownMediaType reports whether mt (a media type from mediaType) may be one that the Connect,
// gRPC and gRPC-Web handlers take (they decide; this only has to let every one of theirs
// through): application/json or application/proto (Connect unary), or
// application/connect+*, application/grpc, application/grpc+*, application/grpc-web,
// application/grpc-web+*. A prefix alone is not enough: application/protobuf is not taken.
func knownMediaType(mt string) bool {
	switch mt {
	case "application/json", "application/proto", "application/grpc", "application/grpc-web":
		return true
	}
	for _, p := range []string{"application/connect+", "application/grpc+", "application/grpc-web+"} {
		if strings.HasPrefix(mt, p) {
			return true
		}
	}
	return false
}

// enveloped reports whether mt (a media type from mediaType) is one whose request body is a
// sequence of 5-byte-prefixed messages: gRPC, gRPC-Web and Connect streaming.
func enveloped(mt string) bool {
	return mt == "application/grpc" || mt == "application/grpc-web" ||
		strings.HasPrefix(mt, "application/grpc+") || strings.HasPrefix(mt, "application/grpc-web+") ||
		strings.HasPrefix(mt, "application/connect+")
}

// envelopeBody is an enveloped request body that follows its messages' prefixes, so that a body
// ending inside a message (a prefix cut short, or a length beyond what was sent) is answered
// InvalidArgument, the client's mistake (DESIGN.md §2: malformed), saying so. connect-go calls
// it Internal ("protocol error: incomplete envelope"), as it would a server's truncated answer.
type envelopeBody struct {
	io.ReadCloser
	prefix [5]byte
	got    int    // bytes of the current prefix read, 0 to 4
	size   uint32 // the current message's length, once its prefix is read
	left   uint32 // bytes of the current message still to come
}

func (b *envelopeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.follow(p[:n])
	if errors.Is(err, io.EOF) && (b.got > 0 || b.left > 0) {
		if b.got > 0 {
			err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
				"malformed request: the request ended inside a message: %d of its 5-byte prefix sent", b.got))
		} else {
			err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
				"malformed request: the request ended inside a message: its prefix promised %d bytes, %d sent",
				b.size, b.size-b.left))
		}
	}
	return n, err
}

// follow moves b's position in the message sequence over p, the bytes just read.
func (b *envelopeBody) follow(p []byte) {
	for len(p) > 0 {
		if b.left > 0 {
			k := uint32(min(uint64(len(p)), uint64(b.left)))
			b.left -= k
			p = p[k:]
			continue
		}
		k := copy(b.prefix[b.got:], p)
		b.got += k
		p = p[k:]
		if b.got == len(b.prefix) {
			b.got = 0
			b.size = binary.BigEndian.Uint32(b.prefix[1:])
			b.left = b.size
		}
	}
}

// needsHint reports whether connect-go may refuse r (a call of a log.v1 procedure, a stream
// or not) with a bare status: 405 for a method other than POST, 505 for a bidirectional stream
// over HTTP/1.1, 415 for a content type it does not take, or one of the other kind of call
// (Connect's unary application/json to a stream, application/connect+json to a unary
// method). Only those requests get a mediaTypeHint; the others run unwrapped.
func needsHint(r *http.Request, stream bool) bool {
	ct := r.Header.Get("Content-Type")
	mt := mediaType(ct)
	// A known type with parameters (charset=latin1) may be refused too: connect-go takes
	// charset=utf-8 alone.
	if r.Method != http.MethodPost || !knownMediaType(mt) || strings.Contains(ct, ";") ||
		(r.ProtoMajor < 2 && r.URL.Path == logv1connect.LogProduceStreamProcedure) {
		return true
	}
	if stream {
		return mt == "application/json" || mt == "application/proto"
	}
	return strings.HasPrefix(mt, "application/connect+")
}

// mediaTypeHint adds a body to the handler's empty refusals of a call it cannot take, saying
// what to send instead: 415 (Unsupported Media Type: curl's -d sends
// application/x-www-form-urlencoded), 405 (Method Not Allowed: a GET) and 505 (HTTP Version
// Not Supported: a bidirectional stream over HTTP/1.1). A bare status leaves its user
// guessing.
type mediaTypeHint struct {
	http.ResponseWriter
	r      *http.Request
	stream bool
}

func (w *mediaTypeHint) WriteHeader(code int) {
	var msg string
	ct := w.r.Header.Get("Content-Type")
	switch code {
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("%s takes POST, not %s: send Connect JSON with "+
			"curl -H 'Content-Type: application/json' -d '{...}'", w.r.URL.Path, w.r.Method)
	case http.StatusHTTPVersionNotSupported:
		msg = fmt.Sprintf("%s is a bidirectional stream: it needs HTTP/2, not %s "+
			"(curl --http2-prior-knowledge over plaintext, or TLS)", w.r.URL.Path, w.r.Proto)
	case http.StatusUnsupportedMediaType:
		mt := mediaType(ct)
		switch {
		case w.stream && (mt == "application/json" || mt == "application/proto"):
			msg = fmt.Sprintf("unsupported Content-Type %q: %s is a stream: send Connect streaming "+
				"(Content-Type: application/connect+json or application/connect+proto, each message "+
				"enveloped), gRPC or gRPC-Web; application/json and application/proto are for unary calls", ct, w.r.URL.Path)
		case mt == "application/grpc-web-text" || strings.HasPrefix(mt, "application/grpc-web-text+"):
			msg = fmt.Sprintf("unsupported Content-Type %q: gRPC-Web's text mode (base64 bodies) is not served: "+
				"send binary gRPC-Web (Content-Type: application/grpc-web+proto; grpc-web's mode=grpcweb, "+
				"which streams servers too), or use a Connect client (connect-web)", ct)
		case !w.stream && strings.HasPrefix(mt, "application/connect+"):
			msg = fmt.Sprintf("unsupported Content-Type %q: %s is a unary call: send Content-Type: "+
				"application/json or application/proto; application/connect+* is for streams", ct, w.r.URL.Path)
		case knownMediaType(mt):
			msg = fmt.Sprintf("unsupported Content-Type %q: of its parameters only charset=utf-8 is taken: "+
				"send Content-Type: %s", ct, mt)
		default:
			msg = fmt.Sprintf("unsupported Content-Type %q: send Connect JSON with "+
				"Content-Type: application/json (curl -H 'Content-Type: application/json'), or "+
				"application/proto; gRPC and gRPC-Web clients set their own", ct)
		}
	default:
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.ResponseWriter.WriteHeader(code)
	_, _ = fmt.Fprintln(w.ResponseWriter, msg)
}

// Flush lets a stream flush through the wrapper (connect-go requires an http.Flusher).
func (w *mediaTypeHint) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the server's writer.
func (w *mediaTypeHint) Unwrap() http.ResponseWriter { return w.ResponseWriter }
