package cli

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// deposedLog answers TransferLeadership as a leader that has just handed leadership over and
// has not heard from the new leader yet: success, with no leader id.
type deposedLog struct {
	*clienttest.Log
	addr string
}

func (l deposedLog) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	res, err := l.Log.GetServers(ctx, req)
	for _, s := range res.GetServers() {
		s.RpcAddr, s.RaftAddr = l.addr, l.addr
	}
	return res, err
}

func (deposedLog) TransferLeadership(context.Context, *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	return &logv1.TransferLeadershipResponse{}, nil
}

// TestTransferLeadershipNewLeaderUnknown: the old leader answers a transfer as soon as it has
// stepped down, often before it knows the new leader; cluster transfer-leadership then printed
// "leader is now " with nothing after it (seen against a 3-node cluster). The SDK's
// TransferLeadership asks the servers for the new leader for a while (e2e's
// TestClusterMembership sees it named), and when none is named the command says that the
// leadership was handed over and the new leader is not known yet.
func TestTransferLeadershipNewLeaderUnknown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := deposedLog{clienttest.New(), lis.Addr().String()}
	srv, err := tconnect.NewServer(transport.ServerConfig{Log: l, Cluster: l, Topics: l.Log})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		<-served
	})
	// The fake goes on naming itself the leader: the command asks for a new one until its
	// --timeout, then says it is not known yet.
	code, out, errOut := run(t, t.Context(), "cluster", "transfer-leadership", "--timeout", "1s", "--addr", lis.Addr().String())
	if code != 0 || strings.Contains(out, "leader is now \n") || !strings.Contains(out, "leadership handed over; the new leader is not known yet") {
		t.Errorf("transfer-leadership: exit %d, stdout %q, stderr %q; want the hand-over reported without an empty leader", code, out, errOut)
	}
}
