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
// cannot crowd out clients that speak at once. An API connection that opens
// with a TLS record keeps its place among the waiting ones until its TLS
// handshake is over (the API server runs the handshake; the Mux watches the
// record types the client sends), so stalled API handshakes are bounded by
// MaxPending too. With Config.APITLS, so is an API connection whose first byte
// begins no TLS handshake: it can only be refused, once the API's TLS server
// has read a record header, and until then it waits with the others.
//
// At most Config.MaxConns API connections are open at once (handed to the
// API and not yet closed); one beyond it closes the oldest of them still in its
// TLS handshake, and is closed itself, as soon as its first byte sorts it to
// the API, when there is none. Raft's connections are not counted: strangers filling
// the API's allowance cannot lock the cluster's own peers out.
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

	"github.com/commitlog-go/commitlog/transport/internal/rejectlog"
)

// RaftByte is the first byte of every Raft connection. Part of the wire
// format: do not change.
const RaftByte byte = 1

// Defaults for Config.
const (
	DefaultFirstByteTimeout = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxPending       = 1024
	// refusedLogEvery is how often, at most, a connection refused over MaxConns is logged.
	refusedLogEvery = 10 * time.Second
	// tlsHandshakeRecord and tlsApplicationData are TLS record types: the first byte of a
	// ClientHello, and the type of the records a client sends once its handshake is over (in
	// TLS 1.3 also of its encrypted last flight: its certificate, when asked, and Finished).
	tlsHandshakeRecord = 0x16
	tlsApplicationData = 0x17
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
	// MaxConns bounds the API connections open at once: handed to the API listener and
	// not yet closed (by its server), those in their TLS handshake included. A connection
	// sorted to the API beyond it closes the oldest of those still in their handshake;
	// with none, it is closed at once, counted (Stats) and logged at warn level, at most
	// every 10 s. Raft's
	// connections are not counted. Zero: no bound.
	MaxConns int
	// APITLS says that the API server runs TLS on its connections. Every API connection
	// then waits among MaxPending until its client has sent application data, whatever its
	// first byte: one that begins no TLS handshake (a byte other than a TLS handshake
	// record's, then silence) would otherwise be counted as open at once, out of
	// MaxPending's reach, while the API's TLS server waits up to its handshake timeout for
	// the rest of a record header, so that strangers sending one byte each filled MaxConns
	// and locked clients out. Without it (a plaintext API), only a TLS first byte waits.
	APITLS bool
	// Advertise, when set, is the address Raft's listener reports (Addr);
	// otherwise the listener's own address.
	Advertise net.Addr
	// Logger receives refused connections: at warn level, rate limited, the Raft peer TLS
	// handshakes refused (with the remote address and the reason: no certificate, unknown
	// authority, expired, not TLS, timeout...; a 10-line burst then one a second per reason,
	// the next line counting those dropped: "suppressed"), the connections closed over
	// MaxPending (limited likewise) and those over MaxConns (at most every 10 s); at debug
	// level, connections that send no first byte and peer handshakes the client hung up on
	// (EOF, reset) or this Mux cut (MaxPending, Close). Default: discards.
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
	stopOnce  sync.Once
	stopped   chan struct{}   // closed by StopAccepting: the listener is closed
	lerr      error           // the listener's Close error, set by StopAccepting
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	closed    <-chan struct{} // ctx.Done()
	wg        sync.WaitGroup  // the accept loop and the sniffers

	mu      sync.Mutex
	pending map[net.Conn]*list.Element // connections whose first byte is awaited
	order   *list.List                 // of net.Conn, oldest first
	// open holds the API connections handed over and not closed, nor cut as the oldest
	// waiting: one cut is no longer counted against MaxConns from the moment the Mux closes
	// it, not once its server has noticed (under load, a client coming just after a flood of
	// stalled handshakes was refused over MaxConns by connections already closed).
	open    map[net.Conn]struct{}
	refused uint64 // API connections closed over MaxConns
	// refusedLogged is when a refusal over MaxConns was last logged; refusedSince counts
	// those since.
	refusedLogged time.Time
	refusedSince  uint64

	// handshakes logs the Raft peer TLS handshakes refused; pendingLines limits the lines
	// about connections closed over MaxPending.
	handshakes   *rejectlog.Handshakes
	pendingLines *rejectlog.Limiter
}

// Stats are a Mux's connection counts at one moment.
type Stats struct {
	// Pending is the connections waiting for their first byte or their TLS handshake.
	Pending int
	// APIOpen is the API connections handed over and not yet closed.
	APIOpen int
	// Refused is the API connections closed over MaxConns since New.
	Refused uint64
}

// Stats returns the connection counts.
func (m *Mux) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Pending: m.order.Len(), APIOpen: len(m.open), Refused: m.refused}
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
	case cfg.MaxConns < 0:
		return fmt.Errorf("%w: MaxConns %d is negative", ErrInvalidConfig, cfg.MaxConns)
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
	m := &Mux{l: l, cfg: cfg, pending: make(map[net.Conn]*list.Element), open: make(map[net.Conn]struct{}), order: list.New(), stopped: make(chan struct{}),
		handshakes:   rejectlog.NewHandshakes(cfg.Logger, "mux: rejected raft peer TLS handshake"),
		pendingLines: rejectlog.NewLimiter(nil)}
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
		err = m.StopAccepting()
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

// StopAccepting closes the shared listener and nothing else: from then on the operating system
// refuses a new connection, Raft's or the API's, so its client knows that it sent nothing,
// while the connections already accepted keep working (those still waiting for their first
// byte are sorted and handed over as before). A server stopping gracefully calls it before it
// stops its API, whose listener is only the Mux's: a connection accepted after that would be
// sorted to an API that no longer serves and closed with the client's request unread, which
// the client cannot tell from a request cut off after the server took it. Close still stops
// the rest. Idempotent; returns the listener's Close error.
func (m *Mux) StopAccepting() error {
	m.stopOnce.Do(func() {
		close(m.stopped)
		m.lerr = m.l.Close()
	})
	return m.lerr
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
			case <-m.stopped:
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
		var oldest net.Conn
		if m.order.Len() >= m.cfg.MaxPending {
			oldest = m.order.Remove(m.order.Front()).(net.Conn)
			delete(m.pending, oldest)
			delete(m.open, oldest)
		}
		m.pending[conn] = m.order.PushBack(conn)
		m.wg.Add(1)
		m.mu.Unlock()
		if oldest != nil {
			// Logged before the Close, which makes its sorter return (and forget it), logging
			// its end at debug level only: this line says why.
			m.logPendingCap(oldest)
			oldest.Close()
		}
		go m.sort(conn)
	}
}

// sort reads conn's first byte and hands conn to Raft or to the API.
func (m *Mux) sort(raw net.Conn) {
	defer m.wg.Done()
	handed := false
	defer func() {
		if !handed {
			m.unpend(raw)
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
		c := &replayConn{Conn: conn, first: b[0], unread: true, m: m, handshaking: b[0] == tlsHandshakeRecord || m.cfg.APITLS}
		if !m.admitAPI(raw, c.handshaking) {
			return
		}
		if handed = m.api.deliver(c); !handed {
			m.release(raw)
		}
		return
	}
	if m.cfg.PeerServerTLS != nil {
		tc := tls.Server(conn, m.cfg.PeerServerTLS)
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			// Logged before the deferred Close: the line is there once the client sees the end.
			m.handshakes.Report(conn.RemoteAddr().String(), err)
			return
		}
		conn = tc
	}
	handed = m.unpend(raw) && m.raft.deliver(conn)
}

// logPendingCap logs, at warn level and limited as refused handshakes are (rejectlog), that
// oldest was closed to make room under MaxPending: someone holds many connections open without
// speaking (or without finishing their TLS handshake), or MaxPending is too low for the load.
func (m *Mux) logPendingCap(oldest net.Conn) {
	ok, suppressed := m.pendingLines.Allow("pending")
	if !ok {
		return
	}
	attrs := []any{"remote", oldest.RemoteAddr(), "max_pending", m.cfg.MaxPending}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	m.cfg.Logger.Warn("mux: too many connections waiting for their first byte or TLS handshake; closed the oldest (raise --max-pending-conns if clients are cut)", attrs...)
}

// admitAPI counts conn, sorted to the API, as open, unless it is no longer waiting (closed as
// the oldest, or by Close) or MaxConns are open: then false, and conn must be closed. A TLS
// connection (handshaking) stays among the waiting ones until its handshake is over.
func (m *Mux) admitAPI(conn net.Conn, handshaking bool) bool {
	m.mu.Lock()
	e, ok := m.pending[conn]
	if !ok {
		m.mu.Unlock()
		return false
	}
	var stalled net.Conn
	if m.cfg.MaxConns > 0 && len(m.open) >= m.cfg.MaxConns {
		stalled = m.oldestHandshaking()
	}
	if stalled != nil {
		// Open connections still in their TLS handshake count against MaxConns: when they fill
		// what established ones leave, the waiting ones are not full, so no new connection
		// closed them, and every new one was refused for as long as their senders stalled.
		// They give way as they do under MaxPending: the oldest is closed.
		m.order.Remove(m.pending[stalled])
		delete(m.pending, stalled)
		delete(m.open, stalled)
	} else if m.cfg.MaxConns > 0 && len(m.open) >= m.cfg.MaxConns {
		m.order.Remove(e)
		delete(m.pending, conn)
		m.refused++
		m.refusedSince++
		var since uint64
		now := time.Now()
		if now.Sub(m.refusedLogged) >= refusedLogEvery {
			since, m.refusedSince, m.refusedLogged = m.refusedSince, 0, now
		}
		m.mu.Unlock()
		if since > 0 {
			m.cfg.Logger.Warn("mux: too many API connections open; closed new ones (raise --max-conns, and the open-files limit with it)",
				"remote", conn.RemoteAddr(), "max_conns", m.cfg.MaxConns, "refused", since)
		}
		return false
	}
	m.open[conn] = struct{}{}
	if !handshaking {
		m.order.Remove(e)
		delete(m.pending, conn)
	}
	m.mu.Unlock()
	if stalled != nil {
		if ok, suppressed := m.pendingLines.Allow("handshaking over max-conns"); ok {
			attrs := []any{"remote", stalled.RemoteAddr(), "max_conns", m.cfg.MaxConns}
			if suppressed > 0 {
				attrs = append(attrs, "suppressed", suppressed)
			}
			m.cfg.Logger.Warn("mux: API connections open up to max-conns; closed the oldest still in its TLS handshake", attrs...)
		}
		stalled.Close()
	}
	return true
}

// oldestHandshaking returns the oldest waiting connection that is counted as open (an API
// connection in its TLS handshake), nil if none is. Under m.mu.
func (m *Mux) oldestHandshaking() net.Conn {
	for e := m.order.Front(); e != nil; e = e.Next() {
		if c := e.Value.(net.Conn); c != nil {
			if _, ok := m.open[c]; ok {
				return c
			}
		}
	}
	return nil
}

// release forgets an API connection counted by admitAPI: it closed (or was never handed over).
func (m *Mux) release(conn net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.pending[conn]; ok {
		m.order.Remove(e)
		delete(m.pending, conn)
	}
	delete(m.open, conn)
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
// apiReadBuffer). With a Mux, it is counted among the API's open connections until closed and,
// while handshaking, among the waiting ones until the client's first application data record.
type replayConn struct {
	net.Conn
	m           *Mux
	mu          sync.Mutex // serializes Reads: the buffer is not safe for concurrent use
	first       byte
	unread      bool
	r           *bufio.Reader
	handshaking bool        // a TLS handshake is watched for its end (under mu)
	records     recordWatch // under mu
	closeOnce   sync.Once
}

// Close closes the connection and, the first time, stops counting it.
func (c *replayConn) Close() error {
	c.closeOnce.Do(func() {
		if c.m != nil {
			c.m.release(c.Conn)
		}
	})
	return c.Conn.Close()
}

// watch follows the TLS records in p, read from the client, and ends the wait of a handshake
// once the client has sent a record of application data.
func (c *replayConn) watch(p []byte) {
	if c.handshaking && c.records.feed(p) {
		c.handshaking = false
		if c.m != nil {
			c.m.unpend(c.Conn)
		}
	}
}

// recordWatch follows the records of a TLS stream, as the bytes come.
type recordWatch struct {
	hdr     [5]byte // a record header: type, version (2 bytes), length (2 bytes)
	nhdr    int     // bytes of hdr read
	body    int     // bytes of the current record's body not yet read
	appData bool    // the current record is application data
}

// feed reads the next bytes of the stream; true once a whole record of application data has
// come. Whole: a client that sends a record header and stalls must not pass for one whose
// handshake is over (the server would wait for the record's body, up to its own timeout);
// once the record is whole, the server decrypts it, or fails and closes the connection.
func (w *recordWatch) feed(p []byte) bool {
	for {
		if w.body > 0 {
			k := min(w.body, len(p))
			w.body -= k
			p = p[k:]
			if w.body > 0 {
				return false
			}
		}
		if w.appData {
			return true
		}
		if len(p) == 0 {
			return false
		}
		k := copy(w.hdr[w.nhdr:], p)
		w.nhdr += k
		p = p[k:]
		if w.nhdr < len(w.hdr) {
			return false
		}
		w.nhdr = 0
		w.appData = w.hdr[0] == tlsApplicationData
		w.body = int(w.hdr[3])<<8 | int(w.hdr[4])
	}
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
		c.watch(p[:1])
		return 1, nil
	}
	if c.r == nil {
		c.r = bufio.NewReaderSize(c.Conn, apiReadBuffer)
	}
	n, err := c.r.Read(p)
	c.watch(p[:n])
	return n, err
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

// deliver queues conn for Accept; false when the listener or Mux closed. A conn queued as
// this listener closes (the select takes any ready case: room in the queue as well as closed)
// is closed by drain here, as Close drains only what was queued before it: it would stay
// open, and counted among the API's open connections, until the Mux closed. (The Mux's own
// Close drains after the sorters have returned.)
func (s *subListener) deliver(conn net.Conn) bool {
	select {
	case s.conns <- conn:
		select {
		case <-s.closed:
			s.drain()
		default:
		}
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
