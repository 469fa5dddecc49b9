package discoverytest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRecorderWaitForConcurrentEvents(t *testing.T) {
	rec := &discoverytest.Recorder{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, name := range []string{"a", "b", "c"} {
			rec.HandleEvent(discovery.Event{Type: discovery.EventJoin, Member: discovery.Member{Name: name, Tags: map[string]string{"n": name}}})
		}
		rec.HandleEvent(discovery.Event{Type: discovery.EventFailed, Member: discovery.Member{Name: "b"}})
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	e, err := rec.WaitFor(ctx, discovery.EventFailed, "b")
	if err != nil {
		t.Fatal(err)
	}
	if e.Member.Name != "b" || e.Type != discovery.EventFailed {
		t.Errorf("WaitFor returned %v", e)
	}
	wg.Wait()
	if got := len(rec.Events()); got != 4 {
		t.Errorf("recorded %d events, want 4", got)
	}
}

func TestRecorderWaitTimesOut(t *testing.T) {
	rec := &discoverytest.Recorder{}
	rec.HandleEvent(discovery.Event{Type: discovery.EventJoin, Member: discovery.Member{Name: "a"}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := rec.WaitFor(ctx, discovery.EventLeave, "a")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor = %v, want context.Canceled", err)
	}
}

func TestRecorderKeepsCopies(t *testing.T) {
	rec := &discoverytest.Recorder{}
	tags := map[string]string{"k": "v"}
	rec.HandleEvent(discovery.Event{Type: discovery.EventJoin, Member: discovery.Member{Name: "a", Tags: tags}})
	tags["k"] = "changed"
	evs := rec.Events()
	if evs[0].Member.Tags["k"] != "v" {
		t.Error("the recorder kept the caller's map")
	}
	evs[0].Member.Name = "z"
	if rec.Events()[0].Member.Name != "a" {
		t.Error("Events returned the recorder's own slice")
	}
}
