package fsm

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/storage"
)

// countingLogs opens segment logs, failing the partition directories named in fail, and
// tracks the logs open (by partition directory base name, "37").
type countingLogs struct {
	mu   sync.Mutex
	open map[storage.Log]string
	fail map[string]bool
}

type countedLog struct {
	storage.Log
	c *countingLogs
}

func (l countedLog) Close() error {
	l.c.mu.Lock()
	delete(l.c.open, l.Log)
	l.c.mu.Unlock()
	return l.Log.Close()
}

func (c *countingLogs) openLog(dir string) (storage.Log, error) {
	if c.fail[filepath.Base(dir)] {
		return nil, errors.New("injected open failure")
	}
	l, err := segmentOpener(dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open[l] = filepath.Base(dir)
	c.mu.Unlock()
	return countedLog{l, c}, nil
}

func (c *countingLogs) opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// TestCreateTopicOpensPartitionsInOrder: the partitions of a new topic are opened
// MachineConfig.OpenWorkers at once (openParts): each partition's FSM is the one of its own
// directory, in order. When one fails to open, the Machine fails with the lowest failing
// partition's error, and every log opened for the topic is closed.
func TestCreateTopicOpensPartitionsInOrder(t *testing.T) {
	ctx := context.Background()
	const workers, parts = 16, 3*16 + 5
	t.Run("opened", func(t *testing.T) {
		logs := &countingLogs{open: map[storage.Log]string{}}
		n := openMachineNode(t, t.TempDir())
		n.m.cfg.OpenLog, n.m.cfg.OpenWorkers = logs.openLog, workers
		tp, err := n.m.CreateTopic(ctx, n, "many", parts, TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		e := n.m.cat.Load().byID[tp.ID]
		if len(e.parts) != parts {
			t.Fatalf("%d partitions opened, want %d", len(e.parts), parts)
		}
		logs.mu.Lock()
		defer logs.mu.Unlock()
		for i, p := range e.parts {
			dir := logs.open[p.log.(countedLog).Log]
			if dir != strconv.Itoa(i) || p.target.Partition != uint32(i) || p.target.Topic != tp.ID {
				t.Fatalf("partition %d is %v over directory %q", i, p.target, dir)
			}
		}
	})
	t.Run("one at a time by default", func(t *testing.T) {
		// A custom OpenLog need not be safe for concurrent use unless OpenWorkers says so.
		var inflight, most atomic.Int32
		n := openMachineNode(t, t.TempDir())
		n.m.cfg.OpenLog = func(dir string) (storage.Log, error) {
			most.Store(max(most.Load(), inflight.Add(1)))
			defer inflight.Add(-1)
			time.Sleep(time.Millisecond)
			return segmentOpener(dir)
		}
		if _, err := n.m.CreateTopic(ctx, n, "many", 8, TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		if most.Load() != 1 {
			t.Fatalf("OpenLog ran %d at once, want 1 (OpenWorkers unset)", most.Load())
		}
	})
	t.Run("one fails", func(t *testing.T) {
		dir := t.TempDir()
		logs := &countingLogs{open: map[storage.Log]string{}, fail: map[string]bool{"37": true, "41": true}}
		n := openMachineNode(t, dir)
		n.m.cfg.OpenLog, n.m.cfg.OpenWorkers = logs.openLog, workers
		_, err := n.m.CreateTopic(ctx, n, "many", parts, TopicConfig{})
		if err == nil || !strings.Contains(err.Error(), "open partition many/37: injected open failure") {
			t.Fatalf("CreateTopic with partitions 37 and 41 failing to open: %v, want partition 37's error", err)
		}
		if err := n.m.Err(); err == nil || !strings.Contains(err.Error(), "many/37") {
			t.Fatalf("Machine.Err = %v, want the failed open (the state machine stops)", err)
		}
		if open := logs.opened(); open != 0 {
			t.Fatalf("%d partition logs left open after the topic's creation failed", open)
		}
	})
}
