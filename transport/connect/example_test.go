package connect_test

import (
	"context"
	"fmt"
	"net"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// Serve a LogService with Connect, gRPC and gRPC-Web on one port, and call
// it with the Connect client.
func ExampleNewServer() {
	srv, err := tconnect.NewServer(transport.ServerConfig{Log: transporttest.NewService()})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()

	client, err := tconnect.NewClient(l.Addr().String(), transport.ClientConfig{})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	ctx := context.Background()
	res, err := client.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hi")}})
	if err != nil {
		panic(err)
	}
	fmt.Println("offset", res.GetOffset())
	_, err = client.Consume(ctx, &logv1.ConsumeRequest{Offset: 5})
	fmt.Println(transport.CodeOf(err))

	srv.Stop(ctx)
	fmt.Println(<-done)
	// Output:
	// offset 0
	// out_of_range
	// <nil>
}
