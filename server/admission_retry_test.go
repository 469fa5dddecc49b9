package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
)

// TestAdmissionRetriedSoonAfterAFirstFailure: a server whose first admission check failed (a
// handshake that timed out on a loaded host, say) was left out of the cluster for 30 s: a
// cluster that did not form in the 30 s tests give it failed CI so. The first refusal lasts a
// second; refusals that follow double, up to 30 s, so that a stranger still costs at most one
// handshake every 30 s.
func TestAdmissionRetriedSoonAfterAFirstFailure(t *testing.T) {
	calls := 0
	r := newReconciler(reconcilerConfig{self: "node-0", admit: func(context.Context, string, string) error {
		calls++
		if calls == 1 {
			return errors.New("handshake timed out")
		}
		return nil
	}})
	m := discovery.Member{Name: "node-1", Status: discovery.StatusAlive,
		Tags: map[string]string{tagRaftAddr: "127.0.0.1:1", tagRPCAddr: "127.0.0.1:1"}}
	ctx := context.Background()
	if r.admitted(ctx, m) {
		t.Fatal("admitted although its check failed")
	}
	if r.admitted(ctx, m) || calls != 1 {
		t.Fatalf("checked again at once (%d checks): a refusal must last a while", calls)
	}
	time.Sleep(refusedFirstRetry + 200*time.Millisecond)
	if !r.admitted(ctx, m) {
		t.Fatalf("not admitted %v after one failed check (%d checks): want it checked again and admitted", refusedFirstRetry+200*time.Millisecond, calls)
	}

	// The waits of refusals in a row, and after a quiet spell.
	now := time.Now()
	var f refusedFor
	var waits []time.Duration
	for range 7 {
		f = nextRefusal(f, now)
		waits = append(waits, f.wait)
		now = f.until
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits of refusals in a row: %v, want %v", waits, want)
		}
	}
	if f = nextRefusal(f, now.Add(refusedRetry+time.Second)); f.wait != refusedFirstRetry {
		t.Fatalf("after a quiet spell of %v the next refusal lasts %v, want %v", refusedRetry+time.Second, f.wait, refusedFirstRetry)
	}
}
