package connect

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"runtime"
	"sync"
)

// coalesceBufferBytes bounds what a streaming request body holds between connect-go's writes
// and net/http's reads: at most this much is read ahead of the HTTP/2 writer, so a stream's
// Send still blocks once the connection falls behind.
const coalesceBufferBytes = 64 << 10

// coalescingTransport makes the request body of a client-streaming call (ProduceStream) hand
// net/http everything written since its last read. connect-go writes each message to the
// body's pipe on its own, and net/http's HTTP/2 writer sends every read as a DATA frame
// followed by a flush: one write system call per message. With the body read ahead into a
// buffer, the messages sent while the writer was busy go out in one frame and one flush, and a
// Read that finds less than a frame yields once to let senders add to it. Measured with 16
// streams of 100-byte records: write calls per record from 2 to 0.02, client CPU ÷ 1.5.
// Requests with a known length (unary calls, server streams) pass through unchanged.
//
// The body also ends the call when the request's context ends: net/http's HTTP/2 client does
// not watch the context while it waits for the body (connect-go's pipe, which nothing closes
// on cancel), so a cancelled stream stayed open on both sides until the caller closed it, and
// then ended as if the client had finished sending (the server's handler answering OK). A body
// read that fails instead makes net/http reset the stream (RST_STREAM CANCEL), and the server
// sees the call cancelled.
type coalescingTransport struct {
	base http.RoundTripper
}

func (t coalescingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength >= 0 || req.GetBody != nil {
		res, err := t.base.RoundTrip(req)
		if err == nil {
			noteGRPCOnly(req, res)
		}
		return res, err
	}
	r := req.Clone(req.Context())
	b := newCoalescingBody(req.Body, coalesceBufferBytes)
	b.stop = context.AfterFunc(r.Context(), func() { b.closeWith(r.Context().Err()) })
	r.Body = b
	return t.base.RoundTrip(r)
}

// coalescingBody reads src ahead, in its own goroutine, into a buffer of at most max bytes,
// and gives each Read every whole message buffered (up to the reader's buffer). It knows the
// envelope framing every streaming protocol of connect-go uses (a flags byte and a 4-byte
// big-endian length, then the message): connect-go writes an envelope's prefix and its
// message in two writes, and a Read between them would send the prefix in a frame of its own.
// A message larger than partialBytes is given out in pieces as it arrives. The goroutine ends
// when src returns an error (io.EOF when the stream's sender closes it) or Close is called.
type coalescingBody struct {
	src io.ReadCloser
	max int

	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte // read from src, not yet given to Read
	ready  int    // buf[:ready] may be given to Read: whole envelopes, or a large one's start
	err    error  // src's error, returned once buf is drained
	closed error  // set by Close (io.ErrClosedPipe) or the request's context's end: Read's answer
	stop   func() bool

	// The envelope being read (pump only): its prefix so far, then how much of it is left.
	prefix  [5]byte
	prefixN int
	left    int
}

// partialBytes is how much of an unfinished envelope is buffered before it is given out
// anyway: a large message need not wait to be whole.
const partialBytes = 16 << 10

func newCoalescingBody(src io.ReadCloser, max int) *coalescingBody {
	b := &coalescingBody{src: src, max: max}
	b.cond.L = &b.mu
	go b.pump()
	return b
}

func (b *coalescingBody) pump() {
	chunk := make([]byte, partialBytes)
	for {
		n, err := b.src.Read(chunk)
		b.mu.Lock()
		for n > 0 && len(b.buf)+n > b.max && len(b.buf) > 0 && b.closed == nil {
			b.cond.Wait() // full: wait for Read to take some
		}
		if b.closed != nil {
			b.mu.Unlock()
			return
		}
		base := len(b.buf)
		b.buf = append(b.buf, chunk[:n]...)
		if end := b.scan(chunk[:n]); end >= 0 {
			b.ready = base + end
		}
		if err != nil {
			b.err = err
			b.ready = len(b.buf)
		} else if len(b.buf)-b.ready >= partialBytes {
			b.ready = len(b.buf)
		}
		b.cond.Broadcast()
		b.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// scan follows the envelope framing through p, the bytes just read, and returns the offset in
// p just past the last envelope p completes, or -1 when it completes none.
func (b *coalescingBody) scan(p []byte) int {
	end := -1
	for i := 0; i < len(p); {
		if b.prefixN < len(b.prefix) {
			k := copy(b.prefix[b.prefixN:], p[i:])
			b.prefixN += k
			i += k
			if b.prefixN < len(b.prefix) {
				break
			}
			b.left = int(binary.BigEndian.Uint32(b.prefix[1:]))
		}
		k := min(b.left, len(p)-i)
		i += k
		b.left -= k
		if b.left == 0 {
			b.prefixN = 0
			end = i
		}
	}
	return end
}

// Read waits for whole messages (or src's end) and returns as many bytes of them as fit in p.
func (b *coalescingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.ready == 0 && b.err == nil && b.closed == nil {
		b.cond.Wait()
	}
	if b.ready < len(p) && b.err == nil && b.closed == nil {
		// Let the goroutines that are ready to run (a sender with its next message among
		// them) go first, once: what they add goes out in this frame, not a frame of its own.
		// grpc-go's writer does the same before it flushes a small batch (loopyWriter.run).
		b.mu.Unlock()
		runtime.Gosched()
		b.mu.Lock()
	}
	if b.closed != nil {
		return 0, b.closed
	}
	if b.ready == 0 {
		return 0, b.err
	}
	n := copy(p, b.buf[:b.ready])
	b.buf = b.buf[:copy(b.buf, b.buf[n:])]
	b.ready -= n
	b.cond.Broadcast()
	return n, nil
}

// Close closes src (which ends a pending src.Read) and wakes the pump and any Read.
func (b *coalescingBody) Close() error {
	if b.stop != nil {
		b.stop()
	}
	return b.closeWith(io.ErrClosedPipe)
}

// closeWith closes the body as Close does; Read returns err from then on (the first one given).
func (b *coalescingBody) closeWith(err error) error {
	b.mu.Lock()
	if b.closed == nil {
		b.closed = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return b.src.Close()
}
