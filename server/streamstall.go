package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
)

// endWhenStalled cancels a ConsumeStream's ctx, with a cause wrapping errLagging (Unavailable:
// the client resumes on another replica), when the stream has sent every record its node holds
// and the node does not apply what the cluster committed after them: its state machine
// stalled, or it is cut off from a leader it still knows (a node that knows no leader is
// endWithoutLeader's). Such a stream waited silently forever while the other replicas went on;
// a Consume of the same offset there answers Unavailable within --max-consume-wait
// (consumeFrom), and so does the stream now, a little later.
//
// While the stream waits at its node's end with nothing applied there for a whole interval
// (stallInterval), it asks for the cluster's commit point (commitPoint: on a follower, one
// linearizable GetBounds to the leader, and a DescribeTopic for a stream naming its topic's
// ID), shared by the streams of its partition (stallLooks); when that is past the stream's position and the node
// does not get there within MaxConsumeWait, or the leader cannot be asked within an election
// and MaxConsumeWait, the stream ends; when the leader no longer has the stream's topic, it
// ends NotFound, the leader's answer. A leader's own streams are not watched (it applies what
// it commits). It returns when ctx ends. pos is the offset of the next record the stream sends.
func (s *service) endWhenStalled(ctx context.Context, cancel context.CancelCauseFunc, rt readTarget, pos *atomic.Uint64) {
	every := s.stallInterval()
	look, release := s.stallLooks.hold(rt)
	defer release()
	timer := time.NewTimer(every)
	defer timer.Stop()
	seen, looked := uint64(0), false // the node's next offset at the last look
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(every)
		_, next := rt.part.Bounds()
		applied := !looked || next != seen
		seen, looked = next, true
		p := pos.Load()
		if p < next || applied || rt.part.Err() != nil || s.node.IsLeader() {
			// Still sending what it holds, or it applies; or it stopped applying for good,
			// which the stream itself reports (Internal); or it leads.
			continue
		}
		committed, err := look.commitPoint(ctx, s, rt, every)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if _, nl := errors.AsType[*consensus.NotLeaderError](err); nl || errors.Is(err, consensus.ErrNoLeader) || rt.part.Err() != nil {
				// No leader (endWithoutLeader ends the stream once that lasts), or none this
				// node can ask; a state machine that stopped meanwhile (the stream says so).
				continue
			}
			if transport.CodeOf(toWire(err)) == transport.NotFound {
				// The cluster no longer has the stream's topic (or, for a stream naming its
				// topic's ID, has another of its name): the leader's answer, NotFound, which
				// this node would give once it applied the deletion.
				cancel(fmt.Errorf("%w: %w", errStreamTopicGone, err))
				return
			}
			cancel(fmt.Errorf("%w: the stream is at offset %d, all this node holds, and it could not learn the cluster's commit point (%v)", errLagging, p, err))
			return
		}
		if p >= committed {
			continue // nothing committed past the stream: an idle log
		}
		wctx, wcancel := context.WithTimeout(ctx, s.cfg.MaxConsumeWait)
		_, err = rt.part.Read(wctx, p)
		timedOut := wctx.Err() != nil
		wcancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil || !timedOut {
			continue // applied meanwhile; or another failure, which the stream meets too
		}
		cancel(fmt.Errorf("%w: offset %d is committed (next offset %d on the leader) but not applied here within %v", errLagging, p, committed, s.cfg.MaxConsumeWait))
		return
	}
}

// errStreamTopicGone ends a stream (NotFound, with the cause it wraps) whose topic the leader
// no longer has while this node has not applied the deletion.
var errStreamTopicGone = errors.New("server: the stream's topic is gone from the cluster")

// stallInterval is how long a stream waits at its node's end, with nothing applied there,
// before endWhenStalled asks for the cluster's commit point: two elections' length, at least
// MaxConsumeWait, so that an idle stream on a follower costs the leader one linearizable read
// every few seconds.
func (s *service) stallInterval() time.Duration {
	return max(2*s.leaderWait, s.cfg.MaxConsumeWait, 10*time.Millisecond)
}

// stallLooks shares endWhenStalled's looks at the cluster's commit point between the streams
// of one partition on this node: a look begun less than a stall interval ago answers every
// stream of that partition, and streams that look while one is under way wait for it. Each
// stream looked on its own: a follower serving a thousand idle streams of one partition cost
// the leader a thousand linearizable reads (and as many DescribeTopic calls for streams
// naming their topic's ID, as the SDK's do) every interval, where one tells them all. A
// commit point up to an interval old only delays the check by an interval: what the cluster
// had committed then, it still has. The zero value is ready to use.
type stallLooks struct {
	mu    sync.Mutex
	looks map[stallKey]*stallLook
}

// stallKey names what a look is of: a partition (its state machine, so one incarnation of its
// topic), and whether the look also checks the topic's ID (readTarget.pinned).
type stallKey struct {
	part   *fsm.FSM
	pinned bool
}

// stallLook is the last look at one partition's commit point, shared by the streams holding it.
type stallLook struct {
	mu        sync.Mutex
	at        time.Time // when it began; zero: none yet
	committed uint64
	err       error
	busy      chan struct{} // non-nil while a look is under way; closed when it ends
	holders   int           // the streams holding it (stallLooks.mu): dropped at 0
}

// hold returns the shared look of rt's partition, which the caller (a stream) holds until it
// calls release.
func (l *stallLooks) hold(rt readTarget) (*stallLook, func()) {
	key := stallKey{part: rt.part, pinned: rt.pinned}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.looks == nil {
		l.looks = make(map[stallKey]*stallLook)
	}
	lk := l.looks[key]
	if lk == nil {
		lk = &stallLook{}
		l.looks[key] = lk
	}
	lk.holders++
	return lk, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if lk.holders--; lk.holders == 0 {
			delete(l.looks, key)
		}
	}
}

// commitPoint is s.commitPoint(rt), bounded by an election and MaxConsumeWait; or the answer of
// the look begun less than fresh ago, or of the one under way. A look whose caller's ctx ended
// is not kept: another caller looks again. Errors: commitPoint's, ctx's.
func (lk *stallLook) commitPoint(ctx context.Context, s *service, rt readTarget, fresh time.Duration) (uint64, error) {
	lk.mu.Lock()
	for lk.busy != nil {
		busy := lk.busy
		lk.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		lk.mu.Lock()
	}
	if !lk.at.IsZero() && time.Since(lk.at) < fresh {
		defer lk.mu.Unlock()
		return lk.committed, lk.err
	}
	busy := make(chan struct{})
	lk.busy = busy
	began := time.Now()
	lk.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.leaderWait+s.cfg.MaxConsumeWait)
	committed, err := s.commitPoint(cctx, rt)
	cancel()
	lk.mu.Lock()
	defer lk.mu.Unlock()
	lk.busy = nil
	close(busy)
	if ctx.Err() == nil {
		lk.at, lk.committed, lk.err = began, committed, err
	}
	return committed, err
}
