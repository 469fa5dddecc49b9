package telemetry

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestMetricsEndpointClosesOldestOverCap: the metrics endpoint (plain HTTP, no authentication)
// held every connection it accepted until a timeout closed it, so a stranger who reached the
// port and opened connections faster exhausted the process's open files: on a real node
// (ulimit -n 20000) 24,000 idle connections left the shared port and gossip failing with
// "too many open files". Beyond HTTPMaxConns, accepting a connection closes the oldest, so the
// endpoint holds a bounded number, and a probe among the strangers is answered.
func TestMetricsEndpointClosesOldestOverCap(t *testing.T) {
	tel := newTelemetry(t, Config{})
	addr := tel.MetricsAddr()
	const maxConns = 64 // HTTPMaxConns
	get := func(c net.Conn) {
		t.Helper()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %s", res.Status)
		}
	}
	// Each connection is served once (so the server has accepted it), then left open and
	// idle: the server keeps it until its idle timeout (HTTPIdleTimeout, 30 s).
	var conns []net.Conn
	for range 3 * maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		get(c)
		conns = append(conns, c)
	}
	// The server closed the oldest ones as it accepted the newer ones, before it served them:
	// their end has arrived, and a read returns it at once (the wait only bounds a failure).
	for _, i := range []int{0, 2*maxConns - 1} {
		if closed, err := closedWithin(conns[i], 5*time.Second); !closed {
			t.Fatalf("connection %d of %d (idle, the endpoint holding at most %d) still open: %v", i+1, len(conns), maxConns, err)
		}
	}
	if l, ok := tel.ln.(interface{ openConns() int }); ok {
		if n := l.openConns(); n > maxConns {
			t.Fatalf("the endpoint holds %d connections, want at most %d", n, maxConns)
		}
	}
	// The newest ones are still served.
	get(conns[len(conns)-1])
}
