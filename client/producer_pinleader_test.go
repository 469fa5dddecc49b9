package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// twoNodeView is a fake node of a two-node cluster: GetServers names leader
// as the leader and follower as a follower, whichever of them answers.
type twoNodeView struct {
	*clienttest.Log
	leader, follower *string
}

func (v twoNodeView) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	return &logv1.GetServersResponse{Servers: []*logv1.Server{
		{Id: "leader", RpcAddr: *v.leader, RaftAddr: *v.leader, IsLeader: true, Healthy: true, Suffrage: logv1.Suffrage_SUFFRAGE_VOTER},
		{Id: "follower", RpcAddr: *v.follower, RaftAddr: *v.follower, Healthy: true, Suffrage: logv1.Suffrage_SUFFRAGE_VOTER},
	}}, nil
}

// serveView serves v over Connect on a loopback port until the test ends.
func serveView(t *testing.T, v twoNodeView) string {
	t.Helper()
	return serveConfig(t, transport.ServerConfig{Log: v, Cluster: v, Topics: v})
}

// serveConfig serves cfg over Connect on a loopback port until the test ends.
func serveConfig(t *testing.T, cfg transport.ServerConfig) string {
	t.Helper()
	srv, err := tconnect.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
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
	return lis.Addr().String()
}

// TestProducerPinsTopicIDFromLeader: a Producer of a client that reads from followers pins the
// ID the leader gives its topic, not the one a lagging follower still holds for a topic of that
// name deleted and created again: its records are stored. It pinned the follower's answer (the
// deleted topic's ID), and the leader refused every batch: each record, to a topic that exists,
// failed with ErrUnknownTopic for the Producer's life.
func TestProducerPinsTopicIDFromLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaderLog, followerLog := clienttest.New(), clienttest.New()
	// The follower has applied the topic's first creation only; the leader, its deletion and
	// creation again (a new ID).
	for _, l := range []*clienttest.Log{leaderLog, followerLog} {
		if _, err := l.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leaderLog.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaderLog.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var leaderAddr, followerAddr string
	leaderAddr = serveView(t, twoNodeView{Log: leaderLog, leader: &leaderAddr, follower: &followerAddr})
	followerAddr = serveView(t, twoNodeView{Log: followerLog, leader: &leaderAddr, follower: &followerAddr})

	cl, err := client.New(ctx, []string{leaderAddr}, client.WithReadPolicy(client.ReadFollowers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The setup: a read of the topic goes to the follower, which describes the deleted topic.
	if d, err := cl.DescribeTopic(ctx, "t"); err != nil || followerLog.Calls("DescribeTopic") != 1 {
		t.Fatalf("DescribeTopic: %+v, %v, on the follower %d times; want it asked once", d, err, followerLog.Calls("DescribeTopic"))
	}
	for _, c := range []struct {
		name string
		opts []client.ProducerOption
	}{
		{"partitioned", nil},
		{"manual", []client.ProducerOption{client.ProducerManualPartitioning()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := cl.NewProducer(append(c.opts, client.ProducerDeliveryTimeout(10*time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := range 2 {
				f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte(c.name)})
				if err != nil {
					t.Fatalf("SendRecord %d: %v", i, err)
				}
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Wait(ctx); err != nil {
					t.Errorf("record %d to a topic the leader holds, read policy ReadFollowers, the follower lagging its re-creation: %v; want it stored", i, err)
				}
			}
		})
	}
	recs, ok := leaderLog.Records("t", 0)
	if !ok || len(recs) != 4 {
		t.Errorf("the leader's topic holds %d records (%v), want 4", len(recs), ok)
	}
}
