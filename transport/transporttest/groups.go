package transporttest

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// groupsService is a log.v1.Groups that answers every join with the same assignment and
// refuses every commit with a stale-epoch GroupError: enough to check that requests, answers
// and the error detail cross the wire.
type groupsService struct{}

func (groupsService) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	if req.GetGroup() == "" {
		return nil, transport.Errorf(transport.InvalidArgument, "no group").WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_INVALID})
	}
	return &logv1.HeartbeatResponse{MemberId: "m-1", MemberEpoch: req.GetMemberEpoch() + 1, HeartbeatIntervalMs: 500,
		Assignment: []*logv1.TopicPartitions{{Topic: req.GetTopics()[0], Partitions: []uint32{0, 2}}}}, nil
}

func (groupsService) CommitOffsets(_ context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	return nil, transport.Errorf(transport.FailedPrecondition, "stale epoch").WithGroupError(&logv1.GroupError{
		Reason: logv1.GroupError_REASON_STALE_MEMBER_EPOCH, Group: req.GetGroup(), MemberId: req.GetMemberId(), MemberEpoch: req.GetMemberEpoch() + 1})
}

func (groupsService) FetchOffsets(context.Context, *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	return &logv1.FetchOffsetsResponse{Offsets: []*logv1.CommittedOffset{{Topic: "t", Partition: 1, Offset: 7, Metadata: "m"}}}, nil
}

func (groupsService) ListGroups(context.Context, *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	return &logv1.ListGroupsResponse{Groups: []*logv1.GroupSummary{{Name: "g", State: "stable", Members: 1}}}, nil
}

func (groupsService) DescribeGroup(_ context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	return &logv1.DescribeGroupResponse{Group: req.GetGroup(), State: "empty"}, nil
}

func (groupsService) DeleteGroup(_ context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	return nil, transport.Errorf(transport.NotFound, "no group %q", req.GetGroup()).WithGroupError(&logv1.GroupError{Reason: logv1.GroupError_REASON_UNKNOWN_GROUP, Group: req.GetGroup()})
}

func (groupsService) ResetOffsets(_ context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	return &logv1.ResetOffsetsResponse{Offsets: []*logv1.OffsetReset{{Topic: req.GetTopic(), NewOffset: req.GetToOffset()}}}, nil
}

func (groupsService) ListOffsets(_ context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	return &logv1.ListOffsetsResponse{Offsets: []*logv1.PartitionOffset{{Partition: 0, Offset: uint64(req.GetTimestampMs())}}}, nil
}

func testGroups(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{Groups: groupsService{}})
	c, ok := Dial(t, h, s.Addr, transport.ClientConfig{}).(transport.GroupsClient)
	if !ok {
		t.Fatal("the client is not a transport.GroupsClient")
	}
	ctx := ctxT(t)
	hb, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", Topics: []string{"t"}})
	want := &logv1.HeartbeatResponse{MemberId: "m-1", MemberEpoch: 1, HeartbeatIntervalMs: 500, Assignment: []*logv1.TopicPartitions{{Topic: "t", Partitions: []uint32{0, 2}}}}
	if err != nil || !proto.Equal(hb, want) {
		t.Fatalf("Heartbeat = %v, %v; want %v", hb, err, want)
	}
	_, err = c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m-1", MemberEpoch: 1})
	wantCode(t, "CommitOffsets", err, transport.FailedPrecondition)
	d, ok := transport.GroupErrorDetail(err)
	if !ok || !proto.Equal(d, &logv1.GroupError{Reason: logv1.GroupError_REASON_STALE_MEMBER_EPOCH, Group: "g", MemberId: "m-1", MemberEpoch: 2}) {
		t.Fatalf("CommitOffsets detail = %v, %v", d, ok)
	}
	_, err = c.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "x"})
	if transport.CodeOf(err) != transport.NotFound || transport.GroupErrorReason(err) != logv1.GroupError_REASON_UNKNOWN_GROUP {
		t.Fatalf("DeleteGroup: %v (reason %v)", err, transport.GroupErrorReason(err))
	}
	if _, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{}); transport.GroupErrorReason(err) != logv1.GroupError_REASON_INVALID {
		t.Fatalf("Heartbeat without a group: %v", err)
	}
	if r, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"}); err != nil || r.GetOffsets()[0].GetOffset() != 7 {
		t.Fatalf("FetchOffsets = %v, %v", r, err)
	}
	if r, err := c.ListGroups(ctx, &logv1.ListGroupsRequest{}); err != nil || r.GetGroups()[0].GetName() != "g" {
		t.Fatalf("ListGroups = %v, %v", r, err)
	}
	if r, err := c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"}); err != nil || r.GetState() != "empty" {
		t.Fatalf("DescribeGroup = %v, %v", r, err)
	}
	if r, err := c.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "t", Verb: &logv1.ResetOffsetsRequest_ToOffset{ToOffset: 9}}); err != nil || r.GetOffsets()[0].GetNewOffset() != 9 {
		t.Fatalf("ResetOffsets = %v, %v", r, err)
	}
	if r, err := c.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: "t", Spec: &logv1.ListOffsetsRequest_TimestampMs{TimestampMs: 5}}); err != nil || r.GetOffsets()[0].GetOffset() != 5 {
		t.Fatalf("ListOffsets = %v, %v", r, err)
	}

	// A server without a Groups service answers Unimplemented.
	s2 := Start(t, h, transport.ServerConfig{})
	c2 := Dial(t, h, s2.Addr, transport.ClientConfig{}).(transport.GroupsClient)
	_, err = c2.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g"})
	wantCode(t, "Heartbeat without Groups", err, transport.Unimplemented)
}
