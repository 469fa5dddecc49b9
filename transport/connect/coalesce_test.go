package connect

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// envelope frames msg as connect-go does: a flags byte, a 4-byte big-endian length, msg.
func envelope(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// The body gives Read whole messages only: a prefix and its message, written apart as
// connect-go writes them, come out in one Read, and messages written meanwhile join them.
func TestCoalescingBodyWholeMessages(t *testing.T) {
	defer goleak.VerifyNone(t)
	pr, pw := io.Pipe()
	b := newCoalescingBody(pr, coalesceBufferBytes)
	defer b.Close()

	var want []byte
	for _, m := range []string{"one", "two", "three"} {
		e := envelope([]byte(m))
		want = append(want, e...)
		if _, err := pw.Write(e[:5]); err != nil { // the prefix alone
			t.Fatal(err)
		}
		waitBuffered(t, b, len(want)-len(m))
		b.mu.Lock()
		ready := b.ready
		b.mu.Unlock()
		if ready != len(want)-len(e) {
			t.Fatalf("after the prefix of %q, %d bytes readable, want %d", m, ready, len(want)-len(e))
		}
		if _, err := pw.Write(e[5:]); err != nil {
			t.Fatal(err)
		}
	}
	waitBuffered(t, b, len(want))
	buf := make([]byte, 1024)
	n, err := b.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("Read = %q, %v; want the three messages in one read", buf[:n], err)
	}
	pw.Close()
	if n, err := b.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v; want io.EOF", n, err)
	}
}

// A message larger than partialBytes is handed out in pieces before it is whole, and a
// reader's small buffer takes what is ready a piece at a time; nothing is lost or reordered.
func TestCoalescingBodyLargeMessage(t *testing.T) {
	defer goleak.VerifyNone(t)
	pr, pw := io.Pipe()
	b := newCoalescingBody(pr, coalesceBufferBytes)
	defer b.Close()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB, above the buffer
	e := append(envelope(msg), envelope([]byte("after"))...)
	go func() {
		_, _ = pw.Write(e[:len(e)-3]) // all but the end of the last message
		time.Sleep(10 * time.Millisecond)
		_, _ = pw.Write(e[len(e)-3:])
		pw.Close()
	}()
	got, err := io.ReadAll(readerFunc(func(p []byte) (int, error) { return b.Read(p[:min(len(p), 1000)]) }))
	if err != nil || !bytes.Equal(got, e) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(e))
	}
}

// Close ends a Read waiting for data and the goroutine reading ahead; the writer's side sees
// the pipe closed.
func TestCoalescingBodyClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	pr, pw := io.Pipe()
	b := newCoalescingBody(pr, coalesceBufferBytes)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := pw.Write([]byte("late")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after Close: %v", err)
	}
}

// A full buffer holds the writer back until the reader takes some.
func TestCoalescingBodyBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	pr, pw := io.Pipe()
	b := newCoalescingBody(pr, 64)
	defer b.Close()
	wrote := make(chan struct{})
	go func() {
		for range 20 {
			if _, err := pw.Write(envelope([]byte("0123456789"))); err != nil {
				break
			}
		}
		close(wrote)
	}()
	waitBuffered(t, b, 60)
	select {
	case <-wrote:
		t.Fatal("300 bytes written into a 64-byte buffer with no reader")
	case <-time.After(20 * time.Millisecond):
	}
	got, err := io.ReadFull(b, make([]byte, 300))
	if err != nil || got != 300 {
		t.Fatalf("read %d: %v", got, err)
	}
	<-wrote
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// waitBuffered waits until the body holds n bytes read ahead.
func waitBuffered(t *testing.T, b *coalescingBody, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		have := len(b.buf)
		b.mu.Unlock()
		if have >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes buffered, want %d", have, n)
		}
	}
}

// A streaming request's body fails its Read with the context's error when the request's
// context ends (net/http then resets the stream, and the server sees the call cancelled), and
// closes connect-go's pipe, whose writer is told so; a body closed first is not touched.
func TestCoalescingBodyEndsWithContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	read := make(chan error, 1)
	base := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		go func() {
			_, err := io.ReadAll(req.Body)
			read <- err
		}()
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://example/log.v1.Log/ProduceStream", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // a stream's, as connect-go sends it
	if _, err := (coalescingTransport{base: base}).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(envelope([]byte("r0"))); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-read; !errors.Is(err, context.Canceled) {
		t.Fatalf("the body's Read after the context ended: %v, want context.Canceled", err)
	}
	if _, err := pw.Write(envelope([]byte("r1"))); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("a Write after the context ended: %v, want io.ErrClosedPipe", err)
	}

	// Closed at the end of the stream, then cancelled: the context has nothing left to end.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	b := newCoalescingBody(io.NopCloser(bytes.NewReader(envelope([]byte("r0")))), coalesceBufferBytes)
	b.stop = context.AfterFunc(ctx, func() { b.closeWith(ctx.Err()) })
	if got, err := io.ReadAll(b); err != nil || len(got) != 7 {
		t.Fatalf("ReadAll = %d bytes, %v", len(got), err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Read after Close, then cancel: %v, want io.ErrClosedPipe", err)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
