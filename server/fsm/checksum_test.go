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

// TestChecksumFrom: a chain from an offset inside a block (one that retention cut) is computed
// once the block's start is gone, is the same on nodes that hold the same records and differs
// where they differ; from the block's start it is Checksum's value; from outside at's block,
// or below the log's first offset, it is unavailable.
func TestChecksumFrom(t *testing.T) {
	ctx := context.Background()
	a, _ := newMemFSM(t, Config{})
	b, _ := newMemFSM(t, Config{})
	const n, planted = 300, 250
	for i := range uint64(n) {
		e := consensus.Entry{Index: i + 1, Term: 1, Data: cmd(t, fmt.Sprint("v", i))}
		mustApply(t, a, e)
		if i == planted {
			e.Data = cmd(t, fmt.Sprint("V", i))
		}
		mustApply(t, b, e)
	}
	for _, f := range []*FSM{a, b} {
		if s, err := f.ChecksumFrom(ctx, 0, 20); err != nil || s != must(t)(f.Checksum(ctx, 20)) {
			t.Fatalf("ChecksumFrom(0, 20) = %08x, %v; want Checksum(20)", s, err)
		}
		f.first.Store(100) // a retain command's effect
	}
	if _, err := a.Checksum(ctx, n-1); !errors.Is(err, ErrChecksumUnavailable) {
		t.Fatalf("Checksum in the cut block: %v, want ErrChecksumUnavailable", err)
	}
	for _, at := range []uint64{100, 200, planted - 1, planted, n - 1, 150} {
		sa, err := a.ChecksumFrom(ctx, 100, at)
		if err != nil {
			t.Fatalf("ChecksumFrom(100, %d): %v", at, err)
		}
		sb, err := b.ChecksumFrom(ctx, 100, at)
		if err != nil {
			t.Fatalf("ChecksumFrom(100, %d): %v", at, err)
		}
		if (sa != sb) != (at >= planted) {
			t.Fatalf("at %d: chains from 100 %08x and %08x; want equal %v", at, sa, sb, at < planted)
		}
	}
	if s1, s2 := must(t)(a.ChecksumFrom(ctx, 100, 200)), must(t)(a.ChecksumFrom(ctx, 101, 200)); s1 == s2 {
		t.Fatal("chains from different offsets have the same checksum")
	}
	for _, c := range [][2]uint64{{99, 200}, {201, 200}, {100, n}} {
		if _, err := a.ChecksumFrom(ctx, c[0], c[1]); !errors.Is(err, ErrChecksumUnavailable) {
			t.Fatalf("ChecksumFrom(%d, %d): %v, want ErrChecksumUnavailable", c[0], c[1], err)
		}
	}
}

func must(t *testing.T) func(uint32, error) uint32 {
	return func(s uint32, err error) uint32 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
