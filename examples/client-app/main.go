// Command client-app uses the commitlog Go SDK against a running server: it appends records
// (one at a time, in a batch and through the asynchronous Producer), reads them back by offset
// and by streaming, and prints the cluster's servers.
//
//	commitlog serve &              # or: go run github.com/commitlog-go/commitlog/server/cmd/commitlog@latest serve
//	go run . [address...]          # default 127.0.0.1:8400
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

func main() {
	addrs := os.Args[1:]
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:8400"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := client.New(ctx, addrs)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	first, err := c.Produce(ctx, []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.ProduceBatch(ctx, []byte("from"), []byte("a")); err != nil {
		log.Fatal(err)
	}
	p, err := c.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	fut, err := p.Send(ctx, []byte("stranger"))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil { // flushes what is pending
		log.Fatal(err)
	}
	last, err := fut.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("appended [%d, %d]\n", first, last)

	rec, err := c.Consume(ctx, first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("consume %d: %s\n", rec.Offset, rec.Value)

	// Stream reads from an offset and then tails the log; stop after the last record.
	var words []string
	for rec, err := range c.Stream(ctx, first) {
		if err != nil {
			log.Fatal(err)
		}
		words = append(words, string(rec.Value))
		if rec.Offset == last {
			break
		}
	}
	fmt.Println("stream:", words)
	if fmt.Sprint(words) != "[hello from a stranger]" {
		log.Fatalf("stream read %v", words)
	}

	servers, err := c.Servers(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range servers {
		fmt.Printf("server %s at %s (leader: %v)\n", s.ID, s.Addr, s.IsLeader)
	}
	fmt.Println("client-app: ok")
}
