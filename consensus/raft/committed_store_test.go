package raft

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// TestLoadCommitted: the committed configuration kept in the stable store reads back as it was
// stored; none stored, or a value that does not decode (a torn or foreign value), reads as
// unknown, so the node waits to learn it from a leader rather than trust it.
func TestLoadCommitted(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	stable := hraft.NewInmemStore()
	if c := loadCommitted(stable, logger); c != nil {
		t.Fatalf("nothing stored: loaded %+v, want none", c)
	}

	servers := []consensus.Server{{ID: "n1", Address: "10.0.0.1:8400", Suffrage: consensus.Voter}, {ID: "n2", Address: "10.0.0.2:8400", Suffrage: consensus.Nonvoter}}
	if err := storeCommitted(stable, 42, servers); err != nil {
		t.Fatal(err)
	}
	c := loadCommitted(stable, logger)
	if c == nil || c.index != 42 || !slices.Equal(c.servers, servers) {
		t.Fatalf("loaded %+v, want index 42 and %v", c, servers)
	}

	if err := stable.Set(keyCommittedConfiguration, []byte(`{"index": 7, "servers": [`)); err != nil {
		t.Fatal(err)
	}
	if c := loadCommitted(stable, logger); c != nil {
		t.Fatalf("a value that does not decode: loaded %+v, want none", c)
	}
}
