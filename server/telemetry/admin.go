package telemetry

import (
	"context"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// InstrumentTopics returns svc measured by m: every call's duration by RPC and status code
// (commitlog_request_duration_seconds), as InstrumentLog measures the Log and Cluster services.
// The result calls svc with the same arguments; a nil m returns svc.
func InstrumentTopics(svc transport.TopicsService, m *Metrics) transport.TopicsService {
	if m == nil || svc == nil {
		return svc
	}
	return &instrumentedTopics{svc: svc, m: m}
}

// InstrumentGroups is InstrumentTopics for the Groups service (consumer groups).
func InstrumentGroups(svc transport.GroupsService, m *Metrics) transport.GroupsService {
	if m == nil || svc == nil {
		return svc
	}
	return &instrumentedGroups{svc: svc, m: m}
}

// measured calls f measured as a call of r.
func measured[Req, Res any](m *Metrics, r rpc, ctx context.Context, req Req, f func(context.Context, Req) (Res, error)) (Res, error) {
	c := m.begin(ctx, r)
	defer c.panicked()
	res, err := f(ctx, req)
	c.end(err)
	return res, err
}

type instrumentedTopics struct {
	svc transport.TopicsService
	m   *Metrics
}

func (s *instrumentedTopics) CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	return measured(s.m, rpcCreateTopic, ctx, req, s.svc.CreateTopic)
}

func (s *instrumentedTopics) DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	return measured(s.m, rpcDeleteTopic, ctx, req, s.svc.DeleteTopic)
}

func (s *instrumentedTopics) ListTopics(ctx context.Context, req *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error) {
	return measured(s.m, rpcListTopics, ctx, req, s.svc.ListTopics)
}

func (s *instrumentedTopics) DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	return measured(s.m, rpcDescribeTopic, ctx, req, s.svc.DescribeTopic)
}

func (s *instrumentedTopics) AlterTopicConfig(ctx context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error) {
	return measured(s.m, rpcAlterTopicConfig, ctx, req, s.svc.AlterTopicConfig)
}

func (s *instrumentedTopics) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	return measured(s.m, rpcInitProducer, ctx, req, s.svc.InitProducer)
}

type instrumentedGroups struct {
	svc transport.GroupsService
	m   *Metrics
}

func (s *instrumentedGroups) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	return measured(s.m, rpcHeartbeat, ctx, req, s.svc.Heartbeat)
}

func (s *instrumentedGroups) CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	return measured(s.m, rpcCommitOffsets, ctx, req, s.svc.CommitOffsets)
}

func (s *instrumentedGroups) FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return measured(s.m, rpcFetchOffsets, ctx, req, s.svc.FetchOffsets)
}

func (s *instrumentedGroups) ListGroups(ctx context.Context, req *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	return measured(s.m, rpcListGroups, ctx, req, s.svc.ListGroups)
}

func (s *instrumentedGroups) DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	return measured(s.m, rpcDescribeGroup, ctx, req, s.svc.DescribeGroup)
}

func (s *instrumentedGroups) DeleteGroup(ctx context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	return measured(s.m, rpcDeleteGroup, ctx, req, s.svc.DeleteGroup)
}

func (s *instrumentedGroups) ResetOffsets(ctx context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	return measured(s.m, rpcResetOffsets, ctx, req, s.svc.ResetOffsets)
}

func (s *instrumentedGroups) ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	return measured(s.m, rpcListOffsets, ctx, req, s.svc.ListOffsets)
}
