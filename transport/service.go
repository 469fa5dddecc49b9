package transport

import (
	"context"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Full method names, as the Interceptor sees them and as they appear on the
// wire (gRPC :path, Connect URL path).
const (
	MethodProduce            = "/log.v1.Log/Produce"
	MethodConsume            = "/log.v1.Log/Consume"
	MethodConsumeStream      = "/log.v1.Log/ConsumeStream"
	MethodProduceStream      = "/log.v1.Log/ProduceStream"
	MethodGetServers         = "/log.v1.Log/GetServers"
	MethodProduceBatch       = "/log.v1.Log/ProduceBatch"
	MethodGetBounds          = "/log.v1.Log/GetBounds"
	MethodJoin               = "/log.v1.Cluster/Join"
	MethodRemoveServer       = "/log.v1.Cluster/RemoveServer"
	MethodTransferLeadership = "/log.v1.Cluster/TransferLeadership"
	MethodCreateTopic        = "/log.v1.Topics/CreateTopic"
	MethodDeleteTopic        = "/log.v1.Topics/DeleteTopic"
	MethodListTopics         = "/log.v1.Topics/ListTopics"
	MethodDescribeTopic      = "/log.v1.Topics/DescribeTopic"
	MethodAlterTopicConfig   = "/log.v1.Topics/AlterTopicConfig"
	MethodInitProducer       = "/log.v1.Topics/InitProducer"
	MethodHeartbeat          = "/log.v1.Groups/Heartbeat"
	MethodCommitOffsets      = "/log.v1.Groups/CommitOffsets"
	MethodFetchOffsets       = "/log.v1.Groups/FetchOffsets"
	MethodListGroups         = "/log.v1.Groups/ListGroups"
	MethodDescribeGroup      = "/log.v1.Groups/DescribeGroup"
	MethodDeleteGroup        = "/log.v1.Groups/DeleteGroup"
	MethodResetOffsets       = "/log.v1.Groups/ResetOffsets"
	MethodListOffsets        = "/log.v1.Groups/ListOffsets"
)

// ServerStream is the sending side of a server-streaming RPC, as a handler
// sees it. Send blocks until the message is handed to the transport (flow
// control may hold it); it returns an error once the client has gone or the
// stream's context is done, after which the handler should return. Send is
// not safe for concurrent use.
type ServerStream[Res any] interface {
	Send(*Res) error
}

// HeaderSender is implemented by the ServerStreams that can send the response headers before
// the first message. Call it through SendHeader.
type HeaderSender interface {
	SendHeader() error
}

// SendHeader sends s's response headers now, when s can (a HeaderSender), rather than with its
// first message: a stream that is to wait for its first message (a ConsumeStream at the log's
// end) is then answered at once, and neither a client waiting for the response nor a proxy
// timing its first byte takes the wait for a server that does not answer. Errors are Send's.
func SendHeader[Res any](s ServerStream[Res]) error {
	if h, ok := s.(HeaderSender); ok {
		return h.SendHeader()
	}
	return nil
}

// BidiStream is a bidirectional stream as a handler sees it. Receive returns
// the next client message, or io.EOF once the client closed its side, or
// another error when the stream broke. Receive and Send may be called from
// two different goroutines, but neither concurrently with itself.
type BidiStream[Req, Res any] interface {
	Receive() (*Req, error)
	Send(*Res) error
}

// BatchSender is implemented by the BidiStreams that can send several messages in fewer
// writes than one each: SendBatch sends msgs in order, each its own message on the wire as
// Send would, and flushes them together. Call it through SendBatch.
type BatchSender[Res any] interface {
	SendBatch(msgs []*Res) error
}

// SendBatch sends msgs on s in order: in one flush when s is a BatchSender, else one Send each.
func SendBatch[Req, Res any](s BidiStream[Req, Res], msgs []*Res) error {
	if b, ok := s.(BatchSender[Res]); ok {
		return b.SendBatch(msgs)
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// LogService is the server side of service log.v1.Log. The transport calls
// its methods concurrently, one goroutine per request; streaming methods own
// their stream until they return. Each ctx carries the request's deadline,
// its Peer (see PeerFromContext) and ends when the client cancels or the
// server stops. Errors should be *Error (see Errorf) to choose the code the
// client sees; any other error is sent as Unknown, or Canceled /
// DeadlineExceeded for the context errors.
type LogService interface {
	Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error)
	ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error)
	Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error)
	// ConsumeStream sends records from req.Offset on until ctx ends or Send fails.
	ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream ServerStream[logv1.ConsumeResponse]) error
	// ProduceStream answers every request with one response, in order,
	// until Receive returns io.EOF (return nil) or an error.
	ProduceStream(ctx context.Context, stream BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error
	GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error)
	GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error)
}

// ClusterService is the server side of service log.v1.Cluster, with the
// same calling contract as LogService.
type ClusterService interface {
	Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error)
	RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error)
	TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error)
}

// TopicsService is the server side of service log.v1.Topics, with the same
// calling contract as LogService. Optional: a server without it answers
// Unimplemented.
type TopicsService interface {
	CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error)
	DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error)
	ListTopics(ctx context.Context, req *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error)
	DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error)
	AlterTopicConfig(ctx context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error)
	InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error)
}

// GroupsService is the server side of service log.v1.Groups (consumer groups),
// with the same calling contract as LogService. Optional: a server without it
// answers Unimplemented.
type GroupsService interface {
	Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error)
	CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error)
	FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error)
	ListGroups(ctx context.Context, req *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error)
	DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error)
	DeleteGroup(ctx context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error)
	ResetOffsets(ctx context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error)
	ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error)
}

// GroupsClient is the caller's side of service log.v1.Groups. The clients of
// transport/grpc and transport/connect implement it besides Client; errors
// carry the GroupError detail (GroupErrorDetail).
type GroupsClient interface {
	GroupsService
}

// TopicsClient is the caller's side of service log.v1.Topics. The clients of
// transport/grpc and transport/connect implement it besides Client.
type TopicsClient interface {
	TopicsService
}

// ClientStream is the receiving side of a server-streaming RPC. Receive
// returns the next message, io.EOF when the server ended the stream with
// OK, or an *Error; once the stream's context has ended, it returns that
// (Canceled, DeadlineExceeded), never a message received before and still
// buffered. Close cancels the stream and releases its resources;
// it is idempotent and must be called once the caller is done. Receive is
// not safe for concurrent use; Close may be called from another goroutine
// to interrupt a blocked Receive.
type ClientStream[Res any] interface {
	Receive() (*Res, error)
	Close() error
}

// BidiClientStream is a bidirectional stream as a client sees it. Send
// sends one message (an error other than *Error means the stream broke: call
// Receive to learn the status). CloseSend tells the server no more messages
// come. Receive returns the next response, io.EOF after the server ended
// the stream with OK, or an *Error. Close cancels the stream; it is
// idempotent and must be called once the caller is done. Send and Receive
// may run in two goroutines, neither concurrently with itself.
type BidiClientStream[Req, Res any] interface {
	Send(*Req) error
	CloseSend() error
	Receive() (*Res, error)
	Close() error
}

// Client is the caller's side of services log.v1.Log and log.v1.Cluster,
// one connection (or pool) to one server. All methods are safe for
// concurrent use. Every error is an *Error (use CodeOf, NotLeaderDetail):
// the server's status, or Unavailable / DeadlineExceeded / Canceled for
// failures on this side. Streams end when their ctx ends.
type Client interface {
	Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error)
	ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error)
	Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error)
	ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest) (ClientStream[logv1.ConsumeResponse], error)
	ProduceStream(ctx context.Context) (BidiClientStream[logv1.ProduceRequest, logv1.ProduceResponse], error)
	GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error)
	GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error)
	Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error)
	RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error)
	TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error)
	// Close closes every connection the client opened, also one still
	// carrying a call; calls in flight and later calls fail with Canceled.
	// Idempotent.
	Close() error
}
