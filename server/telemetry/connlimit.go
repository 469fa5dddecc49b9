package telemetry

import (
	"container/list"
	"log/slog"
	"net"
	"sync"
	"time"
)

// HTTPMaxConns bounds the connections the metrics endpoint holds open at once. Scrapers and
// probes need a few; without a bound, a stranger who reached the port (plain HTTP, no
// authentication) and opened connections faster than the timeouts closed them (each holds a
// descriptor up to HTTPReadHeaderTimeout) exhausted the process's open files: the shared port
// and gossip could then accept nothing ("too many open files").
const HTTPMaxConns = 64

// closedLogEvery is how often, at most, connections closed over HTTPMaxConns are logged.
const closedLogEvery = 10 * time.Second

// oldestClosingListener hands out at most max open connections: accepting one more closes the
// oldest still open, so that connections held open by someone who sends nothing give way to
// new ones (a probe or scrape answers in milliseconds; the oldest connection is the one most
// likely stalled), and the descriptors the endpoint holds stay bounded.
type oldestClosingListener struct {
	net.Listener
	max    int
	logger *slog.Logger

	mu         sync.Mutex
	open       *list.List // of *limitedConn, oldest first
	closed     uint64     // closed over max since last logged
	lastLogged time.Time
}

func newOldestClosingListener(l net.Listener, maxConns int, logger *slog.Logger) *oldestClosingListener {
	return &oldestClosingListener{Listener: l, max: maxConns, logger: logger, open: list.New()}
}

func (l *oldestClosingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	var oldest *limitedConn
	l.mu.Lock()
	if l.open.Len() >= l.max {
		oldest = l.open.Remove(l.open.Front()).(*limitedConn)
		oldest.elem = nil
		l.closed++
	}
	lc.elem = l.open.PushBack(lc)
	var report uint64
	if oldest != nil && time.Since(l.lastLogged) >= closedLogEvery {
		report, l.closed, l.lastLogged = l.closed, 0, time.Now()
	}
	l.mu.Unlock()
	if oldest != nil {
		oldest.Conn.Close()
	}
	if report > 0 {
		l.logger.Warn("metrics endpoint: too many connections open; closed the oldest",
			"max_conns", l.max, "closed", report, "remote", oldest.RemoteAddr())
	}
	return lc, nil
}

// openConns returns how many connections are open (handed out and not closed).
func (l *oldestClosingListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open.Len()
}

// limitedConn is a connection of an oldestClosingListener, forgotten when closed.
type limitedConn struct {
	net.Conn
	l    *oldestClosingListener
	elem *list.Element // under l.mu; nil once forgotten
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	if c.elem != nil {
		c.l.open.Remove(c.elem)
		c.elem = nil
	}
	c.l.mu.Unlock()
	return c.Conn.Close()
}
