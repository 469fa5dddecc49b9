package raft

import (
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"
)

// keyNodeID is the stable-store key of the server ID a node's Raft state was written under.
var keyNodeID = []byte("commitlog_node_id")

// ErrWrongNode is returned (wrapped) by New when the data dir holds the Raft state of another
// server ID: its term, its votes and its log are that node's. A node started on them under
// another name could vote twice in one term (once as each), and two leaders could be elected
// in that term.
var ErrWrongNode = errors.New("consensus/raft: the data dir holds another node's Raft state")

// claimDataDir records id as the owner of the Raft state in stable, or refuses when that state
// belongs to another ID. A data dir with no Raft state and no cluster ID is anyone's (its
// owner is replaced); one written before the owner was recorded is taken by id.
func claimDataDir(stable hraft.StableStore, logs hraft.LogStore, snaps hraft.SnapshotStore, ident *clusterIdentity, id, dir string) error {
	owner, err := stable.Get(keyNodeID)
	if err != nil && err.Error() != "not found" { // raft.InmemStore's answer for a missing key
		return fmt.Errorf("consensus/raft: read node id: %w", err)
	}
	if string(owner) == id {
		return nil
	}
	if len(owner) > 0 {
		has, err := hraft.HasExistingState(logs, stable, snaps)
		if err != nil {
			return fmt.Errorf("consensus/raft: check existing state: %w", err)
		}
		if has || ident.get() != "" {
			return fmt.Errorf("%w: %s belongs to node %q, and this node is %q: start it with the name %q, or give %q an empty data dir",
				ErrWrongNode, dir, owner, id, owner, id)
		}
	}
	if err := stable.Set(keyNodeID, []byte(id)); err != nil {
		return fmt.Errorf("consensus/raft: persist node id: %w", err)
	}
	return nil
}
