//go:build !linux

package server

// defaultMaxConns is Config.MaxConns's default where the open-file limit is not read.
func defaultMaxConns() int { return DefaultMaxConns }

// defaultMaxPendingConns is Config.MaxPendingConns's default where the open-file limit is not
// read: DefaultMaxPendingConns, at most maxConns (at least 1).
func defaultMaxPendingConns(maxConns int) int { return max(1, min(DefaultMaxPendingConns, maxConns)) }

// openFilesRoom checks nothing where the open-file limit cannot be read (see the Linux version).
func openFilesRoom(uint32) error { return nil }
