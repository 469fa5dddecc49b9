package raft

import (
	"context"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// gatedFS is raft-wal's OS file system whose files' Sync waits, once armed, until the gate
// opens: a leader's main loop then stays inside its write of an entry (dispatchLogs).
type gatedFS struct {
	*walfs.FS
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when a Sync starts waiting
	gate    chan struct{} // closed to let it go on
}

func (g *gatedFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := g.FS.Create(dir, name, size)
	return gatedFile{f, g}, err
}

func (g *gatedFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := g.FS.OpenWriter(dir, name)
	return gatedFile{f, g}, err
}

func (g *gatedFS) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.entered, g.gate = true, make(chan struct{}), make(chan struct{})
}

type gatedFile struct {
	types.WritableFile
	fs *gatedFS
}

func (f gatedFile) Sync() error {
	f.fs.mu.Lock()
	armed, entered, gate := f.fs.armed, f.fs.entered, f.fs.gate
	f.fs.armed = false
	f.fs.mu.Unlock()
	if armed {
		close(entered)
		<-gate
	}
	return f.WritableFile.Sync()
}

// TestHeartbeatOfNewerTermWaitsForTheMainLoop: a heartbeat carrying a newer term changes
// nothing while the leader's main loop is writing an entry; Raft handles it after, in that loop.
// hashicorp/raft's transport handles heartbeats on its own goroutine when given a handler (the
// fast path, hashicorp/raft#695): there a newer term makes the node a follower of that term in
// the middle of its write as leader, which can then store its entry under the new term, at an
// index where the new term's leader stores another, and the logs never reconcile (chaos seed 8:
// a paused leader, resumed with writes queued, applied three records no other node holds).
func TestHeartbeatOfNewerTermWaitsForTheMainLoop(t *testing.T) {
	vfs := &gatedFS{FS: walfs.New()}
	n, err := singleNode(t, t.TempDir(), func(c *Config) { c.WALFS = vfs })()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proposeWhenLeading(t, ctx, n, []byte("first"))
	term := n.raft.CurrentTerm()

	// The leader's main loop enters its write of the next entry and waits there.
	vfs.arm()
	proposed := make(chan error, 1)
	go func() {
		_, err := n.Propose(ctx, []byte("second"))
		proposed <- err
	}()
	select {
	case <-vfs.entered:
	case <-ctx.Done():
		t.Fatal("the leader never wrote the second entry")
	}

	// Another server's heartbeat for a newer term, as the next term's leader sends it.
	peer, err := TCPStreamLayer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := hraft.NewNetworkTransport(&clusterLayer{StreamLayer: peer, ident: n.ident, timeout: 5 * time.Second}, 1, 5*time.Second, nil)
	defer trans.Close()
	answered := make(chan error, 1)
	go func() {
		var resp hraft.AppendEntriesResponse
		answered <- trans.AppendEntries("n2", hraft.ServerAddress(n.Address()), &hraft.AppendEntriesRequest{
			RPCHeader: hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte("n2"), Addr: []byte(peer.Addr().String())},
			Term:      term + 1,
		}, &resp)
	}()
	early := false
	select {
	case err := <-answered:
		early = true
		t.Errorf("the heartbeat was answered (%v) while the leader's main loop was still writing", err)
	case <-time.After(300 * time.Millisecond):
	}
	if got, state := n.raft.CurrentTerm(), n.raft.State(); got != term || state != hraft.Leader {
		t.Errorf("while the leader wrote an entry of term %d, a heartbeat made it %v of term %d", term, state, got)
	}

	close(vfs.gate)
	<-proposed // refused or outcome unknown: it was superseded
	if early {
		return
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the heartbeat: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the heartbeat was never answered")
	}
	if got := n.raft.CurrentTerm(); got != term+1 {
		t.Errorf("after the write, term %d, want the heartbeat's %d", got, term+1)
	}
}
