package raft

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// The cluster ID names the cluster a node's Raft state belongs to. It is generated when a
// cluster is bootstrapped and kept in each node's Raft stable store (beside the term and the
// vote), so it lives and dies with the node's Raft state: a node whose data dir was lost has
// none until it bootstraps (a new ID) or is added to a cluster (whose ID it adopts).
//
// It is not in the log or in snapshots: it reaches a joining node through the cluster
// handshake every Raft connection opens with, which happens before any AppendEntries or
// InstallSnapshot can, so a node holds its cluster's ID before it holds any of its entries.

// ErrClusterMismatch is returned (wrapped) by a Raft dial, and by reads on an accepted Raft
// connection, when the peer belongs to another cluster.
var ErrClusterMismatch = errors.New("consensus/raft: peer belongs to another cluster")

// ErrAlreadyBootstrapped is returned by Node.Bootstrap when the node already has Raft state
// or a cluster ID (it bootstrapped before, or a cluster added it).
var ErrAlreadyBootstrapped = errors.New("consensus/raft: node already belongs to a cluster")

// keyClusterID is the stable-store key of the cluster ID.
var keyClusterID = []byte("commitlog_cluster_id")

// NewClusterID returns a random (version 4) UUID.
func NewClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// clusterIdentity holds the node's cluster ID and persists it.
type clusterIdentity struct {
	mu     sync.Mutex
	id     string
	stable hraft.StableStore
	log    *slog.Logger
	// onSet, if set, is called (outside the lock) when the ID is first set. Fixed at
	// construction.
	onSet func(id string)
}

// loadClusterIdentity reads the cluster ID kept in stable, if any; onSet (may be nil) is called
// when an ID is set later (see clusterIdentity.onSet).
func loadClusterIdentity(stable hraft.StableStore, log *slog.Logger, onSet func(id string)) (*clusterIdentity, error) {
	v, err := stable.Get(keyClusterID)
	if err != nil && err.Error() != "not found" { // raft.InmemStore's answer for a missing key
		return nil, fmt.Errorf("consensus/raft: read cluster id: %w", err)
	}
	return &clusterIdentity{id: string(v), stable: stable, log: log, onSet: onSet}, nil
}

func (c *clusterIdentity) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// setIfEmpty persists id as the cluster ID unless one is set already, and returns the ID in
// force afterwards.
func (c *clusterIdentity) setIfEmpty(id, why string) (string, error) {
	c.mu.Lock()
	if c.id != "" || id == "" {
		cur := c.id
		c.mu.Unlock()
		return cur, nil
	}
	if err := c.stable.Set(keyClusterID, []byte(id)); err != nil {
		c.mu.Unlock()
		return "", fmt.Errorf("consensus/raft: persist cluster id: %w", err)
	}
	c.id = id
	onSet := c.onSet
	c.mu.Unlock()
	c.log.Info("cluster id set", "cluster_id", id, "reason", why)
	if onSet != nil {
		onSet(id)
	}
	return id, nil
}

// clusterIDExtension marks a Raft log entry that carries a cluster ID (in the entry's
// Extensions, after this prefix; its Data is empty). The leader of a cluster without an ID
// proposes one; every member adopts the first such entry it applies, so all of them agree.
const clusterIDExtension = "commitlog-cluster-id:"

// clusterIDFromLog returns the cluster ID a log entry carries, if it is a cluster-ID entry.
func clusterIDFromLog(l *hraft.Log) (string, bool) {
	id, ok := bytes.CutPrefix(l.Extensions, []byte(clusterIDExtension))
	if !ok || len(id) == 0 || len(id) > maxClusterIDLen {
		return "", false
	}
	return string(id), true
}

// commitClusterID proposes a new cluster ID through the log while this node leads a cluster
// without one, retrying until one is committed, the node steps down, or it closes.
func (n *Node) commitClusterID(logger *slog.Logger) {
	for n.ident.get() == "" && n.raft.State() == hraft.Leader {
		f := n.raft.ApplyLog(hraft.Log{Extensions: []byte(clusterIDExtension + NewClusterID())}, n.cfg.TransportTimeout)
		err := f.Error()
		if err == nil || errors.Is(err, hraft.ErrRaftShutdown) {
			return // applied (the FSM has set the ID, or kept an earlier committed one), or closed
		}
		logger.Warn("proposing a cluster id failed", "err", err)
		select {
		case <-n.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// The handshake, sent by both ends of every Raft connection before Raft's own protocol (the
// dialer first, the acceptor answers): clusterMagic, one length byte, the sender's cluster ID
// (empty when it has none yet). Each end then decides alone: equal IDs, or one side without
// an ID (which adopts the other's and persists it), proceed; two different IDs close the
// connection and log both.
var clusterMagic = [4]byte{'C', 'L', 'I', 'D'}

const maxClusterIDLen = 255

func writeClusterHello(w io.Writer, id string) error {
	if len(id) > maxClusterIDLen {
		return fmt.Errorf("consensus/raft: cluster id too long (%d bytes)", len(id))
	}
	buf := make([]byte, 0, 5+len(id))
	buf = append(buf, clusterMagic[:]...)
	buf = append(buf, byte(len(id)))
	buf = append(buf, id...)
	_, err := w.Write(buf)
	return err
}

func readClusterHello(r io.Reader) (string, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			// Closed before saying anything (a server checking who listens here, see the
			// server's admission): io.EOF itself, which Raft does not log as an error.
			return "", io.EOF
		}
		return "", fmt.Errorf("consensus/raft: read cluster handshake: %w", err)
	}
	if [4]byte(hdr[:4]) != clusterMagic {
		return "", fmt.Errorf("consensus/raft: peer sent no cluster handshake (a server older than cluster ids?)")
	}
	id := make([]byte, hdr[4])
	if _, err := io.ReadFull(r, id); err != nil {
		return "", fmt.Errorf("consensus/raft: read cluster handshake: %w", err)
	}
	return string(id), nil
}

// agree decides on a peer's cluster ID: nil to proceed (adopting the peer's ID when this node
// has none), or an error wrapping ErrClusterMismatch, logged with both IDs.
func (c *clusterIdentity) agree(peer, peerAddr, direction string) error {
	local := c.get()
	switch {
	case peer == local:
		return nil
	case local == "":
		_, err := c.setIfEmpty(peer, "adopted from a Raft peer "+peerAddr)
		if err != nil {
			return err
		}
		// Another connection may have set a different one meanwhile.
		if now := c.get(); now != peer {
			return c.mismatch(now, peer, peerAddr, direction)
		}
		return nil
	case peer == "":
		return nil // the peer adopts ours
	default:
		return c.mismatch(local, peer, peerAddr, direction)
	}
}

func (c *clusterIdentity) mismatch(local, peer, peerAddr, direction string) error {
	c.log.Error("refusing Raft traffic with a server of another cluster",
		"local_cluster_id", local, "peer_cluster_id", peer, "peer_addr", peerAddr, "direction", direction)
	return fmt.Errorf("%w: local cluster %s, peer %s cluster %s", ErrClusterMismatch, local, peerAddr, peer)
}

// clusterLayer runs the cluster handshake on every connection of a StreamLayer: synchronously
// in Dial, and on an accepted connection before its first read or write (so that a slow peer
// does not hold up Accept).
type clusterLayer struct {
	StreamLayer
	ident   *clusterIdentity
	timeout time.Duration
}

func (l *clusterLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := l.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = l.timeout
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	err = writeClusterHello(conn, l.ident.get())
	var peer string
	if err == nil {
		peer, err = readClusterHello(conn)
	}
	if err == nil {
		err = l.ident.agree(peer, string(address), "outbound")
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("consensus/raft: dial %s: %w", address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

func (l *clusterLayer) Accept() (net.Conn, error) {
	conn, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: conn, ident: l.ident, timeout: l.timeout}, nil
}

// handshakeConn is an accepted connection whose cluster handshake runs on first use.
type handshakeConn struct {
	net.Conn
	ident   *clusterIdentity
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
		peer, err := readClusterHello(c.Conn)
		if err == nil {
			// Answer with our ID before deciding, so that the dialer logs both IDs too.
			err = writeClusterHello(c.Conn, c.ident.get())
		}
		if err == nil {
			err = c.ident.agree(peer, c.Conn.RemoteAddr().String(), "inbound")
		}
		if err != nil {
			_ = c.Conn.Close()
			c.err = err
			return
		}
		_ = c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
