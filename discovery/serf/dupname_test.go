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
// was closed: the duplicate looked healthy while no other member could see it. It must log an
// error naming the live member's address instead, and not count as joined.
func TestDuplicateNameIsNotJoined(t *testing.T) {
	t.Cleanup(func() { waitMemberlistProbesEnded() })
	a := startNode(t, "a", serf.Config{})
	b := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	waitFor(t, a.rec, discovery.EventJoin, "b")

	logs := newCaptureHandler()
	dup := startNode(t, "b", serf.Config{StartJoinAddrs: []string{a.m.LocalMember().Addr}, Logger: slog.New(logs)})
	joined := func(r logRecord) bool { return r.Msg == "joined the cluster" }
	refused := func(r logRecord) bool {
		return r.Level == slog.LevelError && strings.HasPrefix(r.Msg, "not joined:") &&
			r.Attrs["holder"] == b.m.LocalMember().Addr
	}
	poll(t, "the duplicate's first join outcome", func() bool { return logs.has(joined) || logs.has(refused) })
	if logs.has(joined) {
		t.Fatalf("a second node named b, at %s while b is alive at %s, logged that it joined the cluster",
			dup.m.LocalMember().Addr, b.m.LocalMember().Addr)
	}
	select {
	case <-dup.m.Joined():
		t.Fatal("Joined is closed for a node whose name another live member holds")
	default:
	}
	// The live b keeps its name and address.
	for _, mem := range a.m.Members() {
		if mem.Name == "b" && (mem.Addr != b.m.LocalMember().Addr || mem.Status != discovery.StatusAlive) {
			t.Fatalf("a sees b as %+v, want alive at %s", mem, b.m.LocalMember().Addr)
		}
	}
}
