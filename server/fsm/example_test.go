package fsm_test

import (
	"context"
	"fmt"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// The server encodes a produce request as an append command and proposes it; the consensus
// applies it on every node; readers read by offset. Here Apply is called directly, as the
// consensus would.
func Example() {
	log, err := memory.New(memory.Config{})
	if err != nil {
		panic(err)
	}
	defer log.Close()
	f, err := fsm.New(fsm.Config{Log: log})
	if err != nil {
		panic(err)
	}

	cmd, err := f.EncodeAppend(
		fsm.AppendRecord{Value: []byte("hello")},
		fsm.AppendRecord{Value: []byte("world"), Type: 2},
	)
	if err != nil {
		panic(err)
	}
	res := f.Apply([]consensus.Entry{{Index: 7, Term: 1, Data: cmd}})
	ar := res[0].(fsm.AppendResult)
	fmt.Printf("offsets [%d, %d)\n", ar.First, ar.First+ar.Count)

	rec, err := f.Read(context.Background(), 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("offset %d: %s (type %d, raft index %d)\n", rec.Offset, rec.Value, rec.Type, rec.Index)

	// An offset not applied yet: Read waits until the deadline, then reports out of range.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = f.Read(ctx, 2)
	fmt.Println(err != nil)
	// Output:
	// offsets [0, 2)
	// offset 1: world (type 2, raft index 7)
	// true
}
