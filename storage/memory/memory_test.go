package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New:            func(t *testing.T) storage.Log { return memory.New(memory.Config{MaxRecordBytes: 1024}) },
		MaxRecordBytes: 1024,
	})
}
