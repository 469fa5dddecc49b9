package transporttest

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// followerTopics is a log.v1.Topics of a follower: DescribeTopic with require_leader is
// refused with NotLeader, as the real server refuses it; without, it is answered. Only
// DescribeTopic is implemented.
type followerTopics struct {
	transport.TopicsService
}

func (followerTopics) DescribeTopic(_ context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	if req.GetRequireLeader() {
		return nil, transport.NotLeaderError(transport.NotLeader{LeaderID: "n1", LeaderAddr: "10.0.0.1:8400"}, "not the leader")
	}
	return &logv1.DescribeTopicResponse{Topic: &logv1.Topic{Name: req.GetName(), Id: "local"}}, nil
}

// testDescribeTopicRequireLeader: DescribeTopicRequest.require_leader reaches the service, and
// its NotLeader refusal the client, over the transport (the SDK's Producer relies on both to
// describe topics on the leader only).
func testDescribeTopicRequireLeader(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{Topics: followerTopics{}})
	c, ok := Dial(t, h, s.Addr, transport.ClientConfig{}).(transport.TopicsClient)
	if !ok {
		t.Fatal("the client is not a transport.TopicsClient")
	}
	ctx := ctxT(t)
	if d, err := c.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t"}); err != nil || d.GetTopic().GetId() != "local" {
		t.Fatalf("DescribeTopic = %v, %v; want the follower's answer", d, err)
	}
	_, err := c.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t", RequireLeader: true})
	wantCode(t, "DescribeTopic with require_leader", err, transport.FailedPrecondition)
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderID != "n1" || nl.LeaderAddr != "10.0.0.1:8400" {
		t.Fatalf("DescribeTopic with require_leader: NotLeader detail %+v, %v; want n1 at 10.0.0.1:8400", nl, ok)
	}
}
