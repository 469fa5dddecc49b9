package grpc

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/internal/certask"
)

// ClientConfig is the shared client configuration; see transport.ClientConfig.
type ClientConfig = transport.ClientConfig

// Client calls one server over one gRPC connection (HTTP/2, multiplexed).
// It implements transport.Client; all its methods are safe for concurrent
// use and every error they return is a *transport.Error.
type Client struct {
	conn    *ggrpc.ClientConn
	log     logv1.LogClient
	cluster logv1.ClusterClient
	topics  logv1.TopicsClient
	groups  logv1.GroupsClient
	once    sync.Once
	err     error
	// certAsked is set when the server asked for a client certificate the client has none of.
	certAsked *certask.Probe
}

var (
	_ transport.Client        = (*Client)(nil)
	_ transport.TopicsClient  = (*Client)(nil)
	_ transport.GroupsClient  = (*Client)(nil)
	_ transport.NewClientFunc = NewClient
)

// NewClient returns a client for the server at addr ("host:port"). It does
// not connect: the connection is made on the first call and remade after
// failures. An error means the configuration or address is unusable.
func NewClient(addr string, cfg ClientConfig) (transport.Client, error) {
	cfg = cfg.WithDefaults()
	creds := insecure.NewCredentials()
	certAsked := new(certask.Probe)
	if cfg.TLS != nil {
		creds = credentials.NewTLS(certAsked.Config(cfg.TLS))
	}
	opts := []ggrpc.DialOption{
		ggrpc.WithTransportCredentials(creds),
		ggrpc.WithDefaultCallOptions(
			ggrpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes+transport.ResponseOverhead),
			ggrpc.MaxCallSendMsgSize(cfg.MaxMessageBytes),
		),
		ggrpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                cfg.KeepaliveTime,
			Timeout:             cfg.KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
	}
	if cfg.Telemetry != nil {
		opts = append(opts, ggrpc.WithStatsHandler(otelgrpc.NewClientHandler(otelOptions(cfg.Telemetry, false)...)))
	}
	conn, err := ggrpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("transport/grpc: client for %q: %w", addr, err)
	}
	return &Client{conn: conn, log: logv1.NewLogClient(conn), cluster: logv1.NewClusterClient(conn), topics: logv1.NewTopicsClient(conn), groups: logv1.NewGroupsClient(conn),
		certAsked: certAsked}, nil
}

// Close closes the connection; see transport.Client.
func (c *Client) Close() error {
	c.once.Do(func() { c.err = fromStatus(c.conn.Close()) })
	return c.err
}

func unary[Req, Res any](c *Client, ctx context.Context, call func(context.Context, *Req, ...ggrpc.CallOption) (*Res, error), req *Req) (*Res, error) {
	if subject, ok := transport.ForwardedForFromContext(ctx); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, transport.ForwardedForHeader, subject)
	}
	res, err := call(ctx, req)
	if err != nil {
		return nil, c.certAsked.Mark(fromStatus(err))
	}
	return res, nil
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
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.log.ConsumeStream(ctx, req)
	if err != nil {
		cancel()
		return nil, c.certAsked.Mark(fromStatus(err))
	}
	return &serverStream{s: s, ctx: ctx, cancel: cancel, certAsked: c.certAsked}, nil
}

// ProduceStream opens log.v1.Log/ProduceStream; see transport.Client.
func (c *Client) ProduceStream(ctx context.Context) (transport.BidiClientStream[logv1.ProduceRequest, logv1.ProduceResponse], error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.log.ProduceStream(ctx)
	if err != nil {
		cancel()
		return nil, c.certAsked.Mark(fromStatus(err))
	}
	return &bidiStream{s: s, cancel: cancel, certAsked: c.certAsked}, nil
}

type serverStream struct {
	s         ggrpc.ServerStreamingClient[logv1.ConsumeResponse]
	ctx       context.Context // the stream's: cancelled by the caller or Close
	cancel    context.CancelFunc
	certAsked *certask.Probe
}

func (s *serverStream) Receive() (*logv1.ConsumeResponse, error) {
	// grpc-go hands out the messages it had received before the stream's context ended,
	// picking between them and the cancellation at random: a caller that cancelled would
	// read on, for as many messages as the window held.
	if err := s.ctx.Err(); err != nil {
		return nil, fromStatus(err)
	}
	m, err := s.s.Recv()
	return m, s.certAsked.Mark(fromStatus(err))
}

func (s *serverStream) Close() error {
	s.cancel()
	return nil
}

type bidiStream struct {
	s         ggrpc.BidiStreamingClient[logv1.ProduceRequest, logv1.ProduceResponse]
	cancel    context.CancelFunc
	certAsked *certask.Probe
}

// Send returns io.EOF when the stream broke; Receive then gives the status.
func (b *bidiStream) Send(m *logv1.ProduceRequest) error { return fromStatus(b.s.Send(m)) }
func (b *bidiStream) CloseSend() error                   { return fromStatus(b.s.CloseSend()) }

func (b *bidiStream) Receive() (*logv1.ProduceResponse, error) {
	m, err := b.s.Recv()
	return m, b.certAsked.Mark(fromStatus(err))
}

func (b *bidiStream) Close() error {
	b.cancel()
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
