package serf

import (
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestGuardedTransportShutdownWithConnectionsPending: Shutdown returns, and closes the
// connections it accepted, while connections wait to be handed to memberlist. The guard
// stopped reading memberlist's accept loop when Shutdown began, so a connection that loop had
// accepted (the peers of a stopping server keep gossiping to it) left the loop blocked handing
// it over, and Shutdown, which waits for that loop, never returned: the server hung stopping
// (seen in CI as a TestWipeProcedure node whose Run did not return).
func TestGuardedTransportShutdownWithConnectionsPending(t *testing.T) {
	gt, err := newGuardedTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(gt.GetAutoBindPort()))
	// Nothing reads StreamCh (memberlist is busy): the guard holds the first connection, the
	// accept loop the second.
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		time.Sleep(200 * time.Millisecond) // accepted and handed on as far as it goes
	}
	stopped := make(chan error, 1)
	go func() { stopped <- gt.Shutdown() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return: the accept loop is blocked handing over a connection")
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("connection %d accepted before the shutdown is still open (read: %v)", i, err)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
