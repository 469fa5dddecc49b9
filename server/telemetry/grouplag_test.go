package telemetry

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// TestGroupLagCap: the first maxSeries lags by group, topic and partition keep their labels
// (whatever order they come in); the rest are summed under "other", reported only when there
// is a rest.
func TestGroupLagCap(t *testing.T) {
	lags := []GroupLag{
		{Group: "b", Topic: "t", Partition: 0, Lag: 1},
		{Group: "a", Topic: "t", Partition: 1, Lag: 3},
		{Group: "a", Topic: "", Partition: 0, Lag: 5},
		{Group: "a", Topic: "t", Partition: 0, Lag: 7},
	}
	for _, tc := range []struct {
		max  int
		want map[string]int64
	}{
		{10, map[string]int64{"a/default/0": 5, "a/t/0": 7, "a/t/1": 3, "b/t/0": 1}},
		{4, map[string]int64{"a/default/0": 5, "a/t/0": 7, "a/t/1": 3, "b/t/0": 1}},
		{2, map[string]int64{"a/default/0": 5, "a/t/0": 7, "other/other/other": 3 + 1}},
		{1, map[string]int64{"a/default/0": 5, "other/other/other": 7 + 3 + 1}},
		{-1, map[string]int64{"other/other/other": 5 + 7 + 3 + 1}},
	} {
		got := map[string]int64{}
		observeGroupLags(append([]GroupLag(nil), lags...), tc.max, func(v int64, set attribute.Set) {
			g, _ := set.Value(AttrGroup)
			tp, _ := set.Value(AttrTopic)
			p, _ := set.Value(AttrPartition)
			k := g.AsString() + "/" + tp.AsString() + "/" + p.AsString()
			if _, dup := got[k]; dup {
				t.Errorf("max %d: %s observed twice", tc.max, k)
			}
			got[k] = v
		})
		if len(got) != len(tc.want) {
			t.Errorf("max %d: got %v, want %v", tc.max, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("max %d: got %v, want %v", tc.max, got, tc.want)
				break
			}
		}
	}
	got := 0
	observeGroupLags(nil, 1, func(int64, attribute.Set) { got++ })
	if got != 0 {
		t.Errorf("no lags: %d observations, want none", got)
	}
}
