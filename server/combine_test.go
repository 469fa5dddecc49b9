package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
)

// fakeLog is a proposal function for the combiner: it appends every batch it is given (after
// gate lets it, when set), refuses batches as the FSM limits would, and records their sizes.
type fakeLog struct {
	mu      sync.Mutex
	next    uint64
	batches []int
	entered chan struct{} // told of each proposal as it starts (when set)
	gate    chan struct{} // each proposal waits for a value (when set)
	maxRec  int           // a record longer than this is refused with ErrTooLarge
	fail    error         // every proposal fails with it (when set)
}

func (f *fakeLog) propose(_ context.Context, _ produceTarget, batch []fsm.AppendRecord) (fsm.AppendResult, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return fsm.AppendResult{}, f.fail
	}
	for i, r := range batch {
		if f.maxRec > 0 && len(r.Value) > f.maxRec {
			return fsm.AppendResult{}, fmt.Errorf("record %d: %w", i, fsm.ErrTooLarge)
		}
	}
	first := f.next
	f.next += uint64(len(batch))
	f.batches = append(f.batches, len(batch))
	return fsm.AppendResult{First: first, Count: uint64(len(batch))}, nil
}

func fitsUpTo(records int) func(int, int) bool {
	return func(n, _ int) bool { return n <= records }
}

// The records that arrive while a proposal is in flight go out together in the next one, each
// answered with its own offset; a record that finds nothing in flight is proposed at once.
func TestCombinerGroupsWhileInFlight(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	c := newCombiner(fitsUpTo(100), f.propose)
	ctx := context.Background()
	to := produceTarget{}

	type answer struct {
		value string
		res   fsm.AppendResult
		err   error
	}
	answers := make(chan answer, 11)
	produce := func(v string) {
		res, err := c.append(ctx, to, fsm.AppendRecord{Value: []byte(v)})
		answers <- answer{v, res, err}
	}
	go produce("first")
	<-f.entered // "first" is in flight on its own
	for i := range 10 {
		go produce(fmt.Sprint("r", i))
	}
	queued(t, c, 10)
	f.gate <- struct{}{} // "first" commits
	<-f.entered          // the ten go out together
	f.gate <- struct{}{}
	seen := map[uint64]bool{}
	for range 11 {
		a := <-answers
		if a.err != nil || a.res.Count != 1 || seen[a.res.First] {
			t.Fatalf("%s: %+v, %v", a.value, a.res, a.err)
		}
		seen[a.res.First] = true
		if a.value == "first" && a.res.First != 0 {
			t.Fatalf("first record at offset %d", a.res.First)
		}
	}
	if fmt.Sprint(f.batches) != "[1 10]" {
		t.Fatalf("batches %v, want [1 10]", f.batches)
	}
	idle(t, c)
}

// A group never exceeds what fits one command: the rest waits for the next proposal.
func TestCombinerSplitsAtTheLimit(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	c := newCombiner(fitsUpTo(4), f.propose)
	var wg sync.WaitGroup
	produce := func() {
		defer wg.Done()
		if _, err := c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("v")}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go produce()
	<-f.entered
	wg.Add(9)
	for range 9 {
		go produce()
	}
	queued(t, c, 9)
	for range 3 {
		f.gate <- struct{}{} // commits the proposal in flight
		<-f.entered          // the next one starts
	}
	f.gate <- struct{}{}
	wg.Wait()
	if fmt.Sprint(f.batches) != "[1 4 4 1]" {
		t.Fatalf("batches %v, want [1 4 4 1]", f.batches)
	}
}

// A group refused as a whole (one record too large) is proposed member by member: the others
// are stored, the large one alone gets ErrTooLarge.
func TestCombinerRefusedGroupRetriedAlone(t *testing.T) {
	hold := make(chan struct{})
	f := &fakeLog{entered: make(chan struct{}, 100), gate: hold, maxRec: 5}
	c := newCombiner(fitsUpTo(100), f.propose)
	errs := make(chan error, 4)
	go func() {
		_, err := c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("ok")})
		errs <- err
	}()
	<-f.entered
	for _, v := range []string{"a", "far too large", "b"} {
		go func() {
			_, err := c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte(v)})
			errs <- err
		}()
	}
	queued(t, c, 3)
	close(hold)
	var tooLarge, ok int
	for range 4 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, fsm.ErrTooLarge):
			tooLarge++
		default:
			t.Fatal(err)
		}
	}
	if ok != 3 || tooLarge != 1 || f.next != 3 {
		t.Fatalf("%d stored, %d too large, log holds %d", ok, tooLarge, f.next)
	}
}

// A caller that stops waiting before its record is proposed is answered its context's error and
// its record is not proposed; after, it is told the outcome is unknown.
func TestCombinerCallerGivesUp(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	c := newCombiner(fitsUpTo(100), f.propose)
	go func() {
		_, _ = c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("held")})
	}()
	<-f.entered

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.append(ctx, produceTarget{}, fsm.AppendRecord{Value: []byte("withdrawn")})
		errc <- err
	}()
	queued(t, c, 1)
	cancel()
	if err := <-errc; !errors.Is(err, errWithdrawn) || !errors.Is(err, context.Canceled) || errors.Is(err, consensus.ErrOutcomeUnknown) {
		t.Fatalf("withdrawn: %v, want errWithdrawn with context.Canceled", err)
	}
	f.gate <- struct{}{} // "held" commits; nothing else was queued
	idle(t, c)
	if f.next != 1 {
		t.Fatalf("log holds %d records, want 1", f.next)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		_, err := c.append(ctx, produceTarget{}, fsm.AppendRecord{Value: []byte("in flight")})
		errc <- err
	}()
	<-f.entered
	cancel()
	if err := <-errc; !errors.Is(err, consensus.ErrOutcomeUnknown) {
		t.Fatalf("in flight: %v, want ErrOutcomeUnknown", err)
	}
	f.gate <- struct{}{}
	idle(t, c)
}

// A record still waiting behind a proposal in flight when its caller's deadline is near is
// taken back and answered, before the deadline, that it was not proposed: the caller hears it
// and may send the record again (to the next leader). Answered at the deadline, it could only
// have taken the outcome as unknown. A record already proposed waits for its outcome.
func TestCombinerAnswersNotProposedBeforeTheDeadline(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	c := newCombiner(fitsUpTo(100), f.propose)
	heldc := make(chan error, 1)
	go func() {
		_, err := c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("held")})
		heldc <- err
	}()
	<-f.entered

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.append(ctx, produceTarget{}, fsm.AppendRecord{Value: []byte("waiting")})
	if ctx.Err() != nil {
		t.Fatalf("answered %v only once the deadline had passed", err)
	}
	if !errors.Is(err, errWithdrawn) {
		t.Fatalf("answered %v, want errWithdrawn", err)
	}
	if te := toWire(err); !transport.IsNotProposed(te) || transport.CodeOf(te) != transport.Unavailable {
		t.Fatalf("on the wire: %v, want Unavailable with the NotProposed detail", te)
	}

	// A record proposed before its deadline came near is not taken back.
	f.gate <- struct{}{} // "held" commits
	if err := <-heldc; err != nil {
		t.Fatalf("held: %v", err)
	}
	idle(t, c)
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.append(ctx, produceTarget{}, fsm.AppendRecord{Value: []byte("in flight")})
		errc <- err
	}()
	<-f.entered
	time.Sleep(290 * time.Millisecond) // past the point a waiting record would be taken back
	f.gate <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatalf("in flight: %v, want its offset", err)
	}
	idle(t, c)
	if f.next != 2 {
		t.Fatalf("log holds %d records, want 2 (waiting never proposed)", f.next)
	}
}

// Every member of a group that fails gets the group's error.
func TestCombinerGroupError(t *testing.T) {
	f := &fakeLog{fail: fmt.Errorf("%w: lost", consensus.ErrOutcomeUnknown)}
	c := newCombiner(fitsUpTo(100), f.propose)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("v")}); !errors.Is(err, consensus.ErrOutcomeUnknown) {
				t.Errorf("got %v", err)
			}
		}()
	}
	wg.Wait()
}

// queued waits until n records wait at the default partition behind the one in flight.
func queued(t *testing.T, c *combiner, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprint(n, " records queued"), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		q := c.parts[partKey{}]
		return q != nil && len(q.waiting) == n
	})
}

// idle waits until the combiner holds no partition: nothing in flight, nothing queued.
func idle(t *testing.T, c *combiner) {
	t.Helper()
	waitFor(t, 10*time.Second, "the combiner idle", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.parts) == 0
	})
}
