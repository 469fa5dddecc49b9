package raft

import (
	"encoding/json"
	"fmt"
	"log/slog"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// keyCommittedConfiguration, in the stable store, is the latest configuration the node knows to
// have committed (JSON storedConfiguration), so that a node restarted without a snapshot still
// knows it after a restart: raft hands the state machine no entry again until a leader tells it
// how far the log committed, and a leader that removed the node meanwhile never does.
var keyCommittedConfiguration = []byte("commitlog_committed_configuration")

type storedConfiguration struct {
	Index   uint64             `json:"index"`
	Servers []consensus.Server `json:"servers"`
}

// loadCommitted reads the committed configuration kept in stable: nil when there is none (a
// node that never applied one, or whose data dir predates it) or it cannot be read.
func loadCommitted(stable hraft.StableStore, logger *slog.Logger) *committedConfiguration {
	v, err := stable.Get(keyCommittedConfiguration)
	if err != nil || len(v) == 0 {
		if err != nil && err.Error() != "not found" { // raft.InmemStore's answer for a missing key
			logger.Warn("cannot read the committed configuration", "err", err)
		}
		return nil
	}
	var s storedConfiguration
	if err := json.Unmarshal(v, &s); err != nil {
		logger.Warn("cannot read the committed configuration", "err", err)
		return nil
	}
	return &committedConfiguration{servers: s.Servers, index: s.Index}
}

// setCommitted records c, committed at index, unless the node knows a later one (a snapshot
// restored at start may be older than the configuration kept in the stable store), and keeps
// it in the stable store. From raft's FSM goroutine, or its restore at start.
func (n *Node) setCommitted(index uint64, c hraft.Configuration) {
	if cur := n.committed.Load(); cur != nil && cur.index > index {
		return
	}
	servers := make([]consensus.Server, 0, len(c.Servers))
	for _, s := range c.Servers {
		servers = append(servers, consensus.Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	n.committed.Store(&committedConfiguration{servers: servers, index: index})
	if err := storeCommitted(n.stable, index, servers); err != nil {
		n.cfg.Logger.Warn("cannot keep the committed configuration", "raft_id", n.cfg.ID, "index", index, "err", err)
	}
}

func storeCommitted(stable hraft.StableStore, index uint64, servers []consensus.Server) error {
	b, err := json.Marshal(storedConfiguration{Index: index, Servers: servers})
	if err != nil {
		return err
	}
	if err := stable.Set(keyCommittedConfiguration, b); err != nil {
		return fmt.Errorf("consensus/raft: persist the committed configuration: %w", err)
	}
	return nil
}
