package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestHeartbeatBoundBeforeAuthorization: a subscription is bounded (maxSubscribedTopics), and
// the bound applies before the work it bounds (DESIGN.md §5): a Heartbeat naming far more
// topics is refused InvalidArgument without asking the authorizer about each of them (with
// casbin, one uncached policy evaluation per distinct name, a few hundred thousand of them in
// one record-sized request, on the follower and again on the leader it forwards to).
func TestHeartbeatBoundBeforeAuthorization(t *testing.T) {
	var decided atomic.Int64
	srv := startServer(t, Config{
		Authorizer: authz.AuthorizerFunc(func(context.Context, string, string, string) error {
			decided.Add(1)
			return nil
		}),
		InsecurePlaintextPeers: true,
	})
	ctx := ctxT(t, 60*time.Second)
	c := groupsClient(t, newClient(t, TransportConnect, srv.Addr()))
	topics := make([]string, 50*maxSubscribedTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("t%d", i)
	}
	decided.Store(0)
	_, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", Topics: topics})
	if transport.CodeOf(err) != transport.InvalidArgument {
		t.Fatalf("Heartbeat with %d topics: %v, want InvalidArgument", len(topics), err)
	}
	if n := decided.Load(); n > maxSubscribedTopics {
		t.Fatalf("the authorizer decided %d times for a Heartbeat refused by the %d-topic bound", n, maxSubscribedTopics)
	}
}
