package cli

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// staleBoundsLog is a clienttest log whose plain (non-linearizable) GetBounds answers one
// record short, as a leader just elected that has not applied the last acknowledged record
// yet, or a lagging follower, answers; a linearizable GetBounds is exact.
type staleBoundsLog struct {
	*clienttest.Log
	addr         string
	linearizable atomic.Int32 // linearizable GetBounds answered
}

func (l *staleBoundsLog) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	res, err := l.Log.GetBounds(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.GetLinearizable() {
		l.linearizable.Add(1)
	} else if res.NextOffset > res.LowestOffset {
		res.NextOffset--
		res.CommittedOffset = res.NextOffset
	}
	return res, nil
}

func (l *staleBoundsLog) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	res, err := l.Log.GetServers(ctx, req)
	for _, s := range res.GetServers() {
		s.RpcAddr, s.RaftAddr = l.addr, l.addr
	}
	return res, err
}

// TestConsumeToTheEndReadsEveryAcknowledgedRecord: consume without --follow reads up to the
// end of the log as the cluster has committed it when it starts (a linearizable bound): it
// asked for the bounds with a plain read, which a leader just elected (or a lagging follower)
// answers short, and stopped before the last acknowledged records.
func TestConsumeToTheEndReadsEveryAcknowledgedRecord(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &staleBoundsLog{Log: clienttest.New(), addr: lis.Addr().String()}
	l.Append([]byte("a"), []byte("b"), []byte("c"))
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
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{{}, {"--from", "1"}, {"--count", "0"}} {
		code, out, errOut := run(t, ctx, append([]string{"consume", "--addr", l.addr}, args...)...)
		want := "a\nb\nc\n"
		if len(args) > 0 && args[0] == "--from" {
			want = "b\nc\n"
		}
		if code != 0 || out != want {
			t.Errorf("consume %v: exit %d, stdout %q, stderr %q; want %q: every acknowledged record", args, code, out, errOut, want)
		}
	}
	if l.linearizable.Load() == 0 {
		t.Error("consume never asked for a linearizable bound")
	}
}
