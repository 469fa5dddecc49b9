package server

import (
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/server/fsm"
)

// checksPlanned runs st.plan for the successive (lowest, common) of a partition and returns
// the number of the first check (from 1) whose spans cover offset off, 0 if none does.
func checksPlanned(st *divergenceState, t divTarget, bounds [][2]uint64, off uint64) int {
	for i, b := range bounds {
		for _, sp := range st.plan(t, b[0], b[1]) {
			if sp.from <= off && off <= sp.at {
				return i + 1
			}
		}
	}
	return 0
}

// TestDivergencePlanCoversEveryHeldRecord: the chains a check compares are valid (each within
// one block, from an offset every server holds, up to one they all applied), and every record
// all servers hold is compared within a bounded number of checks, where the boundary cases used
// to leave it out: a block cut by retention (the records of a partition whose first offset is
// not a multiple of fsm.ChecksumBlock, a partition of fewer records than a block included),
// the newest block cut that way, and the records written at the end of a block after the last
// check that saw it as the newest one.
func TestDivergencePlanCoversEveryHeldRecord(t *testing.T) {
	const B = fsm.ChecksumBlock
	steady := func(n int, lowest, common uint64) [][2]uint64 {
		var out [][2]uint64
		for range n {
			out = append(out, [2]uint64{lowest, common})
		}
		return out
	}
	cases := []struct {
		name   string
		bounds [][2]uint64 // (lowest, common) at each check
		off    uint64      // the diverged offset
		within int         // it must be compared within this many checks
	}{
		{"fewer records than a block, cut by retention", steady(3, 1000, 3000), 2000, 1},
		{"newest block cut by retention", steady(3, 5*B+10, 5*B+100), 5*B + 50, 1},
		{"older block cut by retention", steady(10, B+10, 4*B+5), B + 20, 4},
		{"first record held, block cut", steady(10, B+10, 4*B+5), B + 10, 4},
		{"current offset at a block's last offset", steady(5, 0, 3*B), 3*B - 1, 1},
		{"current offset at a block's first offset", steady(5, 0, 3*B+1), 3 * B, 1},
		// The last check saw block 9 up to 9B+100; the log then moved into block 10: the rest
		// of block 9 is compared at once, though 9 older blocks wait for the scrub.
		{"end of a block written after its last check", [][2]uint64{{0, 9*B + 101}, {0, 10*B + 1}, {0, 10*B + 2}}, 10*B - 1, 2},
		{"start of the newest block", [][2]uint64{{0, 9*B + 101}, {0, 10*B + 1}}, 10 * B, 2},
		{"scrub of older blocks, log growing", func() [][2]uint64 {
			var out [][2]uint64
			for i := range 20 {
				out = append(out, [2]uint64{0, 10*B + uint64(i)*100})
			}
			return out
		}(), 3*B + 7, 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &divergenceState{}
			tgt := divTarget{"t", 0}
			// Every span is valid.
			for _, b := range c.bounds {
				for _, sp := range (&divergenceState{}).plan(tgt, b[0], b[1]) {
					if sp.from < b[0] || sp.at >= b[1] || sp.from > sp.at || sp.from/B != sp.at/B {
						t.Fatalf("bounds %v: span %+v is not within one block of the records held", b, sp)
					}
				}
			}
			got := checksPlanned(st, tgt, c.bounds, c.off)
			if got == 0 || got > c.within {
				t.Fatalf("offset %d compared at check %d (0: never in %d checks), want within %d", c.off, got, len(c.bounds), c.within)
			}
		})
	}
	// The worst case of a steady log: every offset of every block compared within as many
	// checks as there are blocks held (plus the newest).
	for _, lowest := range []uint64{0, 1, B - 1, B, B + 1, 3*B + 17} {
		for _, common := range []uint64{lowest + 1, lowest + 2, 4 * B, 4*B + 1, 6*B - 1, 7*B + 3} {
			if common <= lowest {
				continue
			}
			blocks := int((common-1)/B - lowest/B + 1)
			t.Run(fmt.Sprintf("lowest %d common %d", lowest, common), func(t *testing.T) {
				st := &divergenceState{}
				covered := map[uint64]bool{}
				for range blocks {
					for _, sp := range st.plan(divTarget{}, lowest, common) {
						covered[sp.from/B] = true
						if sp.at != common-1 && sp.at%B != B-1 {
							t.Fatalf("span %+v ends neither at the current offset nor at its block's end", sp)
						}
						if sp.from != max(lowest, sp.from-sp.from%B) {
							t.Fatalf("span %+v starts neither at its block's start nor at the lowest offset %d", sp, lowest)
						}
					}
				}
				for k := lowest / B; k <= (common-1)/B; k++ {
					if !covered[k] {
						t.Fatalf("block %d never compared in %d checks", k, blocks)
					}
				}
			})
		}
	}
}
