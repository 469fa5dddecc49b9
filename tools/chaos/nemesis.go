package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// Faults the nemesis knows. A schedule draws from them (or from the list given), sometimes
// combining a network fault with a process fault in one window.
var (
	NetworkFaults = []string{"partition-leader", "partition-halves", "partition-bridge", "partition-oneway", "lossy", "slow"}
	// networkExtra are the ExtraFaults that are network faults (combined as NetworkFaults are).
	networkExtra  = []string{"partition-flap"}
	ProcessFaults = []string{"kill", "kill-leader", "pause-leader", "transfer-leader", "rolling-restart", "remove-add"}
)

// ExtraFaults are faults known to -faults but not drawn by default (the default schedules of a
// seed, CI's included, stay what they were). wipe: SIGKILL a node, delete its data dir and
// start it again with the same flags, without RemoveServer (a disk replaced under load): it
// must catch up from its peers, and must not help elect a candidate lacking writes it had
// acknowledged before it lost them. Its heal waits until the node holds the leader's log.
// wipe-kill-leader: wipe a follower and start it again at once, then, while it catches up
// (0–2 s later), SIGKILL the leader until the window ends: the wiped node and the remaining
// ones must not elect a leader that lacks acknowledged writes (Raft's vote guard).
// partition-flap: a random minority cut off and healed again, over and over (0.2–1 s cut,
// 0.1–0.5 s healed, a new minority each time) for the whole window.
var ExtraFaults = []string{"wipe", "wipe-kill-leader", "partition-flap"}

// AllFaults lists every fault drawn by default.
func AllFaults() []string { return append(slices.Clone(NetworkFaults), ProcessFaults...) }

// KnownFaults lists every fault -faults accepts: AllFaults and ExtraFaults.
func KnownFaults() []string { return append(AllFaults(), ExtraFaults...) }

// Window is one fault window of a schedule.
type Window struct {
	Quiet  time.Duration // healthy time before the fault
	Faults []string
	Hold   time.Duration // how long the fault lasts
}

// Schedule is the sequence of fault windows of one run, drawn from a seed.
type Schedule struct {
	Seed    uint64
	Windows []Window
}

func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d:", s.Seed)
	for _, w := range s.Windows {
		fmt.Fprintf(&b, " +%s %s for %s;", w.Quiet.Round(100*time.Millisecond), strings.Join(w.Faults, "+"), w.Hold.Round(100*time.Millisecond))
	}
	return b.String()
}

// NewSchedule draws fault windows filling about d, from faults (nil: all).
func NewSchedule(seed uint64, d time.Duration, faults []string) Schedule {
	if len(faults) == 0 {
		faults = AllFaults()
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := Schedule{Seed: seed}
	var net, proc []string
	for _, f := range faults {
		if slices.Contains(NetworkFaults, f) || slices.Contains(networkExtra, f) {
			net = append(net, f)
		} else {
			proc = append(proc, f)
		}
	}
	for total := time.Duration(0); total < d; {
		w := Window{
			Quiet: time.Duration(1000+r.IntN(2000)) * time.Millisecond,
			Hold:  time.Duration(3000+r.IntN(5000)) * time.Millisecond,
		}
		f := faults[r.IntN(len(faults))]
		w.Faults = []string{f}
		// Now and then, a network fault and a process fault together (not the slow
		// membership faults: a graceful stop during a partition waits for Raft's timeouts).
		var quick []string
		for _, p := range proc {
			if p != "rolling-restart" && p != "remove-add" && p != "wipe" && p != "wipe-kill-leader" {
				quick = append(quick, p)
			}
		}
		if r.IntN(10) < 3 && len(net) > 0 && len(quick) > 0 {
			w.Faults = []string{net[r.IntN(len(net))], quick[r.IntN(len(quick))]}
		}
		s.Windows = append(s.Windows, w)
		total += w.Quiet + w.Hold
	}
	return s
}

// nemesis applies a schedule's faults to a cluster.
type nemesis struct {
	c     *Cluster
	h     *History
	r     *rand.Rand
	admin *client.Client
	log   func(format string, args ...any)
	// failed holds the faults that could not be applied.
	failed []error
}

// run applies the windows in order until they are done or ctx ends; it heals after each.
func (n *nemesis) run(ctx context.Context, s Schedule) error {
	for _, w := range s.Windows {
		if err := sleepCtx(ctx, w.Quiet); err != nil {
			return nil
		}
		start := n.h.Now()
		var heals []func() error
		var details []string
		for _, f := range w.Faults {
			detail, heal, err := n.apply(ctx, f, w.Hold)
			if err != nil {
				details = append(details, fmt.Sprintf("%s: %v", f, err))
				n.failed = append(n.failed, fmt.Errorf("%s: %w", f, err))
			} else {
				details = append(details, detail)
			}
			if heal != nil {
				heals = append(heals, heal)
			}
		}
		n.log("nemesis: %s", strings.Join(details, "; "))
		_ = sleepCtx(ctx, w.Hold)
		var errs []error
		for i := len(heals) - 1; i >= 0; i-- {
			errs = append(errs, heals[i]())
		}
		n.h.Nemesis(NemesisEvent{Name: strings.Join(w.Faults, "+"), Detail: strings.Join(details, "; "), Start: start, End: n.h.Now()})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("chaos: heal %s: %w", strings.Join(w.Faults, "+"), err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// leaderOrAny returns the leader, or a random running node when none is known.
func (n *nemesis) leaderOrAny(ctx context.Context) *Node {
	if l := n.c.Leader(ctx); l != nil {
		return l
	}
	var up []*Node
	for _, x := range n.c.Nodes {
		if x.Running() {
			up = append(up, x)
		}
	}
	if len(up) == 0 {
		return n.c.Nodes[0]
	}
	return up[n.r.IntN(len(up))]
}

func (n *nemesis) shuffled() []*Node {
	out := slices.Clone(n.c.Nodes)
	n.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// cut makes every node of a and every node of b drop each other's packets.
func (n *nemesis) cut(groups ...[]*Node) error {
	drops := map[int][]int{}
	for gi, g := range groups {
		for gj, o := range groups {
			if gi == gj {
				continue
			}
			for _, x := range g {
				for _, y := range o {
					drops[x.I] = append(drops[x.I], y.I)
				}
			}
		}
	}
	return n.applyDrops(drops, 0)
}

func (n *nemesis) applyDrops(drops map[int][]int, loss int) error {
	var errs []error
	for _, x := range n.c.Nodes {
		errs = append(errs, n.c.Net.Apply(x.I, Rules{DropFrom: drops[x.I], LossPct: loss}))
	}
	return errors.Join(errs...)
}

func names(ns []*Node) string {
	var s []string
	for _, x := range ns {
		s = append(s, x.name)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// leaderAndFollower returns the leader (leaderOrAny) and a running node other than it drawn
// at random; the follower is nil when none runs.
func (n *nemesis) leaderAndFollower(ctx context.Context) (leader, follower *Node) {
	leader = n.leaderOrAny(ctx)
	var cand []*Node
	for _, x := range n.c.Nodes {
		if x != leader && x.Running() {
			cand = append(cand, x)
		}
	}
	if len(cand) == 0 {
		return leader, nil
	}
	return leader, cand[n.r.IntN(len(cand))]
}

// apply starts one fault and returns what it did and how to heal it.
func (n *nemesis) apply(ctx context.Context, f string, hold time.Duration) (string, func() error, error) {
	heal := func() error { return n.c.Net.Heal() }
	switch f {
	case "partition-leader":
		l := n.leaderOrAny(ctx)
		var rest []*Node
		for _, x := range n.c.Nodes {
			if x != l {
				rest = append(rest, x)
			}
		}
		return "isolate leader " + l.name, heal, n.cut([]*Node{l}, rest)
	case "partition-halves":
		s := n.shuffled()
		k := len(s) / 2
		return fmt.Sprintf("partition %s | %s", names(s[:k]), names(s[k:])), heal, n.cut(s[:k], s[k:])
	case "partition-bridge":
		s := n.shuffled()
		rest := s[1:]
		k := len(rest) / 2
		return fmt.Sprintf("bridge %s between %s and %s", s[0].name, names(rest[:k]), names(rest[k:])), heal, n.cut(rest[:k], rest[k:])
	case "partition-oneway":
		l := n.leaderOrAny(ctx)
		drops := map[int][]int{}
		dir := "others do not hear from leader "
		if n.r.IntN(2) == 0 {
			for _, x := range n.c.Nodes {
				if x != l {
					drops[x.I] = append(drops[x.I], l.I)
				}
			}
		} else {
			dir = "leader does not hear from the others: "
			for _, x := range n.c.Nodes {
				if x != l {
					drops[l.I] = append(drops[l.I], x.I)
				}
			}
		}
		return dir + l.name, heal, n.applyDrops(drops, 0)
	case "partition-flap":
		// Its own generator: the goroutine runs while a combined process fault draws from n.r.
		r := rand.New(rand.NewPCG(n.r.Uint64(), 0xf1a9))
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		var ferr error
		flips := 0
		go func() {
			defer close(done)
			for fctx.Err() == nil {
				s := slices.Clone(n.c.Nodes)
				r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
				k := 1 + r.IntN(len(s)/2)
				if ferr = n.cut(s[:k], s[k:]); ferr != nil {
					return
				}
				flips++
				if sleepCtx(fctx, time.Duration(200+r.IntN(800))*time.Millisecond) != nil {
					return
				}
				if ferr = n.c.Net.Heal(); ferr != nil {
					return
				}
				_ = sleepCtx(fctx, time.Duration(100+r.IntN(400))*time.Millisecond)
			}
		}()
		return "flapping partitions: a random minority cut off and healed, again and again", func() error {
			cancel()
			<-done
			n.log("partition-flap: %d cuts", flips)
			if ferr != nil {
				n.failed = append(n.failed, fmt.Errorf("partition-flap: %w", ferr))
			}
			return n.c.Net.Heal()
		}, nil
	case "lossy":
		pct := 20 + n.r.IntN(30)
		return fmt.Sprintf("lose %d%% of node-to-node packets", pct), heal, n.applyDrops(nil, pct)
	case "slow":
		// The leader's link or a random minority's: 64–512 kbit/s, up to 0.2–1.5 s queued.
		s := n.shuffled()[:max(1, (len(n.c.Nodes)-1)/2)]
		if n.r.IntN(2) == 0 {
			s = []*Node{n.leaderOrAny(ctx)}
		}
		rate := 64 << n.r.IntN(4)
		lat := time.Duration(200+n.r.IntN(1300)) * time.Millisecond
		var errs []error
		for _, x := range s {
			errs = append(errs, n.c.Net.Slow(x.I, rate, lat))
		}
		return fmt.Sprintf("slow links of %s: %d kbit/s, up to %s queued", names(s), rate, lat), heal, errors.Join(errs...)
	case "kill", "kill-leader":
		x := n.c.Nodes[n.r.IntN(len(n.c.Nodes))]
		if f == "kill-leader" {
			x = n.leaderOrAny(ctx)
		}
		x.Kill()
		return "kill -9 " + x.name, func() error { return x.Start() }, nil
	case "wipe":
		// Any node, the leader too; one at a time: the heal waits until it holds the
		// leader's log, so two windows never leave two nodes without their data.
		x := n.c.Nodes[n.r.IntN(len(n.c.Nodes))]
		x.Kill()
		restart := func() error {
			if err := x.Start(); err != nil {
				return err
			}
			return n.c.waitCaughtUp(ctx, x, 90*time.Second)
		}
		if err := x.Wipe(); err != nil {
			return "kill -9 " + x.name + ", wipe", restart, err
		}
		return "kill -9 " + x.name + ", wipe its data dir, start it again (still a member)", restart, nil
	case "wipe-kill-leader":
		l, x := n.leaderAndFollower(ctx)
		if x == nil {
			return "wipe-kill-leader: no follower running", nil, nil
		}
		x.Kill()
		if err := x.Wipe(); err != nil {
			return "kill -9 " + x.name + ", wipe", func() error { return x.Start() }, err
		}
		if err := x.Start(); err != nil {
			return "kill -9 " + x.name + ", wipe, start", nil, err
		}
		delay := time.Duration(n.r.IntN(2000)) * time.Millisecond
		_ = sleepCtx(ctx, delay)
		l.Kill()
		return fmt.Sprintf("kill -9 %s, wipe its data dir, start it again; %s later kill -9 the leader %s", x.name, delay, l.name), func() error {
			if err := l.Start(); err != nil {
				return err
			}
			return n.c.waitCaughtUp(ctx, x, 90*time.Second)
		}, nil
	case "pause-leader":
		x := n.leaderOrAny(ctx)
		x.Pause()
		return "SIGSTOP " + x.name, func() error { x.Resume(); return nil }, nil
	case "transfer-leader":
		tctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for sleepCtx(tctx, time.Duration(700+n.r.IntN(600))*time.Millisecond) == nil {
				actx, acancel := context.WithTimeout(tctx, 5*time.Second)
				_, err := n.admin.TransferLeadership(actx, "")
				acancel()
				if err != nil && tctx.Err() == nil {
					n.log("transfer leadership: %v", err)
				}
			}
		}()
		return "transfer leadership about every second", func() error { cancel(); <-done; return nil }, nil
	case "rolling-restart":
		// Each node in turn: SIGTERM, start, wait until it answers (it may see no leader when a
		// partition runs at the same time), a second for it to catch up.
		var errs []error
		for _, x := range n.c.Nodes {
			x.Stop()
			errs = append(errs, x.Start())
			errs = append(errs, n.c.waitUp(ctx, x, 30*time.Second))
			_ = sleepCtx(ctx, time.Second)
		}
		return "rolling restart (SIGTERM, start) of every node", nil, errors.Join(errs...)
	case "remove-add":
		_, x := n.leaderAndFollower(ctx)
		if x == nil {
			return "remove-add: no follower running", nil, nil
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.admin.RemoveServer(actx, x.name)
		cancel()
		wipe := func() error {
			x.Stop()
			return x.Wipe()
		}
		addBack := func() error {
			if err := x.Start(); err != nil {
				return err
			}
			return n.c.WaitVoters(ctx, 60*time.Second)
		}
		if err != nil {
			// Refused or unknown, perhaps for want of a quorum that another fault took: the
			// service's answer, not the fault's failure. Removed all the same (an unknown
			// outcome that was applied): go on as if answered. Still a member: nothing was
			// done, unless the removal is applied later, which the heal finds and completes.
			removed, known := n.c.removed(ctx, x.name, 20*time.Second)
			switch {
			case !known:
				return "remove " + x.name, nil, fmt.Errorf("%w; then no leader said whether it was removed", err)
			case !removed:
				return fmt.Sprintf("remove %s: refused (%v), left in place", x.name, err), func() error {
					if removed, known := n.c.removed(ctx, x.name, 20*time.Second); known && removed {
						return errors.Join(wipe(), addBack())
					}
					return nil
				}, nil
			}
		}
		if err := wipe(); err != nil {
			return "remove " + x.name, nil, err
		}
		return fmt.Sprintf("remove %s, wipe its data, add it back", x.name), addBack, nil
	}
	return "", nil, fmt.Errorf("chaos: unknown fault %q", f)
}

// healAll ends every fault: rules removed, paused nodes resumed, stopped nodes started.
func (n *nemesis) healAll() error {
	errs := []error{n.c.Net.Heal()}
	for _, x := range n.c.Nodes {
		x.Resume()
		if !x.Running() {
			errs = append(errs, x.Start())
		}
	}
	return errors.Join(errs...)
}
