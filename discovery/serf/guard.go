package serf

import (
	"container/list"
	"errors"
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// Bounds on the gossip stream (TCP) connections other processes open to this node. memberlist
// reads an encrypted stream message whole before it authenticates it (up to 20 MiB, as long as
// the sender keeps sending within its TCP timeout), and serves every connection at once: anyone
// who can reach the gossip port, without the key, could make a node hold as much memory as it
// cares to send. The bounds apply before that work: at most maxInboundStreams connections are
// served at a time, and each may send at most maxStreamBytes (a push/pull of a commitlog
// cluster's state is a few KiB per member). A connection beyond them closes the oldest one, as
// the API port's waiting connections do (transport/mux): closing the new one instead let a
// stranger without the key hold every slot with a few idle connections a second (each lasts
// memberlist's TCP timeout, 10 s in the LAN timing), and every member's push/pull and join
// through this node failed (EOF) for as long as it kept them open. Now a stranger must open
// maxInboundStreams connections within the milliseconds a member's exchange takes.
const (
	maxInboundStreams = 32
	maxStreamBytes    = 2 << 20
)

// errStreamTooLarge ends a stream connection that sent more than maxStreamBytes.
var errStreamTooLarge = errors.New("discovery/serf: gossip stream larger than the limit")

// guardedTransport is memberlist's NetTransport with the bounds above on accepted streams.
type guardedTransport struct {
	*memberlist.NetTransport
	streams chan net.Conn
	slots   chan struct{}
	done    chan struct{} // closed when Shutdown begins: stop passing connections on
	stopped chan struct{} // closed when the NetTransport has shut down
	once    sync.Once
	logger  *log.Logger

	mu   sync.Mutex
	open list.List // *guardedConn holding a slot, oldest first
}

// newGuardedTransport binds addr:port (port 0: a free port, retried as memberlist does, the
// TCP and UDP ports being bound separately) and starts passing on its stream connections.
func newGuardedTransport(addr string, port int, logger *log.Logger) (*guardedTransport, error) {
	cfg := &memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: logger}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range tries {
		if nt, err = memberlist.NewNetTransport(cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("discovery/serf: gossip transport: %w", err)
	}
	t := &guardedTransport{NetTransport: nt, streams: make(chan net.Conn), slots: make(chan struct{}, maxInboundStreams),
		done: make(chan struct{}), stopped: make(chan struct{}), logger: logger}
	go t.pass(nt.StreamCh())
	return t, nil
}

// StreamCh returns the stream connections memberlist serves: those within the bounds.
func (t *guardedTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops passing on connections and shuts the transport down.
func (t *guardedTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.done)
		err = t.NetTransport.Shutdown()
		close(t.stopped)
	})
	return err
}

// pass hands the accepted connections within the bounds to memberlist until Shutdown begins,
// then closes those accepted until the NetTransport has stopped: its accept loop blocks on
// handing a connection over, and its Shutdown waits for that loop, so a connection accepted
// after pass stopped reading would hold Shutdown (and the server's) forever.
func (t *guardedTransport) pass(in <-chan net.Conn) {
	defer func() {
		for {
			select {
			case c := <-in:
				_ = c.Close()
			case <-t.stopped:
				return
			}
		}
	}()
	for {
		select {
		case <-t.done:
			return
		case c := <-in:
			select {
			case t.slots <- struct{}{}:
			default:
				if oldest := t.oldest(); oldest != nil {
					// "from=": a line about what a remote address did, limited (logwriter.go).
					t.logger.Printf("[WARN] memberlist: %d gossip streams already in progress: closed the oldest from=%s", maxInboundStreams, oldest.RemoteAddr())
					_ = oldest.Close() // gives its slot back
				}
				select {
				case t.slots <- struct{}{}:
				case <-t.done:
					_ = c.Close()
					return
				}
			}
			gc := &guardedConn{Conn: c}
			t.mu.Lock()
			e := t.open.PushBack(gc)
			t.mu.Unlock()
			gc.release = func() {
				t.mu.Lock()
				t.open.Remove(e)
				t.mu.Unlock()
				<-t.slots
			}
			select {
			case t.streams <- gc:
			case <-t.done:
				_ = gc.Close()
				return
			}
		}
	}
}

// oldest returns the connection that has held its slot longest, nil if none does.
func (t *guardedTransport) oldest() *guardedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.open.Front(); e != nil {
		return e.Value.(*guardedConn)
	}
	return nil
}

// guardedConn is an accepted stream connection holding one of the transport's slots until it
// is closed, and reading at most maxStreamBytes.
type guardedConn struct {
	net.Conn
	read    atomic.Int64
	release func()
	once    sync.Once
}

func (c *guardedConn) Read(p []byte) (int, error) {
	left := maxStreamBytes - c.read.Load()
	if left <= 0 {
		return 0, errStreamTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left+1] // one byte more tells a stream at the limit from one beyond it
	}
	n, err := c.Conn.Read(p)
	if c.read.Add(int64(n)) > maxStreamBytes {
		return 0, errStreamTooLarge
	}
	return n, err
}

func (c *guardedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
