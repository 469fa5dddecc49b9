package chaos

import "testing"

// TestCheckGroup: the group checker finds records never delivered, delivered with another
// value, and delivered but in no log; repeats are allowed.
func TestCheckGroup(t *testing.T) {
	ref := map[uint64]string{0: "a", 1: "b", 2: "c"}
	for _, tt := range []struct {
		name      string
		delivered map[uint64]string
		anomalies int
	}{
		{"every record once or more", map[uint64]string{0: "a", 1: "b", 2: "c"}, 0},
		{"one skipped", map[uint64]string{0: "a", 2: "c"}, 1},
		{"another value", map[uint64]string{0: "a", 1: "x", 2: "c"}, 1},
		{"a phantom", map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"}, 1},
		{"nothing", map[uint64]string{}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := checkGroup(ref, tt.delivered, 2, 1)
			if v.Anomalies != tt.anomalies || v.OK != (tt.anomalies == 0) {
				t.Fatalf("verdict %+v, want %d anomalies", v, tt.anomalies)
			}
		})
	}
}
