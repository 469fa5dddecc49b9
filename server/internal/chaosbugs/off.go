//go:build !chaosbugs

package chaosbugs

import "time"

// On reports whether bug b is planted: never, in a build without the chaosbugs tag.
func On(Bug) bool { return false }

// TuneRaft changes nothing in a build without the chaosbugs tag.
func TuneRaft(_, _ *uint64, _ *time.Duration, _ *int) {}
