package client

import "time"

// SetTopicCountTTL sets how long a Producer uses a learnt partition count, for a test, and
// returns the function that restores it.
func SetTopicCountTTL(d time.Duration) (restore func()) {
	old := topicCountTTL
	topicCountTTL = d
	return func() { topicCountTTL = old }
}

// SetStreamProbeInterval sets how long a stream may be silent before its server is probed, for
// a test, and returns the function that restores it.
func SetStreamProbeInterval(d time.Duration) (restore func()) {
	old := streamProbeInterval
	streamProbeInterval = d
	return func() { streamProbeInterval = old }
}
