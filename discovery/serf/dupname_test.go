package serf_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// TestDuplicateNameIsNotJoined: a second node started under the name of a live member, at
// another address, is refused by memberlist (the others keep the live member), and serf only
// logs the conflict. Its start join reported "joined the cluster" all the same, and Joined
// was closed: the duplicate looked healthy while no other member could see it; and when the
// node it joined was the holder of its name, alone, it retried for ever with a warning that
// it had "reached only this node". It must log an error naming the live member's address
// instead, and not count as joined.
func TestDuplicateNameIsNotJoined(t *testing.T) {
	t.Cleanup(func() { waitMemberlistProbesEnded() })
	for _, tc := range []struct {
		name         string
		holderIsSeed bool // the duplicate takes the name of the seed, alone; else of another member
	}{
		{"another member's name", false},
		{"the seed's name, the seed alone", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startNode(t, "a", serf.Config{})
			holder := a
			if !tc.holderIsSeed {
				holder = startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
				waitFor(t, a.rec, discovery.EventJoin, "b")
			}
			name, addr := holder.m.LocalMember().Name, holder.m.LocalMember().Addr

			logs := newCaptureHandler()
			dup := startNode(t, name, serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}, Logger: slog.New(logs)})
			joined := func(r logRecord) bool { return r.Msg == "joined the cluster" }
			refused := func(r logRecord) bool {
				return r.Level == slog.LevelError && strings.HasPrefix(r.Msg, "not joined:") && r.Attrs["holder"] == addr
			}
			lonely := func(r logRecord) bool { return strings.Contains(r.Attrs["err"], "reached only this node") }
			poll(t, "the duplicate's first join outcome", func() bool { return logs.has(joined) || logs.has(refused) || logs.has(lonely) })
			if logs.has(joined) || logs.has(lonely) {
				t.Fatalf("a second node named %s, at %s while %s is alive at %s, logged that it joined the cluster or reached only itself, not the conflict",
					name, dup.m.LocalMember().Addr, name, addr)
			}
			select {
			case <-dup.m.Joined():
				t.Fatal("Joined is closed for a node whose name another live member holds")
			default:
			}
			if got, ok := dup.m.NameConflict(); !ok || got != addr {
				t.Fatalf("NameConflict of the duplicate = %q, %v; want %q, true", got, ok, addr)
			}
			if got, ok := holder.m.NameConflict(); ok {
				t.Fatalf("NameConflict of the live holder = %q, true; want false", got)
			}
			// The live holder keeps its name and address.
			for _, mem := range a.m.Members() {
				if mem.Name == name && (mem.Addr != addr || mem.Status != discovery.StatusAlive) {
					t.Fatalf("a sees %s as %+v, want alive at %s", name, mem, addr)
				}
			}
		})
	}
}
