package discoverytest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
)

// Factory starts a fresh, single-node Membership that delivers its events to h and whose
// local member is named name with the given tags. The conformance suite closes it.
type Factory func(t *testing.T, name string, tags map[string]string, h discovery.Handler) discovery.Membership

// Conformance runs the behaviour every discovery.Membership must have, single node, against
// the implementation that newMembership starts: the local join is delivered with its tags,
// LocalMember is listed by Members, snapshots are copies, Join without addresses fails with
// ErrNoAddrs, Close is idempotent and ends delivery, and the methods that need a running
// membership return ErrClosed after Close.
func Conformance(t *testing.T, newMembership Factory) {
	t.Helper()
	wait := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("LocalJoinDelivered", func(t *testing.T) {
		rec := &Recorder{}
		m := newMembership(t, "conf-a", map[string]string{"rpc_addr": "127.0.0.1:8400"}, rec)
		defer m.Close()
		e, err := rec.WaitFor(wait(t), discovery.EventJoin, "conf-a")
		if err != nil {
			t.Fatal(err)
		}
		if e.Member.Tags["rpc_addr"] != "127.0.0.1:8400" || e.Member.Status != discovery.StatusAlive {
			t.Errorf("local join = %+v, want alive with the configured tags", e.Member)
		}
	})

	t.Run("MembersIncludesLocal", func(t *testing.T) {
		m := newMembership(t, "conf-a", map[string]string{"k": "v"}, nil)
		defer m.Close()
		local := m.LocalMember()
		if local.Name != "conf-a" || local.Status != discovery.StatusAlive || local.Tags["k"] != "v" {
			t.Fatalf("LocalMember() = %+v", local)
		}
		members := m.Members()
		if !slices.ContainsFunc(members, func(mem discovery.Member) bool { return mem.Name == local.Name }) {
			t.Fatalf("Members() = %+v does not list the local member", members)
		}
		local.Tags["k"] = "changed"
		for _, mem := range members {
			if mem.Tags != nil {
				mem.Tags["k"] = "changed"
			}
		}
		if got := m.LocalMember().Tags["k"]; got != "v" {
			t.Errorf("changing a returned member changed the membership: tag = %q", got)
		}
	})

	t.Run("JoinWithoutAddrs", func(t *testing.T) {
		m := newMembership(t, "conf-a", nil, nil)
		defer m.Close()
		if _, err := m.Join(t.Context(), nil); !errors.Is(err, discovery.ErrNoAddrs) {
			t.Errorf("Join(nil) = %v, want ErrNoAddrs", err)
		}
	})

	t.Run("CloseIsIdempotentAndFinal", func(t *testing.T) {
		rec := &Recorder{}
		m := newMembership(t, "conf-a", nil, rec)
		if _, err := rec.WaitFor(wait(t), discovery.EventJoin, "conf-a"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := m.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
		}
		n := len(rec.Events())
		if err := m.Leave(t.Context()); !errors.Is(err, discovery.ErrClosed) {
			t.Errorf("Leave after Close = %v, want ErrClosed", err)
		}
		if err := m.SetTags(t.Context(), map[string]string{"a": "b"}); !errors.Is(err, discovery.ErrClosed) {
			t.Errorf("SetTags after Close = %v, want ErrClosed", err)
		}
		if _, err := m.Join(t.Context(), []string{"127.0.0.1:1"}); !errors.Is(err, discovery.ErrClosed) {
			t.Errorf("Join after Close = %v, want ErrClosed", err)
		}
		if got := len(rec.Events()); got != n {
			t.Errorf("%d events delivered after Close", got-n)
		}
	})

	t.Run("LeaveCloses", func(t *testing.T) {
		m := newMembership(t, "conf-a", nil, nil)
		if err := m.Leave(wait(t)); err != nil {
			t.Fatalf("Leave = %v", err)
		}
		if err := m.Leave(t.Context()); !errors.Is(err, discovery.ErrClosed) {
			t.Errorf("second Leave = %v, want ErrClosed", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close after Leave = %v", err)
		}
	})
}
