package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/discovery"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Bootstrap rules (server/README.md, "Bootstrapping a cluster"):
//
//   - BootstrapExpect N: wait for N servers in gossip, none in a cluster yet; the lowest name
//     bootstraps them all as voters. A server already in a cluster seen in gossip: never
//     bootstrap, wait to be added.
//   - StartJoinAddrs without Bootstrap: never bootstrap; wait to be added.
//   - Bootstrap, or no StartJoinAddrs (a local single node): bootstrap alone, after BootstrapWait
//     spent looking for an existing cluster (gossip tags, or a leader contacting this node over
//     Raft); finding one, wait to be added instead.
//
// Nothing of this runs for a node with Raft state: it is in its cluster already.

// bootstrapsAlone reports whether the node would found a single-node cluster of its own.
func (c *Config) bootstrapsAlone() bool {
	return c.BootstrapExpect == 0 && (c.Bootstrap || len(c.StartJoinAddrs) == 0)
}

// bootstrapsAtOnce reports whether Raft bootstraps as it starts (no wait, no gossip check).
func (c *Config) bootstrapsAtOnce() bool { return c.bootstrapsAlone() && c.BootstrapWait <= 0 }

// bootstrapPoll is how often the bootstrap loop looks at gossip.
const bootstrapPoll = 100 * time.Millisecond

// startBootstrap starts the loop deciding whether and how this node bootstraps, when it has
// neither Raft state nor a cluster ID and its configuration lets it bootstrap later.
func (s *Server) startBootstrap() error {
	if s.cfg.bootstrapsAtOnce() || (!s.cfg.bootstrapsAlone() && s.cfg.BootstrapExpect == 0) {
		return nil
	}
	has, err := s.node.HasState()
	if err != nil {
		return err
	}
	if has || s.node.ClusterID() != "" {
		return nil
	}
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.bootstrapLoop() }()
	return nil
}

func (s *Server) bootstrapLoop() {
	log := s.cfg.Logger.With("component", "bootstrap")
	deadline := time.Now().Add(s.cfg.BootstrapWait)
	ctx, cancel := s.untilStopping(context.Background()) // ends admission checks at stop
	defer cancel()
	if s.cfg.BootstrapExpect > 0 {
		log.Info("no Raft state: waiting for the expected servers in gossip", "bootstrap_expect", s.cfg.BootstrapExpect)
	} else {
		log.Info("no Raft state: looking for an existing cluster before bootstrapping one", "wait", s.cfg.BootstrapWait)
	}
	t := time.NewTicker(bootstrapPoll)
	defer t.Stop()
	waitingFor := ""
	var conflicts expectConflicts
	nameTaken := "" // the holder of this node's name last logged
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if id := s.node.ClusterID(); id != "" {
			log.Info("joined an existing cluster: not bootstrapping", "cluster_id", id)
			return
		}
		// A node whose start join another live member holding its name refused reaches no
		// cluster, whatever it looks for: bootstrapping would found a second one under a
		// member's name. It waits until that member is gone and its join succeeds.
		if holder, ok := s.nameConflict(); ok {
			if holder != nameTaken {
				nameTaken = holder
				log.Warn("not bootstrapping: another live member holds this node's name; waiting until it is gone", "holder", holder)
			}
			continue
		}
		members := s.serf.Members()
		conflicts.check(log, members, s.cfg.NodeName, s.cfg.BootstrapExpect)
		if m, ok := clusteredMember(members, s.cfg.NodeName); ok {
			log.Warn("found a server already in a cluster: not bootstrapping, waiting to be added to it",
				"peer", m.Name, "cluster_id", m.Tags[tagClusterID])
			return
		}
		var servers []consensus.Server
		if s.cfg.BootstrapExpect > 0 {
			peers := s.provenServers(ctx, members, s.cfg.BootstrapExpect)
			if len(peers) < s.cfg.BootstrapExpect {
				continue
			}
			if lowest := peers[0].ID; lowest != s.cfg.NodeName {
				if waitingFor != lowest {
					waitingFor = lowest
					log.Info("expected servers present: the one with the lowest name bootstraps", "bootstrapper", lowest, "servers", len(peers))
				}
				continue
			}
			if id, peer := s.peerClusterID(ctx, peers); id != "" {
				// A membership without tags (a fixed list) cannot show it in gossip.
				log.Warn("found a server already in a cluster: not bootstrapping, waiting to be added to it",
					"peer", peer, "cluster_id", id)
				return
			}
			servers = peers
		} else if time.Now().Before(deadline) {
			continue
		}
		err := s.node.Bootstrap(servers)
		switch {
		case err == nil:
			log.Info("bootstrapped a new cluster", "cluster_id", s.node.ClusterID(), "voters", max(len(servers), 1))
			return
		case errors.Is(err, craft.ErrAlreadyBootstrapped):
			log.Info("not bootstrapping: already in a cluster", "err", err)
			return
		default:
			log.Error("bootstrap failed; retrying", "err", err)
		}
	}
}

// expectConflicts warns of servers whose --bootstrap-expect (their expect tag) differs from
// this node's, as Consul does: they disagree on when the cluster may be founded (one may
// bootstrap with fewer voters than another waits for). Each member and value is logged once,
// not at every poll.
type expectConflicts struct {
	logged map[string]string // member → its expect value last warned of
}

// check warns of each member of members but self that advertises an expect value other than
// expect, unless it was warned of with that value already. Without an expect of its own (0),
// or for a member advertising none (a server with only --start-join-addrs, or of an older
// version), there is nothing to compare.
func (c *expectConflicts) check(log *slog.Logger, members []discovery.Member, self string, expect int) {
	if expect <= 0 {
		return
	}
	ours := strconv.Itoa(expect)
	for _, m := range members {
		theirs := m.Tags[tagExpect]
		if m.Name == self || theirs == "" || theirs == ours || c.logged[m.Name] == theirs {
			continue
		}
		if c.logged == nil {
			c.logged = map[string]string{}
		}
		c.logged[m.Name] = theirs
		log.Warn("a server expects a different number of servers: all servers should be given the same --bootstrap-expect",
			"member", m.Name, "member_bootstrap_expect", theirs, "bootstrap_expect", expect)
	}
}

// peerClusterID asks each server of peers but this one, over the API, for its cluster ID, and
// returns the first it gets with the server's name: a server already in a cluster, whatever
// gossip's tags say (a fixed membership has none; tags lag). A server that does not answer is
// taken as one without a cluster, as it is when gossip shows no tag.
func (s *Server) peerClusterID(ctx context.Context, peers []consensus.Server) (id, name string) {
	if s.forward == nil {
		return "", ""
	}
	for _, p := range peers {
		if p.ID == s.cfg.NodeName {
			continue
		}
		c, release, err := s.forward.client(p.Address) // the API and Raft share one address
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		res, err := c.GetServers(cctx, &logv1.GetServersRequest{})
		cancel()
		release()
		if err == nil && res.GetClusterId() != "" {
			return res.GetClusterId(), p.ID
		}
	}
	return "", ""
}

// clusteredMember returns an alive commitlog server other than self that belongs to a cluster.
func clusteredMember(members []discovery.Member, self string) (discovery.Member, bool) {
	for _, m := range members {
		if m.Name != self && m.Status == discovery.StatusAlive && m.Tags[tagRaftAddr] != "" && m.Tags[tagClusterID] != "" {
			return m, true
		}
	}
	return discovery.Member{}, false
}

// provenServers lists the alive commitlog servers in gossip that may found the cluster (self
// included), sorted by name: every other one passes the reconciler's admission (its rpc_addr is
// its raft_addr and, with peer TLS, a certificate naming it answers there), as any server the
// leader adds later must. Knowing the gossip key alone makes no founding voter.
// Fewer than need alive: none is dialled (the loop polls every bootstrapPoll), nil.
func (s *Server) provenServers(ctx context.Context, members []discovery.Member, need int) []consensus.Server {
	alive := slices.DeleteFunc(slices.Clone(members), func(m discovery.Member) bool {
		return m.Status != discovery.StatusAlive || m.Tags[tagRaftAddr] == ""
	})
	if len(alive) < need {
		return nil
	}
	var out []consensus.Server
	for _, m := range alive {
		if m.Name != s.cfg.NodeName && !s.recon.admitted(ctx, m) {
			continue
		}
		out = append(out, consensus.Server{ID: m.Name, Address: m.Tags[tagRaftAddr], Suffrage: consensus.Voter})
	}
	slices.SortFunc(out, func(a, b consensus.Server) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// clusterIDSet is Raft's OnClusterID callback: it must not block, so it only wakes
// syncClusterTag.
func (s *Server) clusterIDSet(string) {
	select {
	case s.clusterTag <- struct{}{}:
	default:
	}
}

// syncClusterTag keeps this node's cluster_id Serf tag equal to its Raft cluster ID.
func (s *Server) syncClusterTag() {
	log := s.cfg.Logger.With("component", "gossip")
	for {
		select {
		case <-s.stopping:
			return
		case <-s.clusterTag:
		}
		id := s.node.ClusterID()
		s.tagMu.Lock()
		tags := s.serf.LocalMember().Tags
		if id == "" || tags[tagClusterID] == id {
			s.tagMu.Unlock()
			continue
		}
		next := make(map[string]string, len(tags)+1)
		for k, v := range tags {
			next[k] = v
		}
		next[tagClusterID] = id
		tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
		ctx, cancel := s.untilStopping(tctx) // Close waits for this goroutine
		err := s.serf.SetTags(ctx, next)
		cancel()
		tcancel()
		s.tagMu.Unlock()
		if errors.Is(err, discovery.ErrNotSupported) {
			// A fixed membership (Config.Membership) cannot advertise it; nothing needs it
			// there: its servers are known in advance.
			log.Debug("the membership cannot advertise the cluster id", "cluster_id", id)
			return
		}
		if err != nil {
			log.Warn("cannot advertise the cluster id in gossip", "cluster_id", id, "err", err)
			s.clusterIDSet(id) // try again on the next wake-up
			select {
			case <-s.stopping:
				return
			case <-time.After(time.Second):
			}
		}
	}
}
