package raft

import (
	"io"
	"log/slog"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

type recordingSM struct {
	plainSM
	got []consensus.Entry
}

func (s *recordingSM) Apply(e []consensus.Entry) []any {
	s.got = append(s.got, e...)
	res := make([]any, len(e))
	for i := range e {
		res[i] = string(e[i].Data)
	}
	return res
}

// TestClusterIDEntriesStayOutOfTheStateMachine: a committed cluster-ID entry sets the ID on
// every member that applies it, the first one wins over any later one (proposed by a leader
// that had not applied the first yet), and the StateMachine never sees them.
func TestClusterIDEntriesStayOutOfTheStateMachine(t *testing.T) {
	var onSet []string
	ident, err := loadClusterIdentity(hraft.NewInmemStore(), slog.New(slog.NewTextHandler(io.Discard, nil)), func(id string) { onSet = append(onSet, id) })
	if err != nil {
		t.Fatal(err)
	}
	sm := &recordingSM{}
	f := newFSM(sm, 1024, func(id string) {
		if _, err := ident.setIfEmpty(id, "test"); err != nil {
			t.Fatal(err)
		}
	})
	idEntry := func(index uint64, id string) *hraft.Log {
		return &hraft.Log{Index: index, Type: hraft.LogCommand, Extensions: []byte(clusterIDExtension + id)}
	}
	res := f.ApplyBatch([]*hraft.Log{
		{Index: 1, Type: hraft.LogCommand, Data: []byte("a")},
		idEntry(2, "first"),
		{Index: 3, Type: hraft.LogNoop},
		idEntry(4, "second"),
		{Index: 5, Type: hraft.LogCommand, Data: []byte("b")},
	})
	if got := ident.get(); got != "first" {
		t.Fatalf("cluster id %q, want the first committed one", got)
	}
	if len(onSet) != 1 || onSet[0] != "first" {
		t.Fatalf("onSet called with %q, want once with the first committed id", onSet)
	}
	if len(sm.got) != 2 || sm.got[0].Index != 1 || sm.got[1].Index != 5 {
		t.Fatalf("state machine got %+v, want the entries 1 and 5 only", sm.got)
	}
	if res[0] != "a" || res[1] != nil || res[3] != nil || res[4] != "b" {
		t.Fatalf("results %v", res)
	}
	if f.applied.Load() != 5 {
		t.Fatalf("applied %d, want 5", f.applied.Load())
	}
	// An entry whose extension only looks like one (no ID, or one too long) is a command.
	for _, l := range []*hraft.Log{idEntry(6, ""), idEntry(7, string(make([]byte, maxClusterIDLen+1)))} {
		if _, ok := clusterIDFromLog(l); ok {
			t.Fatalf("entry %d taken for a cluster id", l.Index)
		}
	}
}
