package mux

import (
	"io"
	"net"
	"testing"
)

// countingConn counts the reads that reach the connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

// TestReplayConnBuffersReads: the replayed first byte comes first, then small reads (an HTTP/2
// frame's header, then its payload) are served from one read of the connection.
func TestReplayConnBuffersReads(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	cc := &countingConn{Conn: server}
	rc := &replayConn{Conn: cc, first: 'P', unread: true}
	defer rc.Close()
	msg := []byte("RI * HTTP/2.0 and some frames after it")
	go func() { _, _ = client.Write(msg) }()
	got := make([]byte, 1+len(msg))
	if _, err := io.ReadFull(rc, got[:1]); err != nil || got[0] != 'P' {
		t.Fatalf("first read = %q, %v; want the replayed byte", got[:1], err)
	}
	for i := 1; i < len(got); i += 9 { // small reads, as a frame header is
		end := min(i+9, len(got))
		if _, err := io.ReadFull(rc, got[i:end]); err != nil {
			t.Fatal(err)
		}
	}
	if string(got[1:]) != string(msg) {
		t.Fatalf("read %q, want %q", got[1:], msg)
	}
	if cc.reads != 1 {
		t.Fatalf("%d reads reached the connection, want 1 (buffered)", cc.reads)
	}
}

// TestRecordWatchFindsApplicationData: the watch follows record headers and bodies split
// across reads at any point, and sees the first whole application data record, not a body byte
// that looks like one, nor the header of one whose body has not come.
func TestRecordWatchFindsApplicationData(t *testing.T) {
	stream := []byte{
		0x16, 0x03, 0x01, 0x00, 0x03, 0x17, 0x17, 0x17, // handshake record; its body looks like types
		0x14, 0x03, 0x03, 0x00, 0x01, 0x01, // change cipher spec
		0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb, // application data
		0x17, 0x03, 0x03, 0x00, 0x01, 0xcc,
	}
	last := 20 // the last byte of the first application data record
	for chunk := 1; chunk <= len(stream); chunk++ {
		var w recordWatch
		found := -1
		for i := 0; i < len(stream) && found < 0; i += chunk {
			if w.feed(stream[i:min(i+chunk, len(stream))]) {
				found = i
			}
		}
		if found < 0 || found > last || found+chunk <= last {
			t.Errorf("chunks of %d: application data seen in the chunk at %d, want the one holding byte %d", chunk, found, last)
		}
	}
	var w recordWatch
	if w.feed([]byte{0x17, 0x03, 0x03, 0x40, 0x00, 0x01}) {
		t.Error("an application data record seen whole from its header and one byte of 16384")
	}
	w = recordWatch{}
	if !w.feed([]byte{0x17, 0x03, 0x03, 0x00, 0x00}) {
		t.Error("an empty application data record not seen")
	}
}
