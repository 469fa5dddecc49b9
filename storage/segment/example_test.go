package segment_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/commitlog-go/commitlog/storage/segment"
)

// ExampleOpen uses the segment log as an embedded, durable append-only log.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "example-log")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := segment.Open(dir, segment.Config{Sync: segment.SyncAlways})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// A batch is atomic: after a crash, all of it or none.
	first, err := l.Append([]byte("alpha"), []byte("beta"), []byte("gamma"))
	if err != nil {
		log.Fatal(err)
	}
	v, err := l.Read(first + 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("first offset %d, record %d = %s\n", first, first+1, v)

	for rec, err := range l.Records(0, 3) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", rec.Offset, rec.Value)
	}
	// Output:
	// first offset 0, record 1 = beta
	// 0: alpha
	// 1: beta
	// 2: gamma
}

// ExampleLog_Wait tails the log: a reader waits for the next offset without polling.
func ExampleLog_Wait() {
	dir, _ := os.MkdirTemp("", "example-wait")
	defer os.RemoveAll(dir)
	l, err := segment.Open(dir, segment.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Wait(ctx, 0); err != nil {
			log.Fatal(err)
		}
		v, _ := l.Read(0)
		fmt.Printf("woke up for %s\n", v)
	}()
	if _, err := l.Append([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: woke up for hello
}

// ExampleLog_Recovery reopens a log and inspects what recovery repaired.
func ExampleLog_Recovery() {
	dir, _ := os.MkdirTemp("", "example-recovery")
	defer os.RemoveAll(dir)
	l, _ := segment.Open(dir, segment.Config{})
	_, _ = l.Append([]byte("one"), []byte("two"))
	_ = l.Close()

	l, err := segment.Open(dir, segment.Config{})
	if err != nil {
		log.Fatal(err) // wraps storage.ErrCorrupt if the log holds corruption
	}
	defer l.Close()
	rep := l.Recovery()
	lowest, next := l.Bounds()
	fmt.Printf("records [%d, %d), torn tail cut: %d bytes\n", lowest, next, rep.TruncatedBytes)
	// Output: records [0, 2), torn tail cut: 0 bytes
}

// ExampleLog_EnforceRetention keeps the log under a size budget, deleting whole old segments.
func ExampleLog_EnforceRetention() {
	dir, _ := os.MkdirTemp("", "example-retention")
	defer os.RemoveAll(dir)
	l, err := segment.Open(dir, segment.Config{
		Sync:           segment.SyncNever,
		SegmentBytes:   4096,
		RetentionBytes: 16 << 10,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 1000)
	for range 100 {
		if _, err := l.Append(rec); err != nil {
			log.Fatal(err)
		}
	}
	removed, err := l.EnforceRetention(time.Now())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed segments:", removed, "size within budget:", l.Size() <= 16<<10)
	// Output: removed segments: 29 size within budget: true
}
