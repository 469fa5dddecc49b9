package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestSDKReadsPastDivergedServers: the SDK against real servers whose divergence alarm is
// raised (they answer every read DATA_LOSS). With followers first in its read order, both
// followers diverged, Consume and Stream still read every record, from the leader; once every
// server is diverged, Consume reports the DATA_LOSS rather than a record.
func TestSDKReadsPastDivergedServers(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	ctx := ctxT(t, 90*time.Second)
	addrs := make([]string, len(nodes))
	for i, nd := range nodes {
		addrs[i] = nd.Addr()
	}
	sdk, err := client.New(ctx, addrs, client.WithReadPolicy(client.ReadFollowers),
		client.WithBackoff(5*time.Millisecond, 50*time.Millisecond), client.WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	const n = 20
	for i := range n {
		if _, err := sdk.Produce(ctx, fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("Produce %d: %v", i, err)
		}
	}
	for _, nd := range nodes {
		if nd != leader {
			nd.svc.div.raise("planted by the test")
		}
	}
	for off := range uint64(n) {
		rec, err := sdk.Consume(ctx, off)
		if err != nil || string(rec.Value) != fmt.Sprintf("v%d", off) {
			t.Fatalf("Consume %d with both followers diverged: %q, %v", off, rec.Value, err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	got := 0
	for rec, err := range sdk.Stream(sctx, 0) {
		if err != nil {
			t.Fatalf("Stream with both followers diverged, after %d records: %v", got, err)
		}
		if rec.Offset != uint64(got) || string(rec.Value) != fmt.Sprintf("v%d", got) {
			t.Fatalf("Stream record %d: offset %d %q", got, rec.Offset, rec.Value)
		}
		if got++; got == n {
			break
		}
	}
	cancel()

	leader.svc.div.raise("planted by the test")
	if rec, err := sdk.Consume(ctx, 0); err == nil || errors.Is(err, client.ErrOutOfRange) {
		t.Fatalf("Consume with every server diverged: %q, %v; want the DATA_LOSS", rec.Value, err)
	} else {
		t.Logf("every server diverged: %v", err)
	}
}
