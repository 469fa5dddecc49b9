package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// The divergence detector, after etcd's corruption check. Every DivergenceCheckInterval the
// leader picks the highest offset every reachable server has applied, asks each for its chained
// checksum there (GetBounds with checksum_at; fsm.FSM.Checksum), and takes the value held by a
// strict majority of the answers, its own included, as the cluster's. Each server holding
// another value is a mismatch: counted (commitlog_divergence_mismatches_total), logged as an
// error, and told the majority's value (GetBounds with expected_checksum), upon which it checks
// its own checksum again and, if it still differs, raises its divergence alarm. The leader
// raises its own alarm when it is in the minority, and hands leadership over. Without a strict
// majority (a two-node tie), nothing is raised: only the error log and the counter tell. Each
// check also compares the last offset of one older checksum block (fsm.ChecksumBlock offsets
// each) that every server still holds: first the rest of the block the previous check
// compared as the newest one, once the log moved past it, otherwise the blocks in turn, so
// the whole stored history is compared over time (divergenceState.plan). A block that
// retention cut (its start is below the first offset every server holds, as when a partition
// of fewer records than a block lost its first ones) is compared by the chain from that first
// offset (GetBounds checksum_from), not from the block's start, which no server holds.
//
// Every partition is compared this way: the default one at every check, and up to
// maxDivergencePartitions topic partitions per check, taken in turn. A topic partition is
// compared only among the servers that hold the same incarnation of its topic (the same ID,
// before and after the checksums are asked): deleting a topic and creating it again under the
// same name is not a divergence, whichever servers have applied it.
//
// A raised alarm is kept in <data-dir>/DIVERGED (so it survives restarts), shown by the
// commitlog_divergence_alarm gauge, GetBounds' divergence field and `commitlog cluster
// status`, and makes the server refuse reads (Consume, ConsumeStream) with DATA_LOSS. Writes
// still go through Raft, whose entries are not affected. It also fences the Raft node
// (fence.go): the server neither votes nor is elected, also after a restart. Repair: stop the server, wipe its data
// dir and let it rejoin (it then installs a snapshot from the leader); deleting DIVERGED alone
// clears the alarm without repairing anything.

// DefaultDivergenceCheckInterval is the default Config.DivergenceCheckInterval.
const DefaultDivergenceCheckInterval = 30 * time.Second

// divergedFile holds a raised divergence alarm, in the data dir.
const divergedFile = "DIVERGED"

// divergence is this server's divergence alarm.
type divergence struct {
	path   string
	logger *slog.Logger

	// onRaise, when set (before the server runs), is called once, with the description, when
	// the alarm is raised: it fences the Raft node (fence.go).
	onRaise func(msg string)
	// raisedC gets a value when the alarm is raised (handOverWhileDiverged: a leader hands over).
	raisedC chan struct{}

	mu  sync.Mutex
	msg string // "" while not raised
	// on is msg != "", for readErr: checked before every record a stream sends, so without
	// the lock.
	on atomic.Bool
}

// openDivergence loads the alarm kept in dataDir, if any.
func openDivergence(dataDir string, logger *slog.Logger) (*divergence, error) {
	d := &divergence{path: filepath.Join(dataDir, divergedFile), logger: logger, raisedC: make(chan struct{}, 1)}
	b, err := os.ReadFile(d.path)
	switch {
	case err == nil:
		d.msg = strings.TrimSpace(string(b))
		if d.msg == "" {
			d.msg = "raised (empty " + divergedFile + " file)"
		}
		d.on.Store(true)
		logger.Error("divergence alarm raised before this start: this server refuses reads until an operator repairs it", "file", d.path, "alarm", d.msg)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", d.path, err)
	}
	return d, nil
}

// message returns the alarm's description, "" while not raised.
func (d *divergence) message() string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.msg
}

// raised reports whether the alarm is raised.
func (d *divergence) raised() bool { return d.message() != "" }

// raise raises the alarm (the first description is kept) and records it durably.
func (d *divergence) raise(msg string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.msg != "" {
		return
	}
	d.msg = msg
	d.on.Store(true)
	if d.onRaise != nil {
		d.onRaise(msg)
	}
	select {
	case d.raisedC <- struct{}{}:
	default:
	}
	d.logger.Error("divergence alarm: this server's log differs from the cluster's; it refuses reads, and neither votes nor leads, until an operator repairs it "+
		"(stop it, remove it from the cluster, wipe its data dir and let it rejoin)", "alarm", msg, "file", d.path)
	if err := writeFileSync(d.path, []byte(msg+"\n")); err != nil {
		d.logger.Error("cannot record the divergence alarm; it lasts until this server stops", "file", d.path, "err", err)
	}
}

// readErr returns the error reads answer while the alarm is raised, nil otherwise.
func (d *divergence) readErr() error {
	if d == nil || !d.on.Load() {
		return nil
	}
	if msg := d.message(); msg != "" {
		return transport.Errorf(transport.DataLoss, "this server's log diverged from the cluster's (%s): it refuses reads until an operator repairs it; read from another server", msg)
	}
	return nil
}

// writeFileSync writes name durably (file and directory entry).
func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// trustedPeer reports whether the caller may tell this server the cluster's checksum: a
// cluster peer (peerRule: a certificate from the peer CA naming a node), or anyone when the
// API verifies no client certificate (no TLS, or TLS without a client CA: there is no identity
// to check, and without this no peer's alarm would ever count; claimConfirmed then checks the
// claim with the leader).
func (s *service) trustedPeer(ctx context.Context) bool {
	if s.cfg.ServerTLS == nil || s.cfg.ServerTLS.ClientCAs == nil {
		return true
	}
	p, ok := transport.PeerFromContext(ctx)
	return ok && p.Server
}

// claimConfirmed reports whether a GetBounds' claim (expected_checksum) that the cluster holds
// another checksum than this server at req's offset is to be believed, so that this server
// raises its divergence alarm. A verified peer's is (trustedPeer). Where callers cannot prove
// they are peers (no client CA: plaintext, or TLS without client certificates), anyone who may
// call GetBounds could send one, and a single request (a curl) made every server it reached
// refuse reads until an operator repaired it. So there the claim is checked with the one that
// makes it in the divergence check, the leader: a follower believes it only when the leader's
// own checksum there is the claimed one, and the leader never believes a request (it raises
// its own alarm from its own comparison, compareChecksums). A leader in the minority tells the
// others of the minority a value it does not hold itself: they are told again, and believe it,
// once it has handed leadership to a server of the majority.
func (s *service) claimConfirmed(ctx context.Context, req *logv1.GetBoundsRequest) bool {
	if s.cfg.ServerTLS != nil && s.cfg.ServerTLS.ClientCAs != nil {
		return s.trustedPeer(ctx)
	}
	if s.forward == nil || s.node.IsLeader() {
		return false
	}
	leader, ok := s.node.Leader()
	if !ok || leader.Address == "" {
		return false
	}
	b, err := s.forward.bounds(ctx, leader.Address, &logv1.GetBoundsRequest{ChecksumAt: req.ChecksumAt,
		ChecksumFrom: req.ChecksumFrom, Topic: req.GetTopic(), Partition: req.GetPartition()})
	if err != nil || b.Checksum == nil || (req.ChecksumFrom != nil && b.ChecksumFrom == nil) {
		if err != nil {
			s.cfg.Logger.Warn("divergence: cannot check a claim that this server's log differs with the leader", "leader", leader.ID, "err", err)
		}
		return false
	}
	return b.GetChecksum() == req.GetExpectedChecksum()
}

// checksumAnswer fills res's checksum of partition rt for req.checksum_at and acts on
// req.expected_checksum.
func (s *service) checksumAnswer(ctx context.Context, req *logv1.GetBoundsRequest, res *logv1.GetBoundsResponse, rt readTarget) {
	if req.ChecksumAt != nil {
		at := req.GetChecksumAt()
		from := at - at%fsm.ChecksumBlock
		if req.ChecksumFrom != nil {
			from = req.GetChecksumFrom()
		}
		sum, err := rt.part.ChecksumFrom(ctx, from, at)
		switch {
		case err == nil:
			res.Checksum = &sum
			if req.ChecksumFrom != nil {
				res.ChecksumFrom = &from
			}
			if req.ExpectedChecksum != nil && req.GetExpectedChecksum() != sum && s.claimConfirmed(ctx, req) {
				s.div.raise(fmt.Sprintf("%sat offset %d its chained checksum is %08x, the cluster majority's %08x%s",
					divTarget{rt.topic, rt.partition}.where(), at, sum, req.GetExpectedChecksum(), chainFrom(from, at)))
			}
		case errors.Is(err, storage.ErrCorrupt):
			// A stored record this node acknowledged no longer reads back: its log lost
			// committed data, which only its peers hold now. Whoever asks, the evidence is local.
			s.div.raise(corruptAlarm(divTarget{rt.topic, rt.partition}, at, err))
		case !errors.Is(err, fsm.ErrChecksumUnavailable):
			s.cfg.Logger.Warn("cannot compute the log checksum asked for", "offset", at, "err", err)
		}
	}
	res.Divergence = s.div.message()
}

// divergenceLoop runs the leader's divergence check every DivergenceCheckInterval until the
// server stops.
func (s *Server) divergenceLoop() {
	st := &divergenceState{}
	t := time.NewTicker(s.cfg.DivergenceCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if !s.node.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.DivergenceCheckInterval, 10*time.Second))
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := s.checkDivergence(ctx, st); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("divergence check incomplete", "err", err)
		}
		cancel()
	}
}

// handOverWhileDiverged hands leadership over whenever this server leads with its divergence
// alarm raised (it refuses every read, linearizable ones included), until the server stops:
// when it is elected so, and when the alarm is raised while it leads (a read found a record
// corrupt). Its own divergence check would hand over too, but only an interval later, and never
// with the check off. The alarm also fences the node (fence.go), so it is not elected and takes no
// hand-over: this is for where the fence cannot keep it out, the only voter of a cluster, which
// elects itself (its hand-over then fails, and is tried at its next election).
func (s *Server) handOverWhileDiverged() {
	leads := make(chan struct{}, 1)
	cancel := s.node.SubscribeLeader(func(ev consensus.LeaderEvent) {
		if ev.IsSelf {
			select {
			case leads <- struct{}{}:
			default:
			}
		}
	})
	defer cancel()
	for {
		select {
		case <-s.stopping:
			return
		case <-leads:
		case <-s.svc.div.raisedC: // raised while it leads (a read found a corrupt record)
		}
		if !s.node.IsLeader() || !s.svc.div.raised() {
			continue
		}
		s.cfg.Logger.Warn("divergence alarm: this server leads while it refuses reads: handing leadership over", "alarm", s.svc.div.message())
		tctx, tcancel := context.WithTimeout(context.Background(), shutdownTimeout)
		ctx, cancel := s.untilStopping(tctx)
		if err := s.node.TransferLeadership(ctx, ""); err != nil {
			s.cfg.Logger.Warn("divergence alarm: cannot hand leadership over", "err", err)
		}
		cancel()
		tcancel()
	}
}

// maxDivergencePartitions bounds the topic partitions one divergence check compares (besides
// the default partition, compared by every check): they are taken in turn, so that every
// partition is compared within a few intervals, whatever the number of topics.
const maxDivergencePartitions = 32

// divTarget is a partition the divergence check compares; the zero value is the default
// topic's partition 0.
type divTarget struct {
	topic     string
	partition uint32
}

// where names the partition for an alarm or a log line: "" for the default partition (the
// messages of servers before topics), "topic "orders" partition 2: " otherwise.
func (t divTarget) where() string {
	if (t.topic == "" || t.topic == fsm.DefaultTopic) && t.partition == 0 {
		return ""
	}
	return fmt.Sprintf("topic %q partition %d: ", t.topic, t.partition)
}

// chainFrom tells, for an alarm or a log line, where a chain ending at at started when that is
// not its block's start (a block that retention cut): "" otherwise.
func chainFrom(from, at uint64) string {
	if from == at-at%fsm.ChecksumBlock {
		return ""
	}
	return fmt.Sprintf(" (chain from offset %d)", from)
}

// divergenceState is what the leader's checks carry from one to the next.
type divergenceState struct {
	scrub map[divTarget]uint64 // per partition, the older block its next check compares
	// tail is, per partition, the offset its last check compared in the newest block: the
	// records after it in that block are compared once the log moved past the block.
	tail map[divTarget]uint64
	next int // the first topic partition (in name order) the next check compares
}

// span is a chain the check compares: the servers' checksums at at of the chain from from
// (fsm.FSM.ChecksumFrom; from is in at's block).
type span struct{ from, at uint64 }

// plan picks the chains one check of partition t compares, every server holding [lowest,
// common): the newest block up to common-1 (from lowest when retention cut that block), and
// one older block, whole or from lowest: the rest of the block the last check compared as the
// newest one when the log has since moved past it (so that the records written between that
// check and the block's end are compared at once, not when the scrub comes round to them),
// otherwise the next block in turn (st.scrub), so that every record still held, in partial
// blocks too, is compared within as many checks as there are blocks.
func (st *divergenceState) plan(t divTarget, lowest, common uint64) []span {
	if st.scrub == nil {
		st.scrub = map[divTarget]uint64{}
	}
	if st.tail == nil {
		st.tail = map[divTarget]uint64{}
	}
	if common == 0 || lowest >= common {
		return nil
	}
	const block = fsm.ChecksumBlock
	at := common - 1
	whole := func(k uint64) span { return span{max(k*block, lowest), (k+1)*block - 1} }
	out := []span{{max(at-at%block, lowest), at}}
	first, last := lowest/block, at/block // the older blocks still held, partly or whole: [first, last)
	prev, seen := st.tail[t]
	st.tail[t] = at
	if seen && prev/block >= first && prev/block < last && prev%block != block-1 {
		return append(out, whole(prev/block))
	}
	if first < last {
		k := st.scrub[t]
		if k < first || k >= last {
			k = first
		}
		st.scrub[t] = k + 1
		out = append(out, whole(k))
	}
	return out
}

// forget drops the scrub positions of the topic partitions not among targets (deleted
// topics), so that they do not pile up while topics come and go.
func (st *divergenceState) forget(targets []divTarget) {
	live := make(map[divTarget]bool, len(targets))
	for _, t := range targets {
		live[t] = true
	}
	for t := range st.scrub {
		if t != (divTarget{}) && !live[t] {
			delete(st.scrub, t)
		}
	}
	for t := range st.tail {
		if t != (divTarget{}) && !live[t] {
			delete(st.tail, t)
		}
	}
}

// divPeer is a server the check compares this one with.
type divPeer struct {
	id string
	c  transport.Client
}

// checkDivergence runs one divergence check (see the top of this file) of the default
// partition and of up to maxDivergencePartitions topic partitions, taken in turn.
func (s *Server) checkDivergence(ctx context.Context, st *divergenceState) error {
	servers, err := s.node.Servers(ctx)
	if err != nil {
		return err
	}
	var peers []divPeer
	for _, srv := range servers {
		if srv.ID == s.cfg.NodeName {
			continue
		}
		c, release, err := s.forward.client(srv.Address)
		if err != nil {
			s.cfg.Logger.Debug("divergence check: cannot reach server", "id", srv.ID, "err", err)
			continue
		}
		defer release() // c is used until the check ends
		if !s.sameCluster(ctx, srv.ID, c) {
			continue
		}
		peers = append(peers, divPeer{srv.ID, c})
	}
	if len(peers) == 0 {
		return nil
	}
	errs := []error{s.checkPartition(ctx, divTarget{}, s.fsm, peers, nil, st)}

	// The topics' partitions, in name order, from where the last check stopped.
	var targets []divTarget
	for _, t := range s.sm.Topics() {
		if t.Name == fsm.DefaultTopic {
			continue
		}
		for p := range t.Partitions {
			targets = append(targets, divTarget{t.Name, p})
		}
	}
	st.forget(targets)
	if len(targets) == 0 {
		return errors.Join(errs...)
	}
	if st.next >= len(targets) {
		st.next = 0
	}
	chosen := targets[st.next:min(len(targets), st.next+maxDivergencePartitions)]
	st.next += len(chosen)
	for len(chosen) > 0 {
		topic := chosen[0].topic
		n := 1
		for n < len(chosen) && chosen[n].topic == topic {
			n++
		}
		errs = append(errs, s.checkTopic(ctx, topic, chosen[:n], peers, st))
		chosen = chosen[n:]
	}
	return errors.Join(errs...)
}

// sameCluster reports whether the server answering at a configured server's address (id) is
// of this node's cluster. The address of a server that is gone may answer for a node of
// another cluster (a port or an IP reused): its log is not this cluster's, and telling it the
// majority's checksum would raise the alarm of a healthy server. A cluster without an ID (one
// that predates them, until its log gives it one) compares every server, as before.
func (s *Server) sameCluster(ctx context.Context, id string, c transport.Client) bool {
	ours := s.node.ClusterID()
	if ours == "" {
		return true
	}
	res, err := c.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		s.cfg.Logger.Debug("divergence check: server did not answer", "id", id, "err", err)
		return false
	}
	if theirs := res.GetClusterId(); theirs != ours {
		s.cfg.Logger.Warn("divergence check: the address of a server in the Raft configuration answers for another cluster: not comparing it",
			"id", id, "local_cluster_id", ours, "peer_cluster_id", theirs)
		return false
	}
	return true
}

// checkTopic compares some partitions of one topic. A topic is compared only with the servers
// that hold the same incarnation of it (the same ID, before and after the checksums are
// asked): a server that has not applied a deletion and re-creation of the topic yet holds
// other records under its name, without having diverged.
func (s *Server) checkTopic(ctx context.Context, topic string, parts []divTarget, peers []divPeer, st *divergenceState) error {
	own, err := s.sm.Topic(topic)
	if err != nil {
		return nil // deleted meanwhile
	}
	id := own.ID.String()
	// describe returns, for each peer that holds this incarnation, its partitions' bounds.
	describe := func(among []divPeer) map[string][]*logv1.PartitionInfo {
		out := map[string][]*logv1.PartitionInfo{}
		for _, p := range among {
			tc, ok := p.c.(transport.TopicsClient)
			if !ok {
				continue
			}
			d, err := tc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: topic})
			if err != nil || d.GetTopic().GetId() != id {
				continue // unreachable, or another incarnation (or none yet) there
			}
			out[p.id] = d.GetPartitions()
		}
		return out
	}
	held := describe(peers)
	var same []divPeer
	for _, p := range peers {
		if _, ok := held[p.id]; ok {
			same = append(same, p)
		}
	}
	if len(same) == 0 {
		return nil
	}
	// still reports, after the checksums were asked, which servers still hold this
	// incarnation (this one included): only their answers count.
	still := func() map[string]bool {
		ok := map[string]bool{}
		if t, err := s.sm.Topic(topic); err == nil && t.ID == own.ID {
			ok[s.cfg.NodeName] = true
		}
		for pid := range describe(same) {
			ok[pid] = true
		}
		return ok
	}
	var errs []error
	for _, t := range parts {
		f, _, err := s.sm.Partition(t.topic, t.partition)
		if err != nil {
			continue
		}
		bounds := map[string][2]uint64{}
		for pid, infos := range held {
			for _, pi := range infos {
				if pi.GetPartition() == t.partition {
					bounds[pid] = [2]uint64{pi.GetLowestOffset(), pi.GetNextOffset()}
				}
			}
		}
		errs = append(errs, s.checkPartition(ctx, t, f, same, &partitionBounds{bounds, still}, st))
	}
	return errors.Join(errs...)
}

// partitionBounds are a topic partition's bounds on the peers (lowest, next), as DescribeTopic
// answered them, and the incarnation check of checkTopic.
type partitionBounds struct {
	byPeer map[string][2]uint64
	still  func() map[string]bool
}

// checkPartition compares one partition (own is its log here): the chains st.plan picks
// among the records every reachable server holds (the newest block and one older one), so that
// the whole history still stored is compared over time. pb is nil for the default partition,
// whose bounds are asked with GetBounds.
func (s *Server) checkPartition(ctx context.Context, t divTarget, own *fsm.FSM, peers []divPeer, pb *partitionBounds, st *divergenceState) error {
	lowest, common := own.Bounds()
	clients := map[string]transport.Client{}
	for _, p := range peers {
		var lo, next uint64
		if pb != nil {
			b, ok := pb.byPeer[p.id]
			if !ok {
				continue
			}
			lo, next = b[0], b[1]
		} else {
			b, err := p.c.GetBounds(ctx, &logv1.GetBoundsRequest{})
			if err != nil {
				s.cfg.Logger.Debug("divergence check: server did not answer", "id", p.id, "err", err)
				continue
			}
			lo, next = b.GetLowestOffset(), b.GetNextOffset()
		}
		common = min(common, next)
		lowest = max(lowest, lo)
		clients[p.id] = p.c
	}
	if len(clients) == 0 {
		return nil
	}
	var still func() map[string]bool
	if pb != nil {
		still = pb.still
	}
	var errs []error
	for _, sp := range st.plan(t, lowest, common) {
		errs = append(errs, s.compareChecksums(ctx, t, own, sp, clients, still))
	}
	return errors.Join(errs...)
}

// compareChecksums compares the servers' chained checksums of partition t (own is its log
// here) at offset sp.at, of the chain from sp.from, and raises the alarm of those off the majority (see the top of this
// file). still, when set, says which servers (this one included) still hold the partition's
// topic incarnation once the checksums are in: the others' answers are dropped.
func (s *Server) compareChecksums(ctx context.Context, t divTarget, own *fsm.FSM, sp span, peers map[string]transport.Client, still func() map[string]bool) error {
	self := s.cfg.NodeName
	at := sp.at
	// A chain from its block's start is asked without checksum_from, as servers that predate
	// the field understand it; another one with it, and only the answers that echo it count.
	var from *uint64
	if sp.from != at-at%fsm.ChecksumBlock {
		from = &sp.from
	}
	mine, err := own.ChecksumFrom(ctx, sp.from, at)
	if err != nil {
		if errors.Is(err, fsm.ErrChecksumUnavailable) {
			return nil
		}
		if errors.Is(err, storage.ErrCorrupt) {
			s.svc.div.raise(corruptAlarm(t, at, err))
			// A leader that refuses reads would fail every linearizable read: hand over.
			if terr := s.node.TransferLeadership(ctx, ""); terr != nil {
				s.cfg.Logger.Warn("divergence alarm: cannot hand leadership over", "err", terr)
			}
			return nil
		}
		return err
	}
	sums := map[string]uint32{self: mine}
	clients := map[string]transport.Client{}
	for id, c := range peers {
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ChecksumFrom: from, Topic: t.topic, Partition: t.partition})
		if err != nil || b.Checksum == nil {
			continue // unreachable, or an older server that does not compute checksums
		}
		if from != nil && (b.ChecksumFrom == nil || b.GetChecksumFrom() != sp.from) {
			continue // an older server: its chain starts at the block's start
		}
		sums[id] = b.GetChecksum()
		clients[id] = c
	}
	if still != nil {
		ok := still()
		if !ok[self] {
			return nil // the topic was deleted or re-created here meanwhile
		}
		for id := range sums {
			if !ok[id] {
				delete(sums, id)
			}
		}
	}
	counts := map[uint32]int{}
	for _, v := range sums {
		counts[v]++
	}
	var majority uint32
	found := false
	for v, n := range counts {
		if 2*n > len(sums) {
			majority, found = v, true
		}
	}
	where, chain := t.where(), chainFrom(sp.from, at)
	if !found {
		if len(counts) > 1 {
			for id := range sums {
				s.tel.Metrics().DivergenceMismatch(ctx, id)
			}
			s.cfg.Logger.Error("divergence check: servers disagree on the log's checksum and no majority tells which are wrong", "topic", t.topic, "partition", t.partition, "offset", at, "from", sp.from, "checksums", fmtSums(sums))
		}
		return nil
	}
	for id, v := range sums {
		if v == majority {
			continue
		}
		s.tel.Metrics().DivergenceMismatch(ctx, id)
		s.cfg.Logger.Error("divergence check: a server's log differs from the cluster majority's", "server", id, "topic", t.topic, "partition", t.partition, "offset", at, "from", sp.from, "checksum", fmt.Sprintf("%08x", v), "majority", fmt.Sprintf("%08x", majority))
		if id == self {
			s.svc.div.raise(fmt.Sprintf("%sat offset %d its chained checksum is %08x, the cluster majority's %08x%s", where, at, v, majority, chain))
			// A leader that refuses reads would fail every linearizable read: hand over.
			if err := s.node.TransferLeadership(ctx, ""); err != nil {
				s.cfg.Logger.Warn("divergence alarm: cannot hand leadership over", "err", err)
			}
			continue
		}
		m := majority
		if _, err := clients[id].GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ChecksumFrom: from, ExpectedChecksum: &m, Topic: t.topic, Partition: t.partition}); err != nil {
			s.cfg.Logger.Warn("divergence check: cannot tell a diverged server", "server", id, "err", err)
		}
	}
	return nil
}

// corruptAlarm is the divergence alarm's description of a stored record that fails its
// checksum while the log's checksum at offset at is computed (a bit flipped at rest in a
// sealed segment, which the storage's cheap check at start does not read): the server serves
// that record to no one, but it also lost it, so it refuses every read and hands leadership
// over, as a diverged server does, until it is repaired from its peers.
func corruptAlarm(t divTarget, at uint64, err error) string {
	return fmt.Sprintf("%sa stored record below offset %d is corrupt on disk: %v", t.where(), at+1, err)
}

// corruptReadAlarm is the divergence alarm's description of a stored record that failed its
// checksum when a client read it (corruptRead).
func corruptReadAlarm(t divTarget, err error) string {
	return fmt.Sprintf("%sa stored record is corrupt on disk (found by a read): %v", t.where(), err)
}

// fmtSums formats checksums by server for a log line.
func fmtSums(sums map[string]uint32) string {
	parts := make([]string, 0, len(sums))
	for id, v := range sums {
		parts = append(parts, fmt.Sprintf("%s=%08x", id, v))
	}
	return strings.Join(parts, " ")
}
