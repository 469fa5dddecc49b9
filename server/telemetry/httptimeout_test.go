package telemetry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"testing"
	"time"
)

// closedWithin reports whether the server closes conn (a read ends in EOF or a reset) within
// wait, and if not, what the read returned.
func closedWithin(conn net.Conn, wait time.Duration) (bool, error) {
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return false, err
	}
	_, err := io.Copy(io.Discard, conn)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return true, err // EOF (io.Copy returns nil) or a reset: closed by the server
	}
	return false, err
}

// TestMetricsEndpointClosesIdleAndSlowConnections: the metrics endpoint's http.Server had a
// ReadHeaderTimeout only, which net/http applies once a request's first bytes have arrived: a
// client that made one request and then sent nothing, or the first bytes of the next request's
// headers and no more, held its connection (a goroutine and a file descriptor) forever, and
// enough of them exhausted the process's descriptors. The server closes such a connection
// after its idle timeout, and a new connection that sends its headers slowly after its
// header timeout.
func TestMetricsEndpointClosesIdleAndSlowConnections(t *testing.T) {
	tel := newTelemetry(t, Config{})
	addr := tel.MetricsAddr()
	wait := 2 * time.Minute // far beyond every timeout of the endpoint: only "never" fails

	t.Run("slow headers after a request", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %s", res.Status)
		}
		// The next request's first bytes, and nothing more.
		if _, err := io.WriteString(conn, "GE"); err != nil {
			t.Fatal(err)
		}
		if closed, err := closedWithin(conn, wait); !closed {
			t.Fatalf("a kept-alive connection sending no more than %q of its next request was still open after %v (%v)", "GE", wait, err)
		}
	})
	t.Run("slow headers on a new connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: metr"); err != nil {
			t.Fatal(err)
		}
		if closed, err := closedWithin(conn, wait); !closed {
			t.Fatalf("a connection that sent part of its headers was still open after %v (%v)", wait, err)
		}
	})
}

// TestDebugServerTimeouts: the pprof server of COMMITLOG_PPROF_ADDR was http.ListenAndServe,
// with no timeout at all: a connection that sent part of its headers was held forever. The
// debug server closes it, and still serves a CPU profile of any duration (pprof refuses one
// at or beyond a WriteTimeout, so it has none).
func TestDebugServerTimeouts(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewDebugServer(ln.Addr().String(), mux, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /debug/pprof/ HTTP/1.1\r\nHost: deb"); err != nil {
		t.Fatal(err)
	}
	if closed, err := closedWithin(conn, 3*time.Minute); !closed {
		t.Fatalf("a connection that sent part of its headers was still open after 3m (%v)", err)
	}

	// A ten-minute profile is started, not refused: the client gives up first, which ends it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/debug/pprof/profile?seconds=600", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("a ten-minute CPU profile answered %s at once (%q): refused, want it running until the client gives up", res.Status, body)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a ten-minute CPU profile: %v, want it still running when the client gave up", err)
	}
}
