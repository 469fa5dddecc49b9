package fsm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
)

// TestChecksum: nodes that applied the same entries have the same chained checksum at every
// offset; a node that stored one different record differs from that offset to the end of its
// block and agrees before it and in later blocks; a new FSM over the same log (a restart)
// computes the same values; offsets not applied or below the log's block are unavailable.
func TestChecksum(t *testing.T) {
	ctx := context.Background()
	a, _ := newMemFSM(t, Config{})
	b, _ := newMemFSM(t, Config{})
	const n = ChecksumBlock + 100
	const planted = 50
	for i := range uint64(n) {
		e := consensus.Entry{Index: i + 1, Term: 1, Data: cmd(t, fmt.Sprint("v", i))}
		mustApply(t, a, e)
		if i == planted {
			e.Data = cmd(t, fmt.Sprint("V", i)) // same size, different value
		}
		mustApply(t, b, e)
	}
	check := func(f *FSM, at uint64) uint32 {
		t.Helper()
		s, err := f.Checksum(ctx, at)
		if err != nil {
			t.Fatalf("Checksum(%d): %v", at, err)
		}
		return s
	}
	// In an order that exercises both the cache (extending) and a fresh computation.
	for _, at := range []uint64{0, 10, planted - 1, planted, planted + 1, 200, ChecksumBlock - 1, ChecksumBlock, n - 1, 3} {
		sa, sb := check(a, at), check(b, at)
		diverged := at >= planted && at < ChecksumBlock
		if (sa != sb) != diverged {
			t.Fatalf("at %d: checksums %08x and %08x; want equal %v", at, sa, sb, !diverged)
		}
	}
	if check(a, 1) == check(a, 2) {
		t.Fatal("the checksum does not change from one offset to the next")
	}
	// A restart: a new FSM over the same log computes the same values.
	a2, err := New(Config{Log: a.log})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []uint64{7, planted, n - 1} {
		if check(a2, at) != check(a, at) {
			t.Fatalf("at %d: the checksum changed across a restart", at)
		}
	}
	if _, err := a.Checksum(ctx, n); !errors.Is(err, ErrChecksumUnavailable) {
		t.Fatalf("Checksum past the end: %v, want ErrChecksumUnavailable", err)
	}
	if err := a.log.TruncatePrefix(10); err != nil {
		t.Fatal(err)
	}
	if lo, _ := a.Bounds(); lo > 0 {
		if _, err := a.Checksum(ctx, lo+1); !errors.Is(err, ErrChecksumUnavailable) {
			t.Fatalf("Checksum in a block cut by retention: %v, want ErrChecksumUnavailable", err)
		}
	}
}
