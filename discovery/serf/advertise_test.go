package serf_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery/serf"
)

// A StatefulSet's pod starts before its own DNS name under the headless Service is published
// (the name exists once the pod's IP is in the Service's endpoints), and that name is what the
// Helm chart advertises. New waits for it to resolve instead of failing: failing made every pod
// of a new cluster exit and wait out a crash-loop back-off.
func TestAdvertiseHostThatResolvesLate(t *testing.T) {
	const host = "commitlog-0.commitlog-headless.prod.svc.cluster.local"
	var lookups atomic.Int32
	restore := serf.SetLookupIP(func(h string) ([]net.IP, error) {
		if h != host {
			return net.LookupIP(h)
		}
		if lookups.Add(1) <= 3 { // not published yet
			return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
		}
		return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
	})
	defer restore()
	port := strconv.Itoa(freePort(t))
	a := startNode(t, "a", serf.Config{BindAddr: "127.0.0.1:" + port, AdvertiseAddr: host + ":" + port})
	if got, want := a.m.LocalMember().Addr, "127.0.0.1:"+port; got != want {
		t.Errorf("LocalMember().Addr = %q, want %q", got, want)
	}
	if n := lookups.Load(); n != 4 {
		t.Errorf("%d lookups of %s, want 4 (3 failed, then the address)", n, host)
	}

	// A name that never resolves still fails, once AdvertiseResolveTimeout has passed.
	restore2 := serf.SetLookupIP(func(h string) ([]net.IP, error) {
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	})
	defer restore2()
	_, err := serf.New(serf.Config{NodeName: "b", BindAddr: "127.0.0.1:0", AdvertiseAddr: "never.invalid:8401", AdvertiseResolveTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("New with an advertised host that never resolves succeeded")
	}
}

// A process stopped while New waits for its advertised host name (SIGTERM from Kubernetes
// deleting a pod that never got its DNS name, an operator's Ctrl-C after a typo) stops at
// once: NewContext's ctx ends the wait. New slept out the whole AdvertiseResolveTimeout (2
// minutes by default) whatever the caller did.
func TestAdvertiseHostWaitEndsWithContext(t *testing.T) {
	restore := serf.SetLookupIP(func(h string) ([]net.IP, error) {
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	})
	defer restore()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	m, err := serf.NewContext(ctx, serf.Config{NodeName: "c", BindAddr: "127.0.0.1:0", AdvertiseAddr: "never.invalid:8401"})
	if err == nil {
		_ = m.Close()
		t.Fatal("NewContext with an advertised host that never resolves succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("NewContext whose ctx ended while it waited for the advertised host: %v, want context.Canceled", err)
	}
}
