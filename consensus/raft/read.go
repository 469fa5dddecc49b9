package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// readBatcher lets concurrent linearizable reads share one Barrier. A read joins the next
// batch; a batch's Barrier is issued only after every read in it has joined, so the Barrier
// entry is created after each of them began. At most one Barrier is in flight; the batch that
// gathers meanwhile goes next. The runner goroutine exists only while batches are pending.
type readBatcher struct {
	mu      sync.Mutex
	next    *readBatch // gathering; nil when none
	running bool
	wg      sync.WaitGroup
}

type readBatch struct {
	done chan struct{}
	err  error
}

// wait blocks until the runner goroutine has exited. Call after the Node closed.
func (b *readBatcher) wait() { b.wg.Wait() }

// LinearizableRead returns nil once this node has confirmed it is the leader after the call
// began and its StateMachine has applied every entry committed before that. Errors: ErrClosed,
// *NotLeaderError / ErrNoLeader, ctx.Err().
//
// How: hashicorp/raft has no ReadIndex, and its VerifyLeader counts responses to heartbeats
// sent before the verification was requested (a leader resumed after a long pause could
// count answers its followers gave before electing a new leader, and serve a stale read). So
// every read waits for a Barrier entry created after it began: committing it needs a quorum
// that has not moved to a newer term, which proves leadership after the read began, and raft
// answers it only once the StateMachine has applied everything before it. Concurrent reads
// share one Barrier (readBatcher), so the cost is one replicated, fsynced no-op entry per
// batch of reads, not per read.
func (n *Node) LinearizableRead(ctx context.Context) error {
	if n.closing.Load() {
		return consensus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.mapErr(hraft.ErrNotLeader, false)
	}
	b := &n.reads
	b.mu.Lock()
	if b.next == nil {
		b.next = &readBatch{done: make(chan struct{})}
	}
	batch := b.next
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go n.runReads()
	}
	b.mu.Unlock()
	select {
	case <-batch.done:
		return batch.err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return consensus.ErrClosed
	}
}

// runReads commits one Barrier per pending batch until none is left.
func (n *Node) runReads() {
	b := &n.reads
	defer b.wg.Done()
	for {
		b.mu.Lock()
		batch := b.next
		b.next = nil
		if batch == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		batch.err = n.readBarrier()
		close(batch.done)
	}
}

func (n *Node) readBarrier() error {
	if n.closing.Load() {
		return consensus.ErrClosed
	}
	done, err := n.await(context.Background(), n.raft.Barrier(0))
	if !done {
		return err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrLeadershipLost), errors.Is(err, hraft.ErrAbortedByRestore):
		// The barrier is not a write: losing leadership means only "ask the leader".
		return n.mapErr(hraft.ErrNotLeader, false)
	default:
		return fmt.Errorf("linearizable read: %w", n.mapErr(err, false))
	}
}
