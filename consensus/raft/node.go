// Package raft implements consensus.Consensus on hashicorp/raft, with hashicorp/raft-wal as the
// log and stable store (one fsync per appended batch) and a snapshot store that streams a
// StateMachine's own data (consensus.SnapshotSource) to followers lazily.
//
// A Node is created with New and stopped with Close. Its StateMachine is applied in batches
// (raft.BatchingFSM) from one goroutine. Every method is safe for concurrent use.
package raft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/commitlog-go/commitlog/consensus"
)

// logCacheEntries is how many of the latest log entries the leader keeps in memory to
// replicate them (logCache), within logCacheBytes. Entries are at most a command each (4 MiB by
// default, 16 MiB at most); most are far smaller.
const logCacheEntries = 64

// Node is one member of a Raft cluster replicating into a consensus.StateMachine.
// It implements consensus.Consensus; every method is safe for concurrent use.
type Node struct {
	cfg   Config
	raft  *hraft.Raft
	fsm   *fsm
	logs  hraft.LogStore
	trans hraft.Transport
	votes *voteGuard // between trans and Raft
	// closers run after raft has shut down, in order (network transport, log store).
	closers []func() error

	reads readBatcher

	leaders *leaderWatch
	matches *matchIndexes // followers' match indexes, as the leader learns them
	ident   *clusterIdentity
	// committed is the latest configuration known to have committed (see CommittedServers);
	// nil until one is.
	committed atomic.Pointer[committedConfiguration]
	// The stores, for Bootstrap's existing-state check.
	stable hraft.StableStore
	snaps  hraft.SnapshotStore
	// bootstrapMu serializes Bootstrap.
	bootstrapMu sync.Mutex

	// bg counts the goroutines that propose a cluster ID (commitClusterID).
	bg sync.WaitGroup

	closing   atomic.Bool
	done      chan struct{} // closed when Close starts
	closeOnce sync.Once
	closeErr  error
}

var (
	_ consensus.Consensus              = (*Node)(nil)
	_ consensus.CommittedConfiguration = (*Node)(nil)
	_ consensus.Fencer                 = (*Node)(nil)
)

// committedConfiguration is a configuration that committed, at its log index.
type committedConfiguration struct {
	servers []consensus.Server
	index   uint64
}

// raftNoSnapshotLoads is hashicorp/raft's error when NewRaft finds snapshots and none of them
// restores: a plain string, with no sentinel to match, so New matches its text to add the
// repair hint. TestCorruptSnapshotRefusedWithRepair makes raft produce it: a raft upgrade that
// changes the text fails that test instead of silently losing the hint.
const raftNoSnapshotLoads = "failed to load any existing snapshots"

// New opens (or creates) the node's state in cfg.DataDir, starts Raft and returns the running
// Node. With cfg.Bootstrap and no existing state it bootstraps a single-voter cluster of
// itself (or of cfg.BootstrapServers). New takes ownership of cfg.StreamLayer: the Node closes
// it on Close, and New closes it if it fails. The caller must Close the Node. Errors wrap ErrInvalidConfig for a bad Config, or
// the failure to open the stores or start Raft.
func New(cfg Config, sm consensus.StateMachine) (*Node, error) {
	fail := func(err error) (*Node, error) {
		if cfg.StreamLayer != nil {
			_ = cfg.StreamLayer.Close() // New owns it, even when failing early
		}
		return nil, err
	}
	if sm == nil {
		return fail(fmt.Errorf("%w: nil StateMachine", ErrInvalidConfig))
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	n := &Node{cfg: cfg, done: make(chan struct{})}
	ok := false
	defer func() {
		if ok {
			return
		}
		n.stopGoroutines()
		_ = n.runClosers()
		if n.trans == nil && cfg.StreamLayer != nil {
			_ = cfg.StreamLayer.Close() // New owns it, even when failing early
		}
	}()
	logger := cfg.Logger.With("raft_id", cfg.ID)
	hlog := newHclog(logger, "raft")

	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return nil, fmt.Errorf("consensus/raft: create data dir: %w", err)
	}
	logs, stable, closers, err := openLogStore(cfg, hlog)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, closers...)
	fss, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.RetainSnapshots, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("consensus/raft: open snapshot store: %w", err)
	}
	n.logs = logs
	snapDir := filepath.Join(cfg.DataDir, "snapshots")
	if err := removeTempSnapshots(snapDir, logger); err != nil {
		return nil, err
	}
	// raft-wal's meta database is created 0644 and the snapshots directory 0755; files of an
	// older version may be looser still.
	if err := makePrivate(cfg.DataDir); err != nil {
		return nil, err
	}
	snaps := &snapshotStore{FileSnapshotStore: fss, sm: sm, maxManifest: cfg.MaxManifestSize, dir: snapDir, logger: logger}
	n.stable, n.snaps = stable, snaps
	if last := lastIndex(logs, snaps); !cfg.UnsafeInmemLog && last < cfg.AppliedIndex {
		return nil, fmt.Errorf("consensus/raft: Raft's log and snapshots in %s end at index %d, but the state machine applied entries up to index %d: "+
			"Raft's files lost entries (deleted, truncated or replaced), and with them the configuration and votes this node had; %s",
			cfg.DataDir, last, cfg.AppliedIndex, repairHint(cfg.ID))
	}
	if err := checkLogReadable(logs, snaps, cfg.DataDir, cfg.ID); err != nil {
		return nil, err
	}
	n.ident, err = loadClusterIdentity(stable, logger, cfg.OnClusterID)
	if err != nil {
		return nil, err
	}
	if err := claimDataDir(stable, logs, snaps, n.ident, cfg.ID, cfg.DataDir); err != nil {
		return nil, err
	}
	// Cluster-ID entries are the Node's own: the FSM hands them to the identity, never to sm.
	n.fsm = newFSM(sm, cfg.MaxManifestSize, func(id string) {
		if _, err := n.ident.setIfEmpty(id, "committed by the leader of a cluster without one"); err != nil {
			logger.Error("cannot set the cluster id", "err", err)
		}
	})
	if c := loadCommitted(stable, logger); c != nil {
		n.committed.Store(c)
	}
	n.fsm.onConfiguration = n.setCommitted
	n.fsm.onRestore = func(index uint64) {
		// A snapshot received from a leader gives way to one served from sm's data, once sm
		// made what it restored durable (see replaceReceived).
		defer snaps.afterRestore(index)
		// The snapshot raft restored is in the store (one received from a leader is stored
		// before it is restored); its configuration is the one that had committed when it was
		// taken.
		metas, err := snaps.List()
		if err != nil {
			logger.Warn("cannot read the configuration of the snapshot restored", "index", index, "err", err)
			return
		}
		for _, m := range metas {
			if m.Index == index {
				n.setCommitted(m.ConfigurationIndex, m.Configuration)
				return
			}
		}
	}

	if cfg.StreamLayer != nil {
		tl := newTrackingLayer(&clusterLayer{StreamLayer: cfg.StreamLayer, ident: n.ident, timeout: cfg.TransportTimeout})
		nt := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream:  tl,
			MaxPool: cfg.TransportPool,
			Timeout: cfg.TransportTimeout,
			Logger:  hlog.Named("transport"),
		})
		n.trans = nt
		// Prepend: the transport must close before the log store.
		n.closers = append([]func() error{nt.Close, tl.Close}, n.closers...)
	} else {
		n.trans = cfg.Transport
	}

	n.matches = newMatchIndexes()
	n.votes = newVoteGuard(n.trans, guardState{
		isEmpty:   func() bool { return n.isEmpty(logs, snaps) },
		termAt:    func(i uint64) (uint64, bool) { return termAt(logs, snaps, i) },
		lastIndex: func() uint64 { return lastIndex(logs, snaps) },
		armed: func() bool {
			v, err := stable.GetUint64(keyVoteGuardArmed)
			return err == nil && v == 1
		},
		setArmed: func(on bool) error {
			v := uint64(0)
			if on {
				v = 1
			}
			return stable.SetUint64(keyVoteGuardArmed, v)
		},
	}, cfg.Fenced)
	if cfg.Fenced != "" {
		logger.Warn("fenced at start: this node refuses every vote and pre-vote and does not campaign until it is repaired", "reason", cfg.Fenced)
	}
	rtrans := wrapMatch(n.votes, n.matches)

	rc := cfg.raftConfig()
	rc.Logger = hlog
	if cfg.Bootstrap {
		has, err := hraft.HasExistingState(logs, stable, snaps)
		if err != nil {
			return nil, fmt.Errorf("consensus/raft: check existing state: %w", err)
		}
		switch {
		case has:
		case n.ident.get() != "":
			// A cluster reached this node (and it adopted its ID) before it held any entry:
			// it waits for that cluster rather than founding another.
			logger.Warn("not bootstrapping: this node was already added to a cluster", "cluster_id", n.ident.get())
		default:
			conf := bootstrapConfiguration(cfg.ID, cfg.Address, cfg.BootstrapServers)
			if _, err := n.ident.setIfEmpty(cfg.bootstrapClusterID(), "bootstrap"); err != nil {
				return nil, err
			}
			if err := hraft.BootstrapCluster(rc, logs, stable, snaps, rtrans, conf); err != nil {
				return nil, fmt.Errorf("consensus/raft: bootstrap: %w", err)
			}
		}
	}
	r, err := newRaft(rc, n.fsm, logs, stable, snaps, rtrans, cfg.DataDir, cfg.ID)
	if err != nil {
		if strings.Contains(err.Error(), raftNoSnapshotLoads) {
			// hashicorp/raft logs each snapshot it tried and why; its error names none.
			return nil, fmt.Errorf("consensus/raft: start raft: %w: no snapshot in %s opens and restores (the log names each one and why: a damaged file, or a state machine that cannot restore it); %s",
				err, snapDir, repairHint(cfg.ID))
		}
		return nil, fmt.Errorf("consensus/raft: start raft: %w", err)
	}
	n.raft = r
	n.leaders = newLeaderWatch(r, cfg.ID, logger)
	// A cluster that predates cluster IDs gets one through its log: its leader proposes one,
	// and every member takes the first that commits (fsm.ApplyBatch). A leader that set an ID
	// of its own at once could lose its leadership before the followers learned it, and the
	// next leader would set another: two IDs in one cluster, whose members refuse each other.
	n.leaders.subscribe(func(ev consensus.LeaderEvent) {
		if ev.IsSelf && n.ident.get() == "" {
			n.bg.Add(1)
			go func() {
				defer n.bg.Done()
				n.commitClusterID(logger)
			}()
		}
	})
	ok = true
	return n, nil
}

// isEmpty reports whether the node holds no Raft entry and no snapshot (a new node, or one
// whose data dir was wiped). An error reading either counts as state: the guard then stays out.
func (n *Node) isEmpty(logs hraft.LogStore, snaps hraft.SnapshotStore) bool {
	last, err := logs.LastIndex()
	if err != nil || last > 0 {
		return false
	}
	metas, err := snaps.List()
	return err == nil && len(metas) == 0
}

// keyVoteGuardArmed, in the stable store, is 1 while the vote guard is armed: the node received
// its state from a leader starting empty, and has not caught up with a commit point yet.
var keyVoteGuardArmed = []byte("commitlog_vote_guard_armed")

// termAt returns the term of the entry at index: in the log, or the last of a snapshot.
func termAt(logs hraft.LogStore, snaps hraft.SnapshotStore, index uint64) (uint64, bool) {
	var l hraft.Log
	if err := logs.GetLog(index, &l); err == nil {
		return l.Term, true
	}
	metas, err := snaps.List()
	if err != nil {
		return 0, false
	}
	for _, m := range metas {
		if m.Index == index {
			return m.Term, true
		}
	}
	return 0, false
}

// lastIndex returns the index of the last entry the node holds, in its log or a snapshot.
func lastIndex(logs hraft.LogStore, snaps hraft.SnapshotStore) uint64 {
	last, _ := logs.LastIndex()
	if metas, err := snaps.List(); err == nil {
		for _, m := range metas {
			last = max(last, m.Index)
		}
	}
	return last
}

// openLogStore opens Raft's log and stable store: raft-wal in DataDir/wal (with the latest
// entries cached in memory), or with UnsafeInmemLog a store in memory. The closers close them,
// in order, after Raft has shut down.
func openLogStore(cfg Config, hlog hclog.Logger) (hraft.LogStore, hraft.StableStore, []func() error, error) {
	if cfg.UnsafeInmemLog {
		s := hraft.NewInmemStore()
		return s, s, nil, nil
	}
	walDir := filepath.Join(cfg.DataDir, "wal")
	if err := os.MkdirAll(walDir, dirMode); err != nil {
		return nil, nil, nil, fmt.Errorf("consensus/raft: create wal dir: %w", err)
	}
	// bbolt initializes an empty file as a new database without raft-wal's buckets, on which
	// raft-wal's Load dereferences a nil bucket (a panic). raft-wal creates the file whole (a
	// temporary one, renamed), so an empty one is damage: Raft's term, vote and the list of
	// its log's segments are gone, and this node must not vote or lead on what is left.
	metaPath := filepath.Join(walDir, metadb.FileName)
	if fi, err := os.Stat(metaPath); err == nil && fi.Size() == 0 {
		return nil, nil, nil, fmt.Errorf("consensus/raft: %s is empty: Raft's term, vote and log index are lost, and %s", metaPath, repairHint(cfg.ID))
	}
	if err := checkWALMeta(walDir, metaPath, cfg.ID); err != nil {
		return nil, nil, nil, err
	}
	// raft-wal v0.4.0's Close does not close its meta database (a bolt file holding an
	// flock), so a restart in the same process would block: own it and close it after.
	var meta WALMetaStore = &metadb.BoltMetaDB{}
	if cfg.WALMeta != nil {
		meta = cfg.WALMeta(meta)
	}
	segSize := wal.DefaultSegmentSize
	if cfg.WALSegmentSize > 0 {
		segSize = cfg.WALSegmentSize
	}
	walLog := hlog.Named("wal")
	fatal := cfg.OnFatal
	if fatal == nil {
		fatal = func(err error) {
			msg := fmt.Sprintf("consensus/raft: fatal: the raft log in %s: %v; exiting so that the node restarts on its data", walDir, err)
			walLog.Error(msg)
			fmt.Fprintln(os.Stderr, msg)
			os.Exit(1)
		}
	}
	// The leader sends followers the entries it has just written: from memory (a log cache
	// inside walStore), not read back (and decoded) from the WAL's files, which cost a sixth of
	// the leader's CPU under streaming load. Writes go through to the WAL before they are
	// cached. walStore reopens the WAL from disk after a failed write.
	store, err := newWALStore(func() (*wal.WAL, error) {
		return openWAL(walDir, cfg.WALFS, meta, segSize, walLog)
	}, meta, walLog, fatal)
	if err != nil {
		_ = meta.Close()
		return nil, nil, nil, fmt.Errorf("consensus/raft: open wal in %s: %w", walDir, err)
	}
	return store, store, []func() error{store.Close, meta.Close}, nil
}

// newRaft is hraft.NewRaft, whose panic becomes an error naming dataDir and the repair. NewRaft
// restores the newest snapshot that restores, then reads every entry after it to find the
// latest configuration, and panics on one it cannot read ("log not found"), before it starts
// any goroutine. checkLogReadable refuses what it can see beforehand; it cannot see which
// snapshot will restore: when the newest does not (damaged, or a state machine that cannot
// restore it) and raft falls back to an older one that compaction has left behind, the
// entries after that one are gone.
func newRaft(rc *hraft.Config, fsm hraft.FSM, logs hraft.LogStore, stable hraft.StableStore, snaps hraft.SnapshotStore,
	trans hraft.Transport, dataDir, id string) (r *hraft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("reading Raft's log in %s after the snapshot it restored failed (%v): "+
				"the log does not hold the entries after that snapshot (if a newer snapshot did not restore, the log names it and why); %s",
				dataDir, p, repairHint(id))
		}
	}()
	return hraft.NewRaft(rc, fsm, logs, stable, snaps, trans)
}

// bootstrapConfiguration is the initial configuration: servers, or this node alone.
func bootstrapConfiguration(id, address string, servers []consensus.Server) hraft.Configuration {
	if len(servers) == 0 {
		return hraft.Configuration{Servers: []hraft.Server{{
			Suffrage: hraft.Voter, ID: hraft.ServerID(id), Address: hraft.ServerAddress(address),
		}}}
	}
	conf := hraft.Configuration{}
	for _, s := range servers {
		sf := hraft.Voter
		if s.Suffrage == consensus.Nonvoter {
			sf = hraft.Nonvoter
		}
		conf.Servers = append(conf.Servers, hraft.Server{Suffrage: sf, ID: hraft.ServerID(s.ID), Address: hraft.ServerAddress(s.Address)})
	}
	return conf
}

// Bootstrap founds a new cluster on a running node that has no Raft state and no cluster ID:
// it sets a new cluster ID (Config.ClusterID if set) and bootstraps servers (this node alone
// when empty; the list must include this node) as the initial configuration. It is for
// nodes started without Config.Bootstrap that decide to bootstrap later (e.g. once enough
// servers are known). It returns ErrAlreadyBootstrapped when the node has state or was
// already added to a cluster.
func (n *Node) Bootstrap(servers []consensus.Server) error {
	if n.closing.Load() {
		return consensus.ErrClosed
	}
	n.bootstrapMu.Lock()
	defer n.bootstrapMu.Unlock()
	if id := n.ident.get(); id != "" {
		return fmt.Errorf("%w (cluster %s)", ErrAlreadyBootstrapped, id)
	}
	has, err := hraft.HasExistingState(n.logs, n.stable, n.snaps)
	if err != nil {
		return fmt.Errorf("consensus/raft: check existing state: %w", err)
	}
	if has {
		return ErrAlreadyBootstrapped
	}
	id := n.cfg.bootstrapClusterID()
	if len(servers) > 0 {
		c := n.cfg
		c.BootstrapServers, c.ClusterID = servers, id
		if err := c.validate(); err != nil {
			return err
		}
	}
	if got, err := n.ident.setIfEmpty(id, "bootstrap"); err != nil {
		return err
	} else if got != id {
		return fmt.Errorf("%w (cluster %s)", ErrAlreadyBootstrapped, got)
	}
	if err := n.raft.BootstrapCluster(bootstrapConfiguration(n.cfg.ID, n.cfg.Address, servers)).Error(); err != nil {
		return fmt.Errorf("consensus/raft: bootstrap: %w", err)
	}
	return nil
}

// HasState reports whether the node has Raft state (it bootstrapped or joined a cluster before).
func (n *Node) HasState() (bool, error) {
	has, err := hraft.HasExistingState(n.logs, n.stable, n.snaps)
	if err != nil {
		return false, fmt.Errorf("consensus/raft: check existing state: %w", err)
	}
	return has, nil
}

// ClusterID returns the ID of the cluster this node belongs to, or "" while it belongs to
// none (no Raft state yet, not yet added to a cluster).
func (n *Node) ClusterID() string { return n.ident.get() }

// stopGoroutines stops the goroutines New started besides Raft's (the vote guard), which read
// and write the stores: before runClosers closes them (the guard, still answering an RPC, wrote
// to a closed meta store under TestCommittedServersOfAServerJoinedFromASnapshot in CI).
func (n *Node) stopGoroutines() {
	if n.votes != nil {
		n.votes.close()
	}
}

func (n *Node) runClosers() error {
	var errs []error
	for _, c := range n.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close shuts Raft down (without leaving the configuration), stops the Node's goroutines and
// closes its transport (when built from a StreamLayer) and stores. Idempotent: later calls
// return the first call's result. Blocked calls return ErrClosed (or ErrOutcomeUnknown for
// proposals in flight).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		close(n.done)
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("consensus/raft: shutdown: %w", err))
		}
		n.leaders.close()
		n.bg.Wait()
		n.reads.wait()
		n.stopGoroutines()
		if err := n.runClosers(); err != nil {
			errs = append(errs, fmt.Errorf("consensus/raft: close: %w", err))
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// CommittedServers returns the latest configuration this node knows to have committed, and its
// index: the last configuration entry raft handed its state machine (raft hands it committed
// entries only), or the configuration of the snapshot it last restored, whichever is later; it
// is kept in the stable store, so a node restarted (with or without a snapshot) knows what it
// knew before. ok is false while it knows none: a new node (or one whose data dir predates
// this), until a leader has told it how far the log committed and it applied a configuration
// entry or restored a snapshot. Servers, by contrast, answers the
// latest configuration in the log, committed or not (hashicorp/raft v1.8 does not say which,
// nor its index: GetConfiguration's Index is always 0).
func (n *Node) CommittedServers() (servers []consensus.Server, index uint64, ok bool) {
	c := n.committed.Load()
	if c == nil {
		return nil, 0, false
	}
	return slices.Clone(c.servers), c.index, true
}

// Raft returns the underlying hashicorp/raft instance, for metrics and diagnostics. Do not
// shut it down or change its configuration behind the Node's back.
func (n *Node) Raft() *hraft.Raft { return n.raft }

// FirstIndex returns the first index in the node's Raft log (it grows as snapshots compact
// the log).
func (n *Node) FirstIndex() (uint64, error) {
	i, err := n.logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("consensus/raft: first index: %w", err)
	}
	return i, nil
}

// ID returns the node's server ID.
func (n *Node) ID() string { return n.cfg.ID }

// Address returns the node's advertised Raft address.
func (n *Node) Address() string { return n.cfg.Address }

func (n *Node) leader() (consensus.Server, bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return consensus.Server{}, false
	}
	// The leader's address as the configuration holds it (the one it was added with: a host
	// name its certificate names), not the one raft learned from its messages (the transport's
	// advertised address, which may be a resolved IP): clients and peers dial it.
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.ID == id && s.Address != "" {
			addr = s.Address
			break
		}
	}
	return consensus.Server{ID: string(id), Address: string(addr), Suffrage: consensus.Voter}, true
}

func (n *Node) mapErr(err error, proposed bool) error { return mapError(err, proposed, n.leader) }

// enqueueTimeout turns ctx's deadline into the timeout hashicorp/raft takes for enqueueing.
// Zero means no deadline. It returns ctx.Err() if ctx is already done.
func enqueueTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, context.DeadlineExceeded
	}
	return d, nil
}

// await waits for f while honouring ctx and Close. done reports whether f resolved; when ctx
// ends first, err is ctx.Err(); when the Node closes first, err is ErrClosed. The goroutine
// that waits on f ends when raft resolves it. raft resolves every future it dequeued when it
// shuts down, except (hashicorp/raft v1.8.0) those of entries already committed and queued for
// the FSM goroutine when it stops: their waiters are released by the Node's close instead, and
// the waiting goroutine is left to the process (it holds nothing but the future).
func (n *Node) await(ctx context.Context, f hraft.Future) (done bool, err error) {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return true, err
	case <-ctx.Done():
		err = ctx.Err()
	case <-n.done:
		err = consensus.ErrClosed
	}
	select {
	case err := <-ch:
		return true, err
	default:
		return false, err
	}
}

// Propose replicates cmd and returns the local StateMachine's Apply result for it. See
// consensus.Consensus. The ctx deadline bounds enqueueing; a ctx that ends after the entry was
// enqueued yields ErrOutcomeUnknown.
func (n *Node) Propose(ctx context.Context, cmd []byte) (any, error) {
	if n.closing.Load() {
		return nil, consensus.ErrClosed
	}
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(cmd, timeout)
	done, err := n.await(ctx, f)
	if !done {
		if errors.Is(err, consensus.ErrClosed) {
			return nil, fmt.Errorf("%w: %w", consensus.ErrClosed, consensus.ErrOutcomeUnknown)
		}
		return nil, fmt.Errorf("%w (%v)", consensus.ErrOutcomeUnknown, err)
	}
	if err != nil {
		if errors.Is(err, hraft.ErrEnqueueTimeout) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, n.mapErr(err, true)
	}
	return f.Response(), nil
}

// appliedIndex returns the index through which the StateMachine has applied the log. raft
// hands the FSM goroutine only commands and configuration changes; no-op and barrier entries
// need nothing from the StateMachine. So, with L the last index the StateMachine applied and
// A raft's last dispatched index, the answer is A when (L, A] holds no command or
// configuration entry, else the index before the first such entry. (Entries in (L, A] are
// committed, so they are never truncated; a failed read answers L, conservatively.)
func (n *Node) appliedIndex() uint64 {
	l := n.fsm.applied.Load()
	a := n.raft.AppliedIndex()
	if a <= l || a-l > 4096 {
		return l
	}
	var lg hraft.Log
	for i := l + 1; i <= a; i++ {
		if err := n.logs.GetLog(i, &lg); err != nil {
			return l
		}
		if lg.Type == hraft.LogCommand || lg.Type == hraft.LogConfiguration {
			return i - 1
		}
	}
	return a
}

// Leader returns the leader as this node knows it; ok is false when unknown.
func (n *Node) Leader() (consensus.Server, bool) { return n.leader() }

// IsLeader reports whether this node believes it is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

func suffrage(s hraft.ServerSuffrage) consensus.Suffrage {
	if s == hraft.Voter {
		return consensus.Voter
	}
	return consensus.Nonvoter
}

// Servers returns the latest configuration with the leader marked. On the leader, each
// follower carries its match index (the last log index it is known to hold, learned from its
// successful AppendEntries and InstallSnapshot responses in the current term; 0 until the
// first), and a follower whose heartbeats are failing carries the LastContact raft reported
// when they started failing (hashicorp/raft v1.8 does not expose the last contact of healthy
// followers, so that stays zero).
func (n *Node) Servers(ctx context.Context) ([]consensus.ServerStatus, error) {
	if n.closing.Load() {
		return nil, consensus.ErrClosed
	}
	f := n.raft.GetConfiguration()
	done, err := n.await(ctx, f)
	if !done {
		return nil, err
	}
	if err != nil {
		return nil, n.mapErr(err, false)
	}
	_, leaderID := n.raft.LeaderWithID()
	isLeader := n.IsLeader()
	term := n.raft.CurrentTerm()
	conf := f.Configuration()
	out := make([]consensus.ServerStatus, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		st := consensus.ServerStatus{
			Server: consensus.Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)},
			Leader: s.ID == leaderID,
		}
		if isLeader && string(s.ID) != n.cfg.ID {
			st.LastContact = n.leaders.failedContact(string(s.ID))
			st.MatchIndex = n.matches.get(s.ID, term)
		}
		out = append(out, st)
	}
	return out, nil
}

// Status returns this node's view of the cluster. AppliedIndex is the index through which
// the StateMachine has applied the log (entries it never sees, such as no-ops, count as
// applied once everything before them is).
func (n *Node) Status() consensus.Status {
	st := consensus.Status{
		ID:           n.cfg.ID,
		State:        stateName(n.raft.State()),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.appliedIndex(),
		LastIndex:    n.raft.LastIndex(),
		ClusterID:    n.ident.get(),
	}
	st.Fenced, _ = n.Fenced()
	if w, ok := n.logs.(*walStore); ok {
		st.LogWriteFailures = w.failures.Load()
	}
	if l, ok := n.leader(); ok {
		st.Leader = l
	}
	if n.raft.State() != hraft.Leader {
		st.LastContact = n.raft.LastContact()
	}
	return st
}

// Fence keeps this node out of elections, for reason (consensus.Fencer): until Unfence, it
// refuses every vote and pre-vote it is asked for and sends none of its own, so it is never
// elected (see voteGuard). A node that leads when it is fenced keeps leading until it hands
// leadership over (TransferLeadership) or loses it: Raft has no way to step down alone. It
// logs once per change of reason, not per refused vote. Fencing is not remembered across
// restarts: the caller keeps its reason and passes it in Config.Fenced.
func (n *Node) Fence(reason string) {
	if reason == "" {
		reason = "fenced"
	}
	if old := n.votes.fence.Swap(&reason); old == nil || *old != reason {
		n.cfg.Logger.Warn("fenced: this node refuses every vote and pre-vote and does not campaign until it is repaired",
			"raft_id", n.cfg.ID, "reason", reason)
	}
}

// Unfence lifts Fence: the node votes and campaigns as Raft decides again.
func (n *Node) Unfence() {
	if old := n.votes.fence.Swap(nil); old != nil {
		n.cfg.Logger.Info("fence lifted: this node votes and campaigns again", "raft_id", n.cfg.ID, "was", *old,
			"votes_refused", n.votes.fenceRefused.Load(), "campaigns_blocked", n.votes.fenceBlocked.Load())
	}
}

// Fenced returns why the node is fenced; ok is false while it is not.
func (n *Node) Fenced() (reason string, ok bool) {
	if r := n.votes.fence.Load(); r != nil {
		return *r, true
	}
	return "", false
}

// FenceCounts returns, since the node started, the votes, pre-votes and leadership hand-overs
// it refused because it was fenced, and its own vote and pre-vote requests it did not send
// because it was fenced (one per voter asked, each time it campaigned).
func (n *Node) FenceCounts() (refused, blocked uint64) {
	return n.votes.fenceRefused.Load(), n.votes.fenceBlocked.Load()
}

// MaxAppendEntries returns the most entries this node sends in one AppendEntries RPC and
// takes into one group commit: Config.MaxAppendEntries after its default (see MaxEntryBytes).
func (n *Node) MaxAppendEntries() int { return n.cfg.MaxAppendEntries }

func stateName(s hraft.RaftState) string {
	switch s {
	case hraft.Leader:
		return "leader"
	case hraft.Follower:
		return "follower"
	case hraft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

func (n *Node) membership(ctx context.Context, op func(timeout time.Duration) hraft.IndexFuture) error {
	if n.closing.Load() {
		return consensus.ErrClosed
	}
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	done, err := n.await(ctx, op(timeout))
	if !done {
		if errors.Is(err, consensus.ErrClosed) {
			return fmt.Errorf("%w: %w", consensus.ErrClosed, consensus.ErrOutcomeUnknown)
		}
		return fmt.Errorf("%w (%v)", consensus.ErrOutcomeUnknown, err)
	}
	if err != nil {
		if errors.Is(err, hraft.ErrEnqueueTimeout) && ctx.Err() != nil {
			return ctx.Err()
		}
		return n.mapErr(err, true)
	}
	return nil
}

// AddVoter adds a voting server, or promotes a non-voter. Leader only. Errors as Propose.
func (n *Node) AddVoter(ctx context.Context, id, address string) error {
	return n.membership(ctx, func(t time.Duration) hraft.IndexFuture {
		return n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(address), 0, t)
	})
}

// AddNonvoter adds a non-voting server. Leader only. Errors as Propose.
func (n *Node) AddNonvoter(ctx context.Context, id, address string) error {
	return n.membership(ctx, func(t time.Duration) hraft.IndexFuture {
		return n.raft.AddNonvoter(hraft.ServerID(id), hraft.ServerAddress(address), 0, t)
	})
}

// RemoveServer removes a server from the configuration. Leader only. Errors as Propose.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.membership(ctx, func(t time.Duration) hraft.IndexFuture {
		return n.raft.RemoveServer(hraft.ServerID(id), 0, t)
	})
}

// TransferLeadership hands leadership to id (its address looked up in the configuration), or
// to the most up-to-date voter when id is empty. Leader only. It returns once the transfer
// completed or failed; an id not in the configuration is ErrUnknownServer, a non-voter's
// ErrNotVoter (nothing is tried).
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if n.closing.Load() {
		return consensus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cf := n.raft.GetConfiguration()
	done, err := n.await(ctx, cf)
	if !done {
		return err
	}
	if err != nil {
		return n.mapErr(err, false)
	}
	var f hraft.Future
	if id == "" {
		other := false
		for _, s := range cf.Configuration().Servers {
			other = other || (string(s.ID) != n.cfg.ID && s.Suffrage == hraft.Voter)
		}
		if !other {
			// hashicorp/raft answers "cannot find peer", which does not say why.
			return fmt.Errorf("consensus/raft: transfer leadership: no voter other than %q to hand leadership to", n.cfg.ID)
		}
		// Not hashicorp/raft's LeadershipTransfer: it picks the voter with the highest next
		// index, and a voter that is down keeps the next index it had (ties go to the first in
		// the configuration), so a leader whose peer had just died kept handing leadership to it,
		// failing every time, while a live voter was there (a stopped state machine's leader kept
		// the cluster unwritable with a minority down).
		return n.transferToAny(ctx, cf.Configuration().Servers)
	} else {
		var addr hraft.ServerAddress
		voter := false
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id {
				addr, voter = s.Address, s.Suffrage == hraft.Voter
			}
		}
		if addr == "" {
			return fmt.Errorf("consensus/raft: transfer leadership: %w: %q", ErrUnknownServer, id)
		}
		if !voter {
			// hashicorp/raft sends it TimeoutNow anyway: its vote requests, refused, still
			// depose the leader, and another voter is elected, not it.
			return fmt.Errorf("consensus/raft: transfer leadership: %w: %q", ErrNotVoter, id)
		}
		f = n.raft.LeadershipTransferToServer(hraft.ServerID(id), addr)
	}
	done, err = n.await(ctx, f)
	if !done {
		return err
	}
	if err != nil {
		if errors.Is(err, hraft.ErrLeadershipTransferInProgress) {
			return fmt.Errorf("consensus/raft: transfer leadership: %w", err)
		}
		return n.mapErr(err, false)
	}
	return nil
}

// transferToAny hands leadership to the voter transferTarget picks among servers; when that
// voter refuses it because it is fenced (it lost committed data: see voteGuard), to the next
// one, without it. A leader stopping gracefully, or one whose state machine stopped, would
// otherwise fail its hand-over whenever the fenced voter was the most up to date, and a leader
// that then stops leaves no leader where the other voter could have led.
func (n *Node) transferToAny(ctx context.Context, servers []hraft.Server) error {
	servers = slices.Clone(servers)
	for {
		t := n.transferTarget(servers)
		done, err := n.await(ctx, n.raft.LeadershipTransferToServer(t.ID, t.Address))
		if !done {
			return err
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, hraft.ErrLeadershipTransferInProgress) {
			return fmt.Errorf("consensus/raft: transfer leadership: %w", err)
		}
		// hashicorp/raft wraps the target's answer to TimeoutNow with %v: only its text is left.
		fenced := strings.Contains(err.Error(), errFenced.Error())
		servers = slices.DeleteFunc(servers, func(s hraft.Server) bool { return s.ID == t.ID })
		if !fenced || !slices.ContainsFunc(servers, func(s hraft.Server) bool {
			return string(s.ID) != n.cfg.ID && s.Suffrage == hraft.Voter
		}) {
			return n.mapErr(err, false)
		}
		n.cfg.Logger.Info("leadership transfer: the voter picked is fenced; trying the next one", "raft_id", n.cfg.ID, "fenced", t.ID)
	}
}

// transferTarget picks the voter other than this node to hand leadership to: one the leader
// hears from (no failed heartbeat since its last contact) before one it does not, then the one
// holding the most of the log in this term, then the first in the configuration. servers must
// hold such a voter.
func (n *Node) transferTarget(servers []hraft.Server) hraft.Server {
	term := n.raft.CurrentTerm()
	var (
		pick      hraft.Server
		found     bool
		pickReach bool
		pickMatch uint64
	)
	for _, s := range servers {
		if string(s.ID) == n.cfg.ID || s.Suffrage != hraft.Voter {
			continue
		}
		reach := !n.leaders.failing(string(s.ID))
		match := n.matches.get(s.ID, term)
		if !found || (reach && !pickReach) || (reach == pickReach && match > pickMatch) {
			pick, found, pickReach, pickMatch = s, true, reach, match
		}
	}
	return pick
}

// ErrUnknownServer is returned when a server ID is not in the configuration.
var ErrUnknownServer = errors.New("consensus/raft: unknown server")

// ErrNotVoter is returned when leadership is asked to go to a server that is in the
// configuration but does not vote (a non-voter, promoted once it has caught up).
var ErrNotVoter = errors.New("consensus/raft: not a voter")

// SubscribeLeader calls fn with the leader known when it subscribes, then on every change of
// leader seen by this node, from the Node's single notification goroutine, in order. fn must
// not block for long and must not call cancel. cancel unsubscribes; it is idempotent and, once
// it returns, fn is not running and will not be called again.
func (n *Node) SubscribeLeader(fn func(consensus.LeaderEvent)) (cancel func()) {
	return n.leaders.subscribe(fn)
}
