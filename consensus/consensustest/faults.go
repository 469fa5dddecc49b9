package consensustest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// ErrPartitioned is returned by a FaultNetwork dial across a partition.
var ErrPartitioned = errors.New("consensustest: partitioned")

// FaultNetwork connects the TCP stream layers of a test cluster and injects partitions: a dial
// between two nodes on different sides is refused, and the connections already open between
// them are closed. Safe for concurrent use.
type FaultNetwork struct {
	mu      sync.Mutex
	byAddr  map[string]string // address → node ID
	blocked map[[2]string]bool
	conns   map[*faultConn]struct{}
}

// NewFaultNetwork returns a network with no partitions.
func NewFaultNetwork() *FaultNetwork {
	return &FaultNetwork{byAddr: map[string]string{}, blocked: map[[2]string]bool{}, conns: map[*faultConn]struct{}{}}
}

// Layer returns a stream layer for node id listening on ln: its dials go through the
// network's partition rules. Closing it closes ln.
func (n *FaultNetwork) Layer(id string, ln net.Listener) hraft.StreamLayer {
	n.mu.Lock()
	n.byAddr[ln.Addr().String()] = id
	n.mu.Unlock()
	return &faultLayer{Listener: ln, net: n, id: id}
}

// Block cuts the link between nodes a and b (both directions) and closes its connections.
func (n *FaultNetwork) Block(a, b string) {
	n.mu.Lock()
	n.blocked[[2]string{a, b}] = true
	n.blocked[[2]string{b, a}] = true
	var toClose []*faultConn
	for c := range n.conns {
		if n.blocked[[2]string{c.from, c.to}] {
			toClose = append(toClose, c)
		}
	}
	n.mu.Unlock()
	for _, c := range toClose {
		_ = c.Close()
	}
}

// HealAll removes every partition.
func (n *FaultNetwork) HealAll() {
	n.mu.Lock()
	clear(n.blocked)
	n.mu.Unlock()
}

type faultLayer struct {
	net.Listener
	net *FaultNetwork
	id  string
}

func (l *faultLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.net.mu.Lock()
	to, known := l.net.byAddr[string(address)]
	blocked := known && l.net.blocked[[2]string{l.id, to}]
	l.net.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("dial %s (%s) from %s: %w", address, to, l.id, ErrPartitioned)
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	fc := &faultConn{Conn: c, net: l.net, from: l.id, to: to}
	l.net.mu.Lock()
	// Re-check: a partition may have been set while dialing.
	if known && l.net.blocked[[2]string{l.id, to}] {
		l.net.mu.Unlock()
		_ = c.Close()
		return nil, fmt.Errorf("dial %s (%s) from %s: %w", address, to, l.id, ErrPartitioned)
	}
	l.net.conns[fc] = struct{}{}
	l.net.mu.Unlock()
	return fc, nil
}

type faultConn struct {
	net.Conn
	net      *FaultNetwork
	from, to string
	once     sync.Once
}

func (c *faultConn) Close() error {
	var err error
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
