package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
)

// exampleServer starts an in-memory single-node server (clienttest) with
// topics and idempotent producers, serving Connect on loopback, and returns
// its address and a function that stops it.
func exampleServer() (string, func()) {
	srv, err := clienttest.New().Serve(clienttest.ServeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	return srv.Addr(), func() { _ = srv.Close() }
}

// exampleCluster starts a 3-node in-process fake cluster serving Connect on
// loopback and returns its addresses and a function that stops it. In real
// use the addresses are those of `commitlog serve` processes.
func exampleCluster() ([]string, func()) {
	c, err := startFakeCluster("connect", 3)
	if err != nil {
		log.Fatal(err)
	}
	return c.addrs(), c.stop
}

func ExampleNew() {
	addrs, stop := exampleCluster()
	defer stop()

	ctx := context.Background()
	// Any server of the cluster will do as a seed; the client learns the
	// others and the leader. WithTransport(client.TransportGRPC) for a
	// cluster serving gRPC; WithTLS for mTLS.
	c, err := client.New(ctx, addrs[2:],
		client.WithRequestTimeout(5*time.Second),
		client.WithReadPolicy(client.ReadLeader),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("leader is a seed:", c.Leader() == addrs[0])
	// Output: leader is a seed: true
}

func ExampleClient_Produce() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, v := range []string{"hello", "world"} {
		off, err := c.Produce(ctx, []byte(v))
		switch {
		case errors.Is(err, client.ErrOutcomeUnknown):
			// The record may or may not be in the log: the client
			// never retries this by itself.
			log.Fatalf("produce %q: maybe appended: %v", v, err)
		case err != nil:
			log.Fatal(err)
		}
		fmt.Printf("%s → offset %d\n", v, off)
	}
	// Output:
	// hello → offset 0
	// world → offset 1
}

func ExampleClient_ProduceBatch() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// All three records get consecutive offsets, or none is appended.
	base, err := c.ProduceBatch(ctx, []byte("a"), []byte("b"), []byte("c"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("offsets", base, "to", base+2)
	// Output: offsets 0 to 2
}

func ExampleClient_NewProducer() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, []string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p, err := c.NewProducer(
		client.ProducerBatchRecords(100),
		client.ProducerLinger(2*time.Millisecond),
	)
	if err != nil {
		log.Fatal(err)
	}
	var futures []*client.Future
	for i := range 250 {
		f, err := p.Send(ctx, fmt.Appendf(nil, "event %d", i))
		if err != nil {
			log.Fatal(err)
		}
		futures = append(futures, f)
	}
	// Close sends what is pending and waits for every result.
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	last, err := futures[len(futures)-1].Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last offset:", last)
	// Output: last offset: 249
}

func ExampleProducer_SendFunc() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, []string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	done := make(chan struct{})
	err = p.SendFunc(ctx, []byte("hi"), func(off uint64, err error) {
		fmt.Println("appended at", off, "err", err)
		close(done)
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: appended at 0 err <nil>
}

func ExampleClient_Consume() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Produce(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}

	rec, err := c.Consume(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d: %s\n", rec.Offset, rec.Value)

	// An offset not written yet is waited for until the deadline.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = c.Consume(short, 1)
	fmt.Println("offset 1 out of range:", errors.Is(err, client.ErrOutOfRange))
	// Output:
	// 0: hello
	// offset 1 out of range: true
}

func ExampleClient_Stream() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ProduceBatch(ctx, []byte("one"), []byte("two"), []byte("three")); err != nil {
		log.Fatal(err)
	}

	// Stream reads from offset 1 on and then tails the log; it survives
	// broken streams and leader changes without duplicates or gaps.
	for rec, err := range c.Stream(ctx, 1) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", rec.Offset, rec.Value)
		if rec.Offset == 2 {
			break // a tailing consumer would keep going
		}
	}
	// Output:
	// 1: two
	// 2: three
}

func ExampleClient_Servers() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	servers, err := c.Servers(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range servers {
		fmt.Println(s.ID, "leader:", s.IsLeader, "voter:", s.Voter)
	}
	// Output:
	// node-0 leader: true voter: true
	// node-1 leader: false voter: true
	// node-2 leader: false voter: true
}

func ExampleClient_TransferLeadership() {
	addrs, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	leader, err := c.TransferLeadership(ctx, "node-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new leader:", leader)
	// The next write finds the new leader by itself.
	if _, err := c.Produce(ctx, []byte("x")); err != nil {
		log.Fatal(err)
	}
	fmt.Println("leader address known:", c.Leader() == addrs[1])
	// Output:
	// new leader: node-1
	// leader address known: true
}

func ExampleProducer_SendRecord() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, []string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", 4, client.TopicConfig{}); err != nil {
		log.Fatal(err)
	}
	// Idempotent by default: a batch whose outcome is unknown is retried
	// until acknowledged, and stored once.
	p, err := c.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	f, err := p.SendRecord(ctx, client.Record{
		Topic:   "orders",
		Key:     []byte("customer-42"), // same key, same partition, as in Kafka
		Value:   []byte(`{"total": 12}`),
		Headers: []client.Header{{Key: "source", Value: []byte("web")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	off, err := f.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("partition", f.Partition(), "offset", off, "key partition", client.KeyPartition([]byte("customer-42"), 4))
	rec, err := c.ConsumePartition(ctx, "orders", f.Partition(), off)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s %s=%s\n", rec.Key, rec.Value, rec.Headers[0].Key, rec.Headers[0].Value)
	// Output:
	// partition 1 offset 0 key partition 1
	// customer-42 {"total": 12} source=web
}

func ExampleKeyPartition() {
	// The partition Kafka's clients pick for the key in a 12-partition topic.
	fmt.Println(client.KeyPartition([]byte("user-1"), 12))
	// Output: 8
}
