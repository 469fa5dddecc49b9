package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// groupName is the consumer group of the group workload.
const groupName = "chaos"

// groupReader is the group-consumer workload: two members of one consumer group read the
// default topic through the SDK's GroupConsumer, committing every 500 ms, while the nemesis
// runs. One member stays; the other leaves and rejoins every few seconds, so the partition
// changes hands (its next owner starts at the committed offset) under faults. Every record
// delivered is kept by offset: after the run, every record of the cluster's log must have been
// delivered at least once, with the value the log holds (checkGroup).
type groupReader struct {
	addrs  []string
	seed   uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	delivered map[uint64]string
	repeats   int // deliveries of an offset delivered before: at least once allows them
	sessions  int // members joined
}

// startGroupReader starts the group's two members against the cluster at addrs.
func startGroupReader(addrs []string, seed uint64) *groupReader {
	ctx, cancel := context.WithCancel(context.Background())
	g := &groupReader{addrs: addrs, seed: seed, cancel: cancel, delivered: map[uint64]string{}}
	for m := range 2 {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.member(ctx, m)
		}()
	}
	return g
}

// member runs member m's sessions until ctx ends: member 0 keeps one session as long as it
// works; member 1 leaves after 2-5 s and joins again.
func (g *groupReader) member(ctx context.Context, m int) {
	r := rand.New(rand.NewPCG(g.seed, uint64(0x9a0+m)))
	for ctx.Err() == nil {
		life := time.Duration(0)
		if m == 1 {
			life = 2*time.Second + time.Duration(r.Int64N(int64(3*time.Second)))
		}
		g.session(ctx, m, life)
		_ = sleepCtx(ctx, 200*time.Millisecond)
	}
}

// session joins the group, reads until ctx ends, life passes (0: no limit) or the consumer
// fails, then leaves.
func (g *groupReader) session(ctx context.Context, m int, life time.Duration) {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if life > 0 {
		sctx, cancel = context.WithTimeout(ctx, life)
	}
	defer cancel()
	c, err := client.New(sctx, g.addrs, client.WithRequestTimeout(3*time.Second))
	if err != nil {
		return
	}
	defer c.Close()
	gc, err := c.NewGroupConsumer(sctx, groupName, []string{client.DefaultTopic},
		client.WithAutoCommit(500*time.Millisecond), client.WithClientID(fmt.Sprintf("chaos-%d", m)))
	if err != nil {
		return
	}
	g.mu.Lock()
	g.sessions++
	g.mu.Unlock()
	defer gc.Close()
	for rec, err := range gc.Records(sctx) {
		if err != nil {
			continue // a partition's stream broke (it is read again) or the session ends
		}
		g.deliver(rec.Offset, string(rec.Value))
	}
}

// deliver records that the group was given v at off. A repeat with the same value is counted;
// one with another value keeps both ("x | y"), which matches no log: a wrong delivery is not
// hidden by a right one after it (nor a right one by a wrong one).
func (g *groupReader) deliver(off uint64, v string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if before, ok := g.delivered[off]; ok {
		g.repeats++
		if before != v {
			v = before + " | " + v
		}
	}
	g.delivered[off] = v
}

// stop ends the members' sessions and waits for them; it may be called more than once.
func (g *groupReader) stop() {
	g.cancel()
	g.wg.Wait()
}

// covered reports whether every offset of ref was delivered.
func (g *groupReader) covered(ref map[uint64]string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for off := range ref {
		if _, ok := g.delivered[off]; !ok {
			return false
		}
	}
	return true
}

// finish waits up to wait for the members to deliver every record of ref (the healed cluster's
// log), stops them, and returns the verdict. A write whose outcome was unknown may commit after
// ref was read (its entry was in a Raft log, committed once the healed cluster caught up): when
// the group was given an offset ref does not hold, reread reads the cluster's log again, and
// the delivery is checked against that.
func (g *groupReader) finish(ctx context.Context, ref map[uint64]string, wait time.Duration, reread func() map[uint64]string) Verdict {
	deadline := time.Now().Add(wait)
	for !g.covered(ref) && time.Now().Before(deadline) {
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	g.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	var late map[uint64]string
	for off := range g.delivered {
		if _, ok := ref[off]; !ok {
			late = reread()
			break
		}
	}
	return checkGroup(ref, late, g.delivered, g.repeats, g.sessions)
}

// checkGroup: every record of the log (ref) was delivered to a member of the group at least
// once, with the value the log holds at its offset; and every record delivered is in the log:
// in ref, or in late (the log read again after the members stopped, nil if it was not), with
// the value delivered.
func checkGroup(ref, late, delivered map[uint64]string, repeats, sessions int) Verdict {
	var a anomalies
	offs := slices.Sorted(func(yield func(uint64) bool) {
		for off := range ref {
			if !yield(off) {
				return
			}
		}
	})
	for _, off := range offs {
		v, ok := delivered[off]
		switch {
		case !ok:
			a.add("offset %d (%q) was never delivered to the group", off, ref[off])
		case v != ref[off]:
			a.add("offset %d was delivered as %q; the log holds %q", off, v, ref[off])
		}
	}
	committedLate := 0
	for _, off := range slices.Sorted(maps.Keys(delivered)) {
		if _, ok := ref[off]; ok {
			continue
		}
		v := delivered[off]
		switch lv, ok := late[off]; {
		case !ok:
			a.add("offset %d (%q) was delivered but is in no node's log", off, v)
		case lv != v:
			a.add("offset %d was delivered as %q; the log, read again, holds %q", off, v, lv)
		default:
			committedLate++
		}
	}
	v := a.verdict("group-at-least-once")
	v.Note = fmt.Sprintf("%d records, %d delivered again, %d member sessions", len(ref), repeats, sessions)
	if committedLate > 0 {
		v.Note += fmt.Sprintf(", %d committed after the final read", committedLate)
	}
	return v
}
