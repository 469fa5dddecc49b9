package connect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/gen/log/v1/logv1connect"
	"github.com/commitlog-go/commitlog/transport/internal/certask"
	"github.com/commitlog-go/commitlog/transport/internal/lifecycle"
)

// idleConnTimeout closes client connections that carried no call for
// this long.
const idleConnTimeout = 90 * time.Second

// ClientConfig is the shared client configuration; see transport.ClientConfig.
type ClientConfig = transport.ClientConfig

// Protocol is the wire protocol a Client speaks.
type Protocol int

// The protocols connect-go clients speak. All use binary protobuf.
const (
	// ProtocolConnect is the Connect protocol (unary calls are plain HTTP POSTs).
	ProtocolConnect Protocol = iota
	// ProtocolGRPC is gRPC over HTTP/2.
	ProtocolGRPC
	// ProtocolGRPCWeb is gRPC-Web.
	ProtocolGRPCWeb
)

// String returns the protocol's name as connect-go spells it.
func (p Protocol) String() string {
	switch p {
	case ProtocolConnect:
		return connect.ProtocolConnect
	case ProtocolGRPC:
		return connect.ProtocolGRPC
	case ProtocolGRPCWeb:
		return connect.ProtocolGRPCWeb
	}
	return fmt.Sprintf("protocol(%d)", int(p))
}

// Client calls one server over HTTP/2 (h2c when plaintext). It implements
// transport.Client; all its methods are safe for concurrent use and every
// error they return is a *transport.Error.
type Client struct {
	http    *http.Transport
	conns   *connSet // every connection http dialed, for Close
	log     logv1connect.LogClient
	cluster logv1connect.ClusterClient
	topics  logv1connect.TopicsClient
	groups  logv1connect.GroupsClient
	closed  *lifecycle.Stopper // every call's context is bound to it
	// certAsked is set when a server asked for a client certificate the client has none of.
	certAsked *certask.Probe
}

var (
	_ transport.Client        = (*Client)(nil)
	_ transport.TopicsClient  = (*Client)(nil)
	_ transport.GroupsClient  = (*Client)(nil)
	_ transport.NewClientFunc = NewClient
)

// NewClient returns a client speaking the Connect protocol to the server at
// addr ("host:port"). It does not connect until the first call. An error
// means the configuration or address is unusable.
func NewClient(addr string, cfg ClientConfig) (transport.Client, error) {
	return NewClientProtocol(addr, cfg, ProtocolConnect)
}

// NewClientProtocol is NewClient speaking protocol p.
func NewClientProtocol(addr string, cfg ClientConfig, p Protocol) (*Client, error) {
	cfg = cfg.WithDefaults()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("transport/connect: client address %q: %w", addr, err)
	}
	conns := &connSet{conns: map[*trackedConn]struct{}{}}
	certAsked := new(certask.Probe)
	tr := &http.Transport{
		Proxy:             nil,
		ForceAttemptHTTP2: true,
		IdleConnTimeout:   idleConnTimeout,
		TLSClientConfig:   certAsked.Config(cfg.TLS),
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: cfg.KeepaliveTime,
			PingTimeout:     cfg.KeepaliveTimeout,
		},
		DialContext: conns.dial(&net.Dialer{KeepAlive: cfg.KeepaliveTime}),
	}
	tr.Protocols = new(http.Protocols)
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetUnencryptedHTTP2(true)
		conns.headersHold = headersHold
	}
	opts := []connect.ClientOption{
		connect.WithReadMaxBytes(cfg.MaxMessageBytes + transport.ResponseOverhead),
		connect.WithSendMaxBytes(cfg.MaxMessageBytes),
	}
	switch p {
	case ProtocolConnect:
	case ProtocolGRPC:
		opts = append(opts, connect.WithGRPC())
	case ProtocolGRPCWeb:
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("%w: unknown protocol %d", transport.ErrInvalidConfig, int(p))
	}
	if cfg.Telemetry != nil {
		ic, err := newOtelInterceptor(cfg.Telemetry, false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, connect.WithInterceptors(ic))
	}
	hc := &http.Client{Transport: coalescingTransport{tr}}
	return &Client{
		closed:    lifecycle.NewStopper(),
		certAsked: certAsked,
		http:      tr,
		conns:     conns,
		log:       logv1connect.NewLogClient(hc, scheme+addr, opts...),
		cluster:   logv1connect.NewClusterClient(hc, scheme+addr, opts...),
		topics:    logv1connect.NewTopicsClient(hc, scheme+addr, opts...),
		groups:    logv1connect.NewGroupsClient(hc, scheme+addr, opts...),
	}, nil
}

// Close cancels the calls in flight and closes the client's connections;
// later calls fail with Canceled. See transport.Client.
func (c *Client) Close() error {
	if c.closed.Stop() {
		c.http.CloseIdleConnections()
		c.conns.closeAll()
	}
	return nil
}

// connSet holds the connections a Client dialed, so that Close ends every one of them:
// CloseIdleConnections leaves a connection that still carries a stream, as one does for a
// moment after its call was cancelled (net/http ends the stream in the background), and a
// connection to a server that went silent would then stay open, with the goroutine reading it,
// until the idle timeout.
type connSet struct {
	// headersHold, when not 0 (plaintext connections), makes each connection a headersConn:
	// a request's HEADERS frame goes out with its body, in one write.
	headersHold time.Duration

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// dialer is what connSet dials with (a *net.Dialer; tests count the writes beneath).
type dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

func (s *connSet) dial(d dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.headersHold > 0 {
			c = newHeadersConn(c, s.headersHold)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &trackedConn{Conn: c, set: s}
		s.conns[tc] = struct{}{}
		return tc, nil
	}
}

// closeAll closes every connection held, and any dialed later.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.closed = nil, true
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set *connSet
	// answered is set once the server sent a byte (its preface, over plaintext).
	answered atomic.Bool
	// hungUp is set when the server closed or reset the connection before sending a byte.
	hungUp atomic.Bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.answered.Load() {
		c.answered.Store(true)
	}
	if err != nil && !c.answered.Load() && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		c.hungUp.Store(true)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && !c.answered.Load() && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		c.hungUp.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

func unary[Req, Res any](c *Client, ctx context.Context, call func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	ctx, cancel := c.closed.Bind(ctx)
	defer cancel()
	creq := connect.NewRequest(req)
	if subject, ok := transport.ForwardedForFromContext(ctx); ok {
		creq.Header().Set(transport.ForwardedForHeader, subject)
	}
	var sent sentTrace
	res, err := call(sent.context(ctx), creq)
	if err != nil {
		return nil, c.certAsked.Mark(sent.mark(fromConnect(err)))
	}
	return res.Msg, nil
}

// sentTrace tells a call that never got a connection (the dial or the TLS handshake did not
// complete: a server paused or partitioned away) from one that may have reached the server:
// only the first is certainly not proposed, and a caller may send a write again elsewhere.
// The request is written on a connection only after net/http reports it got one (GotConn),
// and a call that returned without one will not be sent later. It also keeps what explains a
// failed call: the plaintext connection it got, and whether the server answered as a gRPC-only
// server (see grpcOnly).
type sentTrace struct {
	gotConn atomic.Bool
	conn    atomic.Pointer[trackedConn] // the plaintext connection the call got
	// grpcOnly is set when the server refused the request's content type as grpc-go does.
	grpcOnly atomic.Bool
}

type sentTraceKey struct{}

func (t *sentTrace) context(ctx context.Context) context.Context {
	ctx = context.WithValue(ctx, sentTraceKey{}, t)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			t.gotConn.Store(true)
			if c, ok := info.Conn.(*trackedConn); ok {
				t.conn.Store(c)
			}
		},
	})
}

// mark adds the NotProposed detail to err when the call never got a connection, and to its
// chain transport.ErrClosedInPreface when the server closed a plaintext connection without
// sending a byte, or transport.ErrGRPCOnly when it answered as a gRPC-only server.
func (t *sentTrace) mark(err error) error {
	te, ok := err.(*transport.Error)
	if !ok {
		return err
	}
	if !t.gotConn.Load() {
		te = te.WithNotProposed("no connection to the server: the request was not sent")
	}
	switch {
	case t.grpcOnly.Load():
		te = te.WithCause(errors.Join(transport.ErrGRPCOnly, te.Unwrap()))
	case te.Code() == transport.Unavailable:
		// net/http reports this as io.ErrUnexpectedEOF, or as "http2: client conn could not
		// be established" when the connection ended before the request was queued on it: the
		// connection itself says what happened.
		if c := t.conn.Load(); c != nil && c.hungUp.Load() {
			te = te.WithCause(errors.Join(transport.ErrClosedInPreface, te.Unwrap()))
		}
	}
	return te
}

// noteGRPCOnly marks the call's sentTrace when res refused req's content type as a server that
// speaks gRPC only does: grpc-go answers a request that is not gRPC with HTTP 415 and a gRPC
// content type, which connect-go reports as an Unknown error "415 Unsupported Media Type".
func noteGRPCOnly(req *http.Request, res *http.Response) {
	if res.StatusCode != http.StatusUnsupportedMediaType || !isGRPC(res.Header.Get("Content-Type")) || isGRPC(req.Header.Get("Content-Type")) {
		return
	}
	if t, ok := req.Context().Value(sentTraceKey{}).(*sentTrace); ok {
		t.grpcOnly.Store(true)
	}
}

// isGRPC reports whether contentType is gRPC's (application/grpc, application/grpc+proto, ...),
// not gRPC-Web's.
func isGRPC(contentType string) bool {
	return contentType == "application/grpc" || strings.HasPrefix(contentType, "application/grpc+") ||
		strings.HasPrefix(contentType, "application/grpc;")
}

// Produce calls log.v1.Log/Produce.
func (c *Client) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	return unary(c, ctx, c.log.Produce, req)
}

// ProduceBatch calls log.v1.Log/ProduceBatch.
func (c *Client) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	return unary(c, ctx, c.log.ProduceBatch, req)
}

// Consume calls log.v1.Log/Consume.
func (c *Client) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	return unary(c, ctx, c.log.Consume, req)
}

// GetServers calls log.v1.Log/GetServers.
func (c *Client) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	return unary(c, ctx, c.log.GetServers, req)
}

// GetBounds calls log.v1.Log/GetBounds.
func (c *Client) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	return unary(c, ctx, c.log.GetBounds, req)
}

// Join calls log.v1.Cluster/Join.
func (c *Client) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	return unary(c, ctx, c.cluster.Join, req)
}

// RemoveServer calls log.v1.Cluster/RemoveServer.
func (c *Client) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	return unary(c, ctx, c.cluster.RemoveServer, req)
}

// TransferLeadership calls log.v1.Cluster/TransferLeadership.
func (c *Client) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	return unary(c, ctx, c.cluster.TransferLeadership, req)
}

// ConsumeStream opens log.v1.Log/ConsumeStream; see transport.Client.
func (c *Client) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest) (transport.ClientStream[logv1.ConsumeResponse], error) {
	ctx, cancel := c.closed.Bind(ctx)
	s, err := c.log.ConsumeStream(ctx, connect.NewRequest(req))
	if err != nil {
		cancel()
		return nil, c.certAsked.Mark(fromConnect(err))
	}
	return &serverStream{s: s, ctx: ctx, cancel: cancel, certAsked: c.certAsked}, nil
}

// ProduceStream opens log.v1.Log/ProduceStream; see transport.Client.
func (c *Client) ProduceStream(ctx context.Context) (transport.BidiClientStream[logv1.ProduceRequest, logv1.ProduceResponse], error) {
	ctx, cancel := c.closed.Bind(ctx)
	return &bidiStream{s: c.log.ProduceStream(ctx), cancel: cancel, certAsked: c.certAsked}, nil
}

type serverStream struct {
	s         *connect.ServerStreamForClient[logv1.ConsumeResponse]
	ctx       context.Context // the stream's: cancelled by the caller, Close or the client's Close
	cancel    context.CancelFunc
	once      sync.Once
	certAsked *certask.Probe
}

func (s *serverStream) Receive() (*logv1.ConsumeResponse, error) {
	// What the response body had buffered is not handed out once the stream's context
	// ended (as for grpc-go's client).
	if err := s.ctx.Err(); err != nil {
		return nil, fromConnect(err)
	}
	if s.s.Receive() {
		return s.s.Msg(), nil
	}
	if err := s.s.Err(); err != nil {
		return nil, s.certAsked.Mark(fromConnect(err))
	}
	return nil, io.EOF
}

func (s *serverStream) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.s.Close()
	})
	return nil
}

type bidiStream struct {
	s         *connect.BidiStreamForClient[logv1.ProduceRequest, logv1.ProduceResponse]
	cancel    context.CancelFunc
	once      sync.Once
	certAsked *certask.Probe
}

// Send returns io.EOF when the stream broke; Receive then gives the status.
func (b *bidiStream) Send(m *logv1.ProduceRequest) error {
	err := b.s.Send(m)
	if err != nil && errors.Is(err, io.EOF) {
		return io.EOF
	}
	return fromConnect(err)
}

func (b *bidiStream) CloseSend() error { return fromConnect(b.s.CloseRequest()) }

func (b *bidiStream) Receive() (*logv1.ProduceResponse, error) {
	m, err := b.s.Receive()
	if err != nil {
		return nil, b.certAsked.Mark(fromConnect(err))
	}
	return m, nil
}

func (b *bidiStream) Close() error {
	b.once.Do(func() {
		b.cancel()
		b.s.CloseRequest()
		b.s.CloseResponse()
	})
	return nil
}

// CreateTopic calls log.v1.Topics/CreateTopic.
func (c *Client) CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	return unary(c, ctx, c.topics.CreateTopic, req)
}

// DeleteTopic calls log.v1.Topics/DeleteTopic.
func (c *Client) DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	return unary(c, ctx, c.topics.DeleteTopic, req)
}

// ListTopics calls log.v1.Topics/ListTopics.
func (c *Client) ListTopics(ctx context.Context, req *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error) {
	return unary(c, ctx, c.topics.ListTopics, req)
}

// DescribeTopic calls log.v1.Topics/DescribeTopic.
func (c *Client) DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	return unary(c, ctx, c.topics.DescribeTopic, req)
}

// AlterTopicConfig calls log.v1.Topics/AlterTopicConfig.
func (c *Client) AlterTopicConfig(ctx context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error) {
	return unary(c, ctx, c.topics.AlterTopicConfig, req)
}

// InitProducer calls log.v1.Topics/InitProducer.
func (c *Client) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	return unary(c, ctx, c.topics.InitProducer, req)
}

// Heartbeat calls log.v1.Groups/Heartbeat.
func (c *Client) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	return unary(c, ctx, c.groups.Heartbeat, req)
}

// CommitOffsets calls log.v1.Groups/CommitOffsets.
func (c *Client) CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	return unary(c, ctx, c.groups.CommitOffsets, req)
}

// FetchOffsets calls log.v1.Groups/FetchOffsets.
func (c *Client) FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return unary(c, ctx, c.groups.FetchOffsets, req)
}

// ListGroups calls log.v1.Groups/ListGroups.
func (c *Client) ListGroups(ctx context.Context, req *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	return unary(c, ctx, c.groups.ListGroups, req)
}

// DescribeGroup calls log.v1.Groups/DescribeGroup.
func (c *Client) DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	return unary(c, ctx, c.groups.DescribeGroup, req)
}

// DeleteGroup calls log.v1.Groups/DeleteGroup.
func (c *Client) DeleteGroup(ctx context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	return unary(c, ctx, c.groups.DeleteGroup, req)
}

// ResetOffsets calls log.v1.Groups/ResetOffsets.
func (c *Client) ResetOffsets(ctx context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	return unary(c, ctx, c.groups.ResetOffsets, req)
}

// ListOffsets calls log.v1.Groups/ListOffsets.
func (c *Client) ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	return unary(c, ctx, c.groups.ListOffsets, req)
}
