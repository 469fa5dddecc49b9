package raft

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDataDirBelongsToItsNode: a node started under another name on a data dir holding Raft
// state (a volume mounted on the wrong pod, a copied directory) reused that node's term and
// votes, and could vote twice in a term. New now refuses it, naming the owner; the owner
// still starts on it, and a data dir without state is anyone's.
func TestDataDirBelongsToItsNode(t *testing.T) {
	start := func(id, dir string, bootstrap bool) (*Node, error) {
		t.Helper()
		stream, err := TCPStreamLayer("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{
			ID: id, DataDir: dir, StreamLayer: stream, Bootstrap: bootstrap,
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		}, &plainSM{manifest: []byte("m")})
		if err != nil {
			_ = stream.Close()
		}
		return n, err
	}

	// A data dir that never held state: the name it was first opened under does not bind it.
	empty := filepath.Join(t.TempDir(), "raft")
	n, err := start("n1", empty, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, err = start("n2", empty, false)
	if err != nil {
		t.Fatalf("an empty data dir opened under another name: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "raft")
	n, err = start("n1", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, bootstrap := range []bool{false, true} {
		n, err = start("n2", dir, bootstrap)
		if !errors.Is(err, ErrWrongNode) || !strings.Contains(err.Error(), `node "n1"`) {
			if n != nil {
				_ = n.Close()
			}
			t.Fatalf("n2 on n1's data dir (bootstrap %v): %v, want ErrWrongNode naming n1", bootstrap, err)
		}
	}
	n, err = start("n1", dir, false)
	if err != nil {
		t.Fatalf("n1 on its own data dir after the refusals: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
