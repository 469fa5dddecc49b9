package chaos

import "testing"

// TestCheckGroup: the group checker finds records never delivered, delivered with another
// value, and delivered but in no log (also when read again), not a record committed after the
// final read; repeats are allowed.
func TestCheckGroup(t *testing.T) {
	ref := map[uint64]string{0: "a", 1: "b", 2: "c"}
	for _, tt := range []struct {
		name      string
		delivered map[uint64]string
		late      map[uint64]string // the log read again
		anomalies int
	}{
		{"every record once or more", map[uint64]string{0: "a", 1: "b", 2: "c"}, nil, 0},
		{"one skipped", map[uint64]string{0: "a", 2: "c"}, nil, 1},
		{"another value", map[uint64]string{0: "a", 1: "x", 2: "c"}, nil, 1},
		{"a phantom", map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, nil, 1},
		{"a phantom, read again", map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, map[uint64]string{0: "a", 1: "b", 2: "c"}, 1},
		// A write whose outcome was unknown, committed after the final read (seed 40012).
		{"committed after the final read", map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, 0},
		{"committed late with another value", map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, map[uint64]string{0: "a", 1: "b", 2: "c", 3: "e"}, 1},
		{"nothing", map[uint64]string{}, nil, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := checkGroup(ref, tt.late, tt.delivered, 2, 1)
			if v.Anomalies != tt.anomalies || v.OK != (tt.anomalies == 0) {
				t.Fatalf("verdict %+v, want %d anomalies", v, tt.anomalies)
			}
		})
	}
}

// TestGroupWrongDeliveryNotHiddenByARepeat: an offset delivered with a wrong value and then
// again with the right one (a new owner re-reading the uncommitted window) is an anomaly.
func TestGroupWrongDeliveryNotHiddenByARepeat(t *testing.T) {
	ref := map[uint64]string{0: "a", 1: "b"}
	for _, order := range [][]string{{"x", "b"}, {"b", "x"}} {
		g := &groupReader{delivered: map[uint64]string{}}
		g.deliver(0, "a")
		for _, v := range order {
			g.deliver(1, v)
		}
		if v := checkGroup(ref, nil, g.delivered, g.repeats, 1); v.OK {
			t.Fatalf("offset 1 delivered as %q passes: %+v", order, v)
		}
	}
	g := &groupReader{delivered: map[uint64]string{}}
	for _, off := range []uint64{0, 1, 0, 1} {
		g.deliver(off, ref[off])
	}
	if v := checkGroup(ref, nil, g.delivered, g.repeats, 1); !v.OK || g.repeats != 2 {
		t.Fatalf("right repeats: %+v, %d repeats", v, g.repeats)
	}
}
