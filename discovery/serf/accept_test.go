package serf_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// TestAcceptRefusesMembers: two nodes whose Accept refuses each other (another "pool" tag)
// never merge: the join fails on the joining end with Accept's error, and neither lists the
// other. A third node that both would accept joins the first as usual.
func TestAcceptRefusesMembers(t *testing.T) {
	errForeign := errors.New("of another pool")
	accept := func(pool string) func(discovery.Member) error {
		return func(m discovery.Member) error {
			if p := m.Tags["pool"]; p != "" && p != pool {
				return errForeign
			}
			return nil
		}
	}
	a := startNode(t, "a", serf.Config{Tags: map[string]string{"pool": "x"}, Accept: accept("x")})
	b := startNode(t, "b", serf.Config{Tags: map[string]string{"pool": "y"}, Accept: accept("y")})
	if _, err := b.m.Join(waitCtx(t), []string{a.m.LocalMember().Addr}); err == nil || !strings.Contains(err.Error(), errForeign.Error()) {
		t.Fatalf("Join = %v; want a refusal carrying Accept's error", err)
	}
	holds := func(n node, name string) bool {
		return slices.ContainsFunc(n.m.Members(), func(m discovery.Member) bool { return m.Name == name })
	}
	if holds(a, "b") || holds(b, "a") {
		t.Fatalf("refused members merged: a holds b %v, b holds a %v", holds(a, "b"), holds(b, "a"))
	}
	c := startNode(t, "c", serf.Config{Accept: accept("x")})
	if n, err := c.m.Join(waitCtx(t), []string{a.m.LocalMember().Addr}); err != nil || n != 1 {
		t.Fatalf("Join of an accepted member = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, a.rec, discovery.EventJoin, "c")
	if holds(c, "b") || holds(a, "b") {
		t.Fatal("the refused member reached the pool through the third node")
	}
}
