package mux_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport/mux"
)

// acceptAll feeds every connection of l into a channel until l closes.
func acceptAll(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn)
	go func() {
		defer close(ch)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ch
}

// FuzzSort checks that whatever a client sends reaches the right side with
// its bytes intact: Raft (minus the RaftByte) when the first byte is
// RaftByte, the API (every byte) otherwise.
func FuzzSort(f *testing.F) {
	f.Add([]byte{mux.RaftByte, 0, 'x'})
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("POST /log.v1.Log/Produce HTTP/1.1\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00})
	f.Add([]byte{mux.RaftByte})
	f.Add([]byte{0})
	m := newMux(f, mux.Config{})
	apiConns, raftConns := acceptAll(m.API()), acceptAll(m.Raft())
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return // nothing to sort by: the mux closes the connection
		}
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		want, from, other := data, apiConns, raftConns
		if data[0] == mux.RaftByte {
			want, from, other = data[1:], raftConns, apiConns
		}
		var got net.Conn
		select {
		case got = <-from:
		case wrong := <-other:
			wrong.Close()
			t.Fatalf("first byte %#x went to the wrong side", data[0])
		case <-time.After(waitLimit):
			t.Fatal("connection never accepted")
		}
		defer got.Close()
		got.SetReadDeadline(time.Now().Add(waitLimit))
		b, err := io.ReadAll(got)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("received %q, want %q", b, want)
		}
	})
}
