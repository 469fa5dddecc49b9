package serf_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// TestGossipStreamsBoundedBeforeAuthentication: memberlist reads an encrypted stream message
// whole (up to 20 MiB) before it can authenticate it, and serves every connection at once. A
// process without the gossip key must not make a node hold an unbounded number of such
// connections (each buffering what it sends, for the 10 s TCP timeout of the default timing),
// nor make one connection buffer megabytes: the bounds apply before the work.
func TestGossipStreamsBoundedBeforeAuthentication(t *testing.T) {
	logs := newCaptureHandler()
	logger := slog.New(logs)
	if os.Getenv("DISCOVERY_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// The default (LAN) timing: streams may take 10 s.
	m, err := serf.New(serf.Config{NodeName: "n", BindAddr: "127.0.0.1:0", EncryptKey: mustKey(t),
		Handler: &discoverytest.Recorder{}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	addr := m.LocalMember().Addr

	// An encrypted message (type 10) announcing 20 MiB, of which nothing more comes.
	header := []byte{10, 0x01, 0x40, 0x00, 0x00}
	const strangers = 200
	conns := make([]net.Conn, 0, strangers)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range strangers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	var (
		mu   sync.Mutex
		held int
		wg   sync.WaitGroup
	)
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				held++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if held > 64 {
		t.Errorf("%d of %d unauthenticated gossip streams are held open, each buffering what it sends", held, strangers)
	}
	// Each stream closed over the bound was logged: as many lines as a stranger opens
	// connections. Such lines are limited (10 at once, then one a second).
	if os.Getenv("DISCOVERY_TEST_LOG") == "" {
		closed := 0
		logs.has(func(r logRecord) bool {
			if strings.Contains(r.Msg, "gossip streams already in progress") {
				closed++
			}
			return false
		})
		if closed > 20 {
			t.Errorf("the streams of %d strangers closed over the bound were logged in %d lines, want at most 20", strangers, closed)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	conns = conns[:0]
	time.Sleep(200 * time.Millisecond) // the closed streams give their slots back

	// One stream sending 8 MiB of its announced 20: refused before it is all read.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	sent := make(chan int64, 1)
	go func() {
		n, _ := c.Write(header)
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		more, _ := c.Write(make([]byte, 8<<20))
		sent <- int64(n + more)
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("a stream that sent 8 MiB of an unauthenticated message is still read after 5 s")
	}
	t.Logf("the stranger sent %d bytes", <-sent)
}

// TestGossipStrangersCannotLockOutMembers: a stranger without the key opens connections to the
// gossip port and sends nothing. Each is held for memberlist's TCP timeout (10 s in the default
// timing), and a connection over the bound used to be the one closed: a few idle connections a
// second held every slot, and a member with the key could not join (or push/pull) through this
// node ("failed to join ...: EOF"). A new connection closes the oldest instead.
func TestGossipStrangersCannotLockOutMembers(t *testing.T) {
	key := mustKey(t)
	m, err := serf.New(serf.Config{NodeName: "n", BindAddr: "127.0.0.1:0", EncryptKey: key,
		Handler: &discoverytest.Recorder{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	addr := m.LocalMember().Addr

	const strangers = 100
	for range strangers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	time.Sleep(300 * time.Millisecond) // accepted and handed on

	j := startNode(t, "joiner", serf.Config{EncryptKey: key})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := j.m.Join(ctx, []string{addr}); err != nil {
		t.Fatalf("a member with the key cannot join while a stranger holds %d idle connections to the gossip port: %v", strangers, err)
	}
	waitAliveCount(t, m, 2)
}
