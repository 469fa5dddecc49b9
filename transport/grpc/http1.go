package grpc

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// http1Message is the body of the answer to an HTTP/1 request on a plaintext gRPC port.
const http1Message = "this server speaks gRPC only (HTTP/2; e.g. grpcurl -plaintext ADDR list): " +
	"JSON over HTTP/1.1 (curl) is served by the Connect transport\n"

// http1Listener hands out connections that answer an HTTP/1 request with a plain HTTP/1.1
// error instead of grpc-go's HTTP/2 frames, which curl reports as "Received HTTP/0.9 when not
// allowed" and browsers as garbage. Only for plaintext: over TLS, ALPN refuses HTTP/1.1.
type http1Listener struct{ net.Listener }

func (l http1Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &http1Conn{Conn: c}, nil
}

// http1Conn looks at the first 4 bytes the client sends, before anything is read or written
// (an HTTP/2 client sends its 24-byte preface, "PRI * HTTP/2.0...", first; grpc-go waits for
// it under its connection timeout).
type http1Conn struct {
	net.Conn
	once sync.Once
	head []byte // bytes read while sniffing, not yet returned
	err  error
}

// http1Methods are the first 4 bytes of HTTP/1 requests.
var http1Methods = [][]byte{[]byte("GET "), []byte("POST"), []byte("PUT "), []byte("HEAD"),
	[]byte("DELE"), []byte("OPTI"), []byte("PATC"), []byte("CONN"), []byte("TRAC")}

func (c *http1Conn) Read(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// Write waits for the sniff: grpc-go writes its SETTINGS frame before it reads the client's
// preface (which an HTTP/2 client sends first, without waiting for the server).
func (c *http1Conn) Write(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if c.err != nil { // refused, or the client closed before sending 4 bytes: nothing to answer
		return 0, c.err
	}
	return c.Conn.Write(p)
}

func (c *http1Conn) sniff() {
	head := make([]byte, 4)
	n, err := io.ReadFull(c.Conn, head)
	c.head = head[:n]
	if err != nil {
		c.err = err
		return
	}
	for _, m := range http1Methods {
		if bytes.Equal(head, m) {
			c.head, c.err = nil, c.refuseHTTP1()
			return
		}
	}
}

// refuseHTTP1 answers 505, then reads what the client sent (briefly: closing with unread
// bytes resets the connection, and the client may lose the answer), and ends the connection.
func (c *http1Conn) refuseHTTP1() error {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c.Conn, "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(http1Message), http1Message)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 1<<20))
	return io.EOF
}
