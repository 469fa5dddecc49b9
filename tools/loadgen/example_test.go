package loadgen_test

import (
	"context"
	"fmt"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/tools/loadgen"
)

// ExampleRun produces 1000 records in batches and reads them back through a stream, against an
// in-process server (a real cluster's address works the same way).
func ExampleRun() {
	log := clienttest.New()
	srv, err := log.Serve(clienttest.ServeOptions{Transport: "connect"})
	if err != nil {
		fmt.Println(err)
		return
	}
	addr, stop := srv.Addr(), func() { _ = srv.Close() }
	defer stop()

	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Addrs:            []string{addr},
		Mode:             loadgen.ModeBatch,
		Producers:        4,
		StreamConsumers:  1,
		Records:          1000,
		ProgressInterval: -1, // no progress lines
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("produced:", res.Produce.Records, "errors:", res.Produce.Errors)
	fmt.Println("streamed back:", res.Stream.Records, "corrupt:", res.Stream.Corrupt)
	fmt.Println("latency samples:", res.Produce.Latency.Count)
	// Output:
	// produced: 1000 errors: 0
	// streamed back: 1000 corrupt: 0
	// latency samples: 1000
}
