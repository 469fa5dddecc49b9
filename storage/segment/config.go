package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/commitlog-go/commitlog/storage/vfs"
)

// SyncPolicy says when appended records are made durable (fsynced).
type SyncPolicy int

// Sync policies.
const (
	// SyncAlways (the zero value, the default) fsyncs before Append returns. Concurrent
	// appends are group-committed: one fdatasync covers every append waiting for it.
	// Records become visible to readers only once they are durable.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs in the background every Config.SyncInterval. Append returns after
	// write(2); a power failure may lose the records of the last interval (never a part of
	// a batch, never a record in the middle of the log).
	SyncInterval
	// SyncNever fsyncs only on Sync, Close, segment rolls and truncations.
	SyncNever
)

// String returns "always", "interval" or "never".
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "always", "interval" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown sync policy %q (want always, interval or never)", ErrInvalidConfig, s)
}

// Defaults for the zero values of Config.
const (
	// DefaultSegmentBytes is the default Config.SegmentBytes (64 MiB).
	DefaultSegmentBytes = 64 << 20
	// DefaultMaxRecordBytes is the default Config.MaxRecordBytes (4 MiB).
	DefaultMaxRecordBytes = 4 << 20
	// DefaultMaxBatchBytes is the default Config.MaxBatchBytes (64 MiB).
	DefaultMaxBatchBytes = 64 << 20
	// DefaultSyncInterval is the default Config.SyncInterval.
	DefaultSyncInterval = 100 * time.Millisecond
	// DefaultTimeIndexInterval is the default Config.TimeIndexInterval (4 KiB).
	DefaultTimeIndexInterval = 4 << 10
)

// ErrInvalidConfig is returned by Open for a Config that fails validation.
var ErrInvalidConfig = errors.New("segment: invalid config")

// Config configures a Log. The zero value of every field means its documented default.
type Config struct {
	// FS is the file system (default vfs.OS{}). Tests pass a crashfs.FS.
	FS vfs.FS
	// Sync is the sync policy (default SyncAlways).
	Sync SyncPolicy
	// SyncInterval is the background fsync period under SyncInterval (default 100ms).
	SyncInterval time.Duration
	// SegmentBytes is the size at which the active segment is sealed and a new one started
	// (default 64 MiB, at most MaxSegmentBytesLimit). A batch never spans two segments, so a
	// segment may exceed it by one batch.
	SegmentBytes int64
	// MaxRecordBytes bounds one record (default 4 MiB, at most MaxRecordBytesLimit). It also
	// bounds the allocation made from a length read from disk: lowering it below the size of
	// records already stored makes them unreadable (reported as corrupt).
	MaxRecordBytes int
	// MaxBatchBytes bounds the encoded size of one Append (default 64 MiB, at most
	// MaxBatchBytesLimit).
	MaxBatchBytes int
	// RetentionBytes, when positive, makes EnforceRetention delete the oldest sealed
	// segments while the log's total size exceeds it.
	RetentionBytes int64
	// RetentionAge, when positive, makes EnforceRetention delete sealed segments whose
	// newest record is older than it.
	RetentionAge time.Duration
	// InitialOffset is the offset of the first record of a new (empty) log directory.
	InitialOffset uint64
	// Now is the clock, used to stamp segments for RetentionAge (default time.Now).
	Now func() time.Time
	// Logger receives recovery reports and background errors (nil discards them).
	Logger *slog.Logger
	// Timestamp, when set, makes the log keep a sparse time index (a .tix file per sealed
	// segment, see timeindex.go) and serve storage.TimeIndex: it returns a record's timestamp
	// (any unit; larger is later) and false for a record without one. It is called on every
	// appended record and, when an index must be rebuilt, on stored ones; it must be cheap,
	// safe for concurrent use, and the same function for the life of the directory.
	Timestamp func(record []byte) (int64, bool)
	// TimeIndexInterval is the number of segment bytes between two entries of the time
	// index (default 4 KiB): a lookup reads about that many bytes of records.
	TimeIndexInterval int
	// Files bounds the segment files held open (see FileCache); logs that share one share its
	// capacity. Default: one cache shared by every Log of the process, of
	// DefaultMaxOpenFiles.
	Files *FileCache
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.FS == nil {
		cfg.FS = vfs.OS{}
	}
	if cfg.Files == nil {
		cfg.Files = sharedFiles
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.TimeIndexInterval == 0 {
		cfg.TimeIndexInterval = DefaultTimeIndexInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks a Config with its defaults applied. The error names the first field out of
// range and wraps ErrInvalidConfig.
func (cfg Config) validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Sync != SyncAlways && cfg.Sync != SyncInterval && cfg.Sync != SyncNever:
		return bad("Sync", "%d is not a sync policy (want SyncAlways, SyncInterval or SyncNever)", int(cfg.Sync))
	case cfg.SyncInterval < 0:
		return bad("SyncInterval", "%v is negative", cfg.SyncInterval)
	case cfg.SegmentBytes < MinSegmentBytes || cfg.SegmentBytes > MaxSegmentBytesLimit:
		return bad("SegmentBytes", "%d is not in [%d, %d]", cfg.SegmentBytes, MinSegmentBytes, MaxSegmentBytesLimit)
	case cfg.MaxRecordBytes < 1 || cfg.MaxRecordBytes > MaxRecordBytesLimit:
		return bad("MaxRecordBytes", "%d is not in [1, %d]", cfg.MaxRecordBytes, MaxRecordBytesLimit)
	case cfg.MaxBatchBytes < 1 || cfg.MaxBatchBytes > MaxBatchBytesLimit:
		return bad("MaxBatchBytes", "%d is not in [1, %d]", cfg.MaxBatchBytes, MaxBatchBytesLimit)
	case cfg.RetentionBytes < 0:
		return bad("RetentionBytes", "%d is negative", cfg.RetentionBytes)
	case cfg.RetentionAge < 0:
		return bad("RetentionAge", "%v is negative", cfg.RetentionAge)
	case cfg.TimeIndexInterval < 0:
		return bad("TimeIndexInterval", "%d is negative", cfg.TimeIndexInterval)
	}
	return nil
}
