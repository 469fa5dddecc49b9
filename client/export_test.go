package client

import "time"

// SetTopicCountTTL sets how long a Producer uses a learnt partition count, for a test, and
// returns the function that restores it.
func SetTopicCountTTL(d time.Duration) (restore func()) {
	old := topicCountTTL
	topicCountTTL = d
	return func() { topicCountTTL = old }
}
