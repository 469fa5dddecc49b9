package memory_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Log {
			l, err := memory.New(memory.Config{MaxRecordBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
		MaxRecordBytes: 1024,
	})
}

func TestNewValidatesConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   memory.Config
		field string // "" when valid
	}{
		{"zero value", memory.Config{}, ""},
		{"initial offset", memory.Config{InitialOffset: 1 << 40}, ""},
		{"negative MaxRecordBytes", memory.Config{MaxRecordBytes: -1}, "MaxRecordBytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := memory.New(tt.cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if lo, next := l.Bounds(); lo != tt.cfg.InitialOffset || next != tt.cfg.InitialOffset {
					t.Errorf("bounds [%d, %d), want empty at %d", lo, next, tt.cfg.InitialOffset)
				}
				_ = l.Close()
				return
			}
			if l != nil || !errors.Is(err, memory.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New(%+v) = %v, %v; want ErrInvalidConfig naming %s", tt.cfg, l, err, tt.field)
			}
		})
	}
}
