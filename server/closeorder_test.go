package server

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// gatedLog is a storage.Log whose Bounds, once armed, parks the call made by the retention
// loop until release is closed; Close records whether a call was still running in it.
type gatedLog struct {
	storage.Log
	armed    atomic.Bool
	parked   chan struct{} // closed when the retention loop's call is parked
	release  chan struct{} // closed to let it go on
	once     sync.Once
	inflight atomic.Int32
	closed   atomic.Bool
	// busyAtClose is set when Close ran while a call was still in the log.
	busyAtClose atomic.Bool
}

func (l *gatedLog) Bounds() (uint64, uint64) {
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	if l.armed.Load() {
		buf := make([]byte, 64<<10)
		if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "retentionLoop") && l.armed.CompareAndSwap(true, false) {
			close(l.parked)
			<-l.release
		}
	}
	return l.Log.Bounds()
}

func (l *gatedLog) Close() error {
	if l.inflight.Load() > 0 {
		l.busyAtClose.Store(true)
	}
	l.closed.Store(true)
	l.once.Do(func() { close(l.release) })
	return l.Log.Close()
}

// closeWaitingForBackground reports whether a goroutine is in Server.Close waiting for the
// server's background goroutines (s.bg.Wait).
func closeWaitingForBackground() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		for i, line := range lines {
			if strings.HasPrefix(line, "sync.(*WaitGroup).Wait(") && i+2 < len(lines) &&
				strings.Contains(lines[i+2], "(*Server).Close.func") {
				return true
			}
		}
	}
	return false
}

// TestCloseWaitsForBackgroundBeforeClosingTheLog: Close used to close Raft and the logs
// first and wait for the background goroutines (retention, group expiry, the divergence
// check, the bootstrap loop) last, so a retention pass under way at shutdown went on in a log
// being closed, or closed. Here the retention loop is held inside the log when Close starts:
// Close must wait for it (it is let go once Close waits) before it closes the log.
func TestCloseWaitsForBackgroundBeforeClosingTheLog(t *testing.T) {
	gl := &gatedLog{parked: make(chan struct{}), release: make(chan struct{})}
	opened := 0
	ts := startServer(t, Config{
		RetentionInterval: 10 * time.Millisecond,
		OpenLog: func(string) (storage.Log, error) {
			l, err := memory.New(memory.Config{MaxRecordBytes: fsm.MaxStoredRecordBytes})
			if err != nil {
				return nil, err
			}
			opened++
			if opened == 1 { // the default partition's log, DataDir/log
				gl.Log = l
				return gl, nil
			}
			return l, nil
		},
	})
	gl.armed.Store(true)
	select {
	case <-gl.parked:
	case <-time.After(20 * time.Second):
		t.Fatal("the retention loop did not read the log's bounds within 20s")
	}

	ts.stop() // Run stops the server: Close
	deadline := time.Now().Add(30 * time.Second)
	for !gl.closed.Load() && !closeWaitingForBackground() {
		if time.Now().After(deadline) {
			t.Fatal("Close neither closed the log nor waited for the background goroutines within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	gl.once.Do(func() { close(gl.release) })
	ts.shutdown(t)
	if gl.busyAtClose.Load() {
		t.Fatal("Close closed the log while the retention loop was still inside it: it must wait for its background goroutines first")
	}
}
