// Package mux lets Raft share the API port: a first-byte connection
// multiplexer, wire compatible with the seed.
//
// Wire format (fixed: peers of different versions must agree on it): a
// Raft peer opens a TCP connection and sends one byte, RaftByte (1), then,
// when peer TLS is configured, the TLS handshake, then Raft's own protocol.
// Every other connection belongs to the API: its first byte (an HTTP/2
// preface 'P', an HTTP/1.1 method letter, or a TLS record 0x16) is read and
// replayed, so the API server sees the connection untouched.
//
// The first byte is read in a goroutine per connection, under a deadline,
// so a client that connects and sends nothing holds only its own
// connection, never the accept loop. At most Config.MaxPending connections
// wait for their first byte (or a Raft peer's TLS handshake); a new
// connection beyond that closes the oldest waiting one, so idle connections
// cannot crowd out clients that speak at once.
package mux

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// RaftByte is the first byte of every Raft connection. Part of the wire
// format: do not change.
const RaftByte byte = 1

// Defaults for Config.
const (
	DefaultFirstByteTimeout = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxPending       = 1024
	// queueLen is how many sorted connections may wait for Accept per side.
	queueLen = 64
)

// Errors.
var (
	// ErrNilListener is returned by New without a listener.
	ErrNilListener = errors.New("mux: nil listener")
	// ErrInvalidConfig is returned by New for a Config that fails validation; the message
	// names the field.
	ErrInvalidConfig = errors.New("mux: invalid config")
)

// Config configures a Mux. Zero values take the defaults.
type Config struct {
	// PeerServerTLS, when set, is used for the TLS handshake on accepted
	// Raft connections (after RaftByte). Set ClientAuth and ClientCAs to
	// make peers authenticate. Nil: Raft connections are plaintext.
	PeerServerTLS *tls.Config
	// PeerClientTLS, when set, is used by Dial for the TLS handshake to
	// peers. Nil: plaintext.
	PeerClientTLS *tls.Config
	// PeerServerName, when set, is the name Dial verifies in the peer's
	// certificate (overriding PeerClientTLS.ServerName); otherwise the host
	// part of the dialed address is used.
	PeerServerName string
	// FirstByteTimeout bounds the wait for a new connection's first byte.
	// Default DefaultFirstByteTimeout.
	FirstByteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake of accepted Raft
	// connections. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxPending bounds the connections waiting for their first byte or,
	// Raft's, for their TLS handshake; a new connection beyond it closes the
	// oldest waiting one. Default DefaultMaxPending.
	MaxPending int
	// Advertise, when set, is the address Raft's listener reports (Addr);
	// otherwise the listener's own address.
	Advertise net.Addr
	// Logger receives refused connections at debug level. Default: discards.
	Logger *slog.Logger
}

// Mux sorts the connections of one listener into a Raft listener and an
// API listener. Create it with New; Close stops it. Safe for concurrent use.
type Mux struct {
	l    net.Listener
	cfg  Config
	api  *subListener
	raft *StreamLayer

	closeOnce sync.Once
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	closed    <-chan struct{} // ctx.Done()
	wg        sync.WaitGroup  // the accept loop and the sniffers

	mu      sync.Mutex
	pending map[net.Conn]*list.Element // connections whose first byte is awaited
	order   *list.List                 // of net.Conn, oldest first
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.FirstByteTimeout == 0 {
		cfg.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks a Config with its defaults applied. The error names the field and wraps
// ErrInvalidConfig.
func (cfg Config) validate() error {
	switch {
	case cfg.FirstByteTimeout < 0:
		return fmt.Errorf("%w: FirstByteTimeout %v is negative", ErrInvalidConfig, cfg.FirstByteTimeout)
	case cfg.HandshakeTimeout < 0:
		return fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrInvalidConfig, cfg.HandshakeTimeout)
	case cfg.MaxPending < 0:
		return fmt.Errorf("%w: MaxPending %d is negative", ErrInvalidConfig, cfg.MaxPending)
	}
	return nil
}

// New starts sorting the connections of l. The Mux owns l: Close closes it. When New fails
// (ErrNilListener, or ErrInvalidConfig naming the Config field out of range), l stays the
// caller's.
func New(l net.Listener, cfg Config) (*Mux, error) {
	if l == nil {
		return nil, ErrNilListener
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Mux{l: l, cfg: cfg, pending: make(map[net.Conn]*list.Element), order: list.New()}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.closed = m.ctx.Done()
	m.api = newSubListener(m, l.Addr())
	raftAddr := l.Addr()
	if cfg.Advertise != nil {
		raftAddr = cfg.Advertise
	}
	m.raft = &StreamLayer{subListener: newSubListener(m, raftAddr), cfg: cfg}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// API returns the listener receiving every connection that is not Raft's,
// with its first byte replayed. Hand it to the API server's Serve. Closing
// it stops only its Accept.
func (m *Mux) API() net.Listener { return m.api }

// Raft returns Raft's stream layer: the listener of Raft connections (TLS
// already negotiated when configured) and a Dial for peers.
func (m *Mux) Raft() *StreamLayer { return m.raft }

// Addr returns the address of the shared listener.
func (m *Mux) Addr() net.Addr { return m.l.Addr() }

// Close closes the shared listener and every connection not yet handed
// over, ends both listeners' Accept with net.ErrClosed, and waits for the
// Mux's goroutines. Connections already accepted are their owner's to
// close. Idempotent; returns the listener's Close error the first time.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.cancel()
		err = m.l.Close()
		m.mu.Lock()
		for c := range m.pending {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
		m.api.drain()
		m.raft.drain()
	})
	return err
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		conn, err := m.l.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if ne, ok := err.(net.Error); (ok && ne.Timeout()) || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				m.cfg.Logger.Warn("mux: accept", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
					continue
				case <-m.closed:
					return
				}
			}
			m.cfg.Logger.Error("mux: accept failed; closing", "err", err)
			m.api.fail(err)
			m.raft.fail(err)
			return
		}
		delay = 0
		m.mu.Lock()
		select {
		case <-m.closed:
			m.mu.Unlock()
			conn.Close()
			return
		default:
		}
		if m.order.Len() >= m.cfg.MaxPending {
			// Closing it makes its sorter return (and forget it).
			oldest := m.order.Remove(m.order.Front()).(net.Conn)
			delete(m.pending, oldest)
			oldest.Close()
			m.cfg.Logger.Debug("mux: too many connections waiting for their first byte; closed the oldest",
				"remote", oldest.RemoteAddr(), "max_pending", m.cfg.MaxPending)
		}
		m.pending[conn] = m.order.PushBack(conn)
		m.wg.Add(1)
		m.mu.Unlock()
		go m.sort(conn)
	}
}

// sort reads conn's first byte and hands conn to Raft or to the API.
func (m *Mux) sort(raw net.Conn) {
	defer m.wg.Done()
	handed := false
	defer func() {
		m.unpend(raw)
		if !handed {
			raw.Close()
		}
	}()
	conn := raw
	var b [1]byte
	conn.SetReadDeadline(time.Now().Add(m.cfg.FirstByteTimeout))
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		m.cfg.Logger.Debug("mux: no first byte", "remote", conn.RemoteAddr(), "err", err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	if b[0] != RaftByte {
		handed = m.unpend(raw) && m.api.deliver(&replayConn{Conn: conn, first: b[0], unread: true})
		return
	}
	if m.cfg.PeerServerTLS != nil {
		tc := tls.Server(conn, m.cfg.PeerServerTLS)
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			m.cfg.Logger.Debug("mux: raft peer TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
			return
		}
		conn = tc
	}
	handed = m.unpend(raw) && m.raft.deliver(conn)
}

// unpend forgets conn as waiting; false if it was no longer (closed as the oldest, or by
// Close), so it must not be handed over.
func (m *Mux) unpend(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.pending[conn]
	if ok {
		m.order.Remove(e)
		delete(m.pending, conn)
	}
	return ok
}

// apiReadBuffer is the read buffer of an API connection. The HTTP/2 server reads each frame
// with two reads (its 9-byte header, then its payload) straight from the connection: without a
// buffer, a stream of small messages costs two read syscalls per message; with one, a read
// takes every frame that has arrived.
const apiReadBuffer = 16 << 10

// replayConn returns the already-read first byte before reading conn, and buffers reads (see
// apiReadBuffer).
type replayConn struct {
	net.Conn
	mu     sync.Mutex // serializes Reads: the buffer is not safe for concurrent use
	first  byte
	unread bool
	r      *bufio.Reader
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unread {
		c.unread = false
		p[0] = c.first
		return 1, nil
	}
	if c.r == nil {
		c.r = bufio.NewReaderSize(c.Conn, apiReadBuffer)
	}
	return c.r.Read(p)
}

// subListener is one side of the Mux: a net.Listener fed by the sorter.
type subListener struct {
	m     *Mux
	addr  net.Addr
	conns chan net.Conn

	once   sync.Once
	closed chan struct{}
	errMu  sync.Mutex
	err    error // why Accept fails after closed
}

func newSubListener(m *Mux, addr net.Addr) *subListener {
	return &subListener{m: m, addr: addr, conns: make(chan net.Conn, queueLen), closed: make(chan struct{}), err: net.ErrClosed}
}

// deliver queues conn for Accept; false when the listener or Mux closed.
func (s *subListener) deliver(conn net.Conn) bool {
	select {
	case s.conns <- conn:
		return true
	case <-s.closed:
		return false
	case <-s.m.closed:
		return false
	}
}

// Accept waits for the next connection of this side. After Close (of this
// listener or of the Mux) it returns an error wrapping net.ErrClosed.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
	case <-s.m.closed:
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return nil, fmt.Errorf("mux: accept: %w", s.err)
}

// Close stops this side's Accept; connections queued are closed. The
// shared listener and the other side keep running. Idempotent.
func (s *subListener) Close() error {
	s.once.Do(func() { close(s.closed) })
	s.drain()
	return nil
}

// fail makes Accept return err from now on.
func (s *subListener) fail(err error) {
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	s.Close()
}

// drain closes connections queued but never accepted.
func (s *subListener) drain() {
	for {
		select {
		case c := <-s.conns:
			c.Close()
		default:
			return
		}
	}
}

// Addr returns the listener's address.
func (s *subListener) Addr() net.Addr { return s.addr }
