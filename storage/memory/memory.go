// Package memory is an in-memory storage.Log, for tests and for logs that need no durability.
// It keeps every record in a slice; nothing survives Close.
package memory

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/commitlog-go/commitlog/storage"
)

var _ storage.Log = (*Log)(nil)

// DefaultMaxRecordBytes is the largest record Append accepts when Config.MaxRecordBytes is 0.
const DefaultMaxRecordBytes = 4 << 20

// Config configures a Log. The zero value is ready to use.
type Config struct {
	// InitialOffset is the offset of the first record (default 0).
	InitialOffset uint64
	// MaxRecordBytes bounds one record (default DefaultMaxRecordBytes).
	MaxRecordBytes int
}

// Log is an in-memory storage.Log. All methods are safe for concurrent use.
type Log struct {
	maxRecord int

	mu      sync.RWMutex
	lowest  uint64
	records [][]byte // records[i] has offset lowest+i
	closed  bool
	notify  chan struct{} // closed and replaced on every append, truncation or close
}

// ErrInvalidConfig is returned by New for a Config that fails validation.
var ErrInvalidConfig = errors.New("memory: invalid config")

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return cfg
}

// validate checks a Config with its defaults applied. The error names the field out of range
// and wraps ErrInvalidConfig.
func (cfg Config) validate() error {
	if cfg.MaxRecordBytes < 0 {
		return fmt.Errorf("%w: MaxRecordBytes %d is negative", ErrInvalidConfig, cfg.MaxRecordBytes)
	}
	return nil
}

// New returns an empty Log. Errors: ErrInvalidConfig (naming the Config field out of range).
func New(cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Log{maxRecord: cfg.MaxRecordBytes, lowest: cfg.InitialOffset, notify: make(chan struct{})}, nil
}

func (l *Log) nextLocked() uint64 { return l.lowest + uint64(len(l.records)) }

// wakeLocked wakes every Wait. Lock must be held for writing.
func (l *Log) wakeLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// Append implements storage.Log.
func (l *Log) Append(records ...[]byte) (uint64, error) {
	if len(records) == 0 {
		return 0, storage.ErrEmptyBatch
	}
	copies := make([][]byte, len(records))
	for i, r := range records {
		if len(r) > l.maxRecord {
			return 0, fmt.Errorf("record %d of batch is %d bytes, limit %d: %w", i, len(r), l.maxRecord, storage.ErrTooLarge)
		}
		copies[i] = append([]byte(nil), r...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, storage.ErrClosed
	}
	first := l.nextLocked()
	l.records = append(l.records, copies...)
	l.wakeLocked()
	return first, nil
}

// Read implements storage.Log.
func (l *Log) Read(off uint64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, storage.ErrClosed
	}
	if off < l.lowest || off >= l.nextLocked() {
		return nil, fmt.Errorf("read %d (log holds [%d, %d)): %w", off, l.lowest, l.nextLocked(), storage.ErrOutOfRange)
	}
	return append([]byte(nil), l.records[off-l.lowest]...), nil
}

// Records implements storage.Log.
func (l *Log) Records(from, to uint64) iter.Seq2[storage.Record, error] {
	return func(yield func(storage.Record, error) bool) {
		l.mu.RLock()
		closed := l.closed
		if next := l.nextLocked(); to > next {
			to = next
		}
		l.mu.RUnlock()
		if closed {
			yield(storage.Record{}, storage.ErrClosed)
			return
		}
		for off := from; off < to; off++ {
			v, err := l.Read(off)
			if err != nil {
				yield(storage.Record{}, err)
				return
			}
			if !yield(storage.Record{Offset: off, Value: v}, nil) {
				return
			}
		}
	}
}

// Bounds implements storage.Log.
func (l *Log) Bounds() (lowest, next uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lowest, l.nextLocked()
}

// Wait implements storage.Log.
func (l *Log) Wait(ctx context.Context, off uint64) error {
	for {
		l.mu.RLock()
		closed, ready, ch := l.closed, off < l.nextLocked(), l.notify
		l.mu.RUnlock()
		switch {
		case closed:
			return storage.ErrClosed
		case ready:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TruncatePrefix implements storage.Log.
func (l *Log) TruncatePrefix(before uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	if before <= l.lowest {
		return nil
	}
	if next := l.nextLocked(); before > next {
		before = next
	}
	n := before - l.lowest
	l.records = append([][]byte(nil), l.records[n:]...)
	l.lowest = before
	l.wakeLocked()
	return nil
}

// TruncateSuffix implements storage.Log.
func (l *Log) TruncateSuffix(from uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	if from < l.lowest || from > l.nextLocked() {
		return fmt.Errorf("truncate suffix from %d (log holds [%d, %d)): %w", from, l.lowest, l.nextLocked(), storage.ErrOutOfRange)
	}
	clear(l.records[from-l.lowest:])
	l.records = l.records[:from-l.lowest]
	l.wakeLocked()
	return nil
}

// Reset implements storage.Log.
func (l *Log) Reset(next uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	l.records = nil
	l.lowest = next
	l.wakeLocked()
	return nil
}

// Sync implements storage.Log; it has nothing to do.
func (l *Log) Sync() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return storage.ErrClosed
	}
	return nil
}

// Close implements storage.Log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.records = nil
		l.wakeLocked()
	}
	return nil
}
