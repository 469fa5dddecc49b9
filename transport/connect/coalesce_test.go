package connect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
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
