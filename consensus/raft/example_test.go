package raft_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// counter is a tiny StateMachine: it sums the 8-byte numbers it is given.
type counter struct {
	mu  sync.Mutex
	sum uint64
}

func (c *counter) Apply(entries []consensus.Entry) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]any, len(entries))
	for i, e := range entries {
		c.sum += binary.BigEndian.Uint64(e.Data)
		out[i] = c.sum
	}
	return out
}

type counterSnapshot uint64

func (s counterSnapshot) Persist(w io.Writer) error {
	return binary.Write(w, binary.BigEndian, uint64(s))
}
func (counterSnapshot) Release() {}

func (c *counter) Snapshot() (consensus.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counterSnapshot(c.sum), nil
}

func (c *counter) Restore(manifest []byte, _ io.Reader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum = binary.BigEndian.Uint64(manifest)
	return nil
}

// Example runs a single-node cluster over TCP with its own state machine.
func Example() {
	dir, err := os.MkdirTemp("", "raft-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	stream, err := craft.TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	node, err := craft.New(craft.Config{
		ID:               "node-1",
		DataDir:          dir,
		StreamLayer:      stream,
		Bootstrap:        true, // a no-op on restart
		HeartbeatTimeout: 200 * time.Millisecond,
		ElectionTimeout:  200 * time.Millisecond,
	}, &counter{})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !node.IsLeader() { // a real program would use SubscribeLeader
		select {
		case <-ctx.Done():
			panic("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, n := range []uint64{1, 2, 39} {
		sum, err := node.Propose(ctx, binary.BigEndian.AppendUint64(nil, n))
		if err != nil {
			panic(err)
		}
		fmt.Println("sum:", sum)
	}
	// Output:
	// sum: 1
	// sum: 3
	// sum: 42
}
