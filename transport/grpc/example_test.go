package grpc_test

import (
	"context"
	"fmt"
	"net"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// Serve a LogService over gRPC and follow a NotLeader error to the leader.
func ExampleNewServer() {
	svc := transporttest.NewService()
	svc.SetNotLeader(&transport.NotLeader{LeaderID: "node-2", LeaderAddr: "127.0.0.1:8402"})
	srv, err := tgrpc.NewServer(transport.ServerConfig{Log: svc})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()

	client, err := tgrpc.NewClient(l.Addr().String(), transport.ClientConfig{})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	ctx := context.Background()
	_, err = client.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hi")}})
	if leader, ok := transport.NotLeaderDetail(err); ok {
		fmt.Println(transport.CodeOf(err), "leader:", leader.LeaderID, leader.LeaderAddr)
	}

	srv.Stop(ctx)
	fmt.Println(<-done)
	// Output:
	// failed_precondition leader: node-2 127.0.0.1:8402
	// <nil>
}
