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
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
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
// each) that every server still holds, taking them in turn, so the whole stored history is
// compared over time.
//
// A raised alarm is kept in <data-dir>/DIVERGED (so it survives restarts), shown by the
// commitlog_divergence_alarm gauge, GetBounds' divergence field and `commitlog cluster
// status`, and makes the server refuse reads (Consume, ConsumeStream) with DATA_LOSS. Writes
// still go through Raft, whose entries are not affected. Repair: stop the server, wipe its data
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

	mu  sync.Mutex
	msg string // "" while not raised
}

// openDivergence loads the alarm kept in dataDir, if any.
func openDivergence(dataDir string, logger *slog.Logger) (*divergence, error) {
	d := &divergence{path: filepath.Join(dataDir, divergedFile), logger: logger}
	b, err := os.ReadFile(d.path)
	switch {
	case err == nil:
		d.msg = strings.TrimSpace(string(b))
		if d.msg == "" {
			d.msg = "raised (empty " + divergedFile + " file)"
		}
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
	d.logger.Error("divergence alarm: this server's log differs from the cluster's; it refuses reads until an operator repairs it (wipe its data dir and let it rejoin)", "alarm", msg, "file", d.path)
	if err := writeFileSync(d.path, []byte(msg+"\n")); err != nil {
		d.logger.Error("cannot record the divergence alarm; it lasts until this server stops", "file", d.path, "err", err)
	}
}

// readErr returns the error reads answer while the alarm is raised, nil otherwise.
func (d *divergence) readErr() error {
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
// API has no TLS (there is no identity to check).
func (s *service) trustedPeer(ctx context.Context) bool {
	if s.cfg.ServerTLS == nil {
		return true
	}
	p, ok := transport.PeerFromContext(ctx)
	return ok && p.Server
}

// checksumAnswer fills res's checksum for req.checksum_at and acts on req.expected_checksum.
func (s *service) checksumAnswer(ctx context.Context, req *logv1.GetBoundsRequest, res *logv1.GetBoundsResponse) {
	if req.ChecksumAt != nil {
		at := req.GetChecksumAt()
		sum, err := s.fsm.Checksum(ctx, at)
		switch {
		case err == nil:
			res.Checksum = &sum
			if req.ExpectedChecksum != nil && req.GetExpectedChecksum() != sum && s.trustedPeer(ctx) {
				s.div.raise(fmt.Sprintf("at offset %d its chained checksum is %08x, the cluster majority's %08x", at, sum, req.GetExpectedChecksum()))
			}
		case !errors.Is(err, fsm.ErrChecksumUnavailable):
			s.cfg.Logger.Warn("cannot compute the log checksum asked for", "offset", at, "err", err)
		}
	}
	res.Divergence = s.div.message()
}

// divergenceLoop runs the leader's divergence check every DivergenceCheckInterval until the
// server stops.
func (s *Server) divergenceLoop() {
	var scrub uint64 // the older block the next check compares (see checkDivergence)
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
		if err := s.checkDivergence(ctx, &scrub); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("divergence check incomplete", "err", err)
		}
		cancel()
	}
}

// checkDivergence runs one divergence check (see the top of this file): at the highest offset
// every reachable server has applied, which covers the newest checksum block, and at the last
// offset of one older block that every server still holds, taking the blocks in turn (*scrub
// is the next one), so that the whole history still stored is compared over time.
func (s *Server) checkDivergence(ctx context.Context, scrub *uint64) error {
	servers, err := s.node.Servers(ctx)
	if err != nil {
		return err
	}
	self := s.cfg.NodeName
	type peer struct {
		id string
		c  transport.Client
	}
	var peers []peer
	lowest, common := s.fsm.Bounds()
	for _, srv := range servers {
		if srv.ID == self {
			continue
		}
		c, release, err := s.forward.client(srv.Address)
		if err != nil {
			s.cfg.Logger.Debug("divergence check: cannot reach server", "id", srv.ID, "err", err)
			continue
		}
		defer release() // c is used until the check ends
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
		if err != nil {
			s.cfg.Logger.Debug("divergence check: server did not answer", "id", srv.ID, "err", err)
			continue
		}
		common = min(common, b.GetNextOffset())
		lowest = max(lowest, b.GetLowestOffset())
		peers = append(peers, peer{srv.ID, c})
	}
	if common == 0 || len(peers) == 0 {
		return nil
	}
	clients := map[string]transport.Client{}
	for _, p := range peers {
		clients[p.id] = p.c
	}
	at := common - 1
	err = s.compareChecksums(ctx, at, clients)
	// One older block: those whose start every server still holds, before at's block.
	const block = fsm.ChecksumBlock
	first, last := (lowest+block-1)/block, at/block // blocks [first, last)
	if first < last {
		k := *scrub
		if k < first || k >= last {
			k = first
		}
		*scrub = k + 1
		err = errors.Join(err, s.compareChecksums(ctx, (k+1)*block-1, clients))
	}
	return err
}

// compareChecksums compares the servers' chained checksums at offset at, and raises the
// alarm of those off the majority (see the top of this file).
func (s *Server) compareChecksums(ctx context.Context, at uint64, peers map[string]transport.Client) error {
	self := s.cfg.NodeName
	own, err := s.fsm.Checksum(ctx, at)
	if err != nil {
		if errors.Is(err, fsm.ErrChecksumUnavailable) {
			return nil
		}
		return err
	}
	sums := map[string]uint32{self: own}
	clients := map[string]transport.Client{}
	for id, c := range peers {
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at})
		if err != nil || b.Checksum == nil {
			continue // unreachable, or an older server that does not compute checksums
		}
		sums[id] = b.GetChecksum()
		clients[id] = c
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
	if !found {
		if len(counts) > 1 {
			for id := range sums {
				s.tel.Metrics().DivergenceMismatch(ctx, id)
			}
			s.cfg.Logger.Error("divergence check: servers disagree on the log's checksum and no majority tells which are wrong", "offset", at, "checksums", fmtSums(sums))
		}
		return nil
	}
	for id, v := range sums {
		if v == majority {
			continue
		}
		s.tel.Metrics().DivergenceMismatch(ctx, id)
		s.cfg.Logger.Error("divergence check: a server's log differs from the cluster majority's", "server", id, "offset", at, "checksum", fmt.Sprintf("%08x", v), "majority", fmt.Sprintf("%08x", majority))
		if id == self {
			s.svc.div.raise(fmt.Sprintf("at offset %d its chained checksum is %08x, the cluster majority's %08x", at, v, majority))
			// A leader that refuses reads would fail every linearizable read: hand over.
			if err := s.node.TransferLeadership(ctx, ""); err != nil {
				s.cfg.Logger.Warn("divergence alarm: cannot hand leadership over", "err", err)
			}
			continue
		}
		m := majority
		if _, err := clients[id].GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &m}); err != nil {
			s.cfg.Logger.Warn("divergence check: cannot tell a diverged server", "server", id, "err", err)
		}
	}
	return nil
}

// fmtSums formats checksums by server for a log line.
func fmtSums(sums map[string]uint32) string {
	parts := make([]string, 0, len(sums))
	for id, v := range sums {
		parts = append(parts, fmt.Sprintf("%s=%08x", id, v))
	}
	return strings.Join(parts, " ")
}
