package serf

import (
	"fmt"
	"maps"

	"github.com/commitlog-go/commitlog/discovery"
)

// cloneTags copies tags; nil stays nil.
func cloneTags(tags map[string]string) map[string]string {
	return maps.Clone(tags)
}

// tagsSize returns an upper bound of the size serf gives tags once encoded: one magic byte
// and a msgpack map of raw strings. Lengths over 31 bytes are counted with the largest header
// they may need, so the bound is conservative by a few bytes.
func tagsSize(tags map[string]string) int {
	strSize := func(s string) int {
		switch n := len(s); {
		case n <= 31:
			return 1 + n
		case n <= 0xffff:
			return 3 + n
		default:
			return 5 + n
		}
	}
	size := 1 + 5 // magic byte, largest map header
	for k, v := range tags {
		size += strSize(k) + strSize(v)
	}
	return size
}

// checkTags reports tags that cannot be gossiped. Errors wrap discovery.ErrInvalidTags.
func checkTags(tags map[string]string) error {
	if n := tagsSize(tags); n > MaxTagsSize {
		return fmt.Errorf("%w: encoded tags take up to %d bytes, limit %d", discovery.ErrInvalidTags, n, MaxTagsSize)
	}
	return nil
}
