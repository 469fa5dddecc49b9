package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Serf tags a node advertises.
const (
	tagRaftAddr = "raft_addr"
	tagRPCAddr  = "rpc_addr"
	// tagClusterID is the ID of the cluster the node belongs to; absent while it belongs to
	// none (a new node waiting to be added).
	tagClusterID = "cluster_id"
	// tagStart is set anew by each process at its start (a random nonce): a removed server
	// restarted before Serf saw it fail is told from the process that was removed by it (see
	// removedServers). Servers of older versions advertise none.
	tagStart = "start"
	// tagExpect is the node's --bootstrap-expect (Config.BootstrapExpect), absent without one:
	// a node that waits to bootstrap warns of a server that expects another number
	// (expectConflicts). Servers of older versions advertise none, and ignore it.
	tagExpect = "expect"
)

// Membership defaults.
const (
	// DefaultReconcileInterval is how often the leader reconciles Raft's configuration with
	// Serf's members even when no event arrived (a join seen while there was no leader, a
	// non-voter that caught up since).
	DefaultReconcileInterval = 2 * time.Second
	// promoteLag is how many Raft entries a non-voter may be behind the leader's commit index
	// and still be promoted to voter.
	promoteLag = 256
)

// reconciler makes Raft's configuration follow Serf's membership, on the leader only (Serf
// only suggests; Raft decides): an alive member that is not in the configuration is added as a
// non-voter, a non-voter that has caught up is promoted, a member that left gracefully is
// removed. A failed member is never removed automatically: that is the operator's call
// (`commitlog cluster remove`), so a partition can never shrink the quorum by itself.
//
// It runs on every membership event, on every leadership change (so a join seen while there
// was no leader is not lost) and every interval. Build it with newReconciler.
type reconciler struct {
	reconcilerConfig

	mu      sync.Mutex
	foreign map[string]string // member → the other cluster ID last logged for it
	// refused holds members that failed admission, by name and raft address, with until when
	// they are not tried again (so that a stranger cannot make every pass wait on its handshake).
	refused map[refusal]refusedFor
	// ahead holds the outcomes of the admission checks this pass ran at its start
	// (admitAhead), by name and raft address; nil between passes.
	ahead map[refusal]bool

	// listed, unlisted and removedSelf are watchSelf's, owned by the loop: this node was a
	// member (listed by its configuration, and by a committed one) since it started; since when
	// its configuration has not listed it, after it was a member; it announced itself removed.
	listed, removedSelf bool
	unlisted            time.Time
	// asked is when watchSelf last asked the leader whether it lists this node; byLeader that
	// the removal it goes by is the leader's answer, this node's own configuration still
	// listing it.
	asked    time.Time
	byLeader bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// reconcilerConfig is what a reconciler works with.
type reconcilerConfig struct {
	self string
	// addr is this node's Raft address, as it advertises it.
	addr string
	// admit checks that the server at a raft address proves it is the named member (see
	// Server.admit); nil admits everyone.
	admit func(ctx context.Context, id, raftAddr string) error
	// proves says admit really checks identity (peer TLS is on): only then can a server that
	// gossip says left be found still there (see stillThere).
	proves  bool
	node    consensus.Consensus
	cluster func() string // this node's cluster ID
	members discovery.Membership
	// events is the membership's Handler: each event wakes a pass. Nil: passes run on
	// leadership changes and every interval only.
	events memberEvents
	// announceRemoved advertises in gossip whether this node was removed from the
	// configuration (see watchSelf); nil: it is not told.
	announceRemoved func(ctx context.Context, removed bool) error
	// unheard tells how long this node has known no leader after it knew one (0: it knows
	// one, or never did); once that is unheardAfter, watchSelf asks askLeader whether the
	// leader's configuration still lists this node (see Server.leaderListing: answered is false
	// when no leader answered). Nil: watchSelf goes by this node's own configuration only.
	unheard      func() time.Duration
	unheardAfter time.Duration
	askLeader    func(ctx context.Context) (listed, answered bool)
	// removed are the servers an operator removed (the service marks them); nil: none.
	removed  *removedServers
	bounds   func(ctx context.Context, rpcAddr string) (appliedIndex uint64, err error)
	interval time.Duration
	logger   *slog.Logger
}

// newReconciler returns a reconciler of cfg.members; start runs it, close stops it.
func newReconciler(cfg reconcilerConfig) *reconciler {
	if cfg.removed == nil {
		cfg.removed = &removedServers{}
	}
	if cfg.members != nil {
		cfg.removed.use(cfg.members)
	}
	if cfg.events == nil {
		cfg.events = make(memberEvents, 1)
	}
	if cfg.interval <= 0 {
		cfg.interval = DefaultReconcileInterval
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	return &reconciler{reconcilerConfig: cfg, stop: make(chan struct{})}
}

// memberEvents is the discovery.Handler of the membership: an event only wakes the
// reconciler (one wake-up is kept while it is busy), so the membership is never blocked. It is
// made before the membership starts, and the reconciler after, with the membership.
type memberEvents chan struct{}

// HandleEvent implements discovery.Handler.
func (e memberEvents) HandleEvent(discovery.Event) { e.wake() }

func (e memberEvents) wake() {
	select {
	case e <- struct{}{}:
	default:
	}
}

func (r *reconciler) trigger() { r.events.wake() }

func (r *reconciler) start() {
	cancel := r.node.SubscribeLeader(func(consensus.LeaderEvent) { r.trigger() })
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-r.events:
			case <-t.C:
			}
			ctx, cancelCtx := context.WithTimeout(context.Background(), 10*time.Second)
			r.watchSelf(ctx)
			if !r.node.IsLeader() || r.members == nil {
				cancelCtx()
				continue
			}
			if err := r.reconcile(ctx); err != nil && !errors.Is(err, consensus.ErrNotLeader) {
				r.logger.Warn("membership reconcile failed", "err", err)
			}
			cancelCtx()
		}
	}()
}

// close stops the loop and waits for it. Idempotent.
func (r *reconciler) close() {
	r.once.Do(func() {
		close(r.stop)
		r.wg.Wait()
	})
}

// removedGrace is how long watchSelf waits, the node no longer listed, before it announces
// itself removed: a leader re-addressing it (removed, then added at once), or a new leader
// adding it back after the entry that re-added it was lost with an old leader (its latest
// configuration rolled back to the committed one), lists it again within that time; once the
// node withdraws its address no leader adds it, so that would leave it out until restarted. (A
// node that was never a member, its first addition rolled back, does not withdraw at all.)
func (r *reconciler) removedGrace() time.Duration { return 5 * r.interval }

// watchSelf announces in gossip that this node was removed from Raft's configuration when the
// configuration it holds has no longer listed it for removedGrace after the node was a member
// since it started (an operator removed it; the leader usually replicates the removal to the
// removed server before it stops replicating to it), and that it is back when listed again. A
// member is listed by its configuration and by the latest one it knows to have committed
// (consensus.CommittedConfiguration): an addition that never committed, lost with the leader
// that appended it, is no membership, and its rollback no removal (the node went on
// advertising its Raft address, and the next leader added it again). The leader
// that removed it remembers not to add it back while it runs, but a next leader (an election, a
// hand-over) knew nothing of the removal: it saw the node alive in gossip and added it back, a
// removed pod back in the configuration until it stopped, then a voter down. A node announced
// removed advertises no Raft address, so that no leader, of this version or older, adds it.
// Restarted, it announces itself again and is added back, as before.
//
// A removed server that the removal did not reach (cut off, or slow, at that moment) keeps a
// configuration that lists it: it went on advertising its Raft address and campaigning, and a
// next leader added it back. So a node that has heard from no leader for unheardAfter, after it
// knew one since it started, goes by the leader's answer (askLeader) instead of its own
// configuration: the same grace, the same announcement. A node merely cut off is still listed
// by the leader, and one that no leader answers changes nothing. Loop only.
func (r *reconciler) watchSelf(ctx context.Context) {
	if r.announceRemoved == nil {
		return
	}
	servers, err := r.node.Servers(ctx)
	if err != nil {
		return
	}
	listed := slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == r.self })
	// A member: listed, and by a configuration that committed. A configuration entry adding
	// this node reaches it before it commits; a leader lost before the commit takes the entry
	// with it, and the node's configuration rolls back to one without it. That is no removal:
	// taken as one, the node withdrew its Raft address once the grace passed with no leader
	// adding it again (no leader meanwhile, or one slow to reconcile), and then no leader ever
	// added it: it stayed out of the cluster until restarted.
	member := listed && r.inCommitted()
	r.byLeader = false
	if listed && r.askLeader != nil && r.unheard != nil && r.unheard() >= r.unheardAfter {
		// The leader removed this node but stopped replicating to it before the removal
		// reached it (it was cut off, or slow): its own configuration still lists it, and it
		// would advertise its Raft address, and campaign, for as long as it runs. Having heard
		// from no leader for several election timeouts, it asks the leader, at most once per
		// interval. No answer tells nothing: nothing changes.
		if time.Since(r.asked) < r.interval {
			return
		}
		r.asked = time.Now()
		leaderListed, answered := r.askLeader(ctx)
		if !answered {
			return
		}
		listed, r.byLeader = leaderListed, !leaderListed
	}
	switch {
	case listed:
		r.listed, r.unlisted = r.listed || member, time.Time{}
	case r.listed && r.unlisted.IsZero():
		r.unlisted = time.Now()
	}
	if removed := r.listed && !listed && time.Since(r.unlisted) >= r.removedGrace(); removed != r.removedSelf {
		err := r.announceRemoved(ctx, removed)
		if errors.Is(err, discovery.ErrNotSupported) {
			// A fixed membership (Config.Membership): its servers are known in advance and no
			// reconciler adds one it does not list.
			r.announceRemoved = nil
			return
		}
		if err != nil {
			r.logger.Warn("cannot announce in gossip whether this server was removed from the cluster", "removed", removed, "err", err)
			return
		}
		r.removedSelf = removed
		switch {
		case removed && r.byLeader:
			r.logger.Warn("this server was removed from the cluster's configuration, and missed its removal (no leader has reached it since; its own configuration still lists it): it no longer advertises its Raft address in gossip, so that no leader adds it back; stop it, or restart it to rejoin")
		case removed:
			r.logger.Warn("this server was removed from the cluster's configuration: it no longer advertises its Raft address in gossip, so that no leader adds it back; stop it, or restart it to rejoin")
		default:
			r.logger.Info("this server is in the cluster's configuration again: advertising its Raft address in gossip")
		}
	}
}

// inCommitted reports whether the latest configuration this node knows to have committed lists
// it. A consensus that cannot tell (it does not implement consensus.CommittedConfiguration)
// answers true: its latest configuration counts, as it did before.
func (r *reconciler) inCommitted() bool {
	c, ok := r.node.(consensus.CommittedConfiguration)
	if !ok {
		return true
	}
	servers, _, known := c.CommittedServers()
	return known && slices.ContainsFunc(servers, func(s consensus.Server) bool { return s.ID == r.self })
}

// removedServers are the servers an operator removed while they are alive in Serf, so that the
// reconciler does not add them back. The marks are kept in memory on this node only and are
// dropped once the member leaves or fails, comes back without Raft state (no cluster ID in its
// tags: its data dir wiped, the documented way back in), or comes back as another process (its
// start tag differs from the one it advertised when it was removed: restarted, with its data);
// a removed node should be stopped. Safe for concurrent use.
type removedServers struct {
	mu  sync.Mutex
	ids map[string]removedMark
	// members is the gossip membership a removed server is looked up in when it is marked
	// (see use); nil: its start tag is taken at the first sighting.
	members discovery.Membership
}

// removedMark is what is remembered of a removed server: the start tag (tagStart) of the
// process that was removed, once known (known; "" from a server that advertises none).
type removedMark struct {
	start string
	known bool
}

// use makes mark look removed servers up in members (nil: none).
func (r *removedServers) use(members discovery.Membership) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.members = members
}

// mark records that an operator removed id (removed) or that the removal failed (!removed).
// The start tag the member advertises now, in the membership given to use, is the process that
// was removed; a member not found there has it taken at its first sighting (see skip).
func (r *removedServers) mark(id string, removed bool) {
	r.mu.Lock()
	members := r.members
	r.mu.Unlock()
	var mk removedMark
	if removed && members != nil {
		for _, m := range members.Members() { // outside r.mu: the membership has locks of its own
			if m.Name == id {
				mk = removedMark{start: m.Tags[tagStart], known: true}
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]removedMark{}
	}
	if removed {
		r.ids[id] = mk
	} else {
		delete(r.ids, id)
	}
}

// skip reports whether m was removed by an operator, and forgets the mark of a member that is
// no longer alive, that has no Raft state, or that is another process than the one removed. A
// removed server restarted before Serf declared it failed (killed, crashed: the new process
// refutes the suspicion, and Serf never reports it gone) was alive all along to this leader,
// which kept skipping it: it waited to be added for as long as this leader led, where one
// restarted more slowly, or stopped gracefully, was added back. A server with Raft state
// advertises its cluster ID (one without, its data dir wiped, waits to be added), and each
// process a start tag of its own; a removed one still running keeps advertising both. A server
// that advertises no start tag (an older version) is told from a restart only by its cluster ID.
func (r *removedServers) skip(m discovery.Member) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	mk, ok := r.ids[m.Name]
	if !ok {
		return false
	}
	start := m.Tags[tagStart]
	switch {
	case m.Status != discovery.StatusAlive || m.Tags[tagClusterID] == "":
		delete(r.ids, m.Name)
		return false
	case !mk.known:
		// Not in the membership when it was removed: the process seen now is taken as the
		// one removed (one restarted before this first sighting is not told apart).
		r.ids[m.Name] = removedMark{start: start, known: true}
	case start != mk.start:
		delete(r.ids, m.Name)
		return false
	}
	return true
}

// ofAnotherCluster reports whether m belongs to a cluster other than this node's (its
// cluster_id tag is set and differs): such a member is never added, promoted or removed. The
// refusal is logged, with both IDs, once per member and foreign ID.
func (r *reconciler) ofAnotherCluster(m discovery.Member) bool {
	theirs, ours := m.Tags[tagClusterID], ""
	if r.cluster != nil {
		ours = r.cluster()
	}
	if theirs == "" || ours == "" || theirs == ours {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.foreign == nil {
		r.foreign = map[string]string{}
	}
	if r.foreign[m.Name] != theirs {
		r.foreign[m.Name] = theirs
		r.logger.Error("ignoring a gossip member of another cluster: not adding it to Raft",
			"id", m.Name, "local_cluster_id", ours, "peer_cluster_id", theirs, "raft_addr", m.Tags[tagRaftAddr])
	}
	return true
}

// refusal names a member that failed admission at an address.
type refusal struct{ id, raftAddr string }

// refusedFor is how long a refused member is left alone: until then, after a wait of wait.
type refusedFor struct {
	until time.Time
	wait  time.Duration
}

// A member that failed admission is left alone refusedFirstRetry, and twice as long after each
// refusal that follows, up to refusedRetry (a real server that started with the wrong
// certificate, fixed and restarted, is tried again within that). A first failure is often
// passing (a handshake that timed out on a loaded host, a node restarting): with one fixed wait
// of 30 s, a joining server whose first check failed so stayed out of the cluster that long.
// A stranger still costs at most one handshake every refusedRetry once it has failed a few.
const (
	refusedFirstRetry = time.Second
	refusedRetry      = 30 * time.Second
)

// nextRefusal is the refusal that follows prev (zero: none) at now.
func nextRefusal(prev refusedFor, now time.Time) refusedFor {
	wait := refusedFirstRetry
	if prev.wait > 0 && now.Before(prev.until.Add(refusedRetry)) {
		wait = min(2*prev.wait, refusedRetry)
	}
	return refusedFor{until: now.Add(wait), wait: wait}
}

// admitted reports whether m may enter (or be promoted in) Raft's configuration: it proved its
// identity at its advertised Raft address, and its API address is that same address (a server
// serves both on one port, so a member cannot point the promotion check at another node).
func (r *reconciler) admitted(ctx context.Context, m discovery.Member) bool {
	raftAddr, rpcAddr := m.Tags[tagRaftAddr], m.Tags[tagRPCAddr]
	key := refusal{m.Name, raftAddr}
	r.mu.Lock()
	if ok, checked := r.ahead[key]; checked {
		r.mu.Unlock()
		return ok // checked at the start of this pass (admitAhead)
	}
	prev, refused := r.refused[key]
	r.mu.Unlock()
	if refused && time.Now().Before(prev.until) {
		return false
	}
	var err error
	switch {
	case rpcAddr != raftAddr:
		err = fmt.Errorf("%w: its rpc_addr %s is not its raft_addr", ErrNotAdmitted, rpcAddr)
	case r.admit != nil:
		err = r.admit(ctx, m.Name, raftAddr)
	}
	if err != nil && ctx.Err() != nil {
		// The pass ran out of time, not the member's check: not a refusal to put it off for.
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.refused == nil {
			r.refused = map[refusal]refusedFor{}
		}
		now := time.Now()
		for k, f := range r.refused { // forget old refusals: the map stays as small as Serf's member list
			if now.After(f.until.Add(refusedRetry)) {
				delete(r.refused, k)
			}
		}
		r.refused[key] = nextRefusal(r.refused[key], now)
		r.logger.Warn("refusing server into the Raft configuration", "id", m.Name, "raft_addr", raftAddr, "err", err)
		return false
	}
	delete(r.refused, key)
	return true
}

// maxAdmitAhead bounds the admission checks one reconcile pass runs at once (admitAhead).
const maxAdmitAhead = 64

// admitAhead runs, all at once (at most maxAdmitAhead at a time), the admission checks that the
// pass over members will ask for (admitted): every alive member advertising a Raft address that
// Raft's configuration (inRaft) does not hold for it, or that is a non-voter there (promotion).
// Checked one after the other, a few members advertising an address that accepts connections
// and never answers (anyone with the gossip key can run them) took admitTimeout each and used up
// the pass: a real server behind them in the member list was never checked, and was refused for
// the pass's deadline, its next check put off longer each time. The pass then uses the
// outcomes; the returned function forgets them.
func (r *reconciler) admitAhead(ctx context.Context, members []discovery.Member, inRaft map[string]consensus.ServerStatus) func() {
	var todo []discovery.Member
	for _, m := range members {
		if m.Status == discovery.StatusAlive && m.Tags[tagRaftAddr] != "" && wantsAdmission(m, inRaft) {
			todo = append(todo, m)
		}
	}
	outcomes := make(map[refusal]bool, len(todo))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxAdmitAhead)
	)
	for _, m := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ok := r.admitted(ctx, m)
			mu.Lock()
			outcomes[refusal{m.Name, m.Tags[tagRaftAddr]}] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	r.mu.Lock()
	r.ahead = outcomes
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.ahead = nil
		r.mu.Unlock()
	}
}

// wantsAdmission reports whether the pass checks alive member m's admission (admitted): its
// Raft address is not the one Raft's configuration (inRaft) holds for it (it is added), or it
// is a non-voter there (it is promoted).
func wantsAdmission(m discovery.Member, inRaft map[string]consensus.ServerStatus) bool {
	srv, known := inRaft[m.Name]
	return !known || srv.Address != m.Tags[tagRaftAddr] || srv.Suffrage == consensus.Nonvoter
}

// reconcile runs one pass. Leader only.
func (r *reconciler) reconcile(ctx context.Context) error {
	servers, err := r.node.Servers(ctx)
	if err != nil {
		return err
	}
	inRaft := make(map[string]consensus.ServerStatus, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	var errs []error
	if err := r.readdressSelf(ctx, inRaft[r.self]); err != nil {
		errs = append(errs, err)
	}
	members := r.members.Members()
	alive := make(map[string]bool, len(members))
	for _, m := range members {
		alive[m.Name] = m.Status == discovery.StatusAlive
	}
	todo := members[:0:0]
	for _, m := range members {
		if m.Name == r.self || r.removed.skip(m) || r.ofAnotherCluster(m) {
			continue
		}
		todo = append(todo, m)
	}
	defer r.admitAhead(ctx, todo, inRaft)()
	for _, m := range todo {
		raftAddr := m.Tags[tagRaftAddr]
		srv, known := inRaft[m.Name]
		switch m.Status {
		case discovery.StatusAlive:
			if raftAddr == "" {
				continue // not a commitlog server
			}
			if err := r.replaceStale(ctx, m, inRaft, alive); err != nil {
				errs = append(errs, err)
				continue
			}
			switch {
			case !known || srv.Address != raftAddr:
				if !r.admitted(ctx, m) {
					continue
				}
				if known && srv.Suffrage == consensus.Voter {
					// A voter at a new address may be a node whose data dir was wiped: it must
					// not vote before it has caught up. hashicorp/raft's AddNonvoter only
					// re-addresses a voter, so it is removed first and comes back as a
					// non-voter, promoted once caught up like any joining server.
					r.logger.Info("voter at a new address: re-adding it as a non-voter", "id", m.Name, "old_raft_addr", srv.Address, "raft_addr", raftAddr)
					if err := r.node.RemoveServer(ctx, m.Name); err != nil {
						errs = append(errs, fmt.Errorf("remove %s before re-adding it at %s: %w", m.Name, raftAddr, err))
						continue
					}
				}
				r.logger.Info("adding server as non-voter", "id", m.Name, "raft_addr", raftAddr)
				if err := r.node.AddNonvoter(ctx, m.Name, raftAddr); err != nil {
					errs = append(errs, fmt.Errorf("add %s: %w", m.Name, err))
					continue
				}
				r.trigger() // check promotion soon
			case srv.Suffrage == consensus.Nonvoter:
				if err := r.promote(ctx, m); err != nil {
					errs = append(errs, err)
				}
			}
		case discovery.StatusLeft:
			if known && r.stillThere(ctx, m.Name, srv.Address) {
				// Anyone with the gossip key can announce a leave under another's name: a
				// server that still proves its name at its Raft address has not left. A real
				// leave is removed on a later pass, once the server has stopped.
				r.logger.Warn("not removing a server that gossip says left: it still proves its name at its Raft address", "id", m.Name, "raft_addr", srv.Address)
				continue
			}
			if known {
				r.logger.Info("removing server that left", "id", m.Name)
				if err := r.node.RemoveServer(ctx, m.Name); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", m.Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// replaceStale removes from Raft's configuration (inRaft) the other servers at m's Raft address
// that are not alive in gossip (alive, by name): a server that came back at its address under
// another name (its data dir wiped, its --node-name changed). Raft refuses a second server at
// one address, so m could never be added while the old entry stayed: every pass failed, and
// the old name stayed in the configuration. As Consul does, the old entry goes first; a voter
// only while the voters left alive in gossip are a majority of those left, so that the removal
// itself commits. Only once m proves it is at that address (admission), and never this
// leader's own entry.
func (r *reconciler) replaceStale(ctx context.Context, m discovery.Member, inRaft map[string]consensus.ServerStatus, alive map[string]bool) error {
	raftAddr := m.Tags[tagRaftAddr]
	var errs []error
	for _, srv := range inRaft {
		if srv.Address != raftAddr || srv.ID == m.Name || srv.ID == r.self || alive[srv.ID] {
			continue
		}
		if srv.Suffrage == consensus.Voter && !r.quorumWithout(srv.ID, inRaft, alive) {
			r.logger.Warn("not yet removing a server whose Raft address another server now holds: too few voters left alive", "id", srv.ID, "raft_addr", raftAddr, "new_id", m.Name)
			continue
		}
		if !r.admitted(ctx, m) {
			return nil
		}
		r.logger.Info("removing a server whose Raft address another server now holds", "id", srv.ID, "raft_addr", raftAddr, "new_id", m.Name)
		if err := r.node.RemoveServer(ctx, srv.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove %s, whose address %s %s now holds: %w", srv.ID, raftAddr, m.Name, err))
		}
	}
	return errors.Join(errs...)
}

// quorumWithout reports whether the voters of inRaft other than id that are alive in gossip
// (this leader included) are a majority of the voters other than id.
func (r *reconciler) quorumWithout(id string, inRaft map[string]consensus.ServerStatus, alive map[string]bool) bool {
	voters, live := 0, 0
	for _, srv := range inRaft {
		if srv.ID == id || srv.Suffrage != consensus.Voter {
			continue
		}
		voters++
		if srv.ID == r.self || alive[srv.ID] {
			live++
		}
	}
	return 2*live > voters
}

// readdressSelf updates the leader's own address in Raft's configuration (srv, its entry
// there) to the one it advertises, when it restarted at another (a changed --advertise-host or
// port): the configuration is what GetServers answers, so clients and `cluster status` were
// sent to the old address, where nothing answers (a single node could not be written to at
// all). The leader has every committed entry: it stays a voter.
func (r *reconciler) readdressSelf(ctx context.Context, srv consensus.ServerStatus) error {
	if srv.ID != r.self || r.addr == "" || srv.Address == r.addr || srv.Suffrage != consensus.Voter {
		return nil
	}
	r.logger.Info("this leader's address changed: updating it in the Raft configuration", "id", r.self, "old_raft_addr", srv.Address, "raft_addr", r.addr)
	if err := r.node.AddVoter(ctx, r.self, r.addr); err != nil {
		return fmt.Errorf("update %s's address to %s: %w", r.self, r.addr, err)
	}
	return nil
}

// stillThere reports whether the server named id still proves its name at raftAddr, its address
// in Raft's configuration (the address Raft itself dials, not one gossip advertises). Without
// peer TLS nothing can be proved and it reports false: a leave is taken as said.
func (r *reconciler) stillThere(ctx context.Context, id, raftAddr string) bool {
	if !r.proves || r.admit == nil || raftAddr == "" {
		return false
	}
	return r.admit(ctx, id, raftAddr) == nil
}

// promote makes a non-voter a voter once its state machine has applied something and up to
// (nearly) the leader's commit index, so that adding its vote never makes the quorum wait for
// a laggard.
func (r *reconciler) promote(ctx context.Context, m discovery.Member) error {
	if !r.admitted(ctx, m) {
		return nil
	}
	applied, err := r.bounds(ctx, m.Tags[tagRPCAddr])
	if err != nil {
		return fmt.Errorf("ask %s how far it is: %w", m.Name, err)
	}
	commit := r.node.Status().CommitIndex
	if !caughtUp(applied, commit) {
		// A server that has applied nothing holds no configuration yet (a new cluster's log is
		// shorter than promoteLag): promoted, it made the leader's quorum wait for a server
		// with no log, and a leader that lost contact with it meanwhile (a loaded host) stepped
		// down; the cluster then elected no leader, and never formed.
		r.logger.Debug("non-voter still catching up", "id", m.Name, "applied", applied, "commit", commit)
		return nil
	}
	r.logger.Info("promoting caught-up server to voter", "id", m.Name, "applied", applied, "commit", commit)
	if err := r.node.AddVoter(ctx, m.Name, m.Tags[tagRaftAddr]); err != nil {
		return fmt.Errorf("promote %s: %w", m.Name, err)
	}
	return nil
}

// caughtUp reports whether a non-voter that has applied applied entries may be promoted while
// the leader's commit index is commit: it has applied something (it holds a configuration) and
// is at most promoteLag behind.
func caughtUp(applied, commit uint64) bool {
	return applied > 0 && applied+promoteLag >= commit
}

// appliedIndexOf asks the server at rpcAddr how far its state machine has applied.
func (f *forwarder) appliedIndexOf(ctx context.Context, rpcAddr string) (uint64, error) {
	b, err := f.bounds(ctx, rpcAddr, &logv1.GetBoundsRequest{})
	return b.GetAppliedIndex(), err
}

// nameConflicter is a membership that tells when its start join is refused because another
// live member holds this node's name (discovery/serf's Membership): the other members keep
// that member and never see this node.
type nameConflicter interface {
	NameConflict() (holder string, conflict bool)
}

// nameConflict reports whether another live member holds this node's name, so that this node
// is part of no cluster (see nameConflicter); false with a membership that cannot tell.
func (s *Server) nameConflict() (holder string, conflict bool) {
	if p := s.conflicts.Load(); p != nil {
		return (*p).NameConflict()
	}
	return "", false
}

// notMember is readiness's reason when this node is part of no cluster (telemetry.Sources'
// NotMember), "" otherwise.
func (s *Server) notMember() string {
	if holder, ok := s.nameConflict(); ok {
		return fmt.Sprintf("not a cluster member: another live member holds this node's name %q at %s (node names must be unique)", s.cfg.NodeName, holder)
	}
	return ""
}
