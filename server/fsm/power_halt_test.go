package fsm

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft-wal/types"

	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestPowerHaltsTermWrites: a term write after a power failure neither reaches the meta store
// nor returns (hashicorp/raft would panic on its error); the goroutine exits once the node is
// stopped, and after the restart the meta store takes writes again.
func TestPowerHaltsTermWrites(t *testing.T) {
	p := newPower()
	inner := &haltMeta{}
	m := p.meta(inner)
	if err := m.SetStable([]byte("k"), []byte("v")); err != nil || inner.sets != 1 {
		t.Fatalf("powered: SetStable = %v, %d writes", err, inner.sets)
	}
	p.cut(crashfs.DropUnsynced, newRand(1))
	returned, exited := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(exited)
		returned <- m.SetStable([]byte("k"), []byte("v2"))
	}()
	p.stopping()
	<-exited
	select {
	case err := <-returned:
		t.Fatalf("SetStable returned %v after the power failure; it must halt its goroutine", err)
	default:
	}
	if inner.sets != 1 {
		t.Fatalf("%d writes reached the meta store, want 1", inner.sets)
	}
	// After stopping, later writes halt at once instead of waiting.
	done := make(chan struct{})
	go func() { defer close(done); _ = m.SetStable([]byte("k"), []byte("v3")); t.Error("returned") }()
	<-done
	p.restore()
	if err := m.SetStable([]byte("k"), []byte("v4")); err != nil || inner.sets != 2 {
		t.Fatalf("restored: SetStable = %v, %d writes", err, inner.sets)
	}
	if err := p.do(func() error { return nil }); errors.Is(err, errPowerOff) {
		t.Fatal("power still off after restore")
	}
}

// haltMeta is a meta store that only records SetStable calls.
type haltMeta struct {
	types.MetaStore
	sets int
}

func (m *haltMeta) SetStable(k, v []byte) error { m.sets++; return nil }
