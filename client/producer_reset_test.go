package client_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// redirectingNode serves a clienttest.Log as one of two servers with stale views of the
// leadership: while refusals are left, each answers InitProducer with a NotLeader naming the
// other, as two servers do for a moment during an election.
type redirectingNode struct {
	*clienttest.Log
	id, addr string
	other    *redirectingNode
	refusals *atomic.Int32
}

func (n *redirectingNode) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	return &logv1.GetServersResponse{Servers: []*logv1.Server{{Id: n.id, RpcAddr: n.addr, RaftAddr: n.addr, IsLeader: true, Healthy: true,
		Suffrage: logv1.Suffrage_SUFFRAGE_VOTER}}}, nil
}

func (n *redirectingNode) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	if n.refusals.Add(-1) >= 0 {
		return nil, transport.NotLeaderError(transport.NotLeader{LeaderID: n.other.id, LeaderAddr: n.other.addr}, "not the leader")
	}
	return n.Log.InitProducer(ctx, req)
}

func serveRedirecting(t *testing.T, tr string, n *redirectingNode) {
	t.Helper()
	cfg := transport.ServerConfig{Log: n, Cluster: n, Topics: n}
	var srv transport.Server
	var err error
	if tr == "grpc" {
		srv, err = tgrpc.NewServer(cfg)
	} else {
		srv, err = tconnect.NewServer(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = lis.Addr().String()
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
}

// TestProducerInitRedirectedPastBudget: an InitProducer redirected back and forth until the
// client's retry budget runs out (*NotLeaderError) is a leadership change under way, not a
// refusal: the producer asks again, and its records are stored once the cluster settles,
// instead of the producer failing every record for good.
func TestProducerInitRedirectedPastBudget(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			l := clienttest.New()
			refusals := new(atomic.Int32)
			a := &redirectingNode{Log: l, id: "a", refusals: refusals}
			b := &redirectingNode{Log: l, id: "b", refusals: refusals, other: a}
			a.other = b
			serveRedirecting(t, tr, a)
			serveRedirecting(t, tr, b)
			const retries = 2
			cl, err := client.New(context.Background(), []string{a.addr}, client.WithTransport(tr),
				client.WithBackoff(time.Millisecond, 20*time.Millisecond), client.WithMaxRetries(retries))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// More redirects than one InitProducer call follows.
			refusals.Store(3 * (retries + 1))
			p, err := cl.NewProducer(client.ProducerLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			for i, v := range []string{"a", "b"} {
				f, err := p.Send(ctx, []byte(v))
				if err != nil {
					t.Fatal(err)
				}
				if off, err := f.Wait(ctx); err != nil || off != uint64(i) {
					t.Fatalf("record %s: offset %d err %v, want offset %d", v, off, err, i)
				}
			}
		})
	}
}
