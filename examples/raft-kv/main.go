// Command raft-kv is a replicated key-value map on consensus/raft with its own state machine:
// three Raft nodes in one process, over TCP on loopback, each with its own data directory.
// It writes through the leader, reads linearizably, stops the leader, and keeps writing
// through the new one; every surviving node ends with the same map.
//
//	go run .
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/raft"
)

// command is what is replicated: set Key to Value, or delete Key when Value is nil.
type command struct {
	Key   string  `json:"k"`
	Value *string `json:"v,omitempty"`
}

// kv is the state machine: a map, changed only by Apply.
type kv struct {
	mu sync.RWMutex
	m  map[string]string
}

func newKV() *kv { return &kv{m: map[string]string{}} }

// Apply applies committed commands in order; the result of each is the previous value.
func (s *kv) Apply(entries []consensus.Entry) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, len(entries))
	for i, e := range entries {
		var c command
		if err := json.Unmarshal(e.Data, &c); err != nil {
			out[i] = err // deterministic: every node refuses the same entry
			continue
		}
		out[i] = s.m[c.Key]
		if c.Value == nil {
			delete(s.m, c.Key)
		} else {
			s.m[c.Key] = *c.Value
		}
	}
	return out
}

// snapshot is the whole map; Persist writes it as JSON.
type snapshot map[string]string

func (s snapshot) Persist(w io.Writer) error { return json.NewEncoder(w).Encode(map[string]string(s)) }
func (snapshot) Release()                    {}

func (s *kv) Snapshot() (consensus.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return snapshot(maps.Clone(s.m)), nil
}

func (s *kv) Restore(manifest []byte, _ io.Reader) error {
	m := map[string]string{}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = m
	return nil
}

func (s *kv) get(k string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *kv) snapshotMap() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.m)
}

type node struct {
	id   string
	raft *raft.Node
	kv   *kv
}

// set proposes a command on whichever node leads, retrying while there is no leader.
func set(ctx context.Context, nodes []*node, key, value string) error {
	data, _ := json.Marshal(command{Key: key, Value: &value})
	for {
		for _, n := range nodes {
			if n.raft == nil || !n.raft.IsLeader() {
				continue
			}
			_, err := n.raft.Propose(ctx, data)
			if err == nil || !(errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrNoLeader)) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func leader(ctx context.Context, nodes []*node) (*node, error) {
	for {
		for _, n := range nodes {
			if n.raft != nil && n.raft.IsLeader() {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// converge waits until every running node's map equals want.
func converge(ctx context.Context, nodes []*node, want map[string]string) error {
	for {
		same := true
		for _, n := range nodes {
			if n.raft != nil && !maps.Equal(n.kv.snapshotMap(), want) {
				same = false
			}
		}
		if same {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes did not converge on %v: %w", want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("raft-kv: ok")
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "raft-kv")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Listen first: every node must know the others' addresses to bootstrap them together.
	var streams []raft.StreamLayer
	var servers []consensus.Server
	for i := range 3 {
		st, err := raft.TCPStreamLayer("127.0.0.1:0")
		if err != nil {
			return err
		}
		streams = append(streams, st)
		servers = append(servers, consensus.Server{ID: fmt.Sprintf("kv-%d", i), Address: st.Addr().String(), Suffrage: consensus.Voter})
	}
	clusterID := raft.NewClusterID() // the same for every node bootstrapping the same list
	nodes := make([]*node, 3)
	for i := range nodes {
		sm := newKV()
		rn, err := raft.New(raft.Config{
			ID:                 servers[i].ID,
			DataDir:            filepath.Join(dir, servers[i].ID),
			StreamLayer:        streams[i],
			Bootstrap:          true,
			BootstrapServers:   servers,
			ClusterID:          clusterID,
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
		}, sm)
		if err != nil {
			return err
		}
		nodes[i] = &node{id: servers[i].ID, raft: rn, kv: sm}
	}
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				_ = n.raft.Close()
			}
		}
	}()

	want := map[string]string{}
	for i := range 10 {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)
		if err := set(ctx, nodes, k, v); err != nil {
			return err
		}
		want[k] = v
	}
	l, err := leader(ctx, nodes)
	if err != nil {
		return err
	}
	if err := l.raft.LinearizableRead(ctx); err != nil {
		return err
	}
	if v, _ := l.kv.get("key-9"); v != "value-9" {
		return fmt.Errorf("linearizable read on %s: key-9 = %q", l.id, v)
	}
	fmt.Printf("leader %s: 10 keys written, read back linearizably\n", l.id)
	if err := converge(ctx, nodes, want); err != nil {
		return err
	}

	// Stop the leader: the two others elect a new one and keep the map.
	if err := l.raft.Close(); err != nil {
		return err
	}
	l.raft = nil
	for i := 10; i < 15; i++ {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)
		if err := set(ctx, nodes, k, v); err != nil {
			return err
		}
		want[k] = v
	}
	nl, err := leader(ctx, nodes)
	if err != nil {
		return err
	}
	if err := converge(ctx, nodes, want); err != nil {
		return err
	}
	fmt.Printf("leader %s stopped; new leader %s; %d keys on both survivors\n", l.id, nl.id, len(want))
	return nil
}
