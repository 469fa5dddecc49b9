//go:build !linux

package server

// defaultMaxConns is Config.MaxConns's default where the open-file limit is not read.
func defaultMaxConns() int { return DefaultMaxConns }

// openFilesRoom checks nothing where the open-file limit cannot be read (see the Linux version).
func openFilesRoom(uint32) error { return nil }
