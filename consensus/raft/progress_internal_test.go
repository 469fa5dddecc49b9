package raft

import (
	"net"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// slowConn writes at most slowChunk bytes every slowEvery: a link of about 1.6 MB/s.
type slowConn struct{ net.Conn }

const (
	slowChunk = 16 << 10
	slowEvery = 10 * time.Millisecond
)

func (c slowConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), slowChunk)
		time.Sleep(slowEvery) // the link's rate, not a wait for a condition
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// TestAppendEntriesOnSlowLinkOutlivesTransportTimeout: an AppendEntries RPC that takes longer
// than the transport timeout to send, on a link that keeps moving bytes, completes. With
// MaxEntryBytes of 4 MiB an RPC carried 64 entries, 256 MiB: hashicorp/raft's 10 s deadline
// for the whole RPC needs more than 25.6 MB/s, and on a slower link every catch-up RPC timed
// out and was sent again, from the same entry, forever: the follower never caught up.
func TestAppendEntriesOnSlowLinkOutlivesTransportTimeout(t *testing.T) {
	// Bytes move every 40 ms (a 64 KiB write of the transport), far within the timeout even on
	// a loaded machine.
	const timeout = time.Second
	newTrans := func(slow bool) (*hraft.NetworkTransport, *trackingLayer) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl := newTrackingLayer(NewStreamLayer(ln, func(address string, timeout time.Duration) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", address, timeout)
			if err != nil || !slow {
				return c, err
			}
			return slowConn{c}, nil
		}))
		nt := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{Stream: tl, MaxPool: 1, Timeout: timeout})
		t.Cleanup(func() { _ = nt.Close(); _ = tl.Close() })
		return nt, tl
	}
	leader, _ := newTrans(true)
	follower, _ := newTrans(false)
	done := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			select {
			case rpc := <-follower.Consumer():
				rpc.Respond(&hraft.AppendEntriesResponse{Success: true}, nil)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); <-served })
	// 5 MiB: about 3.2 s on the slow link, more than three times the timeout.
	entries := make([]*hraft.Log, 80)
	for i := range entries {
		entries[i] = &hraft.Log{Index: uint64(i + 1), Term: 1, Type: hraft.LogCommand, Data: make([]byte, 64<<10)}
	}
	var resp hraft.AppendEntriesResponse
	start := time.Now()
	err := leader.AppendEntries("f", follower.LocalAddr(), &hraft.AppendEntriesRequest{Term: 1, Entries: entries}, &resp)
	if err != nil {
		t.Fatalf("AppendEntries of 5 MiB on a link moving 16 KiB every %v, transport timeout %v: %v (after %v)", slowEvery, timeout, err, time.Since(start))
	}
	if !resp.Success {
		t.Fatal("AppendEntries: not successful")
	}
}
